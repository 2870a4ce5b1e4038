"""Memory checked before it is taken: a size flag (``--num-envs``, ``--buffer-size``, a rollout, a
video's height) whose arrays cannot fit is refused in one line before any environment, buffer or
file exists, instead of a ``MemoryError`` (or the kernel's OOM killer) once the work has started.

The estimates count the large allocations only (emulators, replay and rollout storage, the
activations of one batched pass, video frames): a lower bound of what a run needs, so a refusal
is never a false alarm, and a run that passes can still run short of the memory it shares.
"""

from __future__ import annotations

import os
from pathlib import Path

# one ALE emulator with its frame buffers, measured with RSS: 1.65-1.83 MB per env over 8-64
# envs of Pong and Enduro at 84x84 and at 210x160 (make_vector_env, 50 steps)
ENV_BYTES = 2 * 2**20
# float32 activations of the dueling CNN per 84x84 observation, forward (conv1-3, the flattened
# features and both streams); a backward pass keeps these and adds as much in gradients
CNN_ACTIVATION_BYTES = 4 * (32 * 20 * 20 + 64 * 9 * 9 + 64 * 7 * 7 + 2 * 512)


def available_memory() -> int:
    """Bytes the machine can give now: ``MemAvailable`` of /proc/meminfo (free memory plus what
    the page cache would give back), or the physical memory where there is no /proc."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def require_memory(parts: dict[str, tuple[int, str]]) -> None:
    """Refuse, in one line, sizes whose allocations exceed the memory available. ``parts`` maps
    what is allocated to (bytes, the flags that size it); the line says what they would need,
    what the machine has, and which flags to lower (those of the largest part)."""
    needed = sum(b for b, _ in parts.values())
    have = available_memory()
    if needed > have:
        largest = max(parts, key=lambda k: parts[k][0])
        size, flags = parts[largest]
        raise ValueError(
            f"these sizes need at least {format_bytes(needed)} of memory ({largest}: "
            f"{format_bytes(size)}) and this machine has {format_bytes(have)} available; lower "
            f"{flags}"
        )


def emulator_bytes(game: str, num_envs: int, frame: tuple[int, int]) -> int:
    """The envs of a run: an ALE emulator each, or Catch's boards (a few frames of ``frame``)."""
    if game.lower() == "catch":
        return num_envs * 4 * frame[0] * frame[1]
    return num_envs * ENV_BYTES


def cnn_pass_bytes(batch: int, obs: tuple[int, ...], backward: bool) -> int:
    """One batched pass of the dueling CNN: the float32 observations and the activations, twice
    over with a backward pass (the gradients). Catch's small frames scale the activations by the
    share of pixels."""
    pixels = obs[-1] * obs[-2]
    activations = CNN_ACTIVATION_BYTES * pixels // (84 * 84)
    per_obs = 4 * obs[0] * pixels + activations
    return batch * per_obs * (2 if backward else 1)


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep the memory a training step frees for the next step, instead
    of handing it back to the kernel and faulting it in again, zeroed, page by page: a minibatch
    update of the dueling network allocates and frees tens of megabytes of activations, and with
    glibc's defaults each update took 2,800 page faults in float32 and 4,700 under autocast (none
    with this setting), which cost 8-16% of the update here (measured in two processes; a test in
    tests/test_precision.py holds the fault counts). Peak memory is
    unchanged; what was freed stays in the process for reuse. Returns whether it applied (glibc
    only: elsewhere this does nothing)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    # the largest thresholds glibc accepts: blocks are served from the heap, and it is not trimmed
    return bool(mallopt(m_mmap_threshold, 2**25)) and bool(mallopt(m_trim_threshold, 2**31 - 1))
