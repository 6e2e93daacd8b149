"""``limen dashboard`` end to end: it serves on loopback and headless Chromium shows the study.

The browser test drives Debian's Chromium through Debian's chromedriver (``.ci/run`` installs
both); it is skipped, saying why, where they are missing.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from limen.adapters.artifacts import save_study_note
from limen.adapters.storage import default_storage_url
from limen.experiment.experiment_core import UniversalExperimentLoop
from limen.sfd.foundational_sfd import logreg_binary

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1200",
)
STARTUP_S = 90
PAGE_S = 60


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("served") / "demo"
    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=directory)
    loop.run("demo", n_permutations=5, seed=11, progress_bar=False)
    save_study_note(loop.study)
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(experiment, tmp_path_factory) -> Iterator[str]:
    """``limen dashboard DIR --port P`` in a subprocess; yields the URL it prints."""
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    command = [sys.executable, "-m", "limen.cli", "dashboard", str(experiment)]
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [*command, "--port", str(free_port())],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        ready, _, _ = select.select([server.stdout], [], [], STARTUP_S)
        line = server.stdout.readline() if ready else ""
        if not line:
            pytest.fail(f"limen dashboard printed no URL in {STARTUP_S}s: {log.read_text()}")
        yield line.split()[1]
    finally:
        server.terminate()
        server.wait(timeout=30)


def read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return response.read()


def test_the_command_prints_the_study_page_and_serves_it(served):
    assert served.startswith("http://127.0.0.1:") and served.endswith("/dashboard/studies/1")
    assert b"<title>Optuna Dashboard</title>" in read(served)
    origin = served.split("/dashboard")[0]
    studies = json.loads(read(origin + "/api/studies"))["study_summaries"]
    assert [s["study_name"] for s in studies] == ["demo"]


@pytest.fixture
def chromium(tmp_path) -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's chromium and "
            "chromium-driver (apt-get install -y chromium chromium-driver), as .ci/run does"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_trial_table_shows_readable_values_and_the_objective_in_chromium(
    served, experiment, chromium, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    study = optuna.load_study(study_name="demo", storage=default_storage_url(experiment))
    scalers = {trial.params["scaler"] for trial in study.trials}
    assert all(s.startswith("sklearn.preprocessing.") for s in scalers)

    # optuna-dashboard 0.21 shows the trial table on the study's "Smart Selection" page.
    chromium.get(served + "/smartSelection")
    wait = WebDriverWait(chromium, PAGE_S)
    first = sorted(scalers)[0]
    cell = wait.until(
        lambda d: d.find_element(By.XPATH, f"//table//td[normalize-space()='{first}']")
    )
    table = cell.find_element(By.XPATH, "ancestor::table")
    wait.until(lambda _: len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == 5)
    cells = {td.text.strip() for td in table.find_elements(By.TAG_NAME, "td")}
    assert scalers <= cells
    headers = [th.text.split("\n")[0] for th in table.find_elements(By.TAG_NAME, "th")]
    assert "Param scaler" in headers and "UserAttribute auc" in headers
    axis_titles = {el.text for el in chromium.find_elements(By.CSS_SELECTOR, ".g-ytitle")}
    assert "auc" in axis_titles

    chromium.execute_script("arguments[0].scrollIntoView({block: 'center'})", table)
    time.sleep(0.5)  # let the scroll settle before the picture
    screenshot = tmp_path / "limen-dashboard.png"
    assert chromium.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
