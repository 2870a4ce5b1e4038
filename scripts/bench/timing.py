"""How every benchmark times and measures: rates over a window, medians of calls timed in turn, a
fresh interpreter per run, and peak and resident memory."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def rate(work: Callable[[], object], seconds: float, warmup: bool = True) -> float:
    """Units of work per second over a window of ``seconds``: ``work()`` returns how many units a
    call did as an int; anything else it returns (None, a result) counts one. One call first,
    untimed, warms caches, thread pools and lazy set-up."""
    if warmup:
        work()
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        units = work()
        done += units if isinstance(units, int) and not isinstance(units, bool) else 1
    return done / elapsed


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each function after one warm-up call each, timed round-robin in
    a new random order each round, so that the machine's noise, and the cold caches after a large
    neighbour, fall on all of them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for name in rng.permutation(list(fns)):
            start = time.perf_counter()
            fns[name]()
            times[str(name)].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds per call of ``fn`` (:func:`interleaved_medians` of one)."""
    return interleaved_medians({"fn": fn}, repeats)["fn"]


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a spawned interpreter: its peak RSS is its own, and no thread pool or
    allocator state carries over from the setup measured before it."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def median_run(runs: list[dict[str, float]], key: str = "sps") -> dict[str, float]:
    """The run whose ``key`` is the median of ``runs`` (the upper one of an even count): a whole
    run's figures, all from the same run, rather than each figure's own median."""
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
