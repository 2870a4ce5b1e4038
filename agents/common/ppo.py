"""What the actor-critic trainers share (the glimpse agent's recurrent PPO, the soft-attention
agent's): generalised advantages, PPO's clipped surrogate and how well the critic explains its
targets. Pure functions of a rollout's (T, N) tensors, each tested by hand."""

from __future__ import annotations

import torch


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
