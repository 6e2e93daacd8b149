"""UniversalExperimentLoop: run an SFD across many parameter combinations, durably.

Each round is an Optuna trial committed to the study before the next round starts:
claim a combination -> decode its values -> prep -> model -> store the outcome -> append the
experiment files. The study is the source of truth; ``results.csv``, ``round_data.jsonl`` and
``metadata.json`` are views of it a user can read without Limen.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import TrialState
from tqdm.auto import tqdm

from limen import __version__
from limen.adapters import leases
from limen.adapters import trials as trial_attrs
from limen.adapters.artifacts import build_model_card, save_study_note, upload_round_artifacts
from limen.adapters.distributions import DomainCodec
from limen.adapters.pruners import RoundReporter, make_pruner, pruner_config
from limen.adapters.rounds import ClaimedRound, GridProposer, WaitingQueue
from limen.adapters.samplers import StrategyProposer, open_proposer
from limen.adapters.storage import (
    LimenStorage,
    default_storage_url,
    open_storage,
    probe_study,
    redact_url,
    validate_storage_url,
)
from limen.experiment.checkpoint_manager import check_resume
from limen.experiment.errors import ResumeError
from limen.experiment.feedback_controller import FeedbackController
from limen.experiment.identity import (
    data_fingerprint,
    source_hash,
    space_hash,
    value_token,
)
from limen.experiment.param_domain import ParamDomain, Range
from limen.experiment.pruning import reporting_to
from limen.experiment.records import (
    AUDIT_JSONL,
    METADATA_JSON,
    RESULTS_CSV,
    ROUND_DATA_JSONL,
    ResultsCsv,
    append_jsonl,
    read_csv_rows,
    read_jsonl,
    results_row,
    rewrite_csv,
    rewrite_jsonl,
    round_record,
    write_json_atomic,
)
from limen.experiment.reducer import make_reducers
from limen.experiment.search_strategy import (
    SearchStrategy,
    make_strategy,
    resolve_strategy_config,
)
from limen.experiment.shutdown import Shutdown
from limen.experiment.walk_forward import trial_attrs as fold_attrs
from limen.experiment.walk_forward import write_round_outputs
from limen.sfd.loader import check_sfd

logger = logging.getLogger(__name__)

RESERVED_RESULT_KEYS = ("_preds", "_model", "models", "extras")
DIRECTIONS = ("maximize", "minimize")
EXPERIMENT_FILES = (RESULTS_CSV, ROUND_DATA_JSONL, METADATA_JSON)
ATTR = "limen:"
FEEDBACK_ATTR = ATTR + "feedback_state"
INTERVENTIONS_JSON = "interventions.json"


@dataclass
class _Plan:
    """Everything ``run`` decided before touching the disk or the database."""

    experiment_name: str
    n_permutations: int
    params: dict[str, list[Any]]
    prep: Callable[..., Any]
    model: Callable[..., Any]
    prep_each_round: bool
    random_search: bool
    seed: int
    maintain_details: bool
    context_params: dict[str, Any]
    resume: bool | str
    timeout: float | None
    progress_bar: bool
    experiment_dir: Path
    storage_url: str
    objective: list[tuple[str, str]] | None
    strategy: SearchStrategy | None = None
    codec: DomainCodec = field(init=False)

    def __post_init__(self) -> None:
        self.codec = DomainCodec(self.params)


class UniversalExperimentLoop:
    """Run a Single File Decoder (SFD) across many parameter combinations.

    Args:
        sfd: a module or object with ``params()`` and either ``manifest()`` or
            ``prep()`` + ``model()``.
        data: the raw data. Required for custom (prep/model) SFDs; manifest SFDs fetch their
            own data source when it is None.
        test_mode: with a manifest SFD and no ``data``, use the manifest's test data source.
        experiment_dir: where the study and files live; default ``./limen-runs/<name>``.
        storage: an SQLAlchemy URL for the study; default ``sqlite:///<experiment_dir>/study.db``.
        objective: the metric (or metrics) to optimise; default the manifest's objective.
        direction: ``"maximize"`` or ``"minimize"`` (one per objective metric).
        save_artifacts: upload each successful round's predictions (CSV) and model card (JSON)
            to ``<experiment_dir>/artifacts``, shown in optuna-dashboard's artifact viewer.
        search_strategy: None for the lazy grid, else a strategy name (``"tpe"``), a config
            dict ``{"name": "tpe", **kwargs}``, a TOML/YAML file, an Optuna ``BaseSampler``
            or a ``SearchStrategy``: rounds then come through the MSQ (``self.msq``) and the
            mutable ``self.domain``.
        pruner: an Optuna pruner name (``"median"``), config dict or ``BasePruner``; models
            report intermediate values with ``limen.experiment.report(value, step)``.
        pruning_strategies: reducers run at each feedback trigger: ``PruningStrategy``
            instances or config dicts ``{"name": "sanity", **kwargs}`` (needs a
            ``search_strategy``).
        intra_callback: ``callback(log, msq)`` run at each feedback trigger, after the
            reducers (needs a ``search_strategy``).
        feedback_interval: finished rounds between feedback triggers (>= 1): reducers, then
            ``intra_callback``, then ``<experiment_dir>/interventions.json`` when it changed.
        checkpoint_interval: rounds between saves of the mutable search state (>= 1); domain
            mutations are saved at once.
    """

    def __init__(
        self,
        *,
        sfd: Any,
        data: Any = None,
        test_mode: bool = False,
        experiment_dir: str | Path | None = None,
        storage: str | None = None,
        objective: str | Sequence[str] | None = None,
        direction: str | Sequence[str] | None = None,
        search_strategy: Any = None,
        pruner: Any = None,
        pruning_strategies: Sequence[Any] | None = None,
        intra_callback: Callable[[pd.DataFrame, Any], Any] | None = None,
        feedback_interval: int = 100,
        checkpoint_interval: int = 100,
        save_artifacts: bool = False,
    ) -> None:
        if sfd is None:
            raise ValueError(
                "The 'sfd' parameter of UniversalExperimentLoop is required: pass an SFD module "
                "such as limen.sfd.foundational_sfd.logreg_binary."
            )
        check_sfd(sfd)
        _check_bool("test_mode", test_mode)
        _check_bool("save_artifacts", save_artifacts)
        self.save_artifacts = save_artifacts
        if experiment_dir is not None and not isinstance(experiment_dir, str | Path):
            raise TypeError(
                "The 'experiment_dir' parameter of UniversalExperimentLoop must be a path or "
                f"None. Got {experiment_dir!r} instead."
            )
        if storage is not None:
            validate_storage_url(storage)
        self.sfd = sfd
        self.sfd_name = getattr(sfd, "__name__", type(sfd).__name__)
        self.test_mode = test_mode
        self.experiment_dir = Path(experiment_dir) if experiment_dir is not None else None
        self.storage_url = storage
        self.manifest = sfd.manifest() if callable(getattr(sfd, "manifest", None)) else None
        self._objective = _parse_objective(objective, direction)
        self._strategy_config = (
            None if search_strategy is None else resolve_strategy_config(search_strategy)
        )
        self._pruner = pruner
        pruner_config(pruner)
        self.feedback_interval = _check_interval("feedback_interval", feedback_interval)
        self.pruning_strategies = make_reducers(pruning_strategies)
        if intra_callback is not None and not callable(intra_callback):
            raise TypeError(
                "The 'intra_callback' parameter of UniversalExperimentLoop must be "
                f"callable(log, msq) or None. Got {intra_callback!r} instead."
            )
        self.intra_callback = intra_callback
        if search_strategy is None and (self.pruning_strategies or intra_callback is not None):
            raise ValueError(
                "Reducers and intra_callback act on the MSQ, which only the strategy path has: "
                "pass search_strategy=... (e.g. search_strategy='random') to "
                "UniversalExperimentLoop, or drop pruning_strategies=/intra_callback=."
            )
        self.checkpoint_interval = _check_interval("checkpoint_interval", checkpoint_interval)
        self.domain: ParamDomain | None = None
        self.msq: Any = None
        if self.manifest is not None:
            self.data = data if data is not None else self._fetch_manifest_data()
            self.prep = self.manifest.prepare_data
            self.model = self.manifest.run_model
        else:
            if data is None:
                raise ValueError(
                    f"The 'data' parameter of UniversalExperimentLoop is required for the custom "
                    f"SFD {self.sfd_name!r} (it has prep()/model(), no manifest()): pass your "
                    "DataFrame as data=..."
                )
            self.data = data
            self.prep = getattr(sfd, "prep", None)
            self.model = getattr(sfd, "model", None)
        self._shutdown = Shutdown()
        self._reset_outputs()

    @property
    def log(self) -> Any:
        """A ``limen.log.Log`` over this loop's study (after ``run()``)."""
        from limen.log import Log

        return Log(self)

    def request_stop(self) -> None:
        """Ask a running ``run()`` (e.g. in another thread) to stop after the current round."""
        self._shutdown.request()

    def _fetch_manifest_data(self) -> Any:
        manifest = self.manifest
        if self.test_mode and manifest.test_data_source_config is not None:
            return manifest.fetch_test_data()
        if manifest.data_source_config is None:
            raise ValueError(
                f"SFD {self.sfd_name!r} has no data source in its manifest: add "
                ".set_data_source(method, params) to the manifest or pass data=... to "
                "UniversalExperimentLoop."
            )
        return manifest.fetch_data()

    def _reset_outputs(self) -> None:
        self.experiment_log: pd.DataFrame | None = None
        self.study: optuna.Study | None = None
        self.round_params: list[dict[str, Any]] = []
        self.preds: list[Any] = []
        self.models: list[Any] = []
        self.extras: list[Any] = []
        self.best_round: dict[str, Any] | None = None
        self.exhausted = False
        self.interrupted = False
        self.results_dir: Path | None = None
        self.experiment_confusion_metrics: pd.DataFrame | None = None
        self.experiment_backtest_results: pd.DataFrame | None = None

    # ------------------------------------------------------------------ run

    def run(
        self,
        experiment_name: str,
        n_permutations: int = 10000,
        prep_each_round: bool | None = None,
        random_search: bool = True,
        maintain_details_in_params: bool = False,
        context_params: Mapping[str, Any] | None = None,
        params: Callable[[], dict[str, list[Any]]] | Mapping[str, list[Any]] | None = None,
        prep: Callable[..., Any] | None = None,
        model: Callable[..., Any] | None = None,
        resume: bool | str = False,
        seed: int | None = None,
        timeout: float | None = None,
        progress_bar: bool = True,
        post_processing: bool = False,
    ) -> pd.DataFrame:
        """Run rounds until the study holds ``n_permutations`` finished rounds.

        Combinations come from a lazy grid over the parameter space: a seeded random order
        (``random_search=True``) or index order, each combination at most once, across resumes
        and across processes sharing the study. A round that raises is stored as a FAIL trial
        with its traceback and the run goes on. Ctrl-C marks the running round as an
        interrupted attempt (re-run on resume) and returns. ``post_processing=True`` then
        fills ``experiment_confusion_metrics`` and ``experiment_backtest_results`` (binary
        decoders on klines; see ``limen.log.Log``).

        Returns:
            ``experiment_log``: one row per finished round.
        """
        self._reset_outputs()
        _check_bool("post_processing", post_processing)
        plan = self._plan(
            experiment_name=experiment_name,
            n_permutations=n_permutations,
            prep_each_round=prep_each_round,
            random_search=random_search,
            maintain_details=maintain_details_in_params,
            context_params=context_params,
            params=params,
            prep=prep,
            model=model,
            resume=resume,
            seed=seed,
            timeout=timeout,
            progress_bar=progress_bar,
        )
        runner = _RoundRunner(self, plan)
        runner.execute()
        if post_processing:
            self.experiment_confusion_metrics, self.experiment_backtest_results = (
                self.log.trading_outcomes()
            )
        return self.experiment_log

    def _plan(self, **kw: Any) -> _Plan:
        name = kw["experiment_name"]
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
            raise ValueError(
                "The 'experiment_name' parameter of UniversalExperimentLoop.run must be a "
                f"non-empty name without path separators. Got {name!r} instead; choose the "
                "directory with experiment_dir=..."
            )
        n = kw["n_permutations"]
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise ValueError(
                "The 'n_permutations' parameter of UniversalExperimentLoop.run must be an int "
                f">= 1. Got {n!r} instead."
            )
        for flag in ("random_search", "maintain_details", "progress_bar"):
            _check_bool(flag, kw[flag])
        if kw["resume"] not in (True, False, "force"):
            raise ValueError(
                "The 'resume' parameter of UniversalExperimentLoop.run must be True, False or "
                f"'force'. Got {kw['resume']!r} instead."
            )
        prep_each_round = self._resolve_prep_each_round(kw["prep_each_round"], kw)
        params = self._resolve_params(kw["params"])
        prep = kw["prep"] or self.prep
        model = kw["model"] or self.model
        if not callable(prep) or not callable(model):
            raise ValueError(
                f"SFD {self.sfd_name!r} has no prep() and model(): define them in the SFD, give "
                "it a manifest(), or pass prep=... and model=... to run()."
            )
        seed = kw["seed"]
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(
                "The 'seed' parameter of UniversalExperimentLoop.run must be an int or None. "
                f"Got {seed!r} instead."
            )
        timeout = kw["timeout"]
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise ValueError(
                "The 'timeout' parameter of UniversalExperimentLoop.run must be a number of "
                f"seconds > 0 or None. Got {timeout!r} instead."
            )
        context = dict(kw["context_params"] or {})
        clash = sorted(set(context) & set(params))
        if clash:
            raise ValueError(
                f"The 'context_params' of UniversalExperimentLoop.run repeat the searched "
                f"parameters {clash}: a context parameter is constant, so remove it from one side."
            )
        experiment_dir = self.experiment_dir or Path("limen-runs") / name
        objective = self._objective or getattr(self.manifest, "objective", None)
        storage_url = self.storage_url or default_storage_url(experiment_dir)
        return _Plan(
            experiment_name=name,
            n_permutations=n,
            params=params,
            prep=prep,
            model=model,
            prep_each_round=prep_each_round,
            random_search=kw["random_search"],
            seed=seed if seed is not None else int(np.random.SeedSequence().entropy % 2**31),
            maintain_details=kw["maintain_details"],
            context_params=context,
            resume=kw["resume"],
            timeout=timeout,
            progress_bar=kw["progress_bar"],
            experiment_dir=experiment_dir,
            storage_url=storage_url,
            objective=objective,
            strategy=self._make_strategy(params, objective),
        )

    def _resolve_prep_each_round(self, value: bool | None, kw: Mapping[str, Any]) -> bool:
        if value is not None and not isinstance(value, bool):
            raise TypeError(
                "The 'prep_each_round' parameter of UniversalExperimentLoop.run must be a bool "
                f"or None. Got {value!r} instead."
            )
        if self.manifest is None:
            return bool(value)
        if kw["prep"] is not None or kw["model"] is not None:
            raise ValueError(
                f"SFD {self.sfd_name!r} is manifest-driven: its prep and model come from the "
                "manifest, so run() cannot override them. Drop prep=/model= or use a custom SFD."
            )
        if value is False:
            raise ValueError(
                "The 'prep_each_round' parameter must be True (or None) for the manifest-driven "
                f"SFD {self.sfd_name!r}: its data preparation depends on each round's parameters."
            )
        return True

    def _proposes_ranges(self) -> bool:
        config = self._strategy_config
        return config is not None and not (isinstance(config, dict) and config["name"] == "grid")

    def _make_strategy(
        self, params: dict[str, Any], objective: list[tuple[str, str]] | None
    ) -> SearchStrategy | None:
        """Build the configured strategy and check it fits the objective (before any round)."""
        if self._strategy_config is None:
            if self._pruner is not None and objective is not None and len(objective) > 1:
                raise ValueError(_PRUNER_MULTI)
            return None
        config = self._strategy_config
        domain = config.domain if isinstance(config, SearchStrategy) else ParamDomain(params)
        if set(domain.keys) != set(params):
            raise ValueError(
                f"The search strategy's domain has the parameters {sorted(domain.keys)}, but "
                f"SFD {self.sfd_name!r} has {sorted(params)}: build the strategy over the SFD's "
                "params()."
            )
        strategy = make_strategy(config, domain)
        if strategy.model_based and objective is None:
            raise ValueError(
                f"The {strategy.name!r} strategy learns from the objective, and none is set: pass "
                "objective=... (and direction=...) to UniversalExperimentLoop or call "
                "Manifest.set_objective(...). Strategies that need none: grid, random, qmc, "
                "bruteforce."
            )
        if objective is not None and len(objective) > 1:
            if strategy.name == "cmaes":
                raise ValueError(
                    "The 'cmaes' strategy optimises one objective; use 'tpe', 'gp', 'nsga2' or "
                    f"'nsga3' for the {len(objective)} objectives {[m for m, _ in objective]}."
                )
            if self._pruner is not None:
                raise ValueError(_PRUNER_MULTI)
        return strategy

    def _resolve_params(self, override: Any) -> dict[str, list[Any]]:
        source = override if override is not None else self.sfd.params
        raw = source() if callable(source) else source
        if not isinstance(raw, Mapping) or not raw:
            raise ValueError(
                f"params() of SFD {self.sfd_name!r} must return a non-empty dict of parameter "
                f"name -> list of values. Got {raw!r} instead."
            )
        ParamDomain(dict(raw))
        for key, values in raw.items():
            if isinstance(values, Range) and not self._proposes_ranges():
                raise ValueError(
                    f"Parameter '{key}' is a Range, which the grid cannot enumerate: list its "
                    "values instead."
                )
        return {str(k): v if isinstance(v, Range) else list(v) for k, v in raw.items()}


class _RoundRunner:
    """One ``run()`` call: opens the study, runs rounds, writes the files, fills the loop."""

    def __init__(self, loop: UniversalExperimentLoop, plan: _Plan) -> None:
        self.loop = loop
        self.plan = plan
        self.keys = list(plan.params)
        self.proposer: GridProposer | None = None
        self.waiting: WaitingQueue | None = None
        self.storage: LimenStorage | None = None
        self._discard_unfinished = False
        self.lease: leases.Lease | None = None
        self.study_id = -1
        self.csv: ResultsCsv | None = None
        self.objective = plan.objective
        self.finished = 0
        self.best: float | None = None
        self.data_dict: Any = None
        self.interrupted = False
        self.exhausted = False
        self.feedback: FeedbackController | None = None

    # ----------------------------------------------------------- lifecycle

    def execute(self) -> None:
        created_dir = not self.plan.experiment_dir.exists()
        try:
            self._open()
        except BaseException:
            if created_dir and self.plan.experiment_dir.exists() and not self.plan.resume:
                shutil.rmtree(self.plan.experiment_dir, ignore_errors=True)
            raise
        try:
            self._loop()
        finally:
            if self.csv is not None:
                self.csv.close()
            self._publish()

    def _open(self) -> None:
        plan = self.plan
        directory = plan.experiment_dir
        if plan.resume:
            self._check_resumable(directory)
        else:
            self._guard_fresh(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.storage = open_storage(plan.storage_url)
        if plan.resume:
            self.study_id = self.storage.get_study_id_from_name(plan.experiment_name)
            self._validate_resume()
        else:
            self._create_study()
            write_json_atomic(directory / METADATA_JSON, self._metadata())
        self.proposer = self._make_proposer()
        self.waiting = WaitingQueue(self.storage, self.study_id, plan.codec)
        if plan.resume:
            leases.reap(self.storage, self.study_id)
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        if plan.resume:
            self._reconcile_files(trials)
        self.finished = trial_attrs.count_finished(trials)
        if plan.resume and isinstance(self.proposer, StrategyProposer):
            lost = self.proposer.restore(self.finished)
            if lost:
                logger.warning("Re-register the MSQ filters %s: callables are not stored.", lost)
        if isinstance(self.proposer, StrategyProposer):
            self.feedback = self._make_feedback()
        self._restore_best(trials)
        self.csv = ResultsCsv(directory / RESULTS_CSV, [*self.keys, *plan.context_params])

    def _make_proposer(self) -> GridProposer | StrategyProposer:
        """The lazy grid (no strategy), or the MSQ in front of the configured strategy."""
        plan = self.plan
        pruner = make_pruner(self.loop._pruner)
        self.pruning_study = optuna.load_study(
            study_name=plan.experiment_name, storage=self.storage, pruner=pruner
        )
        if plan.strategy is None:
            return GridProposer(
                self.storage,
                self.study_id,
                plan.params,
                plan.codec,
                seed=plan.seed,
                shuffle=plan.random_search,
            )
        proposer = open_proposer(
            plan.strategy,
            storage=self.storage,
            study_id=self.study_id,
            study_name=plan.experiment_name,
            pruner=pruner,
            seed=plan.seed,
            checkpoint_interval=self.loop.checkpoint_interval,
        )
        plan.codec = proposer.codec
        self.loop.domain, self.loop.msq = proposer.domain, proposer.msq
        return proposer

    def _make_feedback(self) -> FeedbackController:
        """The feedback controller of the strategy path, its state restored on resume."""
        directory = self.plan.experiment_dir
        feedback = FeedbackController(
            feedback_interval=self.loop.feedback_interval,
            pruning_strategies=self.loop.pruning_strategies,
            intra_callback=self.loop.intra_callback,
            intervention_path=directory / INTERVENTIONS_JSON,
            audit_log_path=directory / AUDIT_JSONL,
        )
        stored = self.storage.get_study_user_attrs(self.study_id).get(FEEDBACK_ATTR)
        if self.plan.resume and stored is not None:
            feedback.set_state(stored)
        return feedback

    def _feedback(self) -> None:
        """Trigger feedback when due; persist what it applied and its own state at once."""
        if self.feedback is None or not self.feedback.should_trigger(self.finished):
            return
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        log = trial_attrs.experiment_log(trials, self.plan.codec)
        applied = self.feedback.trigger(log, self.loop.msq, self.finished)
        if applied:
            self.proposer.save(self.finished)
        # Saved after the search state: a crash in between replays this trigger's
        # interventions, which are idempotent, instead of losing them.
        self.storage.set_study_user_attr(self.study_id, FEEDBACK_ATTR, self.feedback.get_state())

    def _strategy_record(self) -> dict[str, Any]:
        """The strategy config kept in the study, enough to rebuild it on resume."""
        plan = self.plan
        if plan.strategy is None:
            return {"name": "grid", "seed": plan.seed, "shuffle": plan.random_search}
        config = dict(plan.strategy.config)
        if config.get("seed") is None:
            config["seed"] = plan.seed
        return config

    def _guard_fresh(self, directory: Path) -> None:
        used = [name for name in EXPERIMENT_FILES if (directory / name).exists()]
        state = self._existing_study()
        if state == "present":
            used.append(
                f"study {self.plan.experiment_name!r} in {redact_url(self.plan.storage_url)}"
            )
        if used:
            raise FileExistsError(
                f"Experiment {self.plan.experiment_name!r} already has rounds ({', '.join(used)} "
                f"in {directory}). Continue it with run(..., resume=True) (CLI: limen resume "
                f"{directory}), or start a new one under a new experiment name or directory."
            )
        self._discard_unfinished = state == "unfinished"

    def _existing_study(self) -> str:
        """``absent``, ``present``, or ``unfinished``: a creation that crashed before Limen
        wrote its attributes, holding no trial (safe to create again). Reads only."""
        probe = probe_study(self.plan.storage_url, self.plan.experiment_name)
        if not probe.exists:
            return "absent"
        if probe.n_trials == 0 and ATTR + "space_hash" not in probe.user_attrs:
            return "unfinished"
        return "present"

    def _check_resumable(self, directory: Path) -> None:
        if self._existing_study() == "absent":
            raise ValueError(
                f"Cannot resume experiment {self.plan.experiment_name!r}: no study of that name "
                f"in {redact_url(self.plan.storage_url)} (directory {directory}). Check the name "
                "and experiment_dir, or start it fresh with resume=False."
            )

    def _validate_resume(self) -> None:
        attrs = self.storage.get_study_user_attrs(self.study_id)
        if ATTR + "space_hash" not in attrs:
            raise ResumeError(
                f"Study {self.plan.experiment_name!r} was not created by Limen (it has no "
                "limen:space_hash attribute), so it cannot be resumed. Start a new experiment."
            )
        self._rebuild_search(attrs)
        stored = {
            "parameter space": attrs.get(ATTR + "space_hash"),
            "SFD": attrs.get(ATTR + "sfd_module"),
            "strategy": (attrs.get(ATTR + "strategy") or {}).get("name", "grid"),
        }
        current = {
            "parameter space": space_hash(self.plan.params),
            "SFD": self.loop.sfd_name,
            "strategy": self._strategy_record()["name"],
        }
        changed = check_resume(stored, current, force=self.plan.resume == "force")
        self._audit(
            "resume",
            forced=bool(changed),
            changed={name: {"stored": stored[name], "now": current[name]} for name in changed},
        )
        strategy = attrs.get(ATTR + "strategy", {})
        self.plan.seed = strategy.get("seed", self.plan.seed)
        self.plan.random_search = strategy.get("shuffle", self.plan.random_search)
        stored_objective = attrs.get(ATTR + "objective")
        if stored_objective is not None:
            self.objective = [tuple(pair) for pair in stored_objective]

    def _rebuild_search(self, attrs: Mapping[str, Any]) -> None:
        """Rebuild the stored strategy and pruner when this run names none (plain resume)."""
        stored = attrs.get(ATTR + "strategy") or {}
        if self.plan.strategy is None and stored.get("name", "grid") != "grid":
            if stored["name"] == "sampler":
                raise ResumeError(
                    f"The study was run with a sampler instance ({stored.get('class')}), which "
                    "cannot be rebuilt from its record: pass the same search_strategy=... again."
                )
            self.plan.strategy = make_strategy(stored, ParamDomain(self.plan.params))
        if self.loop._pruner is None and attrs.get(ATTR + "pruner") is not None:
            self.loop._pruner = attrs[ATTR + "pruner"]

    def _reconcile_files(self, trials: Sequence[optuna.trial.FrozenTrial]) -> None:
        """Make results.csv and round_data.jsonl hold exactly the study's finished rounds.

        Lines of rounds the study does not hold as finished (a crash after the file write, or
        a torn line) are dropped; finished rounds the files lack are rebuilt from the study.
        Files already in agreement are left untouched.
        """
        directory = self.plan.experiment_dir
        context = {k: value_token(v) for k, v in self.plan.context_params.items()}
        finished = [t for t in trials if trial_attrs.is_finished_round(t)]
        header, rows, whole = read_csv_rows(directory / RESULTS_CSV)
        by_number = {r.get("_round_index"): r for r in rows}
        wanted = []
        for trial in finished:
            row = by_number.get(str(trial.number))
            same = row is not None and row.get("id") == trial.user_attrs.get(trial_attrs.ROUND_ID)
            ok = same and row.get("state") == trial.state.name
            wanted.append(row if ok else trial_attrs.csv_row(trial, context))
        if wanted != rows or not whole:
            if header is None:
                metrics = {m for t in finished for m in trial_attrs.metric_attrs(t)}
                header = ResultsCsv(directory / RESULTS_CSV, [*self.keys, *context]).make_header(
                    sorted(metrics)
                )
            rewrite_csv(directory / RESULTS_CSV, header, wanted)
            self._audit("reconcile", file=RESULTS_CSV, rows=len(wanted), before=len(rows))
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        records, whole = read_jsonl(directory / ROUND_DATA_JSONL)
        by_id = {(r.get("_round_index"), r.get("round_id")): r for r in records}
        kept = [
            by_id.get((t.number, t.user_attrs.get(trial_attrs.ROUND_ID)))
            or trial_attrs.jsonl_record(t, context)
            for t in complete
        ]
        if kept != records or not whole:
            rewrite_jsonl(directory / ROUND_DATA_JSONL, kept)
            self._audit("reconcile", file=ROUND_DATA_JSONL, rows=len(kept), before=len(records))

    def _audit(self, event: str, **details: Any) -> None:
        """One line in audit.jsonl: resumes, forced resumes, worker starts and stops."""
        record = {"event": event, "timestamp": datetime.now(UTC).isoformat(), **details}
        append_jsonl(self.plan.experiment_dir / AUDIT_JSONL, record)

    def _create_study(self) -> None:
        if self._discard_unfinished:
            optuna.delete_study(study_name=self.plan.experiment_name, storage=self.storage)
        directions = [d for _, d in self.objective] if self.objective else ["maximize"]
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.plan.experiment_name,
            directions=directions,
        )
        self.study_id = study._study_id
        if self.objective:
            _set_metric_names(study, [m for m, _ in self.objective])
        for key, value in self._study_attrs().items():
            self.storage.set_study_user_attr(self.study_id, key, value)
        save_study_note(study)

    def _study_attrs(self) -> dict[str, Any]:
        plan = self.plan
        return {
            ATTR + "sfd_module": self.loop.sfd_name,
            ATTR + "sfd_source_hash": source_hash(self.loop.sfd),
            ATTR + "data_fingerprint": data_fingerprint(self.loop.data),
            ATTR + "version": __version__,
            ATTR + "space_hash": space_hash(plan.params),
            ATTR + "strategy": self._strategy_record(),
            ATTR + "pruner": pruner_config(self.loop._pruner),
            ATTR + "objective": [list(pair) for pair in self.objective] if self.objective else None,
            ATTR + "codec": plan.codec.describe(),
            ATTR + "context_params": {k: value_token(v) for k, v in plan.context_params.items()},
            ATTR + "n_permutations": plan.n_permutations,
            ATTR + "test_mode": self.loop.test_mode,
        }

    def _metadata(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "experiment_name": plan.experiment_name,
            "study_name": plan.experiment_name,
            "sfd_module": self.loop.sfd_name,
            "storage": redact_url(plan.storage_url),
            "limen_version": __version__,
            "optuna_version": optuna.__version__,
            "created_at": datetime.now(UTC).isoformat(),
            "n_permutations": plan.n_permutations,
            "space_hash": space_hash(plan.params),
            "strategy": self._strategy_record(),
            "objective": [list(p) for p in self.objective] if self.objective else None,
            "test_mode": self.loop.test_mode,
        }

    # ---------------------------------------------------------------- loop

    def _loop(self) -> None:
        plan = self.plan
        deadline = time.monotonic() + plan.timeout if plan.timeout else None
        bar = tqdm(
            total=plan.n_permutations,
            initial=min(self.finished, plan.n_permutations),
            desc=plan.experiment_name,
            disable=not plan.progress_bar,
            unit="round",
        )
        shutdown = self.loop._shutdown
        shutdown.install()
        self.lease = leases.Lease(self.storage)
        next_reap = time.monotonic() + leases.LEASE_GRACE_S
        try:
            while self.finished < plan.n_permutations:
                if shutdown.requested.is_set():
                    self.interrupted = True
                    logger.warning("Stopped on request after %d finished rounds.", self.finished)
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    logger.info("Timeout of %ss reached: no new rounds are started.", plan.timeout)
                    break
                if time.monotonic() >= next_reap:
                    if leases.reap(self.storage, self.study_id):
                        self.waiting.wake()
                    next_reap = time.monotonic() + leases.LEASE_GRACE_S
                if not self._step(bar):
                    break
        finally:
            self.lease.close()
            shutdown.restore()
            bar.close()

    def _step(self, bar: tqdm) -> bool:
        """Claim and run one round; False when the run must stop (exhausted or interrupted)."""
        claimed = None
        try:
            claimed = self._claim()
            if claimed is None:
                self.exhausted = True
                self._log_stop()
                return False
            if self._run_round(claimed):
                self.finished += 1
                bar.update(1)
                if self.best is not None:
                    bar.set_postfix(best=f"{self.best:.6g}", refresh=False)
                self._feedback()
        except KeyboardInterrupt:
            self.interrupted = True
            if claimed is not None:
                trial = self.storage.get_trial(claimed.trial_id)
                if trial.state == TrialState.RUNNING:
                    leases.release(self.storage, self.study_id, trial, leases.INTERRUPTED)
            logger.warning("Interrupted: the study is consistent; resume to continue.")
            return False
        return True

    def _log_stop(self) -> None:
        """Say why no round is left to run before the target."""
        reason = getattr(self.proposer, "stop_reason", None)
        if reason is not None and not reason.endswith("exhausted"):
            logger.warning(
                "The MSQ stopped the run: %s (%d finished rounds).", reason, self.finished
            )
            return
        logger.warning(
            "The parameter space is exhausted: all %s combinations have run "
            "(%d finished rounds; n_permutations=%d).",
            self.proposer.total,
            self.finished,
            self.plan.n_permutations,
        )

    def _claim(self) -> ClaimedRound | None:
        """The next round: the study's queue first, then the proposer."""
        if isinstance(self.proposer, StrategyProposer):
            return self.proposer.claim()
        queued = self.waiting.claim()
        return queued if queued is not None else self.proposer.claim()

    def _run_round(self, claimed: ClaimedRound) -> bool:
        """Run one claimed round; True when it finished (its outcome is known)."""
        plan = self.plan
        round_params = {**claimed.combo, **plan.context_params}
        if plan.maintain_details:
            round_params["_experiment_details"] = {"current_index": claimed.number}
        started = time.perf_counter()
        reporter = RoundReporter(self.pruning_study, claimed.trial_id, claimed.number)
        try:
            with self.lease.hold(claimed.trial_id), reporting_to(reporter):
                results = self._evaluate(round_params)
                values = self._outcome(results)
        except optuna.TrialPruned as exc:
            self._store_pruned(claimed, round_params, reporter, exc, started)
            return True
        except Exception as exc:
            self._store_failure(claimed, round_params, exc, started)
            return True
        self._store_success(claimed, round_params, results, values, started)
        return True

    def _evaluate(self, round_params: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        if plan.prep_each_round or self.data_dict is None:
            self.data_dict = plan.prep(self.loop.data, round_params=round_params)
        results = plan.model(self.data_dict, round_params=round_params)
        if not isinstance(results, Mapping):
            raise TypeError(
                f"model() must return a dict of metrics. Got {type(results).__name__} instead."
            )
        return dict(results)

    def _outcome(self, results: dict[str, Any]) -> list[float]:
        """The objective values of ``results``; raises when they are missing or not finite."""
        metrics = _scalar_metrics(results)
        if self.objective is None:
            numeric = [k for k, v in metrics.items() if isinstance(v, float | int)]
            if not numeric:
                raise ValueError(
                    "No objective is set and the model returned no numeric metric. Set one "
                    "with objective=... or Manifest.set_objective(...)."
                )
            self.objective = [(numeric[0], "maximize")]
            logger.warning(
                "No objective set: using the first numeric metric %r, maximised. Pass "
                "objective=... to UniversalExperimentLoop or call Manifest.set_objective.",
                numeric[0],
            )
            self.storage.set_study_user_attr(
                self.study_id, ATTR + "objective", [list(self.objective[0])]
            )
            _set_metric_names(
                optuna.load_study(study_name=self.plan.experiment_name, storage=self.storage),
                [numeric[0]],
            )
        values = []
        for metric, _ in self.objective:
            if metric not in results:
                raise KeyError(
                    f"The objective metric {metric!r} is missing from the model's results; "
                    f"it returned {sorted(metrics)}."
                )
            value = results[metric]
            if not _is_real(value) or not math.isfinite(float(value)):
                raise ValueError(
                    f"The objective metric {metric!r} is {value!r}, not a finite number."
                )
            values.append(float(value))
        return values

    def _store_success(
        self,
        claimed: ClaimedRound,
        round_params: dict[str, Any],
        results: dict[str, Any],
        values: list[float],
        started: float,
    ) -> None:
        metrics = _scalar_metrics(results)
        if self.loop.save_artifacts:
            self._upload_artifacts(claimed, round_params, results, metrics)
        attrs = fold_attrs(results)
        state = TrialState.COMPLETE
        self._finish(claimed, round_params, state, values, started, metrics=metrics, attrs=attrs)
        self._track_best(values[0])
        self._keep_outputs(round_params, results)
        extra: dict[str, Any] = {}
        if "_preds" in results:
            extra["preds"] = _jsonable(results["_preds"])
        data_dict = self.data_dict if isinstance(self.data_dict, Mapping) else {}
        if data_dict.get("_alignment") is not None:
            extra["alignment"] = _jsonable(data_dict["_alignment"])
        record = round_record(claimed.round_id, claimed.number, _tokens(round_params), **extra)
        append_jsonl(self.plan.experiment_dir / ROUND_DATA_JSONL, record)
        write_round_outputs(self.plan.experiment_dir, claimed.round_id, claimed.number, results)

    def _store_pruned(
        self,
        claimed: ClaimedRound,
        round_params: dict[str, Any],
        reporter: RoundReporter,
        exc: optuna.TrialPruned,
        started: float,
    ) -> None:
        """A round the pruner stopped: PRUNED, valued (as Optuna does) by its last report."""
        logger.info("Round %d pruned: %s", claimed.number, exc)
        values = None if reporter.last is None else [reporter.last]
        attrs = {"limen:pruned": str(exc)}
        self._finish(claimed, round_params, TrialState.PRUNED, values, started, attrs=attrs)

    def _store_failure(
        self, claimed: ClaimedRound, round_params: dict[str, Any], exc: Exception, started: float
    ) -> None:
        logger.warning("Round %d failed: %s: %s", claimed.number, type(exc).__name__, exc)
        attrs = {trial_attrs.TRACEBACK: traceback.format_exc()}
        self._finish(claimed, round_params, TrialState.FAIL, None, started, attrs=attrs, error=exc)

    def _finish(
        self,
        claimed: ClaimedRound,
        round_params: dict[str, Any],
        state: TrialState,
        values: list[float] | None,
        started: float,
        *,
        metrics: dict[str, Any] | None = None,
        attrs: dict[str, Any] | None = None,
        error: Exception | None = None,
    ) -> None:
        """Store a round's outcome in the study, tell the strategy, append its results row."""
        elapsed = round(time.perf_counter() - started, 6)
        metrics = metrics or {}
        stored = {**metrics, **(attrs or {}), trial_attrs.EXECUTION_TIME: elapsed}
        if error is not None:
            stored[trial_attrs.ERROR_TYPE] = type(error).__name__
            stored[trial_attrs.ERROR_MESSAGE] = str(error)
        self.storage.finish_trial(claimed.trial_id, state, values, stored)
        self._after_trial(claimed.trial_id, state, values)
        row = results_row(
            round_id=claimed.round_id,
            number=claimed.number,
            state=state.name,
            execution_time=elapsed,
            metrics=metrics,
            params=_tokens(round_params),
            error_type=None if error is None else type(error).__name__,
            error_message=None if error is None else str(error),
        )
        self.csv.append(row, metric_names=list(metrics) if state == TrialState.COMPLETE else None)

    def _after_trial(self, trial_id: int, state: TrialState, values: list[float] | None) -> None:
        """Tell the strategy how a round ended (the study already holds the outcome)."""
        if isinstance(self.proposer, StrategyProposer):
            self.proposer.after_trial(trial_id, state, values, self.finished + 1)

    def _upload_artifacts(
        self,
        claimed: ClaimedRound,
        round_params: dict[str, Any],
        results: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:
        """Predictions (CSV) and a model card (JSON) for optuna-dashboard's artifact viewer.

        Optuna accepts artifacts only while the trial runs, so this comes before the outcome.
        """
        card = build_model_card(
            round_id=claimed.round_id,
            round_index=claimed.number,
            sfd=self.loop.sfd_name,
            round_params=round_params,
            metrics=metrics,
            model=results.get("_model"),
        )
        upload_round_artifacts(
            self.storage, claimed.trial_id, self.plan.experiment_dir, results.get("_preds"), card
        )

    def _track_best(self, value: float) -> None:
        maximize = self.objective[0][1] == "maximize"
        if self.best is None or (value > self.best if maximize else value < self.best):
            self.best = value

    def _restore_best(self, trials: Sequence[optuna.trial.FrozenTrial]) -> None:
        for trial in trials:
            if trial.state == TrialState.COMPLETE and trial.values and self.objective:
                self._track_best(trial.values[0])

    def _keep_outputs(self, round_params: dict[str, Any], results: dict[str, Any]) -> None:
        loop = self.loop
        loop.round_params.append(round_params)
        if "_preds" in results:
            loop.preds.append(results["_preds"])
        if "_model" in results or "models" in results:
            loop.models.append(results.get("_model", results.get("models")))
        if "extras" in results:
            loop.extras.append(results["extras"])

    # -------------------------------------------------------------- finish

    def _publish(self) -> None:
        """Fill the loop's public attributes from the study (the source of truth)."""
        if self.storage is None:
            return
        study = optuna.load_study(study_name=self.plan.experiment_name, storage=self.storage)
        self.loop.study = study
        self.loop.results_dir = self.plan.experiment_dir
        trials = study.get_trials(deepcopy=False)
        log = trial_attrs.experiment_log(trials, self.plan.codec, self.plan.context_params)
        self.loop.experiment_log = log
        self.loop.best_round = self._best_round(study, trials)
        self.loop.exhausted = self.exhausted
        self.loop.interrupted = self.interrupted
        logger.info(
            "Experiment %r: %d finished rounds in %s (study %s).",
            self.plan.experiment_name,
            len(log),
            self.plan.experiment_dir,
            redact_url(self.plan.storage_url),
        )

    def _best_round(
        self, study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]
    ) -> dict[str, Any] | None:
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not complete or not self.objective:
            return None
        sign = 1 if study.directions[0] == StudyDirection.MAXIMIZE else -1
        best = max(complete, key=lambda t: sign * t.values[0])
        return {
            "id": best.user_attrs.get(trial_attrs.ROUND_ID),
            "_round_index": best.number,
            "values": dict(zip([m for m, _ in self.objective], best.values, strict=False)),
            "params": self.plan.codec.decode(best.params),
        }


# ------------------------------------------------------------------ helpers


_PRUNER_MULTI = (
    "The 'pruner' parameter of UniversalExperimentLoop needs a single objective: Optuna's "
    "pruners compare one intermediate value. Drop pruner=... or optimise one metric."
)


def _check_interval(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of UniversalExperimentLoop must be an int in [1, inf). "
            f"Got {value!r} instead."
        )
    return value


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(
            f"The '{name}' parameter of UniversalExperimentLoop must be a bool. "
            f"Got {value!r} instead."
        )


def _parse_objective(
    objective: str | Sequence[str] | None, direction: str | Sequence[str] | None
) -> list[tuple[str, str]] | None:
    if objective is None:
        if direction is not None:
            raise ValueError(
                "The 'direction' parameter of UniversalExperimentLoop needs an objective: pass "
                "objective='metric' too."
            )
        return None
    metrics = [objective] if isinstance(objective, str) else list(objective)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ValueError(
            "The 'objective' parameter of UniversalExperimentLoop must be a metric name or a "
            f"non-empty list of metric names. Got {objective!r} instead."
        )
    if direction is None:
        directions = ["maximize"] * len(metrics)
    else:
        directions = [direction] if isinstance(direction, str) else list(direction)
    if len(directions) != len(metrics):
        raise ValueError(
            f"The 'direction' parameter of UniversalExperimentLoop must give one direction per "
            f"objective metric ({len(metrics)}). Got {direction!r} instead."
        )
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(
            "The 'direction' parameter of UniversalExperimentLoop must be 'maximize' or "
            f"'minimize'. Got {bad[0]!r} instead."
        )
    return list(zip(metrics, directions, strict=True))


def _set_metric_names(study: optuna.Study, names: list[str]) -> None:
    """Label the objective values so optuna-dashboard shows metric names, not ``values_0``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _scalar_metrics(results: Mapping[str, Any]) -> dict[str, Any]:
    """The loggable metrics of a results dict: scalars only, reserved and ``_`` keys left out."""
    metrics: dict[str, Any] = {}
    for key, value in results.items():
        if key in RESERVED_RESULT_KEYS or str(key).startswith("_"):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool | int | float | str) or value is None:
            metrics[str(key)] = value
    return metrics


def _tokens(round_params: Mapping[str, Any]) -> dict[str, Any]:
    """Readable tokens of a round's parameters (metadata keys starting with ``_`` left out)."""
    return {k: value_token(v) for k, v in round_params.items() if not k.startswith("_")}


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.DataFrame | pd.Series):
        return _jsonable(value.to_numpy())
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value
