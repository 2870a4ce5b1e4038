# Two entry points, both idempotent: `make demo` and `make test` (README quickstart).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint browser benchmark docs

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: the CPU build lies on this machine's disk, and with it installed the
# project's torch range is satisfied, so pip never pulls a multi-GB CUDA build.
$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,scale,docs]"
	touch $(STAMP)

install: $(STAMP)

# The zoo's Enduro agent (pretrained/enduro): its value/advantage saliency
# video and the head report over 1,000 frames (about 30 s on 2 cores; the figures of
# docs/saliency.md); the shipped Pong agent's saliency video (about 10 s); then a short dueling DQN
# run on Pong (about 2 minutes) so that TensorBoard has a run to show.
# The demo run is made anew each time: a training refuses a directory that already holds a run.
demo: install
	$(BIN)/attn saliency --checkpoint pretrained/enduro --steps 600 \
		--out demo/enduro_saliency.mp4
	$(BIN)/attn report --checkpoint pretrained/enduro --steps 1000 \
		--out demo/enduro_report
	$(BIN)/attn saliency --checkpoint pretrained/pong --steps 600 \
		--out demo/pong_saliency.mp4
	rm -rf runs/demo_pong
	$(BIN)/attn train dqn --game pong --total-steps 12000 --learning-starts 4000 \
		--buffer-size 20000 --save-every 4000 --saliency-every 4000 --run-dir runs/demo_pong
	$(BIN)/attn evaluate --checkpoint runs/demo_pong --episodes 2 --num-envs 2

# The documentation site, into site/: warnings (a broken link, a page left out of the nav) fail it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

lint: install
	$(BIN)/ruff check .

# One worker per core (pytest-xdist), a test file per worker at a time: the three learning tests
# (DQN, PQN and glimpse on Catch, most of the suite's time) run side by side instead of in turn.
# Whole files to each worker, in the order tests/conftest.py sets (the learning tests' files first),
# not xdist's default of the files with the most tests first.
test: lint browser
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

# The report explorer's test drives a real browser: Debian's Chromium, installed when missing.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

benchmark: install
	$(BIN)/attn bench envs --write-docs
	$(BIN)/attn bench dqn --write-docs
	$(BIN)/attn bench saliency --write-docs
