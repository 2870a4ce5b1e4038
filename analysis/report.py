"""Head-versus-head report over whole episodes: ``report.json`` and ``report.png``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from analysis.compare import REGION_PRESETS, Box, compare_maps, mean_ci, stack_shares
from analysis.playback import head_pair, play
from analysis.saliency import jacobian_saliency, to_frame


def collect(net: nn.Module, config: dict[str, Any], episodes: int | None, seed: int = 0,
            batch: int = 64, progress: bool = True,
            steps: int | None = None) -> tuple[tuple[str, ...], dict[str, list[np.ndarray]]]:  # fmt: skip
    """Play ``episodes`` episodes or ``steps`` steps (give one); return per-step per-frame
    saliency maps for the two heads."""
    from tqdm import tqdm

    obs_buf: list[np.ndarray] = []
    maps: dict[str, list[np.ndarray]] = {}
    heads: tuple[str, ...] = ()
    bar = tqdm(desc="playing", unit="step", disable=not progress)

    def flush() -> None:
        for h in heads:
            maps.setdefault(h, []).extend(
                jacobian_saliency(net, np.stack(obs_buf), head=h).per_frame
            )
        obs_buf.clear()

    for step in play(net, config, steps=steps, episodes=episodes, seed=seed):
        if not heads:
            heads = head_pair(list(step.heads))
            if len(heads) < 2:
                raise ValueError(f"the network has one head ({heads[0]}); a comparison needs two")
        obs_buf.append(step.obs)
        bar.update(1)
        if len(obs_buf) == batch:
            flush()
    if obs_buf:
        flush()
    bar.close()
    return heads, maps


def head_report(
    heads: tuple[str, ...], maps: dict[str, list[np.ndarray]], regions: dict[str, Box]
) -> dict[str, Any]:
    """Per-frame comparisons (on the 210x160 screen) and their episode aggregates."""
    a_name, b_name = heads
    a_frames = np.stack(maps[a_name])  # (T, stack, 84, 84)
    b_frames = np.stack(maps[b_name])
    a_screen, b_screen = to_frame(a_frames.sum(1)), to_frame(b_frames.sum(1))
    per_frame = [compare_maps(a, b, regions) for a, b in zip(a_screen, b_screen, strict=True)]
    series = {k: np.array([getattr(c, k) for c in per_frame]) for k in
              ("pearson", "spearman", "top5_iou", "concentration_a", "concentration_b", "entropy_a",
               "entropy_b", "centre_distance")}  # fmt: skip
    summary: dict[str, Any] = {k: dict(zip(("mean", "ci_low", "ci_high"), mean_ci(v), strict=True))
                               for k, v in series.items()}  # fmt: skip
    region_stats = {}
    for which, name in (("regions_a", a_name), ("regions_b", b_name)):
        for region in regions:
            values = np.array([getattr(c, which)[region] for c in per_frame])
            region_stats[f"{name}/{region}"] = dict(
                zip(("mean", "ci_low", "ci_high"), mean_ci(values), strict=True)
            )
    mean_a, mean_b = a_screen.mean(0), b_screen.mean(0)
    whole = dataclasses.asdict(compare_maps(mean_a, mean_b, regions))
    return {
        "heads": list(heads),
        "frames": len(per_frame),
        "per_frame_summary": summary,
        "regions": region_stats,
        "region_boxes": {k: list(v) for k, v in regions.items()},
        "mean_maps": whole,
        "stack_shares": {
            a_name: stack_shares(a_frames.sum(0)).tolist(),
            b_name: stack_shares(b_frames.sum(0)).tolist(),
        },
        "series": {k: v.tolist() for k, v in series.items()},
        "_mean_maps": (mean_a, mean_b),
    }


def write_report(
    report: dict[str, Any], out_dir: str | os.PathLike[str], title: str = ""
) -> tuple[Path, Path]:
    """``report.json`` (everything but the arrays) and ``report.png`` (the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mean_a, mean_b = report["_mean_maps"]
    a_name, b_name = report["heads"]
    data = {k: v for k, v in report.items() if not k.startswith("_")}
    (out / "report.json").write_text(json.dumps(data, indent=2))
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    na, nb = mean_a / (mean_a.max() or 1), mean_b / (mean_b.max() or 1)
    for ax, m, t in (
        (axes[0, 0], na, f"mean {a_name} saliency"),
        (axes[0, 1], nb, f"mean {b_name} saliency"),
    ):
        ax.imshow(m, cmap="inferno")
        ax.set_title(t)
        ax.axis("off")
    diff = na - nb
    lim = np.abs(diff).max() or 1
    axes[0, 2].imshow(diff, cmap="coolwarm", vmin=-lim, vmax=lim)
    axes[0, 2].set_title(f"{a_name} - {b_name} (normalised)")
    axes[0, 2].axis("off")
    for name, (top, left, bottom, right) in report["region_boxes"].items():
        for ax in axes[0]:
            ax.add_patch(
                plt.Rectangle((left, top), right - left, bottom - top, fill=False, ec="lime", lw=1)
            )
            ax.text(left + 1, top + 6, name, color="lime", fontsize=6)
    axes[1, 0].plot(report["series"]["pearson"], lw=0.8, label="Pearson")
    axes[1, 0].plot(report["series"]["top5_iou"], lw=0.8, label="top-5% IoU")
    axes[1, 0].set_title("per-frame agreement over time")
    axes[1, 0].set_xlabel("step")
    axes[1, 0].legend()
    names = list(report["region_boxes"])
    x = np.arange(len(names))
    for k, (head, offset) in enumerate(((a_name, -0.2), (b_name, 0.2))):
        stats = [report["regions"][f"{head}/{r}"] for r in names]
        means = [s["mean"] for s in stats]
        err = [[s["mean"] - s["ci_low"] for s in stats], [s["ci_high"] - s["mean"] for s in stats]]
        axes[1, 1].bar(x + offset, means, 0.4, yerr=err, label=head, color=f"C{k}")
    axes[1, 1].set_xticks(x, names, rotation=20, fontsize=8)
    axes[1, 1].set_title("share of saliency per region (95% CI)")
    axes[1, 1].legend()
    shares = report["stack_shares"]
    frames = np.arange(len(shares[a_name]))
    axes[1, 2].bar(frames - 0.2, shares[a_name], 0.4, label=a_name)
    axes[1, 2].bar(frames + 0.2, shares[b_name], 0.4, label=b_name)
    axes[1, 2].set_xticks(frames, [f"t-{len(frames) - 1 - i}" for i in frames])
    axes[1, 2].set_title("share of saliency per stacked frame")
    axes[1, 2].legend()
    fig.suptitle(title or f"{a_name} vs {b_name}: {report['frames']} frames")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=110)
    plt.close(fig)
    return out / "report.json", out / "report.png"


def regions_for(game: str) -> dict[str, Box]:
    return REGION_PRESETS.get(game, {})
