"""Does the glimpse agent look where it matters? On Catch the answer is measurable: the ball's
position is known at every step, and so is where the agent looked.

``gaze_hit_rate``: the share of steps in the second half of each episode (when the ball is close
enough to the paddle that catching it depends on where it is) on which the ball lies inside the
widest patch of the glimpse that chose the action. ``gaze_over_training`` follows it, with the catch
rate, over a run's checkpoints; ``plot_gaze`` draws both with the ball's and the gaze's paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class GazeTrace:
    """Per step and episode: the ball's pixel (row, col) and the centre of the last glimpse taken
    before acting, arrays of shape (steps, episodes); ``widest`` is the widest patch's width."""

    ball_row: np.ndarray
    ball_col: np.ndarray
    gaze_row: np.ndarray
    gaze_col: np.ndarray
    widest: int
    caught: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    """Per episode: whether the ball was caught (empty for a trace built by hand)."""

    def hits(self, width: int | None = None) -> np.ndarray:
        """Whether the ball lies inside a patch of ``width`` (default the widest) at the gaze, the
        retina's own pixel window: rows and columns from ``centre - width // 2`` to
        ``centre - width // 2 + width - 1``. On Catch the widest patch may cover the whole screen;
        the finest (the fovea) says whether the gaze is on the ball."""
        width = self.widest if width is None else width
        lo_r, lo_c = self.gaze_row - width // 2, self.gaze_col - width // 2
        return ((self.ball_row >= lo_r) & (self.ball_row < lo_r + width)
                & (self.ball_col >= lo_c) & (self.ball_col < lo_c + width))  # fmt: skip

    def hit_rate(self, width: int | None = None) -> float:
        """Share of hits (:meth:`hits`) over the second half of every episode's steps."""
        steps = len(self.ball_row)
        return float(self.hits(width)[steps // 2 :].mean())


def trace_gaze(policy: Any, env: Any, retina: Any, device: str | torch.device = "cpu") -> GazeTrace:
    """Play one Catch episode in every env of ``env`` (a ``CatchVectorEnv``, all episodes of the
    same length) with ``policy`` (a ``GlimpsePolicy``: its ``locations`` after each call say where
    it looked through ``retina``), recording the ball and the gaze before each action."""
    obs, _ = env.reset()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("br", "bc", "gr", "gc")}
    caught = np.zeros(env.num_envs, bool)
    for _ in range(env.size - 1):
        rows["br"].append(env._game.ball_row.copy())
        rows["bc"].append(env._game.ball_col.copy())
        actions = policy(torch.from_numpy(obs).to(device))
        gaze_row, gaze_col = retina.centres(policy.locations[-1], env.size, env.size)
        rows["gr"].append(gaze_row.numpy())
        rows["gc"].append(gaze_col.numpy())
        obs, reward, *_ = env.step(np.asarray(actions))
        caught |= reward > 0
    arrays = {k: np.stack(v) for k, v in rows.items()}
    return GazeTrace(arrays["br"], arrays["bc"], arrays["gr"], arrays["gc"], retina.sizes[-1],
                     caught)  # fmt: skip


def gaze_hit_rate(model: Any, config: dict[str, Any], episodes: int = 200,
                  seed: int = 10_000) -> tuple[float, GazeTrace]:  # fmt: skip
    """The greedy agent of a Catch glimpse checkpoint (``load_checkpoint``'s network and config)
    over ``episodes`` episodes: its hit rate and the trace it came from."""
    from agents.glimpse import GlimpsePolicy
    from envs import CatchVectorEnv
    from envs.catch import catch_options

    if config.get("game") != "catch" or config.get("agent") != "glimpse":
        raise ValueError("the gaze hit rate needs a glimpse agent trained on Catch")
    env = CatchVectorEnv(episodes, seed=seed, **catch_options(config.get("env_options", {})))
    policy = GlimpsePolicy.for_checkpoint(model, config, episodes, greedy=True)
    trace = trace_gaze(policy, env, model.retina, next(model.parameters()).device)
    return trace.hit_rate(), trace


@dataclass
class GazeCurve:
    """Catch and hit rates of every checkpoint of a run, and the final checkpoint's trace."""

    steps: list[int]
    caught: list[float]
    hits: list[float]
    final: GazeTrace
    size: int


def gaze_over_training(run: str | os.PathLike[str], episodes: int = 200,
                       seed: int = 10_000) -> GazeCurve:  # fmt: skip
    """Each checkpoint of ``run`` (a Catch glimpse run; ``--keep-checkpoints 0`` keeps them all)
    plays the same ``episodes`` greedy episodes: does the gaze learn to follow the ball, and does
    catching come with it or before it?"""
    from agents.common.checkpoint import load_checkpoint, run_checkpoints

    steps, caught, hits = [], [], []
    for step, path in run_checkpoints(run):
        model, config = load_checkpoint(path)
        rate, trace = gaze_hit_rate(model, config, episodes, seed)
        steps.append(step)
        caught.append(float(trace.caught.mean()))
        hits.append(rate)
    size = config.get("env_options", {}).get("size", 24)
    return GazeCurve(steps, caught, hits, trace, size)


def plot_gaze(curve: GazeCurve, path: str | os.PathLike[str], shown: int = 3) -> Path:
    """Top: the ball's and the gaze's column and row against the step in the final checkpoint's
    first ``shown`` episodes, the widest patch as a band around the gaze (the ball inside the band
    in both is a hit); bottom: the share of episodes with the ball inside the widest patch at each
    step of the episode (when the agent looks at the ball, not only whether), and the catch and hit
    rates against training steps."""
    from analysis.render import pyplot, save_figure

    plt = pyplot()
    t = curve.final
    shown = max(1, min(shown, t.ball_row.shape[1]))
    fig = plt.figure(figsize=(max(8.0, 3.4 * shown), 7.2))
    grid = fig.add_gridspec(3, shown, height_ratios=[1, 1, 1.2])
    x = np.arange(len(t.ball_row))
    half = t.widest // 2
    for e in range(shown):
        for r, (axis, ball, gaze) in enumerate([("column", t.ball_col, t.gaze_col),
                                                ("row", t.ball_row, t.gaze_row)]):  # fmt: skip
            ax = fig.add_subplot(grid[r, e])
            lo = gaze[:, e] - half
            ax.fill_between(x, lo - 0.5, lo + t.widest - 0.5, color="C1", alpha=0.25, lw=0,
                            label="widest patch")  # fmt: skip
            ax.plot(x, gaze[:, e], color="C1", label="gaze")
            ax.plot(x, ball[:, e], "o", ms=2.5, color="C0", label="ball")
            ax.axvline(len(x) / 2 - 0.5, color="0.6", lw=0.8, ls=":")
            ax.set_ylim(curve.size - 0.5, -0.5)  # screen coordinates: 0 at the top and the left
            ax.set_xlabel("step")
            if e == 0:
                ax.set_ylabel(axis)
            if r == 0:
                outcome = "caught" if t.caught.size and t.caught[e] else "missed"
                hit = t.hits()[len(x) // 2 :, e].mean()
                ax.set_title(f"episode {e}: {outcome}, hits {hit:.2f}", fontsize=9)
            if r == 0 and e == 0:
                ax.legend(fontsize=7, loc="lower left")
    bottom = grid[2, :].subgridspec(1, 2, width_ratios=[1, 1.6])
    ax = fig.add_subplot(bottom[0])
    ax.plot(x, t.hits().mean(1), "-o", ms=3, color="C1")
    ax.axvline(len(x) / 2 - 0.5, color="0.6", lw=0.8, ls=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step of the episode")
    ax.set_ylabel("ball inside the widest patch")
    ax.set_title(f"final checkpoint, {t.ball_row.shape[1]} episodes", fontsize=9)
    ax = fig.add_subplot(bottom[1])
    ax.plot(curve.steps, curve.caught, "-o", ms=3, label="caught")
    ax.plot(curve.steps, curve.hits, "-o", ms=3, label="gaze hit rate (second half)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("share of greedy episodes")
    ax.legend(fontsize=8)
    return save_figure(fig, path, f"Catch {curve.size}x{curve.size}: where the glimpse agent looks")
