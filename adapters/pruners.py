"""Optuna pruners by name, with validated configs, and the reporter behind ``report()``.

A pruner config is a name (``"median"``), a dict ``{"name": "median", **kwargs}`` or an
``optuna.pruners.BasePruner`` instance. ``RoundReporter`` stores each intermediate value on the
running trial and asks the pruner whether to stop the round.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.pruners import (
    BasePruner,
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    PatientPruner,
    PercentilePruner,
    SuccessiveHalvingPruner,
    ThresholdPruner,
    WilcoxonPruner,
)

from limen.adapters import options as opt
from limen.errors import InvalidParameterError, MissingDependencyError
from limen.experiment.search_strategy import PRUNER_REGISTRY
from limen.utils.validation import Constraint, Predicate, invalid

__all__ = ["PRUNER_SPECS", "RoundReporter", "make_pruner", "pruner_config"]

_STEPS = {
    "n_startup_trials": opt.integer(0),
    "n_warmup_steps": opt.integer(0),
    "interval_steps": opt.integer(1),
    "n_min_trials": opt.integer(1),
}
_RESOURCE = opt.either(opt.integer(1), opt.choice("auto"))

# name -> (Optuna class, accepted keywords, required keywords)
PRUNER_SPECS: dict[str, tuple[type[BasePruner], dict[str, Constraint], tuple[str, ...]]] = {
    "median": (MedianPruner, dict(_STEPS), ()),
    "percentile": (
        PercentilePruner,
        {"percentile": opt.real(0, 100), **_STEPS},
        ("percentile",),
    ),
    "hyperband": (
        HyperbandPruner,
        {
            "min_resource": opt.integer(1),
            "max_resource": _RESOURCE,
            "reduction_factor": opt.integer(2),
            "bootstrap_count": opt.integer(0),
        },
        (),
    ),
    "successive_halving": (
        SuccessiveHalvingPruner,
        {
            "min_resource": _RESOURCE,
            "reduction_factor": opt.integer(2),
            "min_early_stopping_rate": opt.integer(0),
            "bootstrap_count": opt.integer(0),
        },
        (),
    ),
    "threshold": (
        ThresholdPruner,
        {
            "lower": opt.optional(opt.real()),
            "upper": opt.optional(opt.real()),
            "n_warmup_steps": opt.integer(0),
            "interval_steps": opt.integer(1),
        },
        (),
    ),
    "patient": (
        PatientPruner,
        {
            "wrapped_pruner": Predicate(
                lambda v: v is None or isinstance(v, str | Mapping | BasePruner),
                "a pruner name, a pruner config dict, a BasePruner or None",
            ),
            "patience": opt.integer(0),
            "min_delta": opt.real(0),
        },
        ("patience",),
    ),
    "wilcoxon": (
        WilcoxonPruner,
        {"p_threshold": opt.real(0, 1), "n_startup_steps": opt.integer(0)},
        (),
    ),
    "nop": (NopPruner, {}, ()),
}


def pruner_config(config: Any) -> dict[str, Any] | None:
    """Normalise and validate a pruner config to ``{"name": ..., **kwargs}`` (None: no pruner).

    A ``BasePruner`` instance is described as ``{"name": "instance", "class": ...}``; it cannot
    be rebuilt from that record, so resuming needs the instance again.
    """
    if config is None:
        return None
    if isinstance(config, BasePruner):
        kind = type(config)
        return {"name": "instance", "class": f"{kind.__module__}.{kind.__qualname__}"}
    if isinstance(config, str):
        config = {"name": config}
    if not isinstance(config, Mapping) or "name" not in config:
        raise invalid(
            "pruner",
            "UniversalExperimentLoop",
            f"a pruner name {list(PRUNER_REGISTRY)}, a dict {{'name': ..., **kwargs}}, an "
            "optuna.pruners.BasePruner or None",
            config,
        )
    kwargs = dict(config)
    name = kwargs.pop("name")
    if name not in PRUNER_SPECS:
        raise invalid("pruner", "UniversalExperimentLoop", f"one of {list(PRUNER_REGISTRY)}", name)
    cls, accepted, required = PRUNER_SPECS[name]
    owner = f"{cls.__name__} ({name!r})"
    opt.validate(owner, kwargs, accepted)
    missing = [key for key in required if key not in kwargs]
    if missing:
        raise InvalidParameterError(f"The '{missing[0]}' parameter of {owner} is required.")
    if name == "threshold" and kwargs.get("lower") is None and kwargs.get("upper") is None:
        raise InvalidParameterError(f"{owner} needs 'lower' or 'upper' (or both).")
    if isinstance(kwargs.get("wrapped_pruner"), str | Mapping):
        kwargs["wrapped_pruner"] = pruner_config(kwargs["wrapped_pruner"])
    return {"name": name, **kwargs}


def make_pruner(config: Any) -> BasePruner:
    """Build the Optuna pruner a config names (``NopPruner`` for None)."""
    if isinstance(config, BasePruner):
        return config
    resolved = pruner_config(config)
    if resolved is None:
        return NopPruner()
    if resolved["name"] == "instance":
        raise InvalidParameterError(
            f"The study was run with a pruner instance ({resolved['class']}), which cannot be "
            "rebuilt from its record: pass the same pruner=... again to resume."
        )
    kwargs = dict(resolved)
    name = kwargs.pop("name")
    if name == "wilcoxon":
        _require_scipy()
    if name == "patient" and isinstance(kwargs.get("wrapped_pruner"), Mapping):
        kwargs["wrapped_pruner"] = make_pruner(kwargs["wrapped_pruner"])
    with warnings.catch_warnings():
        # PatientPruner and WilcoxonPruner still carry Optuna's "experimental" label.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return PRUNER_SPECS[name][0](**kwargs)


def _require_scipy() -> None:
    try:
        import scipy  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "The 'wilcoxon' pruner needs scipy: pip install scipy (or pip install 'limen[gp]')."
        ) from exc


class RoundReporter:
    """Reports a round's intermediate values on its trial and applies the pruner.

    Args:
        study: the study (its pruner decides).
        trial_id: the running round's trial.
        number: the trial number, for messages.
    """

    def __init__(self, study: optuna.Study, trial_id: int, number: int) -> None:
        self.study = study
        self.trial_id = trial_id
        self.number = number
        self.last: float | None = None

    def report(self, value: float, step: int) -> None:
        """Store ``value`` at ``step``; raise ``optuna.TrialPruned`` when the pruner says so."""
        if len(self.study.directions) > 1:
            raise NotImplementedError(
                "report() is not supported for multi-objective studies (Optuna pruners compare "
                "one objective)."
            )
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise invalid("step", "report", "an int in the range [0, inf)", step)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise invalid("value", "report", "a number", value) from None
        if not math.isfinite(value):
            return
        storage = self.study._storage
        storage.set_trial_intermediate_value(self.trial_id, step, value)
        self.last = value
        trial = storage.get_trial(self.trial_id)
        if self.study.pruner.prune(self.study, trial):
            raise optuna.TrialPruned(f"Round {self.number} pruned at step {step} (value {value}).")
