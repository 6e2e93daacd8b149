"""Optuna's matplotlib plots of a study, written as PNG files.

Nothing here picks a matplotlib backend: without a display matplotlib renders off-screen by
itself, and the ``limen plot`` command selects ``Agg`` explicitly. Figures are closed after
saving, so plotting many studies does not accumulate memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

__all__ = ["PLOT_DPI", "PLOT_KINDS", "write_plot"]

PLOT_DPI = 110


def _plotters() -> dict[str, Callable[..., Any]]:
    from optuna.visualization import matplotlib as optuna_plots

    return {
        "optimization_history": optuna_plots.plot_optimization_history,
        "param_importances": optuna_plots.plot_param_importances,
        "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
        "slice": optuna_plots.plot_slice,
    }


PLOT_KINDS = ("optimization_history", "param_importances", "parallel_coordinate", "slice")


def write_plot(study: optuna.Study, kind: str, path: Path, target_name: str) -> Path:
    """Draw the ``kind`` plot of ``study``'s objective (named ``target_name``) into ``path``."""
    if kind not in PLOT_KINDS:
        raise ValueError(
            f"The 'kind' parameter must be one of {list(PLOT_KINDS)}. Got {kind!r} instead."
        )
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        drawn = _plotters()[kind](study, target_name=target_name)
    figure = np.ravel(drawn)[0].figure
    if kind == "parallel_coordinate":
        # Optuna draws every axis in a fixed-size figure; long value tokens need the room.
        names = {name for trial in study.get_trials(deepcopy=False) for name in trial.params}
        figure.set_size_inches(max(8.0, 2.2 * len(names)), 6.0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=PLOT_DPI, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path
