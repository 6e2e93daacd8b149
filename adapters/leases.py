"""Round leases: a running round proves it is alive, and dead rounds are re-queued once.

Optuna's own heartbeat only works inside ``Study.optimize``; Limen runs rounds through
ask/tell-style calls, so it keeps its own lease. While a round runs, a thread writes the
trial's heartbeat (Optuna's ``trial_heartbeats`` table, stamped with the database's clock).
A RUNNING trial is *expired* when its owner process is known to be dead (same host, pid gone)
or its heartbeat is older than the grace period. Reaping an expired trial marks it FAIL with
``limen:attempt = "lease expired"`` and queues its parameters again as a WAITING trial that
links back to it (``limen:retry_of``). Only the worker whose FAIL write succeeds re-queues,
so a round is re-queued once even when several workers reap at the same time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from limen.adapters.storage import LimenStorage
from limen.adapters.trials import ATTEMPT, ROUND_ID
from limen.experiment import study_keys as keys

__all__ = [
    "INTERRUPTED",
    "LEASE_EXPIRED",
    "LEASE_GRACE_S",
    "LEASE_INTERVAL_S",
    "OWNER",
    "REQUEUED",
    "RETRY_OF",
    "STORAGE_ERROR",
    "Lease",
    "expired_trials",
    "owner_record",
    "reap",
    "release",
    "requeue",
    "requeue_orphans",
]

logger = logging.getLogger(__name__)

LEASE_INTERVAL_S = 5.0
LEASE_GRACE_S = 60.0
OWNER = keys.OWNER
RETRY_OF = keys.RETRY_OF
LEASE_EXPIRED = "lease expired"
INTERRUPTED = "interrupted"
STORAGE_ERROR = "storage error"
REQUEUED = (LEASE_EXPIRED, INTERRUPTED, STORAGE_ERROR)


def owner_record() -> dict[str, Any]:
    """Who runs a round: this host and process."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


class Lease:
    """Keeps the heartbeat of the round this process is running fresh, from one thread.

    One ``Lease`` serves a whole run: ``hold(trial_id)`` writes the first heartbeat before the
    round starts (so a trial never runs without one) and the thread renews it every
    ``interval`` seconds until ``drop()``; ``close()`` stops the thread.
    """

    def __init__(self, storage: LimenStorage, interval: float = LEASE_INTERVAL_S) -> None:
        self.storage = storage
        self.interval = interval
        self._trial_id: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="limen-lease", daemon=True)
        self._thread.start()

    def hold(self, trial_id: int) -> Lease:
        """Start keeping ``trial_id`` alive; usable as a context manager that drops it."""
        self.storage.record_heartbeat(trial_id)
        with self._lock:
            self._trial_id = trial_id
        return self

    def drop(self) -> None:
        """Stop renewing the current round's lease."""
        with self._lock:
            self._trial_id = None

    def close(self) -> None:
        """Stop the heartbeat thread."""
        self.drop()
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drop()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trial_id = self._trial_id
                if trial_id is None:
                    continue
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:
                    # A missed beat only shortens the lease; the round itself goes on.
                    logger.warning("Could not renew the lease of trial %d.", trial_id)


def expired_trials(
    storage: LimenStorage, study_id: int, grace: float = LEASE_GRACE_S
) -> list[FrozenTrial]:
    """RUNNING trials of the study whose owner is dead or whose lease ran out."""
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    ages = storage.heartbeat_ages([t._trial_id for t in running])
    me = owner_record()
    expired = []
    for trial in running:
        owner = trial.system_attrs.get(OWNER)
        if owner == me:
            continue
        age = ages.get(trial._trial_id)
        if age is None and trial.datetime_start is not None:
            start = trial.datetime_start.replace(tzinfo=None)
            age = (datetime.now(UTC).replace(tzinfo=None) - start).total_seconds()
        local_and_dead = (
            isinstance(owner, dict) and owner.get("host") == me["host"] and not _alive(owner)
        )
        if local_and_dead or (age is not None and age > grace):
            expired.append(trial)
    return expired


def _alive(owner: dict[str, Any]) -> bool:
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        # A killed child its parent has not reaped yet still answers kill(pid, 0).
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def release(storage: LimenStorage, study_id: int, trial: FrozenTrial, reason: str) -> bool:
    """Close a RUNNING attempt that reached no outcome and queue its parameters again.

    Returns False when the trial had finished meanwhile (then nothing is queued).
    """
    try:
        storage.set_trial_user_attr(trial._trial_id, ATTEMPT, reason)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    requeue(storage, study_id, trial)
    logger.warning("Round %d: %s; its parameters run again.", trial.number, reason)
    return True


def requeue(storage: LimenStorage, study_id: int, trial: FrozenTrial) -> None:
    """Queue ``trial``'s parameters as a WAITING trial that links back to it."""
    retry = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={ROUND_ID: trial.user_attrs.get(ROUND_ID)},
        system_attrs={RETRY_OF: trial.number},
    )
    storage.create_new_trial(study_id, template_trial=retry)


def requeue_orphans(storage: LimenStorage, study_id: int) -> int:
    """Re-queue lost attempts whose retry was never created (a crash between the two writes).

    Only attempts that lost their round (``lease expired``, ``interrupted``) are re-queued;
    proposals a strategy rejected on purpose are not.
    """
    failed = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.FAIL,))
    lost = [t for t in failed if t.user_attrs.get(ATTEMPT) in REQUEUED]
    if not lost:
        return 0
    trials = storage.get_all_trials(study_id, deepcopy=False)
    retried = {t.system_attrs.get(RETRY_OF) for t in trials}
    orphans = [t for t in lost if t.number not in retried]
    for trial in orphans:
        requeue(storage, study_id, trial)
    return len(orphans)


def reap(storage: LimenStorage, study_id: int, grace: float = LEASE_GRACE_S) -> int:
    """Release every expired round of the study; returns how many were re-queued."""
    released = sum(
        release(storage, study_id, trial, LEASE_EXPIRED)
        for trial in expired_trials(storage, study_id, grace)
    )
    return released + requeue_orphans(storage, study_id)
