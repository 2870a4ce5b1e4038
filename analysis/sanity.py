"""Sanity checks for saliency maps: model-parameter randomisation (Adebayo et al. 2018).

A map that explains a network must depend on what the network learnt. The cascading test
re-initialises the layers from the output down to the first convolution, one depth at a time, and
after each step compares the randomised network's maps with the trained network's on the same
observations. Maps that stay similar once everything is random show the input's edges, not the
network's reasoning: :class:`RandomizationResult` flags them (``survives``).

Similarity follows the paper: Spearman rank correlation (over the pixels either map holds, see
:func:`similarities`), SSIM (structural similarity, Wang et al. 2004; scikit-image's, the
implementation the paper used) and the overlap of the top 5% pixels, all on absolute-value maps
normalised to their maximum. Adebayo et al.'s second test, data randomisation
(retraining on permuted rewards), needs a training run per check and is out of scope here.

Quantus's ``MPRT`` (Hedström et al. 2023) runs the same cascade, and where maps share no zeros the
two agree (``tests/test_quantus.py``). It correlates whole maps, so a network that reads part of
the screen keeps its Spearman at 0.97 once randomised, where ours, over the pixels either map
holds, finds about 0: that is why this test is ours.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.compare import mean_ci, mean_ci_dict, spearman, top_iou
from analysis.saliency import attribute, check_method, heads_of

METRICS = ("spearman", "ssim", "top5_iou")


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The model's layers, input first: its own ``layer_groups()`` where it has one (our Q-networks),
    else every module holding parameters, in registration order."""
    if hasattr(model, "layer_groups"):
        return model.layer_groups()
    leaves = [(name, m) for name, m in model.named_modules()
              if any(True for _ in m.parameters(recurse=False))]  # fmt: skip
    return [(name, [m]) for name, m in leaves]


def _reinitialise(module: nn.Module) -> None:
    """Back to the module's initial distribution: its ``reset_parameters`` where it has one."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
        return
    for p in module.parameters(recurse=False):
        nn.init.normal_(p, std=0.02)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    # 7x7 windows (scikit-image's default) on maps at least that large; the largest odd one else
    side = min(7, *a.shape)
    win = side if side % 2 else side - 1
    return float(structural_similarity(a, b, data_range=1.0, win_size=win))


def similarities(trained: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    """Per-observation similarity of two batches of (B, H, W) non-negative maps. The rank
    correlation leaves out the pixels that are zero in both maps: a network that reads part of the
    screen leaves the rest of every map at zero, trained or randomised, and those tied zeros alone
    would keep the correlation high whatever the network learnt."""
    out: dict[str, list[float]] = {k: [] for k in METRICS}
    for a, b in zip(trained, other, strict=True):
        na, nb = a / (a.max() or 1.0), b / (b.max() or 1.0)
        read = (na != 0) | (nb != 0)
        out["spearman"].append(spearman(na[read], nb[read]) if read.sum() > 1 else 1.0)
        out["ssim"].append(_ssim(na, nb))
        out["top5_iou"].append(top_iou(na, nb, 0.05))
    return {k: np.array(v) for k, v in out.items()}


@dataclass
class Stage:
    """The network after every layer from the output down to ``name`` was re-initialised."""

    name: str
    similarity: dict[str, dict[str, np.ndarray]]  # head -> metric -> (B,)
    example: dict[str, np.ndarray]  # head -> the first observation's (H, W) map


@dataclass
class RandomizationResult:
    method: str
    heads: tuple[str, ...]
    trained_example: dict[str, np.ndarray]  # head -> the trained network's first (H, W) map
    stages: list[Stage] = field(default_factory=list)
    threshold: float = 0.5

    def __iter__(self):
        """``for name, similarity in result``: the stages in order, output layers first."""
        return iter((s.name, s.similarity) for s in self.stages)

    @property
    def survives(self) -> dict[str, bool]:
        """Per head: is the fully randomised network's map still rank-correlated (mean Spearman at
        or above ``threshold``) with the trained one's? Such a map fails the sanity check."""
        last = self.stages[-1].similarity
        return {h: bool(last[h]["spearman"].mean() >= self.threshold) for h in self.heads}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per stage, head and metric the mean and its 95% interval over observations."""
        return {
            "method": self.method,
            "survival_threshold_spearman": self.threshold,
            "survives_full_randomisation": self.survives,
            "stages": [
                {"randomised_down_to": s.name,
                 "similarity": {h: {m: mean_ci_dict(v)
                                    for m, v in s.similarity[h].items()} for h in self.heads}}
                for s in self.stages
            ],
        }  # fmt: skip


def randomization_test(
    model: nn.Module,
    obs: torch.Tensor | np.ndarray,
    head: str | tuple[str, ...] = "value",
    method: str = "jacobian",
    *,
    seed: int = 0,
    threshold: float = 0.5,
) -> RandomizationResult:
    """Cascading model-parameter randomisation of ``model`` (left untouched: a copy is randomised)
    on a batch of observations, for one head or several. A vector head's map is taken for the
    component the *trained* network picks (its argmax), so that the maps compare like with like."""
    check_method(method)
    heads = (head,) if isinstance(head, str) else tuple(head)
    obs_t = torch.as_tensor(np.asarray(obs)) if isinstance(obs, np.ndarray) else obs
    device = next(model.parameters()).device
    with torch.no_grad():
        out = heads_of(model, obs_t[:1].to(device))
    for h in heads:
        if h not in out:
            raise ValueError(f"unknown head {h!r}; this network has: {', '.join(out)}")
    trained = {h: attribute(model, obs_t, h, method, seed=seed) for h in heads}
    result = RandomizationResult(method, heads, {h: m.combined[0] for h, m in trained.items()},
                                 threshold=threshold)  # fmt: skip
    for name, randomised in cascade(model, seed):
        maps = {h: attribute(randomised, obs_t, h, method, action=trained[h].actions,
                             seed=seed).combined for h in heads}  # fmt: skip
        result.stages.append(Stage(
            name,
            {h: similarities(trained[h].combined, maps[h]) for h in heads},
            {h: maps[h][0] for h in heads},
        ))  # fmt: skip
    return result


def cascade(model: nn.Module, seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """(layer group, a copy of ``model`` with that group and every group above it re-initialised),
    from the output layers down to the input's, seeded; ``model`` is left untouched, and the
    caller's random stream too."""
    randomised = copy.deepcopy(model)
    by_identity = dict(zip(map(id, model.modules()), randomised.modules(), strict=True))
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(seed)
        for name, modules in reversed(layer_groups(model)):
            with torch.no_grad():
                for m in modules:
                    _reinitialise(by_identity[id(m)])
            yield name, randomised


def plot_randomization(result: RandomizationResult, path: str | os.PathLike[str]) -> Path:
    """One row of maps per head (trained, then each cumulative stage) over a row of similarity
    curves per head: the figure of Adebayo et al.'s Fig. 2 and 4 for our heads."""
    from analysis.render import pyplot, save_figure

    plt = pyplot()

    names = [s.name for s in result.stages]
    cols = len(names) + 1
    fig = plt.figure(figsize=(1.8 * cols, 2.0 * len(result.heads) + 2.6))
    grid = fig.add_gridspec(len(result.heads) + 1, cols, height_ratios=[1] * len(result.heads) + [1.3])
    for r, h in enumerate(result.heads):
        maps = [result.trained_example[h]] + [s.example[h] for s in result.stages]
        for c, (m, title) in enumerate(zip(maps, ["trained"] + [f"down to {n}" for n in names],
                                           strict=True)):  # fmt: skip
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(m / (m.max() or 1.0), cmap="inferno", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(h)
    n = len(result.heads)
    for r, h in enumerate(result.heads):
        ax = fig.add_subplot(grid[-1, r * cols // n : (r + 1) * cols // n])
        x = np.arange(len(names))
        for k, metric in enumerate(METRICS):
            stats = [mean_ci(s.similarity[h][metric]) for s in result.stages]
            means = [s[0] for s in stats]
            err = [[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]]
            ax.errorbar(x, means, yerr=err, marker="o", ms=3, label=metric, color=f"C{k}")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylim(-0.3, 1.05)
        ax.set_xticks(x, names, rotation=30, fontsize=7)
        flag = "  SURVIVES randomisation" if result.survives[h] else ""
        ax.set_title(f"{h}: similarity to trained{flag}", fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path, f"cascading randomisation, {result.method} saliency")
