"""Does the glimpse agent look where it matters? On Catch the answer is measurable: the ball's
position is known at every step, and so is where the agent looked.

``gaze_hit_rate``: the share of steps in the second half of each episode (when the ball is close
enough to the paddle that catching it depends on where it is) on which the ball lies inside the
widest patch of the glimpse that chose the action.
"""

from __future__ import annotations

from dataclasses import dataclass
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

    def hits(self) -> np.ndarray:
        """Whether the ball lies inside the widest patch, the retina's own pixel window: rows and
        columns from ``centre - widest // 2`` to ``centre - widest // 2 + widest - 1``."""
        lo_r, lo_c = self.gaze_row - self.widest // 2, self.gaze_col - self.widest // 2
        return ((self.ball_row >= lo_r) & (self.ball_row < lo_r + self.widest)
                & (self.ball_col >= lo_c) & (self.ball_col < lo_c + self.widest))  # fmt: skip

    def hit_rate(self) -> float:
        """Share of hits over the second half of every episode's steps."""
        steps = len(self.ball_row)
        return float(self.hits()[steps // 2 :].mean())


def trace_gaze(policy: Any, env: Any, retina: Any, device: str | torch.device = "cpu") -> GazeTrace:
    """Play one Catch episode in every env of ``env`` (a ``CatchVectorEnv``, all episodes of the
    same length) with ``policy`` (a ``GlimpsePolicy``: its ``locations`` after each call say where
    it looked through ``retina``), recording the ball and the gaze before each action."""
    obs, _ = env.reset()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("br", "bc", "gr", "gc")}
    for _ in range(env.size - 1):
        rows["br"].append(env._game.ball_row.copy())
        rows["bc"].append(env._game.ball_col.copy())
        actions = policy(torch.from_numpy(obs).to(device))
        gaze_row, gaze_col = retina.centres(policy.locations[-1], env.size, env.size)
        rows["gr"].append(gaze_row.numpy())
        rows["gc"].append(gaze_col.numpy())
        obs, *_ = env.step(np.asarray(actions))
    arrays = {k: np.stack(v) for k, v in rows.items()}
    return GazeTrace(arrays["br"], arrays["bc"], arrays["gr"], arrays["gc"], retina.sizes[-1])


def gaze_hit_rate(model: Any, config: dict[str, Any], episodes: int = 200,
                  seed: int = 10_000) -> tuple[float, GazeTrace]:  # fmt: skip
    """The greedy agent of a Catch glimpse checkpoint (``load_checkpoint``'s network and config)
    over ``episodes`` episodes: its hit rate and the trace it came from."""
    from agents.glimpse import GlimpsePolicy
    from envs import CatchVectorEnv

    if config.get("game") != "catch" or config.get("agent") != "glimpse":
        raise ValueError("the gaze hit rate needs a glimpse agent trained on Catch")
    size = config.get("env_options", {}).get("size", 24)
    env = CatchVectorEnv(episodes, size=size, seed=seed)
    glimpses = config.get("train_config", {}).get("glimpses_per_step", 1)
    policy = GlimpsePolicy(model, episodes, glimpses, greedy=True)
    trace = trace_gaze(policy, env, model.retina, next(model.parameters()).device)
    return trace.hit_rate(), trace
