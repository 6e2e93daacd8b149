# `make run` and `make test` each set themselves up on a fresh machine: they create .venv when it
# is missing and (re)install the project into it whenever pyproject.toml changes. `make run`
# needs only the package; `make test` adds the test and optional-strategy dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.limen-run
TEST_STAMP := $(VENV)/.limen-test
DEMO_DIR := runs/demo
TORCH_VERSION ?= 2.13.0
# The oldest Optuna pyproject.toml allows: the storage conformance and loop tests run against it
# too, in a second virtual environment (no torch, no browser).
OLDEST := .venv-oldest
OLDEST_STAMP := $(OLDEST)/.limen-oldest
OPTUNA_OLDEST ?= 5.0.0
OLDEST_TESTS := tests/test_storage_conformance.py tests/test_storage.py tests/test_experiment_loop.py

.PHONY: run test test-oldest lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	# The CPU build of torch (for the GP strategy), so pip never pulls a CUDA build.
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(RUN_STAMP) $(TEST_STAMP)

# The demo: a 50-round sweep of the logreg_binary SFD on embedded synthetic klines, stored in
# runs/demo/study.db (SQLite). Each `make run` starts the demo afresh.
run: $(RUN_STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/limen run --sfd logreg_binary --test-mode -n 50 --experiment-dir $(DEMO_DIR)

# Two test processes (pytest-xdist), one per core: the tests that kill or race experiments fork
# them from a preloaded server (tests/children.py), so little time is spent waiting and a third
# process only adds contention (4.6 minutes against 5.1 with three). PYTEST_WORKERS=0 runs the
# tests in this process.
PYTEST_WORKERS ?= 2
# One BLAS/OpenMP thread per test process: the processes already fill the cores, and idle BLAS
# threads spin waiting for work, taking CPU from the other processes. Bytecode is cached even
# where PYTHONDONTWRITEBYTECODE is set, so the test processes and the children they start compile
# Limen and the tests once, not each.
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=

test: $(TEST_STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15

$(OLDEST_STAMP): pyproject.toml
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet "optuna==$(OPTUNA_OLDEST)" -e ".[postgres,mysql]" "pytest>=8"
	touch $(OLDEST_STAMP)

test-oldest: $(OLDEST_STAMP)
	$(OLDEST)/bin/python -c "import optuna; assert optuna.__version__ == '$(OPTUNA_OLDEST)', optuna.__version__"
	$(TEST_ENV) $(OLDEST)/bin/python -m pytest -q $(OLDEST_TESTS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(OLDEST) runs
