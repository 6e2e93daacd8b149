# `make run` and `make test` each set themselves up on a fresh machine: they create .venv when it
# is missing and (re)install the project into it whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.limen-installed
DEMO_DIR := runs/demo

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo: a 50-round sweep of the logreg_binary SFD on embedded synthetic klines, stored in
# runs/demo/study.db (SQLite). Each `make run` starts the demo afresh.
run: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/limen run --sfd logreg_binary --test-mode -n 50 --experiment-dir $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs
