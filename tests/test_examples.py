"""Every example in examples/ runs as the README shows it, so none can rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "quickstart.py",
        "custom_sfd.py",
        "custom_strategy.py",
        "walk_forward.py",
        "load_shared_sensor.py",
    ],
)
def test_example_runs(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path / "exp")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "exp" / "study.db").exists()
    assert (tmp_path / "exp" / "results.csv").exists()


@pytest.mark.slow
@pytest.mark.postgres
def test_the_shared_study_example_runs_on_postgres(postgres_url, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "shared_study.py"), postgres_url, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "rounds in the shared study: 10" in done.stdout
