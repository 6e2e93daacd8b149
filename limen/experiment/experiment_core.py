"""UniversalExperimentLoop: run an SFD across many parameter combinations, durably.

Each round is an Optuna trial committed to the study before the next round starts. The loop
object holds the SFD and the run's settings; ``run()`` resolves its arguments into a plan
(``run_plan``), and a ``RoundRunner`` (``round_runner``) opens the study and runs the rounds.
The study is the source of truth; ``results.csv``, ``round_data.jsonl`` and ``metadata.json``
are views of it a user can read without Limen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from limen.adapters.pruners import pruner_config
from limen.adapters.storage import validate_storage_url
from limen.errors import InvalidParameterError
from limen.experiment.param_domain import ParamDomain
from limen.experiment.reducer import make_reducers
from limen.experiment.round_runner import RoundRunner
from limen.experiment.run_plan import (
    INIT_CONSTRAINTS,
    OWNER,
    RUN_CONSTRAINTS,
    parse_objective,
    plan_run,
)
from limen.experiment.search_strategy import resolve_strategy_config
from limen.experiment.shutdown import Shutdown
from limen.experiment.workers import run_workers
from limen.sfd.loader import SFDLoadError, check_sfd
from limen.utils.validation import invalid, validate_params

__all__ = ["UniversalExperimentLoop"]


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
            raise InvalidParameterError(
                "The 'sfd' parameter of UniversalExperimentLoop is required: pass an SFD module "
                "such as limen.sfd.foundational_sfd.logreg_binary."
            )
        check_sfd(sfd)
        validate_params(
            INIT_CONSTRAINTS,
            {
                "test_mode": test_mode,
                "save_artifacts": save_artifacts,
                "experiment_dir": experiment_dir,
                "storage": storage,
                "objective": objective,
                "direction": direction,
                "intra_callback": intra_callback,
                "feedback_interval": feedback_interval,
                "checkpoint_interval": checkpoint_interval,
                "pruning_strategies": pruning_strategies,
            },
            OWNER,
        )
        self.save_artifacts = save_artifacts
        if storage is not None:
            validate_storage_url(storage)
        self.sfd = sfd
        self.sfd_name = getattr(sfd, "__name__", type(sfd).__name__)
        self.test_mode = test_mode
        self.experiment_dir = Path(experiment_dir) if experiment_dir is not None else None
        self.storage_url = storage
        self.manifest = _build_manifest(sfd, self.sfd_name)
        self._objective = parse_objective(objective, direction)
        self._strategy_config = (
            None if search_strategy is None else resolve_strategy_config(search_strategy)
        )
        self._pruner = pruner
        pruner_config(pruner)
        self.feedback_interval = feedback_interval
        self.pruning_strategies = make_reducers(pruning_strategies)
        self.intra_callback = intra_callback
        self.checkpoint_interval = checkpoint_interval
        self.domain: ParamDomain | None = None
        self.msq: Any = None
        if self.manifest is not None:
            self.data = data if data is not None else self._fetch_manifest_data()
            self.prep = self.manifest.prepare_data
            self.model = self.manifest.run_model
        else:
            if data is None:
                raise InvalidParameterError(
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
            raise InvalidParameterError(
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
        n_jobs: int = 1,
        allow_sqlite_workers: bool = False,
    ) -> pd.DataFrame:
        """Run rounds until the study holds ``n_permutations`` finished rounds.

        Combinations come from a lazy grid over the parameter space: a seeded random order
        (``random_search=True``) or index order, each combination at most once, across resumes
        and across processes sharing the study. A round that raises is stored as a FAIL trial
        with its traceback and the run goes on. Ctrl-C marks the running round as an
        interrupted attempt (re-run on resume) and returns. ``post_processing=True`` then
        fills ``experiment_confusion_metrics`` and ``experiment_backtest_results`` (binary
        decoders on klines; see ``limen.log.Log``).

        ``resume``: False (a new experiment), True (continue it; a larger ``n_permutations``
        raises its stored target), ``"force"`` (continue despite changes) or ``"auto"``
        (continue the study when it exists, start it when it does not: the one command a
        scheduler can rerun after every preemption). ``n_jobs``: worker processes on the same
        storage (forked from this one; each stops on the study's count); 0 creates the study
        and ``metadata.json`` and runs nothing, for ``limen worker`` processes to attach. SQLite
        serialises writes, so ``n_jobs > 1`` needs PostgreSQL or MySQL/MariaDB unless
        ``allow_sqlite_workers=True``.

        Returns:
            ``experiment_log``: one row per finished round.
        """
        self._reset_outputs()
        validate_params(RUN_CONSTRAINTS, {"post_processing": post_processing}, f"{OWNER}.run")
        plan = plan_run(
            self,
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
            n_jobs=n_jobs,
            allow_sqlite_workers=allow_sqlite_workers,
        )
        runner = RoundRunner(self, plan)
        runner.execute(rounds=plan.n_jobs == 1)
        if plan.n_jobs > 1:
            run_workers(self, runner, plan)
        if post_processing:
            self.experiment_confusion_metrics, self.experiment_backtest_results = (
                self.log.trading_outcomes()
            )
        return self.experiment_log

    def work(
        self,
        experiment_name: str,
        *,
        params: Callable[[], dict[str, list[Any]]] | Mapping[str, list[Any]] | None = None,
        context_params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        progress_bar: bool = True,
        n_jobs: int = 1,
        allow_sqlite_workers: bool = False,
    ) -> pd.DataFrame:
        """Attach to an existing study as one worker and run rounds until the study holds its
        stored target of finished rounds (``limen worker``).

        The strategy, pruner, objective, reducers and feedback interval are rebuilt from the
        study, as a resume does; every worker stops on the study's count, and a round another
        worker is running is not started twice. Start any number of workers, on this machine or
        others, against one PostgreSQL or MySQL/MariaDB study; ``n_jobs`` forks that many
        here (as ``run`` does).

        Raises:
            ValueError: no study of that name exists in the storage.
            limen.experiment.ResumeError: the study was run with another SFD or space.
        """
        self._reset_outputs()
        plan = plan_run(
            self,
            experiment_name=experiment_name,
            n_permutations=1,
            prep_each_round=None,
            random_search=True,
            maintain_details=False,
            context_params=context_params,
            params=params,
            prep=None,
            model=None,
            resume=True,
            seed=None,
            timeout=timeout,
            progress_bar=progress_bar,
            worker=True,
            owner="work",
            n_jobs=n_jobs,
            allow_sqlite_workers=allow_sqlite_workers,
        )
        if plan.n_jobs < 1:
            raise invalid("n_jobs", f"{OWNER}.work", "an int in the range [1, inf)", n_jobs)
        runner = RoundRunner(self, plan)
        runner.execute(rounds=plan.n_jobs == 1)
        if plan.n_jobs > 1:
            run_workers(self, runner, plan)
        return self.experiment_log


def _build_manifest(sfd: Any, name: str) -> Any:
    """The SFD's manifest (None for a custom prep/model SFD); a manifest() that raises is an
    ``SFDLoadError`` naming the SFD and the error."""
    build = getattr(sfd, "manifest", None)
    if not callable(build):
        return None
    try:
        return build()
    except Exception as exc:
        raise SFDLoadError(
            f"manifest() of SFD {name!r} raised {type(exc).__name__}: {exc}. Fix the SFD's "
            "manifest() and run again.",
            name=name,
        ) from exc
