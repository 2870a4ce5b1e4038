"""Saliency and attention in TensorBoard during training: images of a fixed probe batch every K steps
and a short clip as an animated GIF (the Q-learners); the soft-attention agent's maps over its last
rollout as a clip, and its newest maps as images.

``SummaryWriter.add_video`` silently writes nothing with moviepy 2 or newer (pytorch issue 147317),
so the clip is encoded here with imageio and written as an image summary whose payload is a GIF:
TensorBoard's image dashboard plays it.
"""

from __future__ import annotations

from typing import Any

import cv2
import imageio.v3 as iio
import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from analysis.playback import head_pair
from analysis.render import overlay
from analysis.saliency import jacobian_saliency


def add_gif(
    writer: SummaryWriter, tag: str, frames: np.ndarray, step: int, fps: float = 8.0
) -> bytes:
    """Write (T, H, W, 3) uint8 frames as an animated GIF image summary; returns the GIF bytes."""
    data = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
    t, h, w, _ = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=data)
    writer._get_file_writer().add_summary(
        Summary(value=[Summary.Value(tag=tag, image=image)]), step
    )
    return data


def saliency_panels(
    net: Any, obs: np.ndarray, heads: tuple[str, ...], scale: int = 3
) -> dict[str, np.ndarray]:
    """Per head, (B, H*scale, W*scale, 3) overlays of the newest stacked frame, each normalised
    to its own batch's 99.5th percentile so that the images of one step are comparable."""
    out = {}
    for h in heads:
        maps = jacobian_saliency(net, obs, head=h).combined
        level = float(np.percentile(maps, 99.5)) or 1.0
        tiles = []
        for o, m in zip(obs, maps, strict=True):
            screen = np.repeat(o[-1][..., None], 3, axis=2)
            tile = overlay(screen, np.clip(m / level, 0, 1))
            tiles.append(
                cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
            )
        out[h] = np.stack(tiles)
    return out


def training_callbacks(cfg: Any) -> list[SaliencyLogger | AttentionLogger]:
    """What a trainer's config asks analysis to log while it trains (saliency images every
    ``saliency_every`` steps for the Q-learners, the attention maps every ``attention_every`` steps
    for the soft-attention agent): the scripts and sweeps wire these into the trainer, which never
    imports analysis itself."""
    callbacks: list[SaliencyLogger | AttentionLogger] = []
    if every := getattr(cfg, "saliency_every", 0):
        callbacks.append(SaliencyLogger(every))
    if every := getattr(cfg, "attention_every", 0):
        callbacks.append(AttentionLogger(every))
    return callbacks


class SaliencyLogger:
    """A trainer callback: ``SaliencyLogger(every=50_000)`` logs ``saliency/<head>`` images of a
    probe batch (the first ``probe_size`` observations of env 0, consecutive, so also a clip) and
    ``saliency/clip``, every ``every`` environment steps, plus once when the probe is complete."""

    def __init__(self, every: int, probe_size: int = 16) -> None:
        if every < 1:
            raise ValueError(f"saliency logging interval must be >= 1, got {every}")
        self.every, self.probe_size = every, probe_size
        self.probe: list[np.ndarray] = []
        self.next_log = 0

    def __call__(self, trainer: Any, step: int) -> None:
        if len(self.probe) < self.probe_size:
            self.probe.append(trainer.last_obs[0].copy())
            return
        if step < self.next_log:
            return
        self.next_log = step + self.every
        net = trainer.q_network
        obs = np.stack(self.probe)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            heads = head_pair(
                list(net(torch.from_numpy(obs[:1]).to(next(net.parameters()).device)))
            )
        panels = saliency_panels(net, obs, heads)
        net.train(was_training)
        for h, imgs in panels.items():
            trainer.writer.add_images(f"saliency/{h}", imgs[:8], step, dataformats="NHWC")
        clip = np.concatenate([panels[h] for h in heads], axis=2)  # heads side by side
        add_gif(trainer.writer, "saliency/clip", clip, step)


class AttentionLogger:
    """A soft-attention trainer's callback: every ``every`` environment steps (and after the first
    update), env 0's last rollout as ``attention/clip``, a GIF of the frame the agent saw beside
    each query's map over it, a frame a step, and the newest step's maps as ``attention/maps``.
    The trainer keeps that rollout's frames and maps (``last_attention``)."""

    def __init__(self, every: int, height: int = 168) -> None:
        if every < 1:
            raise ValueError(f"attention logging interval must be >= 1, got {every}")
        self.every, self.height = every, height
        self.next_log = 0

    def __call__(self, trainer: Any, step: int) -> None:
        if step < self.next_log:
            return
        self.next_log = step + self.every
        from analysis.attention_video import query_overlays
        from analysis.render import panels

        obs, maps = trainer.last_attention  # (T, C, H, W) uint8, (T, queries, h, w)
        newest = maps[-1] / maps[-1].max(axis=(1, 2), keepdims=True)
        trainer.writer.add_images("attention/maps", newest[:, None], step)
        frames = []
        for frame, attention in zip(obs[:, -1], maps, strict=True):
            screen = np.repeat(frame[..., None], 3, axis=2)
            frames.append(panels([screen, *query_overlays(screen, attention, trainer.model)], self.height))
        add_gif(trainer.writer, "attention/clip", np.stack(frames), step)
