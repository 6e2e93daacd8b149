"""Limen: run a Single File Decoder across many parameter permutations, durably, on Optuna.

Names are imported on first use, so ``import limen`` is cheap.
"""

from __future__ import annotations

from limen.utils.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "UniversalExperimentLoop": "limen.experiment.experiment_core",
    "Manifest": "limen.experiment.manifest_core",
    "ParamDomain": "limen.experiment.param_domain",
    "Range": "limen.experiment.param_domain",
    "Trainer": "limen.experiment.trainer.trainer",
    "Sensor": "limen.experiment.trainer.sensor",
    "ReconstructionError": "limen.experiment.trainer.errors",
    "Log": "limen.log.log",
    "LimenError": "limen.errors",
    "InvalidParameterError": "limen.errors",
    "ResumeError": "limen.experiment.errors",
}
_SUBMODULES = ("adapters", "data", "experiment", "log", "metrics", "sfd", "utils")

__all__ = sorted([*_EXPORTS, "__version__"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)
