"""Reducers: read live results and return interventions on the domain and the MSQ."""

from limen.experiment.reducer.base import ACTION_SUGGEST, PruningStrategy
from limen.experiment.reducer.budget import BudgetReducer
from limen.experiment.reducer.correlation import CorrelationReducer
from limen.experiment.reducer.filter_types import FILTER_SAMPLE
from limen.experiment.reducer.focus import FocusReducer
from limen.experiment.reducer.registry import REDUCER_REGISTRY, make_reducer, make_reducers
from limen.experiment.reducer.sanity import SanityReducer
from limen.experiment.reducer.saturation import SaturationReducer

__all__ = [
    "ACTION_SUGGEST",
    "FILTER_SAMPLE",
    "REDUCER_REGISTRY",
    "BudgetReducer",
    "CorrelationReducer",
    "FocusReducer",
    "PruningStrategy",
    "SanityReducer",
    "SaturationReducer",
    "make_reducer",
    "make_reducers",
]
