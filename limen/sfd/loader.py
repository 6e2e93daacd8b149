"""Find an SFD by name: a foundational SFD, an importable module, or a ``.py`` file.

Only the SFD the user names is code. ``load_sfd`` takes a name from the user (the command line,
a config file, ``sfd=...``); ``recorded_sfd`` takes the name a study recorded, which anyone who
can write to the database may have changed, so it accepts only a plain dotted module name
that is importable from the environment, never a file path.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.machinery
import importlib.util
import re
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from limen.errors import InvalidParameterError, LimenError
from limen.experiment import study_keys as keys
from limen.experiment.identity import source_hash

FOUNDATIONAL = ("logreg_binary", "random_binary", "gbm_regressor", "logreg_walk_forward")
PLAIN_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
SFD_MODULE_ATTR = keys.SFD_MODULE
SFD_HASH_ATTR = keys.SFD_SOURCE_HASH


__all__ = [
    "FOUNDATIONAL",
    "SFDLoadError",
    "SFDSourceMismatchError",
    "check_sfd",
    "check_source",
    "load_sfd",
    "recorded_sfd",
]


class SFDLoadError(LimenError, ImportError, ValueError):
    """An SFD the user named cannot be loaded: no such module or file, an error while its code
    runs (a SyntaxError, a failed import...), or no ``params()``.

    It is an ``ImportError`` (the SFD did not import) and a ``ValueError`` (what earlier
    versions raised), so existing ``except`` clauses keep catching it.
    """


class SFDSourceMismatchError(LimenError, ValueError):
    """The SFD's source is not the one the study recorded (its SHA-256 differs).

    Attributes:
        recorded: The SHA-256 the study recorded when it ran.
        current: The SHA-256 of the SFD's source now (None when it has no source file).
    """

    def __init__(self, message: str, recorded: str, current: str | None) -> None:
        super().__init__(message)
        self.recorded = recorded
        self.current = current

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None]]:
        return type(self), (str(self), self.recorded, self.current)


def load_sfd(name: str) -> ModuleType:
    """Import the SFD called ``name``.

    ``name`` is a foundational SFD (``logreg_binary``), a dotted module path
    (``mypackage.my_sfd``) or the path of a Python file (``./my_sfd.py``).

    Raises:
        InvalidParameterError: ``name`` is not a non-empty str.
        SFDLoadError: nothing by that name can be imported, its code fails, or it is not an
            SFD; the message names the file and line where the code failed.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(
            f"The 'sfd' parameter of load_sfd must be a non-empty str (a foundational SFD "
            f"{list(FOUNDATIONAL)}, a module path or a .py file). Got {name!r} instead."
        )
    if name in FOUNDATIONAL:
        module = importlib.import_module(f"limen.sfd.foundational_sfd.{name}")
    elif name.endswith(".py"):
        module = _load_file(Path(name))
    else:
        module = _import_module(name)
    _check_loaded(module, name)
    return module


def _check_loaded(module: ModuleType, name: str) -> None:
    try:
        check_sfd(module, name)
    except InvalidParameterError as exc:
        raise SFDLoadError(str(exc), name=name) from None


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name != exc.name and not name.startswith(f"{exc.name}."):
            raise _failure(name, exc) from exc
        raise SFDLoadError(
            f"Unknown SFD {name!r}: it is not a foundational SFD ({', '.join(FOUNDATIONAL)}) and "
            f"no module of that name is installed. Pass a foundational name, an importable "
            "module path such as 'mypackage.my_sfd', or the path of a .py file.",
            name=name,
        ) from exc
    except Exception as exc:
        raise _failure(name, exc) from exc


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Runs an SFD file as it is now, never from cached bytecode.

    Python trusts a cached ``.pyc`` while the source keeps its size and its modification second;
    an SFD edited within that second (a one-character change of a number, say) would otherwise
    run its old code while its source hash names the new one.
    """

    def get_code(self, fullname: str) -> Any:
        return self.source_to_code(self.get_data(self.path), self.path)


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise SFDLoadError(
            f"SFD file {str(path)!r} does not exist or is not a file. Pass the path of a .py file.",
            path=str(path),
        )
    module_name = path.stem
    resolved = str(path.resolve())
    spec = importlib.util.spec_from_file_location(
        module_name, resolved, loader=_SourceOnlyLoader(module_name, resolved)
    )
    if spec is None or spec.loader is None:
        raise SFDLoadError(
            f"SFD file {str(path)!r} cannot be imported as a Python module.", path=str(path)
        )
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
        raise _failure(str(path), exc, str(path.resolve())) from exc
    return module


def _failure(label: str, exc: BaseException, file: str | None = None) -> SFDLoadError:
    """One line naming the SFD, the file and line where its code failed, and the error."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}, line {exc.lineno}"
        detail = f"{type(exc).__name__}: {exc.msg}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if f.filename == file]
        user = own or [f for f in frames if "importlib" not in f.filename] or frames
        where = f"{user[-1].filename}, line {user[-1].lineno}" if user else label
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return SFDLoadError(
        f"SFD {label!r} cannot be loaded ({where}): {detail}. Fix the SFD's code and run again.",
        name=label,
    )


def check_sfd(sfd: object, label: str | None = None) -> None:
    """Check that ``sfd`` has ``params()`` and either ``manifest()`` or ``prep()``/``model()``.

    Raises:
        limen.InvalidParameterError: ``sfd`` has no ``params()``.
    """
    label = label or getattr(sfd, "__name__", repr(sfd))
    if not callable(getattr(sfd, "params", None)):
        raise InvalidParameterError(
            f"SFD {label!r} has no params() function. An SFD defines params() returning a dict "
            "of parameter name -> list of values, plus manifest() or prep() and model()."
        )


def recorded_sfd(attrs: Mapping[str, Any], *, force: bool = False) -> ModuleType:
    """Import the SFD a study recorded, when its name is a plain importable module name.

    The name comes from the database, so it is trusted only as far as the environment is: it
    must be dotted identifiers (``mypackage.my_sfd``, never a path) naming a module that is
    installed or on ``sys.path``, and that module's source must have the SHA-256 the study
    recorded (checked before the module is imported, unless ``force``).

    Args:
        attrs: The study's user attributes.
        force: Import even when the source differs from the recorded one.

    Raises:
        SFDLoadError: the study names no SFD, a name that is not a plain module name, or a
            module that is not installed; the message says to pass the SFD itself.
        SFDSourceMismatchError: the module's source differs from the recorded one.
    """
    name = attrs.get(SFD_MODULE_ATTR)
    fix = "pass the SFD that ran the experiment yourself (--sfd MODULE|FILE.py, or sfd=...)"
    if not isinstance(name, str) or not PLAIN_MODULE.fullmatch(name):
        raise SFDLoadError(
            f"The study records the SFD {name!r}, which is not a plain module name such as "
            f"'mypackage.my_sfd': nothing is imported from it; {fix}."
        )
    path = _source_file(name)
    if path is None:
        raise SFDLoadError(
            f"The SFD module {name!r} that ran this experiment cannot be found as Python source "
            f"in this environment. Install the package that provides it, add its folder to "
            f"PYTHONPATH, or {fix}.",
            name=name,
        )
    if not _defines_params(path):
        raise SFDLoadError(
            f"The study records the SFD {name!r}, but {path} defines no params() function, so "
            f"it is not an SFD: it is not imported; {fix}.",
            name=name,
        )
    if not force:
        _check_digest(attrs, hashlib.sha256(path.read_bytes()).hexdigest(), str(path))
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise _failure(name, exc, str(path)) from exc
    _check_loaded(module, name)
    return module


def check_source(sfd: Any, attrs: Mapping[str, Any], *, force: bool = False) -> None:
    """Refuse an SFD whose source file differs from the one the study recorded.

    A study with no recorded hash, or an SFD without a source file (an object built in a
    notebook), is not checked: there is nothing to compare.

    Raises:
        SFDSourceMismatchError: both hashes exist and differ, and ``force`` is False.
    """
    if force:
        return
    current = source_hash(sfd)
    if current is not None:
        origin = getattr(sfd, "__file__", None) or getattr(sfd, "__name__", repr(sfd))
        _check_digest(attrs, current, origin)


def _check_digest(attrs: Mapping[str, Any], current: str, origin: str) -> None:
    recorded = attrs.get(SFD_HASH_ATTR)
    if not isinstance(recorded, str) or recorded == current:
        return
    raise SFDSourceMismatchError(
        f"The SFD source {origin} has SHA-256 {current[:16]}..., but the study recorded "
        f"{recorded[:16]}... when it ran: it is not the code that produced these rounds. "
        "Restore the version that ran (e.g. from version control), or force it "
        "(--force, or force=True) to use this source anyway.",
        recorded,
        current,
    )


def _source_file(name: str) -> Path | None:
    """The ``.py`` file of module ``name``, found without running any module's code.

    ``importlib.util.find_spec`` imports a dotted name's parent packages; here a parent that
    is not imported yet is searched through its folder instead.
    """
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    for depth in range(1, len(parts)):
        locations = None if spec is None else spec.submodule_search_locations
        if locations is None:
            return None
        full = ".".join(parts[: depth + 1])
        if ".".join(parts[:depth]) in sys.modules:
            spec = importlib.util.find_spec(full)
        else:
            spec = importlib.machinery.PathFinder.find_spec(full, list(locations))
    origin = None if spec is None else spec.origin
    if origin is None or not origin.endswith(".py") or not Path(origin).is_file():
        return None
    return Path(origin)


def _defines_params(path: Path) -> bool:
    """Whether the source defines a top-level ``params`` (read as text, never run)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return False
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "params"
        for node in tree.body
    )
