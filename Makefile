# Two set-up commands matter: `make run` (the product) and `make test` (the suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint faults bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,embedded,dashboard]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/jobq up --demo

test: $(STAMP)
	$(BIN)/ruff check jobq_core dashboard tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not faults and not slow"

# Every fault scenario of tests/faults, 3 runs each (about 20 min on 2 cores). Rewrites
# docs/reliability.md with the worst value per figure even when a run fails, then fails if one did.
# The raw results stay next to the doc (commit both): the doc quotes their digest and commit.
FAULTS_RESULTS := docs/reliability/results.jsonl
faults: $(STAMP)
	rm -f $(FAULTS_RESULTS)
	JOBQ_FAULTS_REPEAT=3 JOBQ_FAULTS_RESULTS=$(FAULTS_RESULTS) $(BIN)/pytest -q tests/faults; \
	rc=$$?; $(BIN)/python tests/faults/report.py $(FAULTS_RESULTS) docs/reliability.md; exit $$rc

# jobq against RQ, Celery, Dramatiq, Huey, arq, SAQ and taskiq on one private Redis (under 17 min
# on 2 cores); rewrites docs/benchmarks.md and bench/results/latest.json. Not a test: nothing
# asserts timings.
bench: $(STAMP)
	bench/run.sh

lint: $(STAMP)
	$(BIN)/ruff check jobq_core dashboard tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
