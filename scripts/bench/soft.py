"""Soft-attention agent benchmark: training steps/s of its Atari preset, eager against
``--compile``, each run in a fresh spawned process (its own peak RSS and inductor's compilation)."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from scripts.bench.timing import peak_rss_mb


def run_soft(game: str, steps: int, options: dict[str, Any]) -> dict[str, float]:
    """Train the soft agent's preset for ``game`` (``SoftConfig.for_game``) with ``options``: steps/s
    with learning over the rollouts after the first (its update compiles, with --compile), the
    seconds that first rollout and update took, and peak RSS."""
    import torch

    from agents.soft.train import SoftConfig, SoftTrainer

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SoftConfig.for_game(game, run_dir=tmp, progress=False, save_every=10**12, attention_every=0,
                                  **options)  # fmt: skip
        first = cfg.num_envs * cfg.rollout
        cfg.total_steps = first + max(steps, first)
        trainer = SoftTrainer(cfg)
        marks: dict[str, float] = {}

        def clock(tr: SoftTrainer, step: int) -> None:
            if "t0" not in marks:  # the end of the first update
                marks["t0"], marks["s0"] = time.perf_counter(), step

        trainer.callbacks.append(clock)
        start = time.perf_counter()
        trainer.run()
        return {"sps": (trainer.global_step - marks["s0"]) / (time.perf_counter() - marks["t0"]),
                "warmup_s": marks["t0"] - start, "peak_rss_mb": peak_rss_mb()}  # fmt: skip
