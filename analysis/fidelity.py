"""Fidelity of saliency maps: deletion and insertion curves (Petsiuk et al. 2018, "RISE").

A map ranks pixels by importance. If the ranking is faithful, removing the pixels it ranks first
moves the head more than removing as many random pixels does (deletion), and restoring them first
into a frame with everything removed moves it more too (insertion). Atrey et al. 2020 and Huber et
al. 2022 found Atari saliency that fails such tests; this module measures ours.

"Removed" is Greydanus et al. 2018's perturbation: a pixel takes its value in a Gaussian-blurred copy
of the frame, which deletes small objects (a ball, a car) without painting in an edge that the
network never saw. A pixel position is removed in every stacked frame at once, as the maps here
are (B, H, W) sums over the stack.

The head's change is ``|f(x_k) - f(x_start)|``: from the observation for deletion, from the fully
blurred observation for insertion, where ``f`` is the head itself for a scalar head (the value)
and, for a vector head, its component of the action the map was taken for (the advantage of the
chosen action; Wang et al. 2016's maps are of ``argmax_a A``). Both curves start at zero, and for
both a faithful map lies above random: the areas under the curves (trapezoids over the fractions,
divided by the largest fraction, so in the head's units) say by how much.

The deletion curve is Quantus's ``PixelFlipping`` (Hedström et al. 2023) with the same removal and
four features (the stacked frames of one pixel) a step: ``tests/test_quantus.py`` checks the two to
1e-6. It is ours because Quantus flips one step at a time, a forward pass for each of a screen's
7,056 positions, where these curves measure only the fractions they report, every observation and
fraction in one batched pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from analysis.compare import mean_ci_dict
from analysis.saliency import SaliencyMaps, _check_obs, _gaussian_blur, _select, heads_of

# Up to half the screen: past that the blurred frame is no state the agent meets, and every ranking
# converges to the same fully blurred frame.
FRACTIONS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass
class FidelityCurve:
    kind: Literal["deletion", "insertion"]
    head: str
    fractions: np.ndarray  # (K,)
    salient: np.ndarray  # (K, B): the head's change with the top fraction of pixels by the map
    random: np.ndarray  # (K, B): the same with random pixels (mean over the random draws)
    auc_salient: float
    auc_random: float

    @property
    def ratio(self) -> float:
        """How many times more the map's pixels move the head than random ones (inf if random
        pixels do not move it at all)."""
        return self.auc_salient / self.auc_random if self.auc_random > 0 else float("inf")

    def summary(self) -> dict[str, Any]:
        def stats(v: np.ndarray) -> list[dict[str, float]]:
            return [mean_ci_dict(row) for row in v]

        return {"kind": self.kind, "head": self.head, "fractions": self.fractions.tolist(),
                "salient": stats(self.salient), "random": stats(self.random),
                "auc_salient": self.auc_salient, "auc_random": self.auc_random,
                "ratio": self.ratio}  # fmt: skip


def check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, np.float64)
    if f.ndim != 1 or len(f) == 0:
        raise ValueError("fractions must be a non-empty list of numbers in (0, 1]")
    bad = f[(f <= 0) | (f > 1) | ~np.isfinite(f)]
    if len(bad):
        raise ValueError(f"fractions must lie in (0, 1], got {bad[0]:g}")
    return np.sort(f)


def _area(fractions: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoids from (0, 0) through the curve, over the largest fraction."""
    x = np.concatenate([[0.0], fractions])
    y = np.concatenate([[0.0], curve])
    return float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum() / x[-1])


def _orders(maps: np.ndarray, rng: np.random.Generator, random: bool) -> np.ndarray:
    """Per map, pixel indices most salient first; ties (flat zero regions) in random order so that
    a tie never favours the screen's top rows."""
    flat = maps.reshape(len(maps), -1)
    out = np.empty(flat.shape, np.int64)
    for i, m in enumerate(flat):
        jitter = rng.random(m.size)
        out[i] = jitter.argsort() if random else np.lexsort((jitter, -m))
    return out


@torch.no_grad()
def _curve(kind: Literal["deletion", "insertion"], model: nn.Module,
           obs: torch.Tensor | np.ndarray, maps: SaliencyMaps | np.ndarray, head: str,
           fractions: Sequence[float], *, action: Any = None, repeats: int = 3,
           blur_sigma: float = 3.0, seed: int = 0, chunk: int = 512) -> FidelityCurve:  # fmt: skip
    f = check_fractions(fractions)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if isinstance(maps, SaliencyMaps):
        if action is None and maps.head == head:
            action = maps.actions
        maps = maps.combined
    device = next(model.parameters()).device
    x = _check_obs(obs).to(device)
    b, s, h, w = x.shape
    maps = np.asarray(maps)
    if maps.shape != (b, h, w):
        raise ValueError(f"maps must have shape {(b, h, w)} (one per observation, summed over "
                         f"the stack), got {maps.shape}")  # fmt: skip
    base = heads_of(model, x)
    if head not in base:
        raise ValueError(f"unknown head {head!r}; this network has: {', '.join(base)}")
    _, actions = _select(base[head], head, action)
    idx = None if actions is None else torch.as_tensor(actions, device=device)

    def measure(batch: torch.Tensor) -> torch.Tensor:  # (n*B, S, H, W) -> (n*B,)
        outs = []
        for part in batch.split(chunk):
            y = heads_of(model, part)[head]
            if idx is not None:
                y = y.gather(1, idx.repeat(len(part) // b)[:, None]).squeeze(1)
            outs.append(y.float())
        return torch.cat(outs)

    blurred = _gaussian_blur(x, blur_sigma)
    start, fill = (x, blurred) if kind == "deletion" else (blurred, x)
    ref = measure(start)
    rng = np.random.default_rng(seed)
    orders = [_orders(maps, rng, False)] + [_orders(maps, rng, True) for _ in range(repeats)]
    changes = np.empty((len(orders), len(f), b))
    for o, order in enumerate(orders):
        ks = np.maximum(1, np.round(f * h * w).astype(np.int64))
        ranks = torch.as_tensor(order.argsort(1), device=device)  # pixel -> its place in the order
        masks = torch.stack([(ranks < k).reshape(b, 1, h, w) for k in ks])  # (K, B, 1, H, W)
        perturbed = torch.where(masks, fill[None], start[None]).reshape(-1, s, h, w)
        changes[o] = (measure(perturbed).reshape(len(f), b) - ref[None]).abs().cpu().numpy()
    salient, random = changes[0], changes[1:].mean(0)
    return FidelityCurve(kind, head, f, salient, random, _area(f, salient.mean(1)),
                         _area(f, random.mean(1)))  # fmt: skip


def deletion_curve(model: nn.Module, obs: torch.Tensor | np.ndarray,
                   maps: SaliencyMaps | np.ndarray, head: str = "value",
                   fractions: Sequence[float] = FRACTIONS, **options: Any) -> FidelityCurve:  # fmt: skip
    """Blur the top ``fraction`` of pixels by ``maps`` (and, as the control, as many random pixels)
    and measure how far ``head`` moves from its value on ``obs``. ``options``: ``action`` (the
    vector head's component; default the map's action, else the argmax), ``repeats`` (random draws,
    3), ``blur_sigma`` (3.0), ``seed`` (0), ``chunk`` (forward batch, 512)."""
    return _curve("deletion", model, obs, maps, head, fractions, **options)


def insertion_curve(model: nn.Module, obs: torch.Tensor | np.ndarray,
                    maps: SaliencyMaps | np.ndarray, head: str = "value",
                    fractions: Sequence[float] = FRACTIONS, **options: Any) -> FidelityCurve:  # fmt: skip
    """Start from the blurred observation, restore the top ``fraction`` of pixels by ``maps`` (and
    random pixels as the control), and measure how far ``head`` moves from its blurred value.
    ``options`` as for :func:`deletion_curve`."""
    return _curve("insertion", model, obs, maps, head, fractions, **options)


def plot_fidelity(curves: Sequence[FidelityCurve], ax: Any) -> None:
    """Salient (solid) against random (dashed) change per curve, on one matplotlib axis."""
    for k, c in enumerate(curves):
        label = f"{c.head} {c.kind}"
        ax.plot(c.fractions, c.salient.mean(1), "-o", ms=3, color=f"C{k}",
                label=f"{label} (AUC {c.auc_salient:.3g})")  # fmt: skip
        ax.plot(c.fractions, c.random.mean(1), "--", color=f"C{k}",
                label=f"random (AUC {c.auc_random:.3g})")  # fmt: skip
    ax.set_xlabel("fraction of pixels")
    ax.set_ylabel("|change of the head|")
    ax.legend(fontsize=7)
