"""What the trainers share: the env they build from a config, config checks, the schedules, the
device, and the episode statistics they log. ``DQNTrainer`` and ``PQNTrainer`` differ in how they
learn, not in any of this; the glimpse trainer shares the checks, the action names and the tracker.

A config here is any object with the fields these functions read (``game``, ``num_envs``,
``network``, ``hidden``, ...): ``DQNConfig`` and ``PQNConfig`` name them alike on purpose.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from envs import CatchVectorEnv, episode_ended, make_atari_env, make_vector_env, resolve_game
from envs.groups import EnvGroups
from envs.options import AtariOptions

CATCH_ACTIONS = ["LEFT", "STAY", "RIGHT"]
DEVICES = ("auto", "cpu", "cuda")


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration``, then constant."""
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, t / duration)


def check_device(name: str) -> None:
    """One-line refusal of a device string torch cannot use here."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"--device must be auto, cpu or cuda (got {name!r})")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_training_env(
    cfg: Any, seed: int, num_envs: int | None = None
) -> tuple[Any, AtariOptions | None, str]:
    """Vector env for training: (env, Atari options or None for Catch, game name). Atari rewards
    stay unclipped so that logged returns are game scores; the trainers clip for the targets.
    ``num_envs`` overrides ``cfg.num_envs`` (one group of :func:`make_env_groups`)."""
    num_envs = cfg.num_envs if num_envs is None else num_envs
    if cfg.game.lower() == "catch":
        env = CatchVectorEnv(num_envs, stack_num=2, miss_reward=cfg.catch_miss_reward, seed=seed)
        return env, None, "catch"
    options = AtariOptions(
        stack_num=cfg.stack_num,
        reward_clipping=False,
        repeat_action_probability=cfg.repeat_action_probability,
        life_loss_info=cfg.life_loss_info,
    )
    game = resolve_game(cfg.game)
    return make_vector_env(game, num_envs, seed=seed, **options.as_dict()), options, game


def make_env_groups(cfg: Any, seed: int, groups: int) -> tuple[EnvGroups, AtariOptions | None, str]:
    """:func:`make_training_env`'s envs as ``groups`` vector envs of ``cfg.num_envs / groups``
    (see ``envs.groups``), seeded so that they are the same games."""
    size = cfg.num_envs // groups
    made = [make_training_env(cfg, seed + g * size, size) for g in range(groups)]
    return EnvGroups([env for env, _, _ in made]), made[0][1], made[0][2]


def action_names(game: str, options: AtariOptions | None) -> list[str]:
    """The names of a game's actions (the vector env does not name them; ALE's single env does)."""
    if options is None:
        return CATCH_ACTIONS
    return make_atari_env(game, full_action_space=options.full_action_space).get_action_meanings()


class EpisodeTracker:
    """Running returns and lengths of a vector env's episodes under NEXT_STEP autoreset, logged as
    ``charts/episodic_return`` and ``charts/episodic_length``: one point per step that ended
    episodes, their mean (a point per episode cost 7% of a Catch run at 128 envs)."""

    def __init__(self, num_envs: int, options: AtariOptions | None, recent: int = 20) -> None:
        self.options = options
        self.ret = np.zeros(num_envs)
        self.length = np.zeros(num_envs, np.int64)
        self.ended = np.zeros(num_envs, bool)
        self.recent: list[float] = []
        self.keep = recent
        self.episodes = 0

    def update(self, rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
               info: dict[str, Any], writer: Any, step: int) -> np.ndarray:  # fmt: skip
        """Account for one vector step; returns which envs' episodes ended at it (their next step
        is a reset step). ``self.ended`` before the call says which envs just did a reset step."""
        self.ret += np.where(self.ended, 0.0, rewards)
        self.length += ~self.ended
        if self.options is not None:
            ended = episode_ended(terminated, truncated, info["lives"], self.options)
        else:
            ended = np.asarray(terminated | truncated)
        if ended.any():
            idx = np.flatnonzero(ended)
            writer.add_scalar("charts/episodic_return", self.ret[idx].mean(), step)
            writer.add_scalar("charts/episodic_length", self.length[idx].mean(), step)
            self.recent = (self.recent + self.ret[idx].tolist())[-self.keep :]
            self.episodes += len(idx)
            self.ret[idx], self.length[idx] = 0.0, 0
        self.ended = ended
        return ended

    def recent_mean(self) -> float:
        return float(np.mean(self.recent)) if self.recent else float("nan")

    def state(self) -> dict[str, Any]:
        """JSON-ready state, for an exact resume."""
        return {"ret": self.ret.tolist(), "length": self.length.tolist(),
                "ended": self.ended.tolist(), "recent": self.recent, "episodes": self.episodes}  # fmt: skip

    def load(self, state: dict[str, Any]) -> None:
        self.ret[:] = state["ret"]
        self.length[:] = state["length"]
        self.ended[:] = state["ended"]
        self.recent, self.episodes = list(state["recent"]), int(state["episodes"])
