"""Evaluation with the protocol of the papers: up to 30 no-op starts, epsilon 0.001, a 108,000-frame
cap per episode (Wang et al. 2016, Section 4.1; Mnih et al. 2015 used epsilon 0.05), raw game scores
and human-normalised scores."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.common.registry import POLICIES
from agents.common.resources import emulator_bytes, require_memory
from agents.common.scores import human_normalized
from envs import CatchVectorEnv, FireAfterLifeLoss, make_vector_env
from envs.catch import catch_options
from envs.options import AtariOptions


@dataclass
class EvalResult:
    game: str
    scores: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

    def summary(self) -> dict[str, Any]:
        hns = human_normalized(self.game, self.mean)
        return {
            "game": self.game,
            "episodes": len(self.scores),
            "mean": self.mean,
            "std": self.std,
            "human_normalized": hns,
            "mean_length": float(np.mean(self.lengths)),
            "scores": self.scores,
        }


def make_eval_env(config: dict[str, Any], num_envs: int, seed: int, noop_max: int = 30,
                  max_frames: int = 108_000):  # fmt: skip
    """The training preprocessing from a checkpoint config, with the evaluation protocol on top:
    no-op starts, raw rewards, no life-loss terminals, the 108k-frame cap (``max_frames``: a
    shorter one for a quick check)."""
    if config["game"] == "catch":
        return CatchVectorEnv(num_envs, seed=seed, **catch_options(config["env_options"]))
    options = {**config["env_options"], "noop_max": noop_max, "reward_clipping": False,
               "episodic_life": False, "life_loss_info": False,
               "max_num_frames_per_episode": max_frames}  # fmt: skip
    options = AtariOptions.from_kwargs(**options).as_dict()
    return make_vector_env(config["game"], num_envs, seed=seed, **options)


def evaluate(
    policy,
    config: dict[str, Any],
    episodes: int = 30,
    epsilon: float = 0.001,
    seed: int = 0,
    num_envs: int = 8,
    noop_max: int = 30,
    device: str = "cpu",
    progress: bool = True,
    max_frames: int = 108_000,
) -> EvalResult:
    """Play ``episodes`` episodes; ``policy(obs_tensor) -> actions`` is called on batches of
    ``min(num_envs, episodes)`` envs. A stateful policy (a recurrent agent) has ``reset(mask)``,
    called after the masked envs' reset steps so that each episode starts from a fresh state. A
    policy whose ``rowwise`` is true (each env's action from its own frames alone: a Q-network,
    attacked or not) is asked only for the envs still playing a counted episode; the others, done
    with their share, play NOOP until the last counted episode ends, so that no forward pass (or
    attack) is spent on games that no longer count.

    Each env plays an equal share of the episodes (never "the first N to finish", which favours
    short episodes). An agent trained with FIRE pressed for it after every lost life
    (``fire_after_life_loss`` in its training config) has it pressed here too.
    """
    from tqdm import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    num_envs = max(1, min(num_envs, episodes))
    frame = (24, 24) if config["game"] == "catch" else (210, 160)
    require_memory({"the envs": (emulator_bytes(config["game"], num_envs, frame), "--num-envs")})
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    env = make_eval_env(config, num_envs, seed, noop_max, max_frames)
    rng = np.random.default_rng(seed)
    n_actions = int(env.single_action_space.n)
    obs, info = env.reset()
    fire = FireAfterLifeLoss.for_checkpoint(config, info)
    ret, length = np.zeros(num_envs), np.zeros(num_envs, np.int64)
    scores: list[float] = []
    lengths: list[int] = []
    ended = np.zeros(num_envs, bool)
    bar = tqdm(
        total=episodes, desc=f"evaluating {config['game']}", unit="episode", disable=not progress
    )
    rowwise = getattr(policy, "rowwise", False)
    while (quota > 0).any():
        live = quota > 0
        with torch.no_grad():
            if rowwise and not live.all():
                actions = np.zeros(num_envs, np.int64)
                actions[live] = np.asarray(policy(torch.from_numpy(obs[live]).to(device)))
            else:
                actions = np.asarray(policy(torch.from_numpy(obs).to(device)))
        explore = rng.random(num_envs) < epsilon
        actions = np.where(explore, rng.integers(n_actions, size=num_envs), actions)
        played = fire.actions(actions)
        obs, rewards, terminated, truncated, info = env.step(played)
        if hasattr(policy, "observe"):  # an agent that reads its last action and reward
            policy.observe(played, rewards)
        fire.observe(info, terminated | truncated)
        ret += np.where(ended, 0.0, rewards)
        length += ~ended
        if ended.any() and hasattr(policy, "reset"):
            policy.reset(ended)
        ended = terminated | truncated
        for i in np.flatnonzero(ended):
            if quota[i] > 0:
                scores.append(float(ret[i]))
                lengths.append(int(length[i]))
                quota[i] -= 1
                bar.update(1)
            ret[i], length[i] = 0.0, 0
    bar.close()
    env.close()
    return EvalResult(config["game"], scores, lengths)


class GreedyQPolicy:
    """Greedy actions of a Q-network's ``head``. Each env's action depends on its own frames
    alone (``rowwise``), so that :func:`evaluate` asks it only for the envs whose episodes still
    count."""

    rowwise = True

    def __init__(self, network: torch.nn.Module, head: str = "q") -> None:
        self.network, self.head = network, head

    def __call__(self, obs: torch.Tensor) -> np.ndarray:
        return self.network(obs)[self.head].argmax(1).cpu().numpy()


def evaluate_checkpoint(path: str, **kwargs: Any) -> dict[str, Any]:
    """Load a checkpoint (no pickle) and evaluate it; returns the summary dict."""
    from agents.common.checkpoint import load_checkpoint

    network, config = load_checkpoint(path, device=kwargs.get("device", "cpu"))
    return evaluate_network(network, config, **kwargs)


def evaluate_network(network: torch.nn.Module, config: dict[str, Any], sample: bool = False,
                     **kwargs: Any) -> dict[str, Any]:  # fmt: skip
    """Evaluate a loaded checkpoint's network (greedy Q-values, or a recurrent agent's policy) with
    :func:`evaluate`'s keywords; returns the summary dict, whose ``policy`` says which was played.

    ``sample``: a recurrent agent (glimpse, soft) samples its actions (and glimpse locations) as in
    training (seeded from ``seed``), the policy that policy-gradient papers score (Mnih et al.
    2016's A3C); the greedy one can lock into a loop the stochastic one escapes, such as never
    serving in Breakout.
    """
    make_policy = POLICIES.get(config.get("agent", ""))
    if make_policy is not None:  # an agent with a policy of its own (the glimpse and soft agents)
        defaults = inspect.signature(evaluate).parameters  # the batch evaluate() will step
        n = min(kwargs.get(k, defaults[k].default) for k in ("num_envs", "episodes"))
        if sample:
            torch.manual_seed(kwargs.get("seed", defaults["seed"].default))
        policy = make_policy(network, config, n, greedy=not sample)
    elif sample:
        raise ValueError("--sample is for the glimpse and soft-attention agents, whose policies are "
                         "distributions; a Q-network acts greedily (explore with --epsilon)")  # fmt: skip
    else:
        policy = GreedyQPolicy(network)
    summary = evaluate(policy, config, **kwargs).summary()
    return {**summary, "policy": "sample" if sample else "greedy"}
