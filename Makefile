# Quick start:  make up    (installs what is missing, builds the simulated cluster, converges site.yml,
#                           runs a GPU job as a student and shows the result)
#               make test  (lint, unit tests, integration tests on the simulator)
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INVENTORY ?= inventory/sim
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help host venv up converge demo status down test lint unit integration bench clean

help:
	@echo "make up      build the simulated cluster, converge site.yml, run a GPU job as a student"
	@echo "make test    lint + unit tests + integration tests on the simulator"
	@echo "make bench   measure cold/warm up, converge times and RAM per node (table + JSON)"
	@echo "make down    remove the simulated cluster"

host:
	@scripts/ensure-host.sh

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "venv: installing the project and its tools into $(VENV) (first time: a few minutes)"
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev,cloud]'
	@touch $@

venv: $(BIN)/.installed

up: host venv
	$(BIN)/ailab sim up -i $(INVENTORY)
	$(BIN)/ailab converge -i $(INVENTORY)
	$(BIN)/ailab demo -i $(INVENTORY)

converge: venv
	$(BIN)/ailab converge -i $(INVENTORY)

demo: venv
	$(BIN)/ailab demo -i $(INVENTORY)

status: venv
	$(BIN)/ailab sim status -i $(INVENTORY)

down: venv
	$(BIN)/ailab sim down -i $(INVENTORY)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --offline
	$(BIN)/ailab inventory check -i inventory/production
	$(BIN)/ailab inventory check -i inventory/sim
	$(BIN)/python -m ailab.docs --check
	@command -v luacheck >/dev/null || { echo "lint: no luacheck -- fix: make host (installs Debian's lua-check)" >&2; exit 1; }
	luacheck --no-color -q ailab/templates/job_submit.lua

unit: venv
	$(BIN)/pytest -q tests/unit

integration: host venv
	$(BIN)/pytest -q $(TEST_PARALLEL) tests/integration

# One pytest run over unit and integration tests, so its closing line counts everything.  Two workers
# (pytest-xdist), each with a simulated cluster of its own; a test module runs whole on one of them
# (tests/integration/conftest.py).  TEST_WORKERS=0 runs everything in one process on one cluster.
test: host venv lint
	$(BIN)/pytest -q --durations=15 $(TEST_PARALLEL) tests

TEST_WORKERS ?= 2
TEST_PARALLEL = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,)

bench: host venv
	$(BIN)/python -m ailab.bench -i $(INVENTORY) $(BENCH_ARGS)

clean: down
	rm -rf .cache
