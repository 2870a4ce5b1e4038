"""The glimpse agent's policy-gradient losses: REINFORCE with a baseline (the paper's) and PPO's
clipped surrogate (``agents.common.ppo``) with one ratio per part of what is sampled."""

from __future__ import annotations

import torch

from agents.common.ppo import clipped_policy_loss


def reinforce_loss(
    logp: torch.Tensor,
    returns: torch.Tensor,
    baseline: torch.Tensor,
    mask: torch.Tensor | None = None,
    advantage: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE with a learned baseline (Williams 1992; Mnih et al. 2014, Section 3.2).

    ``-mean (R_t - b_t) log pi(u_t)`` with the advantage detached (the baseline only reduces
    variance; it is not differentiated through the policy term), and the baseline's squared error
    ``mean (b_t - R_t)^2``. ``logp`` sums the log-probabilities of everything sampled at t (action and
    location). ``mask`` zeroes steps that are not decisions (an env's auto-reset step).
    ``advantage`` replaces ``R_t - b_t`` in the policy term (bootstrapped or standardised ones).
    """
    mask = torch.ones_like(returns) if mask is None else mask
    n = mask.sum().clamp_min(1)
    advantage = (returns - baseline if advantage is None else advantage).detach()
    policy_loss = -(advantage * logp * mask).sum() / n
    baseline_loss = (((baseline - returns) ** 2) * mask).sum() / n
    return policy_loss, baseline_loss


def factored_clipped_loss(
    logp: dict[str, torch.Tensor], old_logp: dict[str, torch.Tensor], advantage: torch.Tensor,
    mask: torch.Tensor, clip: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:  # fmt: skip
    """PPO's loss for a policy that factorises into parts sampled apart (the action, the
    locations): the sum of each part's clipped surrogate, every one with its own probability
    ratio. Returns (loss, fraction clipped by part, approximate KL by part).

    One joint ratio (the product of the parts') would let any part clip the others: the Gaussian
    location's log-density moves ~1/std times faster than the action's, so a step that shifts the
    gaze a little takes the action's gradient away with it (on Breakout, a median 43% of decisions
    per update were clipped jointly, 7.5% by the action alone). Apart, each part is kept near the
    policy that collected the rollout by its own clip."""
    loss = advantage.new_zeros(())
    clipped: dict[str, torch.Tensor] = {}
    kl: dict[str, torch.Tensor] = {}
    for part, lp in logp.items():
        part_loss, clipped[part], kl[part] = clipped_policy_loss(lp, old_logp[part], advantage, mask, clip)
        loss = loss + part_loss
    return loss, clipped, kl
