"""The glimpse agent playing a batch of envs, for evaluation, videos and analysis."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.glimpse.model import RecurrentAttentionModel


class GlimpsePolicy:
    """The agent playing a batch of envs, one call per step: ``policy(images) -> actions``.

    Keeps the core state and the next glimpse location of every env between calls; ``reset(mask)``
    starts the masked envs afresh (after their reset step). ``greedy`` takes the most likely action
    and the location policy's mean (or most likely tile); otherwise both are sampled. After each
    call ``locations`` holds the (glimpses_per_step, B, 2) locations looked at, ``patches`` the
    (glimpses_per_step, B, scales, C, p, p) patches seen there and ``heads`` the last glimpse's
    heads, for videos and analysis.
    """

    def __init__(self, model: RecurrentAttentionModel, num_envs: int, glimpses_per_step: int = 1,
                 greedy: bool = True) -> None:  # fmt: skip
        self.model, self.glimpses_per_step, self.greedy = model, glimpses_per_step, greedy
        device = next(model.parameters()).device
        self.state = model.initial_state(num_envs, device)
        self.loc = torch.zeros(num_envs, 2, device=device)
        self.locations = torch.zeros(glimpses_per_step, num_envs, 2)
        self.patches = torch.zeros(0)
        self.heads: dict[str, torch.Tensor] = {}

    @classmethod
    def for_checkpoint(cls, model: RecurrentAttentionModel, config: dict[str, Any], num_envs: int,
                       greedy: bool = True) -> GlimpsePolicy:  # fmt: skip
        """The policy a checkpoint trained: its glimpses per step (from its training config), so
        that evaluation, videos and analysis play the agent that learnt."""
        glimpses = config.get("train_config", {}).get("glimpses_per_step", 1)
        return cls(model, num_envs, glimpses, greedy=greedy)

    def reset(self, mask: np.ndarray | torch.Tensor | None = None) -> None:
        """Start the envs in ``mask`` (all when None) afresh."""
        everyone = torch.ones(len(self.loc), dtype=torch.bool)
        self.state, self.loc = self.model.restart(
            everyone if mask is None else torch.as_tensor(mask), self.state, self.loc
        )

    def logits(self, images01: torch.Tensor) -> torch.Tensor:
        """The action logits this step would end with on ``images01`` (floats in [0, 1]): every
        glimpse of the step from the current state and gaze, which are not advanced; what an
        attack differentiates (``analysis.adversarial``)."""
        state, loc = self.state, self.loc
        heads: dict[str, torch.Tensor] = {}
        for _ in range(self.glimpses_per_step):
            heads, state = self.model(images01, loc, state)
            loc = self.model.greedy_location(heads) if self.greedy else self.model.sample_location(heads)[0]
        return heads["action_logits"]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        looked, seen = [], []
        for _ in range(self.glimpses_per_step):
            looked.append(self.loc.cpu())
            seen.append(self.model.retina(images, self.loc))
            self.heads, self.state = self.model.step_patches(seen[-1], self.loc, self.state)
            if self.greedy:
                self.loc = self.model.greedy_location(self.heads)
            else:
                self.loc = self.model.sample_location(self.heads)[0]
        self.locations, self.patches = torch.stack(looked), torch.stack(seen).cpu()
        logits = self.heads["action_logits"]
        dist = torch.distributions.Categorical(logits=logits)
        action = logits.argmax(1) if self.greedy else dist.sample()
        self.state = self.model.record_action(self.state, action)
        return action.cpu().numpy()
