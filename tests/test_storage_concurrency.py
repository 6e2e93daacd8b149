"""Many worker processes writing one study at once, on SQLite, PostgreSQL and MySQL/MariaDB.

Each worker is a separate process (forked from a server that has imported Limen and Optuna
already, see ``children.py``), as a fleet of Limen workers on one machine or on several would
be. The workers start together behind a barrier; afterwards the study is read back with plain
Optuna to check that every trial number and every sequence position was handed out exactly
once, with no gap, and that every row of every round is present.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from multiprocessing.pool import Pool
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from children import CONTEXT
from limen.adapters.storage import LimenStorage

pytestmark = pytest.mark.slow

N_WORKERS = 4
ROUNDS_PER_WORKER = 25
OPTUNA_ROUNDS_PER_WORKER = 10  # plain Optuna's ask/tell is an order of magnitude slower
DISTRIBUTIONS = {
    **{f"x{i}": FloatDistribution(0.0, 1000.0) for i in range(10)},
    **{f"n{i}": IntDistribution(0, 1000) for i in range(4)},
    "kind": CategoricalDistribution(("a", "b", "c")),
}
N_METRICS = 10
CLAIMED_IDS = 40


def _params(position: int) -> dict[str, Any]:
    """The external parameter values of the round at ``position`` (so rows can be checked)."""
    return {
        **{f"x{i}": float(position) for i in range(10)},
        **{f"n{i}": position for i in range(4)},
        "kind": "abc"[position % 3],
    }


def _round_at(position: int, worker: int) -> Any:
    internal = {k: DISTRIBUTIONS[k].to_internal_repr(v) for k, v in _params(position).items()}
    return internal, DISTRIBUTIONS, {"position": position, "worker": worker}


def _limen_worker(url: str, study_name: str, worker: int, barrier: Any) -> None:
    """Claim a position, create its trial and finish it, ROUNDS_PER_WORKER times.

    Rounds alternate between ``create_running_trial`` and ``claim_new_round`` (the round
    pipeline's claim, which reads the ids other workers added under the same lock).
    """
    storage = LimenStorage(url)
    study_id = storage.get_study_id_from_name(study_name)
    barrier.wait()
    seen = -1
    for i in range(ROUNDS_PER_WORKER):
        position = storage.claim_sequence(study_id, "grid")
        if i % 2:
            trial_id, _ = storage.create_running_trial(study_id, *_round_at(position, worker))
        else:
            created, rows = storage.claim_new_round(
                study_id,
                _round_at(position, worker),
                id_key="position",
                round_id=f"unique-{position}",
                after_trial_id=seen,
            )
            seen = max([seen, *(tid for tid, _ in rows)])
            trial_id, _ = created
        metrics = {f"metric{i}": position + i for i in range(N_METRICS)}
        storage.finish_trial(trial_id, TrialState.COMPLETE, [float(position)], metrics)
    storage.engine.dispose()


def _claiming_worker(url: str, study_name: str, worker: int, barrier: Any) -> None:
    """Try to claim every round id of a shared list, in a worker-specific order."""
    storage = LimenStorage(url)
    study_id = storage.get_study_id_from_name(study_name)
    ids = [f"round-{k}" for k in range(CLAIMED_IDS)]
    order = ids[worker::2] + ids[(worker + 1) % 2 :: 2]
    known: set[str] = set()
    seen = -1
    barrier.wait()
    for rid in order:
        if rid in known:
            continue
        spec = (_round_at(0, worker)[0], DISTRIBUTIONS, {"rid": rid, "worker": worker})
        created, rows = storage.claim_new_round(
            study_id, spec, id_key="rid", round_id=rid, after_trial_id=seen
        )
        for trial_id, other in rows:
            seen = max(seen, trial_id)
            known.add(other)
        if created is not None:
            known.add(rid)
            seen = max(seen, created[0])
            # The round's work: without a pause between its transactions, one SQLite writer
            # can keep the lock for every claim while the others sleep in the busy handler.
            time.sleep(0.002)
            storage.finish_trial(created[0], TrialState.COMPLETE, [0.0], {})
    storage.engine.dispose()


def _optuna_worker(url: str, study_name: str, worker: int, barrier: Any) -> None:
    """Plain Optuna (RDBStorage, ask/tell) writing to the same study beside Limen workers."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=url)
    barrier.wait()
    for _ in range(OPTUNA_ROUNDS_PER_WORKER):
        trial = study.ask(fixed_distributions=DISTRIBUTIONS)
        trial.set_user_attr("worker", worker)
        study.tell(trial, -1.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[tuple[Pool, Any]]:
    with CONTEXT.Manager() as manager, CONTEXT.Pool(N_WORKERS) as workers:
        yield workers, manager
        workers.close()
        workers.join()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def shared_url(request: pytest.FixtureRequest) -> str:
    """The session's database (studies get unique names), or a fresh SQLite file."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue(f"{request.param}_url")


def _run(pool: tuple[Pool, Any], url: str, study_name: str, targets: list[Any]) -> None:
    workers, manager = pool
    barrier = manager.Barrier(len(targets))
    pending = [
        workers.apply_async(target, (url, study_name, worker, barrier))
        for worker, target in enumerate(targets)
    ]
    for result in pending:
        result.get(timeout=300)


def _trials(url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    plain = RDBStorage(url)
    try:
        return plain.get_all_trials(plain.get_study_id_from_name(study_name))
    finally:
        plain.engine.dispose()


def _assert_interleaved(url: str, trials: list[optuna.trial.FrozenTrial]) -> None:
    """The workers really wrote at the same time: their trial numbers alternate.

    Not checked on SQLite: its busy handler sleeps instead of queueing, so one writer often
    keeps the lock for many rounds in a row, and how often they alternate is luck.
    """
    if url.startswith("sqlite"):
        return
    workers = [t.user_attrs["worker"] for t in sorted(trials, key=lambda t: t.number)]
    switches = sum(a != b for a, b in itertools.pairwise(workers))
    assert switches > 2 * N_WORKERS, "".join(map(str, workers))


def test_workers_get_unique_gap_free_trial_numbers_and_grid_positions(
    pool: tuple[Pool, Any], shared_url: str, unique_study_name: str
) -> None:
    storage = LimenStorage(shared_url)
    storage.create_new_study([StudyDirection.MINIMIZE], unique_study_name)
    storage.engine.dispose()

    _run(pool, shared_url, unique_study_name, [_limen_worker] * N_WORKERS)

    trials = _trials(shared_url, unique_study_name)
    total = N_WORKERS * ROUNDS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(total))
    assert sorted(t.user_attrs["position"] for t in trials) == list(range(total))
    for trial in trials:
        position = trial.user_attrs["position"]
        assert trial.state == TrialState.COMPLETE
        assert trial.values == [float(position)]
        assert trial.params == _params(position)
        assert trial.user_attrs == {
            "position": position,
            "worker": trial.user_attrs["worker"],
            **{f"metric{i}": position + i for i in range(N_METRICS)},
        }
    assert {t.user_attrs["worker"] for t in trials} == set(range(N_WORKERS))
    _assert_interleaved(shared_url, trials)


def test_limen_and_plain_optuna_workers_share_one_study(
    pool: tuple[Pool, Any], shared_url: str, unique_study_name: str
) -> None:
    optuna.create_study(study_name=unique_study_name, storage=shared_url)

    _run(pool, shared_url, unique_study_name, [_limen_worker, _optuna_worker] * 2)

    trials = _trials(shared_url, unique_study_name)
    total = 2 * ROUNDS_PER_WORKER + 2 * OPTUNA_ROUNDS_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(total))
    _assert_interleaved(shared_url, trials)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    positions = [t.user_attrs["position"] for t in trials if "position" in t.user_attrs]
    assert sorted(positions) == list(range(2 * ROUNDS_PER_WORKER))


def test_each_round_id_is_claimed_by_exactly_one_worker(
    pool: tuple[Pool, Any], shared_url: str, unique_study_name: str
) -> None:
    storage = LimenStorage(shared_url)
    storage.create_new_study([StudyDirection.MINIMIZE], unique_study_name)
    storage.engine.dispose()

    _run(pool, shared_url, unique_study_name, [_claiming_worker] * N_WORKERS)

    trials = _trials(shared_url, unique_study_name)
    claimed = sorted(t.user_attrs["rid"] for t in trials)
    assert claimed == sorted(f"round-{k}" for k in range(CLAIMED_IDS))
    assert len({t.user_attrs["worker"] for t in trials}) > 1
