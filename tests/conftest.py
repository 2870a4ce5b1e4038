"""Shared test helpers."""

from __future__ import annotations

import os

import pytest
import torch

# `make test` runs one pytest-xdist worker per core: each worker then gets one torch thread, so the
# cores are shared out rather than oversubscribed, and a learning test's numerics (hence its
# result) do not depend on the machine. A plain `pytest` keeps up to two threads.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = 1 if WORKERS > 1 else min(2, os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def torch_threads():
    """Every test starts with the same thread count, whatever an earlier one set (a sweep trial,
    a benchmark)."""
    torch.set_num_threads(THREADS)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
