"""The checks that saliency maps get (:mod:`analysis.fidelity`, :mod:`analysis.sanity`) applied to
the soft-attention agent's own attention maps, beside its value's Jacobian at the same moments.

An attention map is an output of the network, not a gradient, so it can fail in its own ways: it
may be sharp and stable whatever the weights (a map set by the spatial basis, not by learning), or
point at pixels the policy does not use (the answers it reads may carry little of the decision).
Two questions, for a set of moments of play (each an observation with the recurrent state,
previous action and reward it was met with):

* **Deletion** (Petsiuk et al. 2018): blurring the pixels the attention ranks first, does the
  policy move more than when as many random pixels are blurred? The change measured is that of the
  log-probability of the action the agent took, and of the value. The value's Jacobian, ranked the
  same way, is the yardstick.
* **Cascading randomisation** (Adebayo et al. 2018): re-initialising the layers from the heads down
  to the first convolution, do the maps stop resembling the trained agent's? A map that survives
  full randomisation reads the input's layout, not what was learnt.

The agent at a recorded moment is a feed-forward network of its observation (:class:`StepFrom`), so
that both checks run unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.soft import SoftAttentionAgent
from analysis.attention_video import AttentionStep, attention_on_pixels
from analysis.fidelity import FRACTIONS, FidelityCurve, deletion_curve
from analysis.sanity import RandomizationResult, Stage, cascade, randomization_test, similarities


@dataclass
class Moments:
    """Moments of play: what the agent saw, remembered and did at each."""

    obs: torch.Tensor  # (B, C, H, W) uint8
    state: tuple[torch.Tensor, ...]  # the recurrent state each step was taken from, batched
    prev_action: torch.Tensor  # (B,) long
    prev_reward: torch.Tensor  # (B,) float
    action: np.ndarray  # (B,) the action the agent took

    @classmethod
    def of(cls, steps: list[AttentionStep]) -> Moments:
        if not steps:
            raise ValueError("the checks need at least one step of play")
        return cls(torch.from_numpy(np.stack([s.obs for s in steps])),
                   tuple(torch.cat(parts) for parts in zip(*(s.state for s in steps), strict=True)),
                   torch.tensor([s.inputs[0] for s in steps]),
                   torch.tensor([s.inputs[1] for s in steps], dtype=torch.float32),
                   np.array([s.action for s in steps]))  # fmt: skip


class StepFrom(nn.Module):
    """The agent's step at each of ``moments`` as a function of the observation alone: row r of a
    batch (the moments' observations, perturbed or not, in their order and repeated) steps from
    moment ``r % B``'s state, previous action and reward; a batch that splits the moments' copies
    must keep whole copies together. Heads: the agent's, and ``log_policy`` (the log-probabilities
    of the actions)."""

    def __init__(self, model: SoftAttentionAgent, moments: Moments) -> None:
        super().__init__()
        self.model, self.moments = model, moments

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self.moments
        at = torch.arange(len(obs)) % len(m.obs)
        heads, _ = self.model.step(obs, tuple(s[at] for s in m.state), m.prev_action[at], m.prev_reward[at])
        return {**heads, "log_policy": torch.log_softmax(heads["policy_logits"], 1)}

    def layer_groups(self) -> list[tuple[str, list[nn.Module]]]:
        """The agent's (cascading randomisation walks them)."""
        return self.model.layer_groups()


def attention_maps(model: SoftAttentionAgent, moments: Moments) -> np.ndarray:
    """(B, H, W): the queries' mean attention at each moment, on the observation's pixels."""
    with torch.no_grad():
        maps = StepFrom(model, moments)(moments.obs)["attention"].mean(1).numpy()
    return attention_on_pixels(maps, model, tuple(moments.obs.shape[-2:]))


def attention_randomisation(model: SoftAttentionAgent, moments: Moments, seed: int = 0,
                            threshold: float = 0.5) -> RandomizationResult:  # fmt: skip
    """Cascading randomisation of the attention maps (the model is left untouched: a copy is
    randomised): after each layer group from the heads down, the maps at the same moments (same
    observations and recurrent states) against the trained agent's."""
    trained = attention_maps(model, moments)
    result = RandomizationResult("attention", ("attention",), {"attention": trained[0]},
                                 threshold=threshold)  # fmt: skip
    for name, randomised in cascade(model, seed):
        maps = attention_maps(randomised, moments)
        result.stages.append(Stage(name, {"attention": similarities(trained, maps)},
                                   {"attention": maps[0]}))  # fmt: skip
    return result


def value_jacobian_maps(model: SoftAttentionAgent, moments: Moments) -> np.ndarray:
    """(B, H, W): |d value / d observation| at each moment, summed over the channels."""
    from analysis.saliency import attribute

    return attribute(StepFrom(model, moments), moments.obs, "value", "jacobian").combined


def attention_checks(model: SoftAttentionAgent, steps: list[AttentionStep], seed: int = 0,
                     fractions: tuple[float, ...] = FRACTIONS) -> dict[str, Any]:  # fmt: skip
    """Deletion curves of the action's log-probability and of the value, ranked by the attention and
    by the value's Jacobian, each against random pixels; cascading randomisation of the attention
    and of the Jacobian. JSON-ready, with each curve's ratio (how many times more the ranked pixels
    move the head than random ones) and each randomisation's verdict."""
    moments = Moments.of(steps)
    view = StepFrom(model.eval(), moments)
    maps = {"attention": attention_maps(model, moments), "jacobian": value_jacobian_maps(model, moments)}
    chunk = len(moments.obs) * max(1, 512 // len(moments.obs))  # whole copies of the moments
    deletion: dict[str, dict[str, Any]] = {}
    for ranked_by, m in maps.items():
        for head in ("log_policy", "value"):
            action = moments.action if head == "log_policy" else None  # the value is one number
            curve: FidelityCurve = deletion_curve(view, moments.obs, m, head, fractions, action=action,
                                                  seed=seed, chunk=chunk)  # fmt: skip
            deletion[f"{ranked_by}/{head}"] = curve.summary()
    randomised = {"attention": attention_randomisation(model, moments, seed),
                  "jacobian": randomization_test(view, moments.obs, "value", seed=seed)}  # fmt: skip
    return {"moments": len(moments.obs), "deletion": deletion,
            "randomisation": {k: r.summary() for k, r in randomised.items()}}  # fmt: skip
