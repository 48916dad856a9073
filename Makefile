# Quick start: `make run` serves on 127.0.0.1:8000; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
SERVER ?= http://$(HOST):$(PORT)
PYTEST_ARGS ?=
ARTIFACTS_DIR ?= examples/out
BUILD_OPTIONS ?=

.PHONY: install run test demo artifacts lint clean

install: $(STAMP)

# torch is pinned first: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[torch,dev]'
	touch $(STAMP)

run: install
	$(BIN)/distilgate serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

artifacts: install
	$(BIN)/python examples/build_artifacts.py --out $(ARTIFACTS_DIR) $(BUILD_OPTIONS)

demo: install
	$(BIN)/python examples/demo.py --server $(SERVER)

lint: install
	$(BIN)/ruff check app tests examples bench
	$(BIN)/ruff format --check app tests examples bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) distilgate.db distilgate.db-* distilgate-data examples/out
