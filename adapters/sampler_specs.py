"""The Optuna samplers Limen names: their classes, accepted and deprecated keywords, defaults.

One ``SamplerSpec`` per registered name, so changing strategy is a one-word config change and
every keyword is validated (``adapters/options.py``) before a sampler is built.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.samplers import (
    BaseSampler,
    BruteForceSampler,
    GridSampler,
    QMCSampler,
    RandomSampler,
)
from optuna.samplers.nsgaii import (
    BLXAlphaCrossover,
    SBXCrossover,
    SPXCrossover,
    UNDXCrossover,
    UniformCrossover,
    VSBXCrossover,
)

from limen.adapters import options as opt
from limen.errors import MissingDependencyError

__all__ = ["NOT_MODEL_BASED", "SAMPLER_SPECS", "SamplerSpec", "build_sampler", "require_packages"]

_SEED = opt.optional(opt.integer(0))
_SAMPLER = opt.instance_of(BaseSampler, "an optuna.samplers.BaseSampler instance")
_CROSSOVERS = {
    "uniform": UniformCrossover,
    "blxalpha": BLXAlphaCrossover,
    "sbx": SBXCrossover,
    "spx": SPXCrossover,
    "undx": UNDXCrossover,
    "vsbx": VSBXCrossover,
}
_NSGA = {
    "seed": _SEED,
    "population_size": opt.integer(2),
    "mutation_prob": opt.optional(opt.real(0, 1)),
    "crossover": opt.either(
        opt.choice(*_CROSSOVERS), opt.instance_of(object, "a BaseCrossover instance")
    ),
    "crossover_prob": opt.real(0, 1),
    "swapping_prob": opt.real(0, 1),
}
_CONSTRAINTS = "it is deprecated in Optuna 5; call trial.set_constraint instead."
_TPE_GONE = "it is deprecated in Optuna (removal in 6.0) and Limen pins TPE's behaviour."


@dataclass(frozen=True)
class SamplerSpec:
    """One Optuna sampler: its class path, accepted and deprecated keywords, pinned defaults."""

    owner: str
    sampler: str
    accepted: dict[str, opt.Option]
    deprecated: dict[str, str]
    defaults: dict[str, Any]
    requires: tuple[str, ...] = ()


SAMPLER_SPECS: dict[str, SamplerSpec] = {
    "tpe": SamplerSpec(
        "TPEStrategy",
        "TPESampler",
        {
            "seed": _SEED,
            "n_startup_trials": opt.integer(0),
            "n_ei_candidates": opt.integer(1),
            "multivariate": opt.BOOL,
            "group": opt.BOOL,
            "constant_liar": opt.BOOL,
        },
        {
            **dict.fromkeys(
                (
                    "consider_prior",
                    "prior_weight",
                    "consider_magic_clip",
                    "consider_endpoints",
                    "gamma",
                    "weights",
                    "warn_independent_sampling",
                ),
                _TPE_GONE,
            ),
            "constraints_func": _CONSTRAINTS,
        },
        # Pinned so an Optuna upgrade cannot silently change the algorithm.
        {"multivariate": True, "constant_liar": True, "group": False},
    ),
    "cmaes": SamplerSpec(
        "CmaEsStrategy",
        "CmaEsSampler",
        {
            "seed": _SEED,
            "n_startup_trials": opt.integer(0),
            "independent_sampler": _SAMPLER,
            "consider_pruned_trials": opt.BOOL,
            "popsize": opt.optional(opt.integer(1)),
            "use_separable_cma": opt.BOOL,
            "with_margin": opt.BOOL,
            "lr_adapt": opt.BOOL,
        },
        {
            "x0": "it is deprecated in Optuna 4.9.",
            "sigma0": "it is deprecated in Optuna 4.9.",
            "restart_strategy": "it is deprecated in Optuna 4.4 (IPOP/BIPOP moved to OptunaHub).",
            "inc_popsize": "it is deprecated in Optuna 4.4 (IPOP/BIPOP moved to OptunaHub).",
        },
        {"warn_independent_sampling": False},
        ("cmaes",),
    ),
    "gp": SamplerSpec(
        "GPStrategy",
        "GPSampler",
        {
            "seed": _SEED,
            "n_startup_trials": opt.integer(0),
            "independent_sampler": _SAMPLER,
            "deterministic_objective": opt.BOOL,
        },
        {"constraints_func": _CONSTRAINTS},
        {"warn_independent_sampling": False},
        ("torch", "scipy"),
    ),
    "qmc": SamplerSpec(
        "QMCStrategy",
        "QMCSampler",
        {
            "seed": _SEED,
            "qmc_type": opt.choice("sobol", "halton"),
            "scramble": opt.BOOL,
            "independent_sampler": _SAMPLER,
        },
        {},
        {"warn_independent_sampling": False},
        ("scipy",),
    ),
    "nsga2": SamplerSpec("NSGAIIStrategy", "NSGAIISampler", dict(_NSGA), {}, {}),
    "nsga3": SamplerSpec(
        "NSGAIIIStrategy",
        "NSGAIIISampler",
        {**_NSGA, "dividing_parameter": opt.integer(1)},
        {"constraints_func": _CONSTRAINTS},
        {},
    ),
    "bruteforce": SamplerSpec(
        "BruteForceStrategy",
        "BruteForceSampler",
        {"seed": _SEED, "avoid_premature_stop": opt.BOOL},
        {},
        {},
    ),
}
SAMPLER_SPECS["nsga2"].deprecated["constraints_func"] = _CONSTRAINTS
_EXTRAS = {"cmaes": "cmaes", "torch": "gp", "scipy": "gp"}
NOT_MODEL_BASED = (RandomSampler, QMCSampler, BruteForceSampler, GridSampler)


def require_packages(name: str, modules: tuple[str, ...]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(
                f"The {name!r} strategy needs the {module!r} package: "
                f"pip install 'limen[{_EXTRAS[module]}]'."
            ) from exc


def build_sampler(name: str, kwargs: Mapping[str, Any]) -> BaseSampler:
    """The Optuna sampler for a registered name and validated keywords."""
    spec = SAMPLER_SPECS[name]
    require_packages(name, spec.requires)
    arguments = {**spec.defaults, **kwargs}
    crossover = arguments.get("crossover")
    if isinstance(crossover, str):
        arguments["crossover"] = _CROSSOVERS[crossover]()
    with warnings.catch_warnings():
        # QMC and brute force still carry Optuna's "experimental" label.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return getattr(optuna.samplers, spec.sampler)(**arguments)
