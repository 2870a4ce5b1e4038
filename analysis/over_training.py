"""Saliency over training (Greydanus et al. 2018 watched it change as agents learnt): the same probe
frames' value and advantage maps at every checkpoint of a run, and how much the two heads agree.

The probe frames come from the run's final network playing its own game, so they are states a
competent agent reaches; every checkpoint is then asked about those same frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.common.checkpoint import load_checkpoint, run_checkpoints
from analysis.compare import pearson, spearman, top_iou
from analysis.playback import check_q_agent, head_pair, play
from analysis.saliency import attribute, check_method

AGREEMENT = {"pearson": pearson, "spearman": spearman, "top5_iou": top_iou}


@dataclass
class OverTraining:
    steps: list[int]
    heads: tuple[str, ...]
    method: str
    obs: np.ndarray  # (P, stack, H, W) probe observations
    maps: dict[str, np.ndarray]  # head -> (C, P, H, W), one row per checkpoint
    agreement: dict[str, np.ndarray]  # metric -> (C, P), the two heads' maps compared per frame


def saliency_over_training(run: str | os.PathLike[str], probe: int = 4, probe_steps: int = 200,
                           method: str = "jacobian", seed: int = 0) -> OverTraining:  # fmt: skip
    """Maps of the two heads for ``probe`` frames (spread over ``probe_steps`` steps of the final
    network's greedy play) at every checkpoint of ``run``."""
    check_method(method)
    if probe < 1 or probe_steps < probe:
        raise ValueError(f"need 1 <= --probe-frames <= --probe-steps, got {probe} and {probe_steps}")
    ckpts = run_checkpoints(run)
    check_q_agent(ckpts[-1][1])
    final, config = load_checkpoint(ckpts[-1][1])
    observations = [s.obs for s in play(final, config, steps=probe_steps, seed=seed)]
    obs = np.stack(observations)[np.linspace(0, probe_steps - 1, probe).round().astype(np.int64)]
    heads: tuple[str, ...] = ()
    maps: dict[str, list[np.ndarray]] = {}
    for _, path in ckpts:
        net, _ = load_checkpoint(path)
        if not heads:
            import torch

            with torch.no_grad():
                heads = head_pair(list(net(torch.as_tensor(obs[:1]))))
            if len(heads) < 2:
                raise ValueError(f"{str(run)!r} has a single-stream network: saliency over "
                                 "training compares two heads")  # fmt: skip
        for h in heads:
            maps.setdefault(h, []).append(attribute(net, obs, h, method, seed=seed).combined)
    stacked = {h: np.stack(v) for h, v in maps.items()}
    a, b = (stacked[h] for h in heads)
    agreement = {k: np.array([[fn(x, y) for x, y in zip(ra, rb, strict=True)]
                              for ra, rb in zip(a, b, strict=True)])
                 for k, fn in AGREEMENT.items()}  # fmt: skip
    return OverTraining([s for s, _ in ckpts], heads, method, obs, stacked, agreement)


def plot_over_training(result: OverTraining, path: str | os.PathLike[str]) -> Path:
    """Rows: each probe frame's maps, one row per head; columns: checkpoints; below, the heads'
    agreement against training steps. Each map is scaled to its own maximum (the shape is the
    point here), overlaid in red on the probe's newest frame."""
    from analysis.render import overlay, pyplot, save_figure

    plt = pyplot()

    n_ckpt, n_probe = len(result.steps), len(result.obs)
    rows = n_probe * len(result.heads)
    fig = plt.figure(figsize=(max(6.0, 1.6 * n_ckpt), 1.6 * rows + 2.8))
    grid = fig.add_gridspec(rows + 1, n_ckpt, height_ratios=[1] * rows + [1.6])
    for p, o in enumerate(result.obs):
        screen = np.repeat(o[-1][..., None], 3, axis=2)
        for k, h in enumerate(result.heads):
            r = p * len(result.heads) + k
            for c, step in enumerate(result.steps):
                m = result.maps[h][c, p]
                ax = fig.add_subplot(grid[r, c])
                ax.imshow(overlay(screen, m / (m.max() or 1.0)), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"step {step:,}", fontsize=8)
                if c == 0:
                    ax.set_ylabel(f"frame {p}\n{h}", fontsize=8)
    ax = fig.add_subplot(grid[rows, :])
    for k, (name, values) in enumerate(result.agreement.items()):
        ax.plot(result.steps, values.mean(1), "-o", ms=3, color=f"C{k}", label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"{result.heads[0]} vs {result.heads[1]}")
    ax.legend(fontsize=8)
    return save_figure(fig, path, f"{result.method} saliency over training")


def log_over_training(result: OverTraining, log_dir: str | os.PathLike[str]) -> Path:
    """The same in TensorBoard: ``saliency_over_training/<metric>`` scalars and
    ``saliency_over_training/<head>`` images (the probe frames side by side) per checkpoint step."""
    from torch.utils.tensorboard import SummaryWriter

    from analysis.render import overlay

    with SummaryWriter(str(log_dir)) as writer:
        for c, step in enumerate(result.steps):
            for name, values in result.agreement.items():
                writer.add_scalar(f"saliency_over_training/{name}", float(values[c].mean()), step)
            for h in result.heads:
                tiles = [overlay(np.repeat(o[-1][..., None], 3, axis=2), m / (m.max() or 1.0))
                         for o, m in zip(result.obs, result.maps[h][c], strict=True)]  # fmt: skip
                writer.add_image(f"saliency_over_training/{h}", np.concatenate(tiles, 1), step,
                                 dataformats="HWC")  # fmt: skip
    return Path(log_dir)
