"""What the actor-critic trainers share (the glimpse agent's recurrent PPO, the soft-attention
agent's): generalised advantages, PPO's clipped surrogate and how well the critic explains its
targets, pure functions of a rollout's (T, N) tensors, each tested by hand; and the settings of
PPO they both take (:class:`PPOConfig`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from agents.common.config import (
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Probability,
    TrainConfig,
)


@dataclass
class PPOConfig(TrainConfig):
    """PPO's settings (Schulman et al. 2017) for a recurrent actor-critic: the defaults are CleanRL's
    ``ppo.py`` unless a trainer's config says otherwise. The recurrent state runs through an env's
    sequence, so minibatches split the envs, not the steps."""

    rollout: PositiveInt = 128
    """Steps per env between updates (CleanRL's num_steps)."""
    epochs: PositiveInt = 4
    """Passes over each rollout, each replayed through the network from the state it began with."""
    minibatches: PositiveInt = 4
    """Minibatches of whole env sequences per pass (at most --num-envs)."""
    clip_coef: PositiveFloat = 0.2
    """PPO's clip range on the probability ratio."""
    gae_lambda: Probability = 0.95
    """GAE's lambda (Schulman et al. 2016): 1 gives Monte-Carlo returns minus the baseline."""
    entropy_coef: NonNegativeFloat = 0.01
    """Weight of the policy's entropy bonus."""
    baseline_coef: NonNegativeFloat = 0.5
    """Weight of the value's (baseline's) squared error."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero at ``total_steps`` (CleanRL's PPO): the updates
    shrink as the policy settles. A function of the step, so a resumed run continues the schedule
    and ``--resume --total-steps`` stretches it."""

    fire_after_life_loss: bool = False
    """Atari only, with --life-loss-info: the step after a lost life presses FIRE for the agent (a
    step that is not the policy's decision, masked like a reset step), as OpenAI Baselines'
    EpisodicLifeEnv and FireResetEnv do at every life. In Breakout the ball waits for FIRE: a policy
    whose FIRE probability falls stalls its games instead of playing. Evaluation presses FIRE the
    same way for checkpoints trained with it."""

    BUDGET: ClassVar[tuple[str, ...]] = (*TrainConfig.BUDGET, "anneal_lr")

    def validate(self) -> None:
        super().validate()
        if self.minibatches > self.num_envs:
            raise ValueError(f"--minibatches splits the envs, so it must be at most --num-envs "
                             f"({self.num_envs}) (got {self.minibatches})")  # fmt: skip
        if self.fire_after_life_loss and not self.life_loss_info:
            raise ValueError("--fire-after-life-loss needs --life-loss-info (an Atari game whose lives "
                             "the trainer sees)")  # fmt: skip

    def fire_action(self, names: Sequence[str]) -> int:
        """FIRE's index among the game's actions under --fire-after-life-loss (-1 without it)."""
        if not self.fire_after_life_loss:
            return -1
        if "FIRE" not in names:
            raise ValueError(f"--fire-after-life-loss: {self.game} has no FIRE action "
                             f"(actions: {', '.join(names)})")  # fmt: skip
        return list(names).index("FIRE")


def advantages(
    rewards: torch.Tensor,
    baselines: torch.Tensor,
    dones: torch.Tensor,
    bootstrap: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, baseline targets) of a (T, N) rollout.

    ``dones[t]`` marks the last step of an episode; ``bootstrap`` is the baseline after the last
    step. With ``lam`` = 1 the targets are the discounted returns (bootstrapped only where the
    rollout cuts an episode) and the advantages are returns minus baseline: REINFORCE's.
    """
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(bootstrap)
    next_value = bootstrap
    for t in reversed(range(rewards.shape[0])):
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - baselines[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
        next_value = baselines[t]
    return adv, adv + baselines


def explained_variance(predicted: torch.Tensor, targets: torch.Tensor) -> float:
    """``1 - Var(targets - predicted) / Var(targets)``: 1 for a baseline that predicts its targets,
    0 for one no better than their mean, negative for worse (CleanRL's ``losses/explained_variance``).
    A policy gradient's advantages are only as good as this: near or below 0 they are noise."""
    var = targets.var()
    return float("nan") if targets.numel() < 2 or var == 0 else float(1 - (targets - predicted).var() / var)


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor, mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7) of one part of what is sampled at a
    step (the action, or the locations), masked like :func:`reinforce_loss`; returns (loss,
    fraction of decisions clipped, approximate KL ``mean((r - 1) - log r)``). At ``logp`` equal to
    ``old_logp`` its gradient is REINFORCE's; later epochs reuse a rollout without stepping far
    from the policy that collected it."""
    n = mask.sum().clamp_min(1)
    log_ratio = logp - old_logp.detach()
    ratio = log_ratio.exp()
    advantage = advantage.detach()
    surrogate = torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    with torch.no_grad():
        clipped = (((ratio - 1).abs() > clip).float() * mask).sum() / n
        kl = (((ratio - 1) - log_ratio) * mask).sum() / n
    return -(surrogate * mask).sum() / n, clipped, kl
