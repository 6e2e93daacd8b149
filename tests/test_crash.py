"""SIGKILL at random moments, resume each time: no round lost, none run twice, files agree.

A real experiment runs in a subprocess; the test kills it with SIGKILL several times (during
rounds, between them, during study creation and file writes: wherever the moment falls),
resumes after each kill, and lets the last resume finish.
"""

from __future__ import annotations

import csv
import random
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from children import run_script, start_script
from limen.adapters.trials import is_finished_round

TESTS = Path(__file__).resolve().parent
TARGET = 40
# Optuna's GP sampler fits a model before each proposal (about 0.7 s a round here): 20 rounds
# still run its 10 random start-up rounds and 10 fitted ones, past every kill.
TARGETS = {"gp": 20}
# A forked child (tests/children.py) creates its study about 0.3 s after it starts and writes
# metadata.json by 0.6 s: the first kill falls anywhere in that start-up or the first rounds.
START_UP_S = 0.8

WORKER = """
import random, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import importlib.util
import toy_sfd
from limen.experiment import ResumeError, UniversalExperimentLoop

def walk():
    spec = importlib.util.spec_from_file_location("custom_strategy", {walk_path!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CoordinateWalk

STRATEGY = walk() if {strategy!r} == "walk" else {strategy!r}

MARK = Path({directory!r}).parent / "in_round"

def model(data, round_params):
    MARK.touch()
    time.sleep(random.uniform(0.01, 0.05))
    MARK.unlink()
    return toy_sfd.model(data, round_params)

loop = UniversalExperimentLoop(
    sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir={directory!r},
    storage={storage!r}, objective="score", search_strategy=STRATEGY,
)
try:
    loop.run({name!r}, n_permutations={target}, model=model, resume=True, progress_bar=False)
except (ValueError, ResumeError):
    # Nothing complete to resume yet: the first launch died before its study was set up.
    loop.run({name!r}, n_permutations={target}, model=model, progress_bar=False)
"""


def rows_written(directory: Path) -> int:
    path = directory / "results.csv"
    return path.read_text().count("\n") if path.exists() else 0


def kill_and_resume(
    directory: Path,
    storage: str | None,
    name: str,
    kills: int,
    seed: int,
    strategy=None,
    target: int = TARGET,
):
    """Kill a worker ``kills`` times, then let one finish.

    The first kill falls at a random instant of start-up (possibly while the study is being
    created). The others wait until the worker has finished another round, then strike either
    inside the model of a round (odd kills) or at a random instant within the next rounds
    (even kills: while a trial is created, stored, or a file line written).
    """
    mark = directory.parent / "in_round"
    script = WORKER.format(
        tests=str(TESTS),
        directory=str(directory),
        storage=storage,
        name=name,
        target=target,
        strategy=strategy,
        walk_path=str(TESTS.parent / "examples" / "custom_strategy.py"),
    )
    rng = random.Random(seed)
    for attempt in range(kills):
        # A worker killed inside a round leaves its mark behind: clear it, so the next kill
        # waits for a round of the new worker.
        mark.unlink(missing_ok=True)
        worker = start_script(script)
        if attempt == 0:
            time.sleep(rng.uniform(0.0, START_UP_S))
        else:
            seen = rows_written(directory)
            deadline = time.monotonic() + 60
            while rows_written(directory) <= seen and worker.poll() is None:
                assert time.monotonic() < deadline, "the worker made no progress"
                time.sleep(0.01)
            if attempt % 2:
                while not mark.exists() and worker.poll() is None:
                    time.sleep(0.001)
            else:
                time.sleep(rng.uniform(0.0, 0.1))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
        worker.wait()
    final = run_script(script, timeout=300)
    assert final.returncode == 0, final.stderr


def check_study(
    study: optuna.Study, directory: Path, min_attempts: int = 2, target: int = TARGET
) -> None:
    trials = study.get_trials()
    finished = [t for t in trials if is_finished_round(t)]
    assert len(finished) == target
    ids = [t.user_attrs["id"] for t in finished]
    assert len(set(ids)) == target, "a finished round ran twice"
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    attempts = [t for t in trials if "limen:attempt" in t.user_attrs]
    assert len(attempts) >= min_attempts, "no kill fell inside a round"
    for attempt in attempts:
        assert attempt.user_attrs["limen:attempt"] in ("lease expired", "interrupted")
        retries = [t for t in trials if t.system_attrs.get("limen:retry_of") == attempt.number]
        assert len(retries) == 1 and retries[0].params == attempt.params
    with (directory / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ids
    assert [int(r["_round_index"]) for r in rows] == [t.number for t in finished]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_on_sqlite(tmp_path):
    directory = tmp_path / "exp"
    kill_and_resume(directory, None, "crash", kills=4, seed=1)
    study = optuna.load_study(study_name="crash", storage=f"sqlite:///{directory / 'study.db'}")
    check_study(study, directory)


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_at_random_moments_then_resume_on_postgres(tmp_path, postgres_url):
    directory = tmp_path / "exp"
    name = f"crash_{tmp_path.name}"
    kill_and_resume(directory, postgres_url, name, kills=4, seed=2)
    check_study(optuna.load_study(study_name=name, storage=postgres_url), directory)


STRATEGIES = ["random", "tpe", "cmaes", "qmc", "nsga2", "nsga3", "bruteforce", "gp", "walk"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sigkill_then_resume_with_each_strategy(tmp_path, strategy):
    directory = tmp_path / "exp"
    target = TARGETS.get(strategy, TARGET)
    kill_and_resume(directory, None, "crash", 3, seed=3, strategy=strategy, target=target)
    study = optuna.load_study(study_name="crash", storage=f"sqlite:///{directory / 'study.db'}")
    # One kill waits for a round to be running; the other falls at a random instant.
    check_study(study, directory, min_attempts=1, target=target)
    assert len(study.trials) == target + len(
        [t for t in study.trials if "limen:attempt" in t.user_attrs]
    )
