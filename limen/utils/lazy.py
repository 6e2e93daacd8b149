"""Package attributes imported on first use (PEP 562), so importing a package stays cheap.

``import limen`` or ``from limen.metrics import binary_metrics`` must not pull scikit-learn,
skops or Optuna's storage into a command that never needs them: a package lists where each of its
public names lives, and the module holding a name is imported the first time it is asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> the module that defines it.
        submodules: Names reachable as attributes that are the package's own submodules.
    """
    exported, children = dict(exports), tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in exported:
            return getattr(importlib.import_module(exported[name]), name)
        if name in children:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exported, *children})

    return __getattr__, __dir__
