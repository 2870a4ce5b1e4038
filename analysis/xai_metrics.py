"""Scores of saliency maps from the XAI field's evaluation library, Quantus (Hedström et al. 2023,
JMLR), which the head report gives beside its own checks on the same probe frames:

* complexity: ``Sparseness``, the Gini index of a map's mass (Chalasani et al. 2020: 1 when one
  pixel holds all of it, 0 when it is spread evenly), and ``Complexity``, the entropy of that mass
  (Bhatt et al. 2020; log of the pixel count for an even spread);
* randomisation: ``EfficientMPRT`` (Hedström et al. 2023, "Sanity checks revisited"): how much the
  maps' complexity rises once every layer of the network is randomised. A map that reads the
  network turns into noise with a random one and rises well above 0; a map that shows the input
  whatever the weights stays near 0. For a head with an output per action (the advantage),
  ``RandomLogit`` (Sixt et al. 2020): the SSIM between the map for the chosen action and the map
  for another action drawn at random; near 1, the map does not tell the actions apart (the
  report's own random-action control asks the same with Spearman and top-5% overlap).

Quantus scores one output of a model: a head of a network of named heads becomes that output
(:class:`HeadOutput`), and its maps are :func:`analysis.saliency.attribute`'s, with the component
of a vector head that the trained network picked. Quantus takes one map per stacked frame, so the
perturbation method (one map for the whole stack) gets no scores here. The randomisation test and
the deletion curve stay ours (analysis.sanity, analysis.fidelity: why, in their docstrings).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.compare import mean_ci_dict
from analysis.saliency import attribute

SCORES = ("sparseness", "complexity", "emprt", "random_logit")


class HeadOutput(nn.Module):
    """One head of a network of named heads as the (N, outputs) tensor Quantus expects."""

    def __init__(self, net: nn.Module, head: str) -> None:
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)[self.head]
        return y[:, None] if y.dim() == 1 else y


def quantus_scores(net: nn.Module, obs: np.ndarray, head: str, method: str, seed: int = 0,
                   per_frame: np.ndarray | None = None) -> dict[str, Any] | None:  # fmt: skip
    """Sparseness, Complexity and efficient MPRT of ``head``'s ``method`` maps on the uint8
    observations ``obs`` (N, stack, H, W), and the random-logit SSIM for a head with an output per
    action: per score its mean over the frames with a 95% interval. ``per_frame``: those maps when
    the caller has them (a vector head's for its argmax, :func:`attribute`'s default), else they
    are computed. No efficient MPRT for a network without layers that Quantus can re-initialise
    (their ``reset_parameters``); None for a method without a map per stacked frame
    (perturbation)."""
    import quantus

    x = np.asarray(obs, np.float32) / 255.0
    if per_frame is None:
        per_frame = attribute(net, x, head, method, seed=seed).per_frame
        if per_frame is None:
            return None
    with torch.no_grad():
        out = net(torch.as_tensor(x, device=next(net.parameters()).device))[head]
    vector = out.dim() == 2
    targets = out.argmax(1).cpu().numpy() if vector else np.zeros(len(x), np.int64)

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        """The maps of ``model`` (a :class:`HeadOutput`, trained or randomised by Quantus)."""
        action = np.asarray(targets) if vector else None
        return attribute(model.net, np.asarray(inputs, np.float32), head, method, action=action,
                         seed=seed).per_frame  # fmt: skip

    device = next(net.parameters()).device
    common = {"x_batch": x, "y_batch": targets, "a_batch": per_frame}
    model = HeadOutput(net, head).eval()
    with_model = {**common, "model": model, "explain_func": explain, "device": str(device)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Quantus prints its metrics' references as warnings
        scores = {"sparseness": quantus.Sparseness(disable_warnings=True)(model=None, **common),
                  "complexity": quantus.Complexity(disable_warnings=True)(model=None, **common)}  # fmt: skip
        if any(hasattr(m, "reset_parameters") for m in net.modules()):  # layers Quantus can randomise
            scores["emprt"] = quantus.EfficientMPRT(disable_warnings=True, seed=seed)(**with_model)
        if vector:
            random_logit = quantus.RandomLogit(similarity_func=quantus.similarity_func.ssim,
                                               num_classes=int(out.shape[1]), seed=seed,
                                               disable_warnings=True)  # fmt: skip
            scores["random_logit"] = random_logit(**with_model)
    return {k: mean_ci_dict(np.asarray(v, np.float64)) for k, v in scores.items()}
