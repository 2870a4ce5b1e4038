"""Glimpse-agent benchmarks: the forward cost per agent step against the dueling CNN as the input
resolution grows, the learning curve on Catch, and a fixed budget on Pong beside a random policy."""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from scripts.bench.timing import in_fresh_process, interleaved_medians, median_run, peak_rss_mb

RESOLUTIONS = ((84, 84), (210, 160), (420, 320))


def forward_cost(resolutions=RESOLUTIONS, batch: int = 32, repeats: int = 30,
                 calls: int = 20) -> list[dict[str, Any]]:  # fmt: skip
    """Seconds per agent step (one batched forward, no gradient) of the glimpse agent (the Atari
    retina: patches of 16, 64 and 256 pixels, max-pooled; LSTM 256), of the same agent with every
    patch gathered pixel by pixel (the retina before its max map, ``Retina.map_area = 0``), and of
    the dueling network with its first fully connected layer sized to the torso's output at each
    resolution, on one grayscale uint8 frame."""
    from agents.glimpse import RecurrentAttentionModel
    from agents.glimpse.train import GlimpseConfig
    from agents.qlearning.networks import DuelingQNetwork

    torch.manual_seed(0)
    cfg = GlimpseConfig.for_game("pong")
    glimpse = RecurrentAttentionModel(6, patch_size=cfg.patch_size, num_scales=cfg.num_scales,
                                      scale_factor=cfg.scale_factor, retina_pool=cfg.retina_pool,
                                      hidden=cfg.hidden, normalize_glimpse=True).eval()  # fmt: skip
    gathered = copy.deepcopy(glimpse)
    gathered.retina.map_area = 0
    rng = np.random.default_rng(0)
    state = glimpse.initial_state(batch)
    loc = torch.rand(batch, 2) * 2 - 1
    fns: dict[str, Callable[[], object]] = {}
    params: dict[str, int] = {}
    for h, w in resolutions:
        frames = torch.from_numpy(rng.integers(0, 256, (batch, 1, h, w), dtype=np.uint8))
        cnn = DuelingQNetwork(6, in_channels=1, input_shape=(h, w)).eval()
        params[f"cnn {h}x{w}"] = sum(p.numel() for p in cnn.parameters())
        params[f"glimpse {h}x{w}"] = sum(p.numel() for p in glimpse.parameters())
        params[f"glimpse, all gathered {h}x{w}"] = params[f"glimpse {h}x{w}"]

        def run_glimpse(frames=frames, model=glimpse) -> None:
            with torch.no_grad():
                for _ in range(calls):
                    model(frames, loc, state)

        def run_cnn(frames=frames, cnn=cnn) -> None:
            with torch.no_grad():
                for _ in range(calls):
                    cnn(frames)

        fns[f"glimpse {h}x{w}"], fns[f"cnn {h}x{w}"] = run_glimpse, run_cnn
        fns[f"glimpse, all gathered {h}x{w}"] = partial(run_glimpse, frames, gathered)
    medians = interleaved_medians(fns, repeats)
    rows = []
    for h, w in resolutions:
        for kind in ("glimpse", "glimpse, all gathered", "cnn"):
            key = f"{kind} {h}x{w}"
            rows.append({"model": kind, "resolution": f"{h}x{w}", "pixels": h * w,
                         "ms_per_step": 1000 * medians[key] / calls, "params": params[key]})  # fmt: skip
    return rows


def learning_curve(total_steps: int, eval_every: int, seed: int = 1, episodes: int = 200,
                   target: float = 0.0, **overrides: Any) -> list[dict[str, float]]:  # fmt: skip
    """Greedy catch rate on Catch every ``eval_every`` steps of the default Catch configuration,
    until the budget is spent (or ``target``, when above 0, is reached)."""
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer, glimpse_catch_rate

    curve: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GlimpseConfig(seed=seed, total_steps=total_steps, run_dir=tmp, progress=False,
                            save_every=10**12, **overrides)  # fmt: skip
        trainer = GlimpseTrainer(cfg)
        update, start, next_eval = trainer.update, time.perf_counter(), eval_every
        evaluating = 0.0

        def update_and_evaluate(*args):  # rows, bootstrap, the rollout's start state
            nonlocal next_eval, evaluating
            stats = update(*args)
            if trainer.global_step >= next_eval:
                next_eval += eval_every
                t = time.perf_counter()
                rate = glimpse_catch_rate(trainer.model, episodes,
                                          glimpses_per_step=cfg.glimpses_per_step,
                                          **cfg.catch_game())  # fmt: skip
                evaluating += time.perf_counter() - t
                curve.append({"steps": trainer.global_step, "episodes": trainer.tracker.episodes,
                              "seconds": time.perf_counter() - start - evaluating,
                              "catch_rate": rate})  # fmt: skip
                if target > 0 and rate >= target:
                    trainer.cfg.total_steps = trainer.global_step  # stop after this update
            return stats

        trainer.update = update_and_evaluate  # type: ignore[method-assign]
        trainer.run()
    return curve


def _pong_training(precision: str, total_steps: int, seed: int) -> dict[str, float]:
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = GlimpseConfig.for_game("pong", seed=seed, total_steps=total_steps, run_dir=tmp,
                                     precision=precision, progress=False, save_every=10**12)
        trainer = GlimpseTrainer(cfg)
        start = time.perf_counter()
        trainer.run()
        return {"sps": trainer.global_step / (time.perf_counter() - start), "rss_mb": peak_rss_mb()}


def pong_precision(total_steps: int, repeats: int = 3, seed: int = 1) -> dict[str, dict[str, float]]:
    """Training steps/s and peak RSS of the glimpse agent's Atari preset on Pong at each
    ``--precision``, each run ``total_steps`` long in a fresh process (its own peak RSS), the
    precisions alternated ``repeats`` times; the median run of each."""
    runs: dict[str, list[dict[str, float]]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for precision, results in runs.items():
            results.append(in_fresh_process(_pong_training, precision, total_steps, seed))
    return {p: median_run(rs) for p, rs in runs.items()}


def pong_budget(total_steps: int, episodes: int = 3, seed: int = 1) -> dict[str, float]:
    """Train the glimpse agent on Pong (Atari defaults) for ``total_steps``; return steps/s and the
    evaluation return beside a uniformly random policy's under the same protocol."""
    from agents.common.evaluate import evaluate, evaluate_checkpoint
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = GlimpseConfig.for_game("pong", seed=seed, total_steps=total_steps, run_dir=tmp,
                                     progress=False)
        trainer = GlimpseTrainer(cfg)
        start = time.perf_counter()
        trainer.run()
        sps = trainer.global_step / (time.perf_counter() - start)
        ours = evaluate_checkpoint(tmp, episodes=episodes, num_envs=episodes, progress=False)
        config = {"game": trainer.game, "env_options": trainer.env_options.as_dict()}
        rng = np.random.default_rng(seed)
        n = int(trainer.env.single_action_space.n)
        random = evaluate(lambda obs: rng.integers(n, size=len(obs)), config, episodes=episodes,
                          num_envs=episodes, progress=False).summary()  # fmt: skip
    return {"steps_per_second": sps, "return": ours["mean"], "return_std": ours["std"],
            "random_return": random["mean"], "random_std": random["std"]}  # fmt: skip
