"""The soft-attention agent playing a batch of envs, for evaluation, videos and analysis."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.soft.model import SoftAttentionAgent, restart


class SoftPolicy:
    """``policy(obs) -> actions``, one call per step, keeping every env's recurrent state and the
    previous action and reward the agent reads (:meth:`observe` records what the env did: the
    action played, which exploration or a forced FIRE may have changed, and the reward, clipped to
    [-1, 1] as in training). ``reset(mask)`` starts the masked envs afresh after their reset step.
    ``greedy`` plays the most likely action, otherwise a sampled one. After each call ``heads``
    holds the step's heads (the attention maps among them), for videos and analysis."""

    def __init__(self, model: SoftAttentionAgent, num_envs: int, greedy: bool = True) -> None:
        self.model, self.greedy = model, greedy
        self.state = model.initial_state(num_envs)
        device = self.state[0].device
        self.prev_action = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.prev_reward = torch.zeros(num_envs, device=device)
        self.heads: dict[str, torch.Tensor] = {}

    @classmethod
    def for_checkpoint(cls, model: SoftAttentionAgent, config: dict[str, Any], num_envs: int,
                       greedy: bool = True) -> SoftPolicy:  # fmt: skip
        return cls(model, num_envs, greedy=greedy)

    def logits(self, images01: torch.Tensor) -> torch.Tensor:
        """The action logits of a step on ``images01`` (floats in [0, 1]) from the current state,
        previous action and reward, which are not advanced; what an attack differentiates
        (``analysis.adversarial``)."""
        return self.model.step(images01, self.state, self.prev_action, self.prev_reward)[0]["policy_logits"]

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> np.ndarray:
        self.heads, self.state = self.model.step(obs, self.state, self.prev_action, self.prev_reward)
        logits = self.heads["policy_logits"]
        action = logits.argmax(1) if self.greedy else torch.distributions.Categorical(logits=logits).sample()
        self.prev_action = action
        return action.cpu().numpy()

    def observe(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """The actions the env played and the rewards it gave, the agent's next inputs."""
        device = self.prev_action.device
        self.prev_action = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=device)
        self.prev_reward = torch.as_tensor(np.clip(rewards, -1, 1), dtype=torch.float32, device=device)

    def reset(self, mask: np.ndarray | torch.Tensor | None = None) -> None:
        """Start the envs in ``mask`` (all when None) afresh: zero state, no previous action."""
        n = len(self.prev_action)
        fresh = torch.ones(n, dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
        fresh = fresh.to(self.prev_action.device)
        self.state = restart(self.state, fresh)
        self.prev_action = torch.where(fresh, torch.zeros_like(self.prev_action), self.prev_action)
        self.prev_reward = torch.where(fresh, torch.zeros_like(self.prev_reward), self.prev_reward)

