"""Experiments shared by the Trainer, Sensor, Log and product CLI tests.

A 20-round ``logreg_binary`` run takes several seconds, so it runs once per test session and
every test module reuses it. Tests that change a study work on a copy (``copy_experiment``).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from limen.experiment import UniversalExperimentLoop
from limen.sfd.foundational_sfd import logreg_binary

N_ROUNDS = 20
NAME = "logreg"


@dataclass(frozen=True)
class Experiment:
    loop: UniversalExperimentLoop
    directory: Path
    name: str = NAME


_RUNS: dict[str, Experiment] = {}


def logreg_experiment(factory: pytest.TempPathFactory) -> Experiment:
    """The session's 20-round ``logreg_binary`` experiment (test data), run on first use."""
    if NAME not in _RUNS:
        directory = factory.mktemp("products") / NAME
        loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=directory)
        loop.run(NAME, n_permutations=N_ROUNDS, seed=11, progress_bar=False)
        _RUNS[NAME] = Experiment(loop, directory)
    return _RUNS[NAME]


def copy_experiment(experiment: Experiment, target: Path) -> Path:
    """A copy of the experiment directory; its own ``study.db`` is the copy's study."""
    shutil.copytree(experiment.directory, target)
    return target


def set_trial_user_attr(directory: Path, trial_number: int, key: str, value: object) -> None:
    """Overwrite a finished trial's user attribute in the SQLite file (Optuna forbids it)."""
    with sqlite3.connect(directory / "study.db") as db:
        updated = db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE key = ? AND trial_id = "
            "(SELECT trial_id FROM trials WHERE number = ?)",
            (json.dumps(value), key, trial_number),
        ).rowcount
    assert updated == 1


def set_study_user_attr(directory: Path, key: str, value: object) -> None:
    """Set a user attribute of the (only) study in the SQLite file."""
    with sqlite3.connect(directory / "study.db") as db:
        db.execute(
            "INSERT INTO study_user_attributes (study_id, key, value_json) "
            "SELECT study_id, ?, ? FROM studies WHERE true "
            "ON CONFLICT (study_id, key) DO UPDATE SET value_json = excluded.value_json",
            (key, json.dumps(value)),
        )
