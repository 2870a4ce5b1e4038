"""Saliency videos of gameplay: the game, then one saliency panel per head, side by side."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analysis.playback import Step, head_pair, obs_shape, play
from analysis.render import RunningPercentile, hud_strip, label, overlay, panels
from analysis.saliency import attribute, check_method, to_frame
from analysis.video import VideoWriter, check_writable


def _hud(step: Step, heads: tuple[str, ...], action_names: list[str] | None) -> list[str]:
    act = action_names[step.action] if action_names else str(step.action)
    parts = [f"step {step.t}  ep {step.episode}  score {step.score:.0f}  action {act}"]
    h = step.heads
    if "value" in h:
        parts.append(f"V {float(h['value']):.2f}")
    if "advantage" in h:
        parts[-1] += f"   max A {float(np.max(h['advantage'])):.2f}"
    if "q" in h and "value" not in h:
        parts.append(f"max Q {float(np.max(h['q'])):.2f}")
    return parts


def saliency_frame(
    screen: np.ndarray, maps: dict[str, np.ndarray], norms: dict[str, RunningPercentile], height: int
) -> np.ndarray:
    """The screen, then each head's (84x84) map overlaid on it, titled, side by side."""
    shape = screen.shape[:2]  # Atari's 210x160, or the observation's own size (Catch)
    tiles = [screen] + [overlay(screen, to_frame(norms[h](m), shape)) for h, m in maps.items()]
    frame = panels(tiles, height)
    w = frame.shape[1] // len(tiles)
    for k, title in enumerate(["game"] + [f"{h} saliency" for h in maps]):
        frame[:, k * w : (k + 1) * w] = label(frame[:, k * w : (k + 1) * w], [title])
    return frame


def record_saliency(
    net: nn.Module,
    config: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    steps: int | None = None,
    episodes: int | None = None,
    epsilon: float = 0.001,
    seed: int = 0,
    per_frame_norm: bool = False,
    fps: float = 30.0,
    height: int = 420,
    batch: int = 64,
    progress: bool = True,
    method: str = "jacobian",
) -> Path:
    """Play and write an H.264 mp4: the screen, then each head's saliency overlaid on it.

    Saliency (any of :data:`analysis.saliency.METHODS`) is computed ``batch`` steps at a time (one
    batched call per head per batch). The normaliser is a running percentile per head (see
    :class:`RunningPercentile`) unless ``per_frame_norm``.
    """
    from tqdm import tqdm

    check_method(method)
    out = check_writable(out)
    with torch.no_grad():
        probe = net(torch.zeros(1, *obs_shape(net, config), dtype=torch.uint8))
    heads = head_pair(list(probe))
    norms = {h: RunningPercentile(momentum=0.0 if per_frame_norm else 0.95) for h in heads}
    names = config.get("action_set") if isinstance(config.get("action_set"), list) else None
    bar = tqdm(total=steps, desc="saliency video", unit="frame", disable=not progress)
    pending: list[Step] = []

    def flush(video: VideoWriter) -> None:
        obs = np.stack([s.obs for s in pending])
        # normalise on the 84x84 maps (4.8x fewer pixels for the percentile), then map to the screen
        maps = {h: attribute(net, obs, h, method).combined for h in heads}
        for i, s in enumerate(pending):
            frame = saliency_frame(s.screen, {h: maps[h][i] for h in heads}, norms, height)
            video.write(hud_strip(frame, _hud(s, heads, names)))
            bar.update(1)
        pending.clear()

    with VideoWriter(out, fps=fps) as video:
        for step in play(net, config, steps=steps, episodes=episodes, epsilon=epsilon, seed=seed):
            pending.append(step)
            if len(pending) == batch:
                flush(video)
        if pending:
            flush(video)
    bar.close()
    return video.path
