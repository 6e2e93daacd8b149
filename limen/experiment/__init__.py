"""Define experiments, run parameter search, and keep every round durably in an Optuna study.

Names are imported on first use, so ``import limen.experiment`` stays cheap and the
Optuna-backed adapters can import the plain-Python ports from here without a cycle.
"""

from __future__ import annotations

from limen.utils.lazy import lazy_exports

_EXPORTS = {
    "UniversalExperimentLoop": "limen.experiment.experiment_core",
    "Manifest": "limen.experiment.manifest_core",
    "ParamDomain": "limen.experiment.param_domain",
    "Range": "limen.experiment.param_domain",
    "ResumeError": "limen.experiment.errors",
    "HiddenPasswordError": "limen.experiment.errors",
    "RoundNotFoundError": "limen.experiment.errors",
    "ExperimentSource": "limen.experiment.experiment_source",
    "resolve_experiment": "limen.experiment.experiment_source",
    "StudyRecord": "limen.experiment.study_record",
    "StudyReader": "limen.experiment.study_reader",
    "SearchStrategy": "limen.experiment.search_strategy",
    "STRATEGY_REGISTRY": "limen.experiment.search_strategy",
    "PRUNER_REGISTRY": "limen.experiment.search_strategy",
    "make_strategy": "limen.experiment.search_strategy",
    "MSQ": "limen.experiment.msq",
    "FilterExhaustedError": "limen.experiment.msq",
    "report": "limen.experiment.pruning",
    "acceptance_report": "limen.experiment.acceptance",
    "CheckpointManager": "limen.experiment.checkpoint_manager",
    "FeedbackController": "limen.experiment.feedback_controller",
    "PruningStrategy": "limen.experiment.reducer",
    "BudgetReducer": "limen.experiment.reducer",
    "CorrelationReducer": "limen.experiment.reducer",
    "FocusReducer": "limen.experiment.reducer",
    "SanityReducer": "limen.experiment.reducer",
    "SaturationReducer": "limen.experiment.reducer",
    "REDUCER_REGISTRY": "limen.experiment.reducer",
    "Trainer": "limen.experiment.trainer.trainer",
    "Sensor": "limen.experiment.trainer.sensor",
    "ReconstructionError": "limen.experiment.trainer.errors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
