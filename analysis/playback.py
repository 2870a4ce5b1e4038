"""Play a trained (or random) network on one Atari env and yield what analysis needs per step:
the real RGB screen, the observation, the action and the heads."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from analysis.objects import SCREEN_GAMES, pooled_state
from envs import make_atari_env
from envs.options import AtariOptions

T = TypeVar("T")


@dataclass
class Step:
    t: int
    episode: int
    screen: np.ndarray  # (210, 160, 3) uint8, the frame the observation ends on
    obs: np.ndarray  # (stack, 84, 84) uint8
    action: int
    heads: dict[str, np.ndarray]
    score: float  # the episode's raw score so far
    pooled: list[np.ndarray] | None = None  # what objects are read from (analysis.objects.pooled_state)


def load_policy(checkpoint: str | None, game: str | None) -> tuple[nn.Module, dict[str, Any]]:
    """A network and its config from our checkpoint, an SB3 zip, or (no checkpoint) a randomly
    initialised dueling network -- with a warning, since its maps show nothing learned."""
    from agents.common.checkpoint import load_checkpoint
    from agents.qlearning.networks import DuelingQNetwork

    if checkpoint is None:
        if game is None:
            raise ValueError("give --checkpoint, or --game for a randomly initialised network")
        warnings.warn("no checkpoint: using a randomly initialised dueling network", stacklevel=2)
        from envs import resolve_game

        env = make_atari_env(game)
        net = DuelingQNetwork(int(env.action_space.n)).eval()
        return net, {"agent": "dqn", "game": resolve_game(game), "env_options": {}}
    if str(checkpoint).endswith(".zip"):
        from analysis.sb3 import load_sb3

        if game is None:
            raise ValueError("an SB3 zip does not record its game: give --game too")
        net, config = load_sb3(checkpoint)
        from envs import resolve_game

        n_game = int(make_atari_env(game).action_space.n)
        if config["n_actions"] != n_game:
            raise ValueError(f"{checkpoint!r} has {config['n_actions']} actions but {game!r} has "
                             f"{n_game}: it was trained on another game or action set")  # fmt: skip
        return net, {**config, "agent": "sb3", "game": resolve_game(game), "env_options": {}}
    check_q_agent(checkpoint)
    net, config = load_checkpoint(Path(checkpoint))
    if game is not None:
        raise ValueError(f"--game applies to SB3 zips and random networks only; this checkpoint is "
                         f"a {config['game']!r} {config['agent']}, which records its game")  # fmt: skip
    return net, config


def obs_shape(net: nn.Module, config: dict[str, Any]) -> tuple[int, ...]:
    """The observation a network takes: ours record it, SB3 wrappers carry it in their config."""
    if hasattr(net, "in_channels") and hasattr(net, "input_shape"):
        return (net.in_channels, *net.input_shape)
    return tuple(config.get("observation_shape", (4, 84, 84)))


def check_q_agent(checkpoint: str | Path) -> None:
    """One line for a checkpoint whose network has no value and advantage heads (the glimpse
    agent's): saliency of those heads needs a DQN or PQN checkpoint."""
    from agents.common.checkpoint import read_json, resolve_checkpoint

    agent = read_json(resolve_checkpoint(checkpoint) / "config.json").get("agent")
    if agent not in (None, "dqn", "pqn"):
        raise ValueError(f"{str(checkpoint)!r} is a {agent!r} checkpoint; saliency of value and "
                         "advantage heads needs a DQN or PQN checkpoint (ours) or an SB3 zip")  # fmt: skip


def head_pair(heads: list[str]) -> tuple[str, ...]:
    """The heads to contrast: value against advantage (dueling), critic against actor (SB3 PPO/A2C,
    Greydanus et al. 2018), or Q alone for single-stream networks."""
    for pair in (("value", "advantage"), ("value", "logits")):
        if all(h in heads for h in pair):
            return pair
    return ("q",)


def greedy_action(heads: dict[str, torch.Tensor]) -> torch.Tensor:
    for name in ("q", "logits"):
        if name in heads:
            return heads[name].argmax(1)
    raise ValueError(f"cannot act from heads {', '.join(heads)}: need 'q' or 'logits'")


def check_budget(steps: int | None, episodes: int | None) -> None:
    """Exactly one of ``steps`` and ``episodes``, at least 1."""
    if (steps is None) == (episodes is None):
        raise ValueError("give exactly one of steps and episodes")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if episodes is not None and episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")


def playback_env(config: dict[str, Any], seed: int):
    """One env of a checkpoint's game to watch it play: Catch, or the Atari game with its
    observation options and raw scores over whole games (no reward clipping, no life episodes)."""
    if config["game"] == "catch":
        from envs import CatchEnv
        from envs.catch import catch_options

        return CatchEnv(**catch_options(config.get("env_options", {})))
    options = {**config.get("env_options", {}), "reward_clipping": False, "episodic_life": False,
               "life_loss_info": False}  # fmt: skip
    env = make_atari_env(config["game"], seed=seed, **AtariOptions.from_kwargs(**options).as_dict())
    if config["game"] in SCREEN_GAMES:
        env.record_screens()
    return env


@dataclass
class Moment:
    """Where a playthrough stands before a step: the step's index, its episode, the episode's raw
    score so far and the observation to act on."""

    t: int
    episode: int
    score: float
    obs: np.ndarray


def play_episodes(
    env: Any,
    act: Callable[[Moment], tuple[int, T]],
    steps: int | None = None,
    episodes: int | None = None,
    *,
    seed: int | None = None,
    on_step: Callable[[int, float, bool, dict[str, Any]], None] | None = None,
    on_reset: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[T]:
    """The loop every playback shares: ``act`` picks each step's action and what to yield for it
    (read before the env steps, so that its screen is the one acted on); ``on_step(action, reward,
    ended, info)`` is told what the step did and ``on_reset(info)`` of every episode's start, the
    first included (a recurrent policy's inputs and state, FIRE after a lost life). Runs until
    ``steps`` steps or ``episodes`` episodes (give one), then closes the env."""
    check_budget(steps, episodes)
    obs, info = env.reset() if seed is None else env.reset(seed=seed)
    if on_reset:
        on_reset(info)
    t = episode = 0
    score = 0.0
    while (steps is None or t < steps) and (episodes is None or episode < episodes):
        action, item = act(Moment(t, episode, score, obs))
        yield item
        obs, reward, terminated, truncated, info = env.step(action)
        if on_step:
            on_step(action, float(reward), terminated or truncated, info)
        score += float(reward)
        t += 1
        if terminated or truncated:
            episode += 1
            score = 0.0
            obs, info = env.reset()
            if on_reset:
                on_reset(info)
    env.close()


def play(
    net: nn.Module,
    config: dict[str, Any],
    steps: int | None = None,
    episodes: int | None = None,
    epsilon: float = 0.001,
    seed: int = 0,
) -> Iterator[Step]:
    """Step the env with epsilon-greedy actions until ``steps`` steps or ``episodes`` episodes."""
    check_budget(steps, episodes)
    env = playback_env(config, seed)
    rng = np.random.default_rng(seed)

    def act(m: Moment) -> tuple[int, Step]:
        with torch.no_grad():
            heads = net(torch.from_numpy(m.obs[None]))
        action = int(greedy_action(heads)[0])
        if rng.random() < epsilon:
            action = int(rng.integers(env.action_space.n))
        return action, Step(m.t, m.episode, env.rgb_frame(), m.obs, action,
                            {k: v[0].cpu().numpy() for k, v in heads.items()}, m.score,
                            pooled_state(env, config["game"]))  # fmt: skip

    yield from play_episodes(env, act, steps, episodes)
