"""Single File Decoders: the foundational SFDs and the building blocks they share.

``indicators`` and ``targets`` hold causal klines features and forward-looking targets shaped
as Manifest steps; ``results`` turns a fitted model into a results dict.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = ("foundational_sfd", "indicators", "loader", "results", "targets")
__all__ = list(_SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    # ``limen.sfd.foundational_sfd.logreg_binary`` works right after ``import limen``.
    if name in _SUBMODULES:
        return importlib.import_module(f"limen.sfd.{name}")
    raise AttributeError(f"module 'limen.sfd' has no attribute {name!r}")
