# Two entry points, both idempotent: `make demo` and `make test` (README quickstart).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint benchmark

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: the CPU build lies on this machine's disk, and with it installed the
# project's torch range is satisfied, so pip never pulls a multi-GB CUDA build.
$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python scripts/env_demo.py --game pong --steps 300 --out demo/pong_env.mp4

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

benchmark: install
	$(BIN)/python scripts/benchmark.py envs
