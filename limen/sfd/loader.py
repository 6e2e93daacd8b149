"""Find an SFD by name: a foundational SFD, an importable module, or a ``.py`` file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FOUNDATIONAL = ("logreg_binary", "random_binary", "gbm_regressor", "logreg_walk_forward")


def load_sfd(name: str) -> ModuleType:
    """Import the SFD called ``name``.

    ``name`` is a foundational SFD (``logreg_binary``), a dotted module path
    (``mypackage.my_sfd``) or the path of a Python file (``./my_sfd.py``).

    Raises:
        ValueError: nothing by that name can be imported, or it is not an SFD.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"The SFD name must be a non-empty string. Got {name!r} instead.")
    if name in FOUNDATIONAL:
        module = importlib.import_module(f"limen.sfd.foundational_sfd.{name}")
    elif name.endswith(".py"):
        module = _load_file(Path(name))
    else:
        module = _import_module(name)
    check_sfd(module, name)
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ValueError(
            f"Unknown SFD {name!r}: it is not a foundational SFD ({', '.join(FOUNDATIONAL)}) and "
            f"importing it failed ({exc}). Pass a foundational name, an importable module path "
            "such as 'mypackage.my_sfd', or the path of a .py file."
        ) from exc


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ValueError(f"SFD file {str(path)!r} does not exist. Pass the path of a .py file.")
    module_name = path.stem
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    if spec is None or spec.loader is None:
        raise ValueError(f"SFD file {str(path)!r} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def check_sfd(sfd: object, label: str | None = None) -> None:
    """Check that ``sfd`` has ``params()`` and either ``manifest()`` or ``prep()``/``model()``."""
    label = label or getattr(sfd, "__name__", repr(sfd))
    if not callable(getattr(sfd, "params", None)):
        raise ValueError(
            f"SFD {label!r} has no params() function. An SFD defines params() returning a dict "
            "of parameter name -> list of values, plus manifest() or prep() and model()."
        )
