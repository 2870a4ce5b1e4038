"""Shared test helpers."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# `make test` runs one pytest-xdist worker per core: each worker then gets one torch thread, so the
# cores are shared out rather than oversubscribed, and a learning test's numerics (hence its
# result) do not depend on the machine. A plain `pytest` keeps up to two threads.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = 1 if WORKERS > 1 else min(2, os.cpu_count() or 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first, in their own order: `make test` hands whole files to its
    workers in this order (``--dist loadfile``), so the learning tests start at once, one per
    worker, and the short files fill in around them instead of one long file ending the run."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # a stable sort: the rest keep their order


@pytest.fixture(autouse=True)
def torch_threads():
    """Every test starts with the same thread count, whatever an earlier one set (a sweep trial,
    a benchmark)."""
    torch.set_num_threads(THREADS)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)


def call_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """A script's ``main`` run in this process on ``args`` (a refusal before any work, where a
    fresh interpreter would only add its start-up): its exit code and what it wrote to stderr,
    the line Python prints for ``sys.exit("error: ...")`` included."""
    module = importlib.import_module(f"scripts.{Path(script).stem}")
    err, argv = io.StringIO(), sys.argv
    sys.argv = [script, *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stderr(err):
            module.main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    text = err.getvalue() + (f"{code}\n" if isinstance(code, str) else "")
    return subprocess.CompletedProcess(args, 1 if isinstance(code, str) else code or 0, "", text)
