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
	$(BIN)/ruff check jobq_core dashboard tests
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not faults"

lint: $(STAMP)
	$(BIN)/ruff check jobq_core dashboard tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
