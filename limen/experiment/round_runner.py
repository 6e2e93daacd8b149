"""The round runner: one ``run()`` call from opening the study to filling the loop's outputs.

``RoundRunner`` opens (or creates) the study, restores the search on resume, then runs rounds
until the study holds the target number of finished rounds: claim a round from the search
(``StudySearch``: the MSQ pipeline over the study) -> decode -> prep -> model -> store the
outcome in one transaction -> tell the strategy -> append the experiment files -> feedback.
The study is the source of truth; the files are views of it.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.exceptions import StorageInternalError
from optuna.study import StudyDirection
from optuna.trial import TrialState
from tqdm.auto import tqdm

from limen.adapters import leases
from limen.adapters import trials as trial_attrs
from limen.adapters.artifacts import build_model_card, upload_round_artifacts
from limen.adapters.distributions import DomainCodec
from limen.adapters.pruners import RoundReporter, make_pruner
from limen.adapters.rounds import ClaimedRound
from limen.adapters.search import StudySearch
from limen.adapters.storage import (
    LimenStorage,
    TargetReached,
    open_storage,
    redact_url,
    sqlite_path,
)
from limen.experiment import study_keys as keys
from limen.experiment.errors import ResumeError
from limen.experiment.feedback_controller import FeedbackController
from limen.experiment.pruning import reporting_to
from limen.experiment.reconcile import reconcile_files
from limen.experiment.records import (
    AUDIT_JSONL,
    CONVERGENCE_WARNING,
    METADATA_JSON,
    RESULTS_CSV,
    ROUND_DATA_JSONL,
    WARNINGS,
    ResultsCsv,
    append_jsonl,
    read_json,
    results_row,
    round_record,
    write_json_atomic,
)
from limen.experiment.round_results import param_tokens, scalar_metrics
from limen.experiment.round_warnings import RoundWarnings, write_convergence_report
from limen.experiment.run_plan import RunPlan
from limen.experiment.search_strategy import SearchStrategy
from limen.experiment.study_reader import StoredRound, experiment_log, read_rounds
from limen.experiment.study_record import StudyRecord
from limen.experiment.study_setup import (
    RECREATE,
    TAKE_OVER,
    check_resumable,
    create_study,
    existing_study,
    guard_fresh,
    metadata,
    set_metric_names,
    validate_resume,
    write_metadata,
)
from limen.experiment.walk_forward import trial_attrs as fold_attrs
from limen.experiment.walk_forward import write_round_outputs
from limen.utils.values import is_number, jsonable

__all__ = [
    "FEEDBACK_SEQ",
    "FINISHED_SEQ",
    "INTERVENTIONS_JSON",
    "MAX_STORAGE_FAILURES",
    "TARGET_POLL_S",
    "TARGET_REAP_S",
    "RoundRunner",
]

logger = logging.getLogger(__name__)

# Rounds in a row that the database may fail (each re-queued) before the run gives up.
MAX_STORAGE_FAILURES = 10
INTERVENTIONS_JSON = "interventions.json"
# Study counters of shared runs: finished rounds (whose multiples of the feedback interval own a
# trigger) and feedback triggers (their continuous numbering).
FINISHED_SEQ = "finished"
FEEDBACK_SEQ = "feedback"
# Seconds a shared worker waits, at the target, for rounds other workers are running.
TARGET_POLL_S = 0.2
TARGET_REAP_S = 1.0


class RoundRunner:
    """One ``run()`` call: opens the study, runs rounds, writes the files, fills the loop."""

    def __init__(self, loop: Any, plan: RunPlan) -> None:
        self.loop = loop
        self.plan = plan
        self.keys = list(plan.params)
        self.storage: LimenStorage | None = None
        self.search: StudySearch | None = None
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
        self.round_warnings = RoundWarnings()
        self._waiting_logged = False
        self._next_wait_reap = 0.0
        self._storage_failures = 0

    # ----------------------------------------------------------- lifecycle

    def execute(self, *, rounds: bool = True) -> None:
        """Open the study, run rounds until the target (unless ``rounds`` is False: the study
        and ``metadata.json`` are then only created or updated), and publish the outputs."""
        created_dir = not self.plan.experiment_dir.exists()
        try:
            self._open()
        except BaseException:
            self.release_connections()
            # A failed start leaves nothing behind, also when it attached from a new directory.
            if created_dir and self.plan.experiment_dir.exists():
                shutil.rmtree(self.plan.experiment_dir, ignore_errors=True)
            raise
        try:
            if rounds:
                self._loop()
        finally:
            try:
                if self.csv is not None:
                    self.csv.close()
                self.publish()
                write_convergence_report(
                    self.plan.experiment_dir, self.loop.experiment_log, self.keys
                )
            finally:
                self.release_connections()

    def release_connections(self) -> None:
        """Close the storage's pooled connections: a finished run holds no server connection
        and no SQLite file open (the study's WAL is folded back into ``study.db``), also while
        the caller keeps ``loop.study``, which reconnects on its next query."""
        if self.storage is not None:
            self.storage.engine.dispose()

    def _open(self) -> None:
        plan = self.plan
        directory = plan.experiment_dir
        start = None
        # A server is opened once, for the checks and the run; an SQLite file is checked by
        # reading it and opened only once the checks pass (a refused run creates no file).
        if sqlite_path(plan.storage_url) is None:
            self.storage = open_storage(plan.storage_url)
        if plan.resume == "auto":
            plan.resume = existing_study(plan, self.storage) == "present"
            logger.info("resume='auto': %s.", "continuing the study" if plan.resume else "new")
        if plan.resume:
            check_resumable(plan, self.storage)
        else:
            start = guard_fresh(self.loop, plan, self.storage)
        directory.mkdir(parents=True, exist_ok=True)
        if self.storage is None:
            self.storage = open_storage(plan.storage_url)
        if plan.resume or start == TAKE_OVER:
            self.study_id = self.storage.get_study_id_from_name(plan.experiment_name)
            attrs = self.storage.get_study_user_attrs(self.study_id)
            details = validate_resume(self.loop, plan, attrs)
            stored_target = StudyRecord.from_attrs(attrs).n_permutations
            details.update(self._settle_target(stored_target))
            self._audit("worker_start" if plan.follow_target else "resume", **details)
        else:
            self.study_id = create_study(
                self.loop, plan, self.storage, discard_unfinished=start == RECREATE
            )
            write_metadata(self.loop, plan)
        self.objective = plan.objective
        self.pruning_study = optuna.load_study(
            study_name=plan.experiment_name,
            storage=self.storage,
            pruner=make_pruner(self.loop._pruner),
        )
        if plan.resume:
            leases.reap(self.storage, self.study_id)
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        if plan.resume and not any(t.state == TrialState.RUNNING for t in trials):
            # With rounds running elsewhere, their rows may be on the way to the files: a
            # joining worker must not rewrite them.
            record = StudyRecord(objective=tuple(self.objective or ()))
            rounds = read_rounds(trials, DomainCodec(plan.params), record)
            reconcile_files(directory, rounds, self.keys, plan.context_params, self._audit)
        self.finished = trial_attrs.count_finished(trials)
        self.search = StudySearch(
            plan.strategy,
            storage=self.storage,
            study_id=self.study_id,
            initial=plan.params,
            seed=plan.seed,
            checkpoint_interval=self.loop.checkpoint_interval,
            on_refused=self._refused,
            shared=plan.shared,
            target=plan.n_permutations,
        )
        self.loop.domain, self.loop.msq = self.search.domain, self.search.msq
        lost = self.search.open(
            trials, self.objective, resume=bool(plan.resume), force=plan.resume == "force"
        )
        if lost:
            logger.warning(
                "Resumed without %d non-restorable MSQ filter(s): %s. Callables are not "
                "stored; re-register them.",
                len(lost),
                ", ".join(lost),
            )
            self._audit("non_restorable_filters", filters=lost)
        self.feedback = self._make_feedback()
        self._restore_best(trials)
        self.csv = ResultsCsv(directory / RESULTS_CSV, [*self.keys, *plan.context_params])

    def _settle_target(self, stored: Any) -> dict[str, Any]:
        """Agree with the study on the target: a worker takes the stored one, a resume with a
        larger ``n_permutations`` raises it (study attr and ``metadata.json``). A directory that
        has no ``metadata.json`` yet (attached from elsewhere) gets one. Returns the audit
        details of a raised target."""
        plan = self.plan
        path = plan.experiment_dir / METADATA_JSON
        stored = stored if isinstance(stored, int) and not isinstance(stored, bool) else None
        if plan.follow_target and stored is not None:
            plan.n_permutations = stored
        raised = stored is not None and plan.n_permutations > stored
        if raised:
            self.storage.set_study_user_attr(
                self.study_id, keys.N_PERMUTATIONS, plan.n_permutations
            )
        if raised or not path.exists():
            document = metadata(self.loop, plan)
            if path.exists():
                # The storage too: a copied directory records its own study.db from now on.
                document = {
                    **read_json(path),
                    "n_permutations": plan.n_permutations,
                    "storage": document["storage"],
                }
            write_json_atomic(path, document)
        return {"target_raised": [stored, plan.n_permutations]} if raised else {}

    def _refused(self, combo: Mapping[str, Any] | None, reason: str) -> None:
        """A queued combination that will not run: one audit line naming why."""
        tokens = None if combo is None else param_tokens(combo)
        self._audit("refused", params=tokens, reason=reason)

    def _make_feedback(self) -> FeedbackController:
        """The feedback controller, its state restored on resume."""
        directory = self.plan.experiment_dir
        feedback = FeedbackController(
            feedback_interval=self.loop.feedback_interval,
            pruning_strategies=self.loop.pruning_strategies,
            intra_callback=self.loop.intra_callback,
            intervention_path=directory / INTERVENTIONS_JSON,
            audit_log_path=directory / AUDIT_JSONL,
        )
        if self.plan.resume and (stored := self._stored_feedback()) is not None:
            feedback.set_state(stored)
        return feedback

    def _feedback(self) -> None:
        """Trigger feedback when due; persist what it applied and its own state at once."""
        if not self._feedback_listens():
            return
        if self.plan.shared:
            if not self._owns_trigger():
                return
        elif not self.feedback.should_trigger(self.finished):
            return
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        log = experiment_log(read_rounds(trials, self.search.codec))
        applied = self.feedback.trigger(log, self.loop.msq, self.finished)
        if applied:
            self.search.save(changed=True)
        self.search.checkpoints.save_feedback(self.feedback.get_state())

    def _owns_trigger(self) -> bool:
        """Whether this worker fires the fleet's next trigger: the one whose finished round is a
        multiple of the interval in the study's order. Its state and number come from the study,
        so the numbering stays continuous whoever fires."""
        ordinal = self.storage.claim_sequence(self.study_id, FINISHED_SEQ) + 1
        if ordinal % self.loop.feedback_interval:
            return False
        self.search.sync()
        if (stored := self._stored_feedback()) is not None:
            self.feedback.set_state(stored)
        self.feedback.trigger_count = self.storage.claim_sequence(self.study_id, FEEDBACK_SEQ)
        return True

    def _stored_feedback(self) -> dict[str, Any] | None:
        """The feedback state the study holds; ``resume="force"`` drops a corrupt one."""
        try:
            return self.search.checkpoints.load_feedback()
        except ResumeError:
            if self.plan.resume != "force":
                raise
            return None

    def _feedback_listens(self) -> bool:
        """Whether a trigger would reach anyone: reducers, a callback, an interventions file,
        or a strategy that learns from feedback. Reading the whole study for nobody would make
        every round of a long run dearer."""
        feedback = self.feedback
        strategy = type(self.search.strategy)
        return bool(
            feedback.pruning_strategies
            or feedback.intra_callback is not None
            or (feedback.intervention_path is not None and feedback.intervention_path.exists())
            or strategy.update_from_feedback is not SearchStrategy.update_from_feedback
        )

    def _audit(self, event: str, **details: Any) -> None:
        """One line in audit.jsonl: resumes, reconciled files, refused queued rounds."""
        record = {"event": event, "timestamp": datetime.now(UTC).isoformat(), **details}
        append_jsonl(self.plan.experiment_dir / AUDIT_JSONL, record)

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
        started_with = self.finished
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
                        self.search.requeued()
                    next_reap = time.monotonic() + leases.LEASE_GRACE_S
                if not self._step(bar):
                    break
        finally:
            self.lease.close()
            shutdown.restore()
            bar.close()
            self.search.save()
            if plan.follow_target:
                self._audit("worker_stop", finished_here=self.finished - started_with)

    def _step(self, bar: tqdm) -> bool:
        """Claim and run one round; False when the run must stop (exhausted or interrupted)."""
        claimed = None
        try:
            try:
                claimed = self.search.claim()
            except TargetReached as full:
                return self._at_target(full)
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

    def _at_target(self, full: TargetReached) -> bool:
        """The study holds its target of finished and running rounds: stop when they are all
        finished; else wait for them, re-queuing those whose worker died (False: stop)."""
        if full.finished >= full.limit:
            stored = self.storage.get_study_user_attrs(self.study_id).get(keys.N_PERMUTATIONS)
            if isinstance(stored, int) and stored > full.limit:
                # Someone raised the target (limen resume -n) while this worker ran.
                self.plan.n_permutations = self.search.target = stored
                return True
            logger.info(
                "The study holds its target of %d finished rounds: this worker stops.", full.limit
            )
            return False
        if not self._waiting_logged:
            logger.info(
                "Target reached with %d rounds still running in other workers: waiting for them.",
                full.running,
            )
            self._waiting_logged = True
        time.sleep(TARGET_POLL_S)
        # Reaping reads the study's running and lost rounds: once a second is soon enough.
        if time.monotonic() >= self._next_wait_reap:
            self._next_wait_reap = time.monotonic() + TARGET_REAP_S
            if leases.reap(self.storage, self.study_id):
                self.search.requeued()
        return True

    def _log_stop(self) -> None:
        """Say why no round is left to run before the target."""
        reason = self.search.stop_reason
        if reason is not None and not reason.endswith("exhausted"):
            logger.warning(
                "The MSQ stopped the run: %s (%d finished rounds).", reason, self.finished
            )
            return
        logger.warning(
            "The parameter space is exhausted: all %s combinations have run "
            "(%d finished rounds; n_permutations=%d).",
            self.search.total,
            self.finished,
            self.plan.n_permutations,
        )

    def _run_round(self, claimed: ClaimedRound) -> bool:
        """Run one claimed round; True when it finished (its outcome is known)."""
        plan = self.plan
        round_params = {**claimed.combo, **plan.context_params}
        if plan.maintain_details:
            round_params["_experiment_details"] = {"current_index": claimed.number}
        started = time.perf_counter()
        reporter = RoundReporter(self.pruning_study, claimed.trial_id, claimed.number)
        self.round_warnings = RoundWarnings()
        try:
            with self.lease.hold(claimed.trial_id), reporting_to(reporter):
                with self.round_warnings.capture():
                    results = self._evaluate(round_params)
                values = self._outcome(results)
        except optuna.TrialPruned as exc:
            self._store_pruned(claimed, round_params, reporter, exc, started)
            return True
        except StorageInternalError as exc:
            # The lease or a report() could not reach the database: not the SFD's failure.
            self._requeue_after_storage_error(claimed, exc)
            return False
        except Exception as exc:
            self._store_failure(claimed, round_params, exc, started)
            return True
        self._store_success(claimed, round_params, results, values, started)
        return True

    def _requeue_after_storage_error(
        self, claimed: ClaimedRound, exc: StorageInternalError
    ) -> None:
        """End a round the database failed as an attempt whose parameters run again.

        Raises the error once ``MAX_STORAGE_FAILURES`` rounds in a row failed this way: the
        database is not coming back, and retrying forever would hide it.
        """
        self._storage_failures += 1
        if self._storage_failures > MAX_STORAGE_FAILURES:
            raise exc
        logger.warning(
            "Round %d lost its database connection (%s); it runs again.", claimed.number, exc
        )
        trial = self.storage.get_trial(claimed.trial_id)
        if trial.state == TrialState.RUNNING:
            leases.release(self.storage, self.study_id, trial, leases.STORAGE_ERROR)
        self.search.requeued()

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
        metrics = scalar_metrics(results)
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
            self.plan.objective = self.objective
            self.storage.set_study_user_attr(
                self.study_id, keys.OBJECTIVE, [list(self.objective[0])]
            )
            set_metric_names(
                optuna.load_study(study_name=self.plan.experiment_name, storage=self.storage),
                [numeric[0]],
            )
            self.search.set_objective(self.objective)
        values = []
        for metric, _ in self.objective:
            if metric not in results:
                raise KeyError(
                    f"The objective metric {metric!r} is missing from the model's results; "
                    f"it returned {sorted(metrics)}."
                )
            value = results[metric]
            if not is_number(value, finite=True):
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
        metrics = scalar_metrics(results)
        if self.loop.save_artifacts:
            self._upload_artifacts(claimed, round_params, results, metrics)
        attrs = fold_attrs(results)
        state = TrialState.COMPLETE
        self._finish(claimed, round_params, state, values, started, metrics=metrics, attrs=attrs)
        self._track_best(values[0])
        self._keep_outputs(round_params, results)
        extra: dict[str, Any] = {}
        if "_preds" in results:
            extra["preds"] = jsonable(results["_preds"], strict=False)
        data_dict = self.data_dict if isinstance(self.data_dict, Mapping) else {}
        if data_dict.get("_alignment") is not None:
            extra["alignment"] = jsonable(data_dict["_alignment"], strict=False)
        record = round_record(claimed.round_id, claimed.number, param_tokens(round_params), **extra)
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
        attrs = {keys.PRUNED: str(exc)}
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
        noted = self.round_warnings.attrs(failed=state == TrialState.FAIL)
        stored = {**metrics, **(attrs or {}), **noted, trial_attrs.EXECUTION_TIME: elapsed}
        if error is not None:
            stored[trial_attrs.ERROR_TYPE] = type(error).__name__
            stored[trial_attrs.ERROR_MESSAGE] = str(error)
        self.storage.finish_trial(claimed.trial_id, state, values, stored)
        self._storage_failures = 0
        self.search.finished(claimed, state, values)
        row = results_row(
            round_id=claimed.round_id,
            number=claimed.number,
            state=state.name,
            execution_time=elapsed,
            metrics=metrics,
            params=param_tokens(round_params),
            error_type=None if error is None else type(error).__name__,
            error_message=None if error is None else str(error),
            warnings=noted[WARNINGS],
            convergence_warning=noted[CONVERGENCE_WARNING],
        )
        self.csv.append(row, metric_names=list(metrics) if state == TrialState.COMPLETE else None)

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

    def publish(self) -> None:
        """Fill the loop's public attributes from the study (the source of truth)."""
        if self.storage is None:
            return
        study = optuna.load_study(study_name=self.plan.experiment_name, storage=self.storage)
        self.loop.study = study
        self.loop.results_dir = self.plan.experiment_dir
        record = StudyRecord(objective=tuple(self.objective or ()))
        rounds = read_rounds(study.get_trials(deepcopy=False), self.search.codec, record)
        log = experiment_log(rounds, self.plan.context_params)
        self.loop.experiment_log = log
        self.loop.best_round = self._best_round(study, rounds)
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
        self, study: optuna.Study, rounds: Sequence[StoredRound]
    ) -> dict[str, Any] | None:
        complete = [r for r in rounds if r.trial.state == TrialState.COMPLETE]
        if not complete or not self.objective:
            return None
        sign = 1 if study.directions[0] == StudyDirection.MAXIMIZE else -1
        best = max(complete, key=lambda r: sign * r.trial.values[0])
        return {
            "id": best.round_id,
            "_round_index": best.number,
            "values": dict(zip([m for m, _ in self.objective], best.trial.values, strict=False)),
            "params": best.params,
        }
