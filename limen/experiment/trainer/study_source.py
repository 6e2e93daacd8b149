"""Former home of the experiment resolver, kept so older imports keep working.

The resolver is ``limen.experiment.experiment_source.resolve_experiment``; this module only
names it as it was named before.
"""

from __future__ import annotations

from limen.experiment.experiment_source import ExperimentSource as StudySource
from limen.experiment.experiment_source import resolve_experiment as resolve_study_source

__all__ = ["StudySource", "resolve_study_source"]
