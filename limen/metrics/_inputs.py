"""Turn a data_dict's ``y_test`` and a model's predictions into checked 1-D numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["binary_labels", "check_length", "matching", "one_column", "y_test_array"]


def y_test_array(data: Mapping[str, Any]) -> np.ndarray:
    """``data['y_test']`` as a non-empty 1-D array."""
    if not isinstance(data, Mapping):
        raise TypeError(
            f"data must be the data_dict returned by prep() (a mapping holding 'y_test'); "
            f"got {type(data).__name__}."
        )
    if "y_test" not in data:
        raise KeyError(
            f"data has no 'y_test' key (it has {sorted(map(str, data))}); pass the data_dict "
            "returned by prep(), which holds x_train, y_train, x_val, y_val, x_test and y_test."
        )
    return one_column("y_test", data["y_test"])


def one_column(name: str, values: Any) -> np.ndarray:
    """``values`` (a Series, a one-column frame, a list or an array) as a non-empty 1-D array."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name!r} must hold one value per row; got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"{name!r} is empty; metrics need at least one test row.")
    return array


def matching(name: str, values: Any, y_test: np.ndarray) -> np.ndarray:
    """``values`` as a 1-D array with one entry per ``y_test`` row."""
    array = one_column(name, values)
    check_length(name, array, y_test)
    return array


def check_length(
    name: str, values: np.ndarray, target: np.ndarray, *, target_name: str = "y_test"
) -> None:
    """Raise ``ValueError`` unless ``values`` has exactly one row per ``target`` row."""
    if len(values) != len(target):
        raise ValueError(
            f"{name!r} has {len(values)} rows but {target_name!r} has {len(target)}; "
            f"pass exactly one value per {target_name!r} row."
        )


def binary_labels(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as an int array of 0/1 labels; anything else raises ``ValueError``."""
    unexpected = [v for v in np.unique(values).tolist() if v not in (0, 1)]
    if unexpected:
        raise ValueError(
            f"{name!r} must hold binary labels 0 and 1 (1 is the positive class); "
            f"found {unexpected[:5]}. Use multiclass_metrics for more than two classes."
        )
    return values.astype(int)
