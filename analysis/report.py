"""Head-versus-head report over whole episodes: ``report.json``, ``report.png``, the sanity and
fidelity figures, a clip, and ``report.html`` that holds them all in one page."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.compare import REGION_PRESETS, Box, compare_maps, mean_ci_dict, spearman, stack_shares
from analysis.explorer import explorer_data
from analysis.fidelity import deletion_curve, insertion_curve, plot_fidelity
from analysis.objects import GAMES as OBJECT_GAMES
from analysis.objects import Box as ObjectBox
from analysis.objects import boxes, check_classes, object_report, stacked_boxes
from analysis.playback import head_pair, play
from analysis.saliency import attribute, check_method, heads_of, to_frame
from analysis.sanity import plot_randomization, randomization_test
from analysis.xai_metrics import quantus_scores


@dataclass
class Collected:
    """What one playback gives the report: the observations, the first ``clip`` screens, and per
    method and head the maps (per stacked frame, or (T, H, W) for the perturbation method)."""

    heads: tuple[str, ...]
    obs: np.ndarray  # (T, stack, H, W) uint8
    screens: list[np.ndarray]
    maps: dict[str, dict[str, np.ndarray]]
    frame_shape: tuple[int, int]  # the game screen's: 210x160 on Atari, the observation's on Catch
    game: str = ""
    objects: list[list[ObjectBox]] | None = None  # each step's objects, for a game with RAM tables
    actions: list[int] = dataclasses.field(default_factory=list)  # each clip step's action
    outputs: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)  # and its heads
    on_screen: list[list[ObjectBox]] = dataclasses.field(default_factory=list)  # and its frame's objects
    action_names: list[str] | None = None
    classes: tuple[str, ...] = ()  # the object classes measured (analysis.objects.check_classes)


def collect(net: nn.Module, config: dict[str, Any], episodes: int | None, seed: int = 0,
            batch: int = 64, progress: bool = True, steps: int | None = None,
            methods: Sequence[str] = ("jacobian",), clip: int = 0,
            classes: Sequence[str] = ()) -> Collected:  # fmt: skip
    """Play ``episodes`` episodes or ``steps`` steps (give one), keep the observations (and the first
    ``clip`` screens), and compute each method's maps of the two heads, ``batch`` steps a call.
    ``classes``: the object classes to measure the maps against (all the game's unless given; a
    game without object tables has none, and naming classes for it is an error)."""
    from tqdm import tqdm

    for m in methods:
        check_method(m)
    game = config.get("game", "")
    kept = check_classes(game, classes) if classes or game in OBJECT_GAMES else ()
    obs: list[np.ndarray] = []
    screens: list[np.ndarray] = []
    heads: tuple[str, ...] = ()
    frame_shape = (210, 160)
    objects: list[list[ObjectBox]] | None = [] if kept else None
    episode_of: list[int] = []  # each kept step's episode
    actions: list[int] = []
    outputs: list[dict[str, np.ndarray]] = []
    for step in tqdm(play(net, config, steps=steps, episodes=episodes, seed=seed),
                     desc="playing", unit="step", disable=not progress):  # fmt: skip
        if objects is not None and step.pooled is not None:
            objects.append([b for b in boxes(game, step.pooled) if b.cls in kept])
            episode_of.append(step.episode)
        if not heads:
            heads = head_pair(list(step.heads))
            if len(heads) < 2:
                raise ValueError(f"the network has one head ({heads[0]}); a comparison needs two")
        obs.append(step.obs)
        frame_shape = step.screen.shape[:2]
        if len(screens) < clip:
            screens.append(step.screen)
            actions.append(step.action)
            outputs.append(step.heads)
    all_obs = np.stack(obs)
    maps: dict[str, dict[str, np.ndarray]] = {}
    with tqdm(total=len(methods) * len(heads) * len(all_obs), desc="saliency", unit="map",
              disable=not progress) as bar:  # fmt: skip
        for m in methods:
            maps[m] = {}
            for h in heads:
                parts = []
                for start in range(0, len(all_obs), batch):
                    r = attribute(net, all_obs[start : start + batch], h, m)
                    parts.append(r.combined if r.per_frame is None else r.per_frame)
                    bar.update(len(parts[-1]))
                maps[m][h] = np.concatenate(parts)
    on_screen = objects[:clip] if objects else []
    if objects:  # the maps sum over the stacked frames: each object wherever those frames had it
        objects = stacked_boxes(objects, episode_of, all_obs.shape[1])
    names = config.get("action_set") if isinstance(config.get("action_set"), list) else None
    return Collected(heads, all_obs, screens, maps, frame_shape, game, objects or None, actions, outputs,
                     on_screen, names, kept)


def _combined(maps: np.ndarray) -> np.ndarray:
    return maps.sum(1) if maps.ndim == 4 else maps


def head_report(
    heads: tuple[str, ...], maps: dict[str, np.ndarray], regions: dict[str, Box],
    frame_shape: tuple[int, int] = (210, 160),
) -> dict[str, Any]:
    """Per-frame comparisons (on the game screen) and their episode aggregates."""
    a_name, b_name = heads
    a_frames, b_frames = maps[a_name], maps[b_name]  # (T, stack, 84, 84) or (T, 84, 84)
    a_screen = to_frame(_combined(a_frames), frame_shape)
    b_screen = to_frame(_combined(b_frames), frame_shape)
    per_frame = [compare_maps(a, b, regions) for a, b in zip(a_screen, b_screen, strict=True)]
    series = {k: np.array([getattr(c, k) for c in per_frame]) for k in
              ("pearson", "spearman", "top5_iou", "concentration_a", "concentration_b", "entropy_a",
               "entropy_b", "centre_distance")}  # fmt: skip
    # frames follow each other in time: intervals by batch means (analysis.compare.batch_means_ci)
    summary: dict[str, Any] = {k: mean_ci_dict(v, series=True) for k, v in series.items()}
    shares = {(name, region): np.array([getattr(c, which)[region] for c in per_frame])
              for which, name in (("regions_a", a_name), ("regions_b", b_name))
              for region in regions}  # fmt: skip
    region_stats = {f"{name}/{region}": mean_ci_dict(v, series=True)
                    for (name, region), v in shares.items()}  # fmt: skip
    # paired per frame: is a region's share larger under one head than under the other?
    differences = {f"{a_name} - {b_name}/{region}": mean_ci_dict(
        shares[a_name, region] - shares[b_name, region], series=True) for region in regions}
    mean_a, mean_b = a_screen.mean(0), b_screen.mean(0)
    whole = dataclasses.asdict(compare_maps(mean_a, mean_b, regions))
    return {
        "heads": list(heads),
        "frames": len(per_frame),
        "per_frame_summary": summary,
        "regions": region_stats,
        "region_differences": differences,
        "region_boxes": {k: list(v) for k, v in regions.items()},
        "mean_maps": whole,
        # per stacked frame; a perturbation map blurs the whole stack at once and has no shares
        "stack_shares": {
            a_name: stack_shares(a_frames.sum(0)).tolist(),
            b_name: stack_shares(b_frames.sum(0)).tolist(),
        } if a_frames.ndim == 4 else {},
        "series": {k: v.tolist() for k, v in series.items()},
        "_mean_maps": (mean_a, mean_b),
    }


def method_agreement(collected: Collected) -> dict[str, dict[str, dict[str, float]]]:
    """Per head and pair of methods: the per-frame Spearman correlation of their maps (mean, CI)."""
    methods = list(collected.maps)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for h in collected.heads:
        out[h] = {}
        for i, m1 in enumerate(methods):
            for m2 in methods[i + 1 :]:
                a, b = _combined(collected.maps[m1][h]), _combined(collected.maps[m2][h])
                rho = [spearman(x, y) for x, y in zip(a, b, strict=True)]
                out[h][f"{m1} vs {m2}"] = mean_ci_dict(np.array(rho))
    return out


def vector_head(net: nn.Module, obs: np.ndarray, heads: Sequence[str]) -> str | None:
    """The first of ``heads`` with one output per action (the advantage, an actor's logits)."""
    with torch.no_grad():
        out = heads_of(net, torch.from_numpy(obs[:1]).to(next(net.parameters()).device))
    return next((h for h in heads if out[h].dim() == 2 and out[h].shape[1] > 1), None)


def action_control(net: nn.Module, obs: np.ndarray, chosen: np.ndarray, head: str, method: str = "jacobian",
                   seed: int = 0, batch: int = 64) -> dict[str, Any]:  # fmt: skip
    """The random-action control of a per-action head: each frame's map for the chosen action
    (``chosen``, (T, H, W), the maps the report shows) against its map for another action drawn at
    random, by the sanity check's similarities (:func:`analysis.sanity.similarities`), with
    batch-means intervals over the frames. Maps that do not differ say nothing about the choice:
    they show what every action's output reads, not what sets this action apart."""
    from analysis.sanity import similarities

    rng = np.random.default_rng(seed)
    others = []
    for start in range(0, len(obs), batch):
        part = torch.from_numpy(obs[start : start + batch])
        with torch.no_grad():
            out = heads_of(net, part.to(next(net.parameters()).device))[head]
        picked = out.argmax(1).cpu().numpy()
        other = (picked + rng.integers(1, out.shape[1], size=len(picked))) % out.shape[1]
        others.append(attribute(net, part, head, method, action=other, seed=seed).combined)
    found = similarities(chosen, np.concatenate(others))
    return {"head": head, "method": method, "frames": len(obs),
            "similarity": {k: mean_ci_dict(v, series=True) for k, v in found.items()}}  # fmt: skip


def build_report(net: nn.Module, collected: Collected, regions: dict[str, Box], probe: int = 16,
                 seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Every method's head comparison, the agreement between methods, and on ``probe`` frames
    spread over the playback the randomisation sanity check and the deletion and insertion curves.
    The first method's comparison also sits at the top level (the layout of a one-method report);
    keys starting with ``_`` hold what the figures need and stay out of ``report.json``."""
    methods = list(collected.maps)
    per_method = {m: head_report(collected.heads, collected.maps[m], regions, collected.frame_shape)
                  for m in methods}  # fmt: skip
    report = dict(per_method[methods[0]])
    report["method"] = methods[0]
    report["methods"] = {m: {k: v for k, v in r.items() if not k.startswith("_") and k != "series"}
                         for m, r in per_method.items()}  # fmt: skip
    report["method_agreement"] = method_agreement(collected)
    head = vector_head(net, collected.obs, collected.heads)
    per_action = [m for m in methods if m != "perturbation"]  # an occlusion map scores every action
    if head is not None and per_action:
        chosen = _combined(collected.maps[per_action[0]][head])
        report["action_control"] = action_control(net, collected.obs, chosen, head, per_action[0], seed)
    if collected.objects:  # where each head looks among the game's objects (analysis.objects)
        report["objects"] = {m: object_report(collected.game, collected.heads,
                                              {h: _combined(collected.maps[m][h]) for h in collected.heads},
                                              collected.objects, collected.classes)
                             for m in methods}  # fmt: skip
    idx = np.unique(np.linspace(0, len(collected.obs) - 1, min(probe, len(collected.obs))).round())
    idx = idx.astype(np.int64)
    probe_obs = collected.obs[idx]
    sanity, fidelity = {}, {}
    for m in methods:
        sanity[m] = randomization_test(net, probe_obs, collected.heads, m, seed=seed)
        fidelity[m] = {}
        for h in collected.heads:
            maps = _combined(collected.maps[m][h][idx])
            fidelity[m][h] = [fn(net, probe_obs, maps, h, seed=seed)
                              for fn in (deletion_curve, insertion_curve)]  # fmt: skip
    report["quantus"] = {m: {h: quantus_scores(net, probe_obs, h, m, seed, collected.maps[m][h][idx])
                             for h in collected.heads}
                         for m in methods if collected.maps[m][collected.heads[0]].ndim == 4}  # fmt: skip
    report["probe_frames"] = idx.tolist()
    report["sanity"] = {m: r.summary() for m, r in sanity.items()}
    report["fidelity"] = {m: {h: {c.kind: c.summary() for c in curves} for h, curves in f.items()}
                          for m, f in fidelity.items()}  # fmt: skip
    report["_sanity"], report["_fidelity"] = sanity, fidelity
    report["_clip"] = (collected.screens, {h: _combined(collected.maps[methods[0]][h])
                                           for h in collected.heads})  # fmt: skip
    if collected.screens:
        report["_explorer"] = explorer_data(collected, collected.action_names)
    return report


def write_clip(screens: list[np.ndarray], maps: dict[str, np.ndarray], path: Path,
               fps: float = 15.0, height: int = 210) -> Path:  # fmt: skip
    """A WebM (VP9) clip of the first frames: the game beside each head's saliency. WebM, not the
    H.264 of our videos: every current browser plays VP9, Chromium builds without H.264 included."""
    import imageio_ffmpeg

    from analysis.render import RunningPercentile
    from analysis.saliency_video import saliency_frame

    norms = {h: RunningPercentile() for h in maps}
    frames = [saliency_frame(s, {h: m[i] for h, m in maps.items()}, norms, height)
              for i, s in enumerate(screens)]  # fmt: skip
    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libvpx-vp9", pix_fmt_out="yuv420p", macro_block_size=2,
        ffmpeg_log_level="error", output_params=["-b:v", "0", "-crf", "40", "-deadline", "good",
                                                  "-cpu-used", "5"],
    )  # fmt: skip
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path


def _plot_checks(report: dict[str, Any], out: Path) -> list[Path]:
    from analysis.render import pyplot, save_figure

    plt = pyplot()

    paths = []
    for m, result in report["_sanity"].items():
        paths.append(plot_randomization(result, out / f"sanity_{m}.png"))
    fidelity = report["_fidelity"]
    fig, axes = plt.subplots(len(fidelity), 2, figsize=(11, 3.6 * len(fidelity)), squeeze=False)
    for row, (m, curves) in zip(axes, fidelity.items(), strict=True):
        for ax, kind in zip(row, ("deletion", "insertion"), strict=True):
            plot_fidelity([c for cs in curves.values() for c in cs if c.kind == kind], ax)
            ax.set_title(f"{m}: {kind} (solid: by the map, dashed: random pixels)", fontsize=9)
    return [*paths, save_figure(fig, out / "fidelity.png")]


# what write_report puts in its folder, report.json first (what marks a folder as a report's)
REPORT_FILES = ("report.json", "report.png", "report.html", "sanity_*.png", "fidelity.png", "clip.webm")


def write_report(
    report: dict[str, Any], out_dir: str | os.PathLike[str], title: str = ""
) -> list[Path]:
    """``report.json`` (everything but the arrays), ``report.png`` (the head comparison), and, for a
    report from :func:`build_report`, ``sanity_<method>.png``, ``fidelity.png``, ``clip.webm`` and
    ``report.html``, the page that holds them all."""
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
    if names:
        axes[1, 1].set_xticks(x, names, rotation=20, fontsize=8)
        axes[1, 1].set_title("share of saliency per region (95% CI)")
        axes[1, 1].legend()
    else:  # no region presets for this game (analysis.compare.REGION_PRESETS)
        axes[1, 1].axis("off")
    shares = report["stack_shares"]
    if shares:
        frames = np.arange(len(shares[a_name]))
        axes[1, 2].bar(frames - 0.2, shares[a_name], 0.4, label=a_name)
        axes[1, 2].bar(frames + 0.2, shares[b_name], 0.4, label=b_name)
        axes[1, 2].set_xticks(frames, [f"t-{len(frames) - 1 - i}" for i in frames])
        axes[1, 2].set_title("share of saliency per stacked frame")
        axes[1, 2].legend()
    else:
        axes[1, 2].axis("off")
    fig.suptitle(title or f"{a_name} vs {b_name}: {report['frames']} frames")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=110)
    plt.close(fig)
    paths = [out / "report.json", out / "report.png"]
    if "_sanity" in report:
        from analysis.html_report import write_html

        paths += _plot_checks(report, out)
        screens, maps = report["_clip"]
        if screens:
            paths.append(write_clip(screens, maps, out / "clip.webm"))
        paths.append(write_html(report, out, title or f"{a_name} vs {b_name}"))
    return paths


def regions_for(game: str) -> dict[str, Box]:
    return REGION_PRESETS.get(game, {})
