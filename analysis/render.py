"""Drawing saliency the way Wang et al. 2016 (Fig. 2) do: the grey game frame in the green and blue
channels, the saliency in red; side-by-side panels with a small heads-up display."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class RunningPercentile:
    """Normaliser that does not flicker: divides by an exponential moving average of each frame's
    ``q``-th percentile (``momentum`` 0.95 ~ a 20-frame memory), so one frame's spike neither blanks
    the next frames nor makes a quiet frame glow. ``momentum=0`` is per-frame normalisation."""

    def __init__(self, q: float = 99.5, momentum: float = 0.95) -> None:
        self.q, self.momentum = q, momentum
        self.scale: float | None = None

    def __call__(self, m: np.ndarray) -> np.ndarray:
        level = float(np.percentile(m, self.q)) or float(m.max()) or 1.0
        self.scale = (
            level
            if self.scale is None
            else self.momentum * self.scale + (1 - self.momentum) * level
        )
        return np.clip(m / self.scale, 0.0, 1.0)


def overlay(screen: np.ndarray, saliency01: np.ndarray) -> np.ndarray:
    """Grey screen in green and blue, saliency (in [0, 1], screen-sized) in red."""
    grey = cv2.cvtColor(screen, cv2.COLOR_RGB2GRAY).astype(np.float32)
    out = np.empty((*grey.shape, 3), np.uint8)
    out[..., 0] = np.clip(grey * 0.6 + 255 * saliency01, 0, 255).astype(np.uint8)
    out[..., 1] = (grey * 0.6).astype(np.uint8)
    out[..., 2] = (grey * 0.6).astype(np.uint8)
    return out


def _put_lines(image: np.ndarray, lines: list[str], line_height: int, scale: float) -> None:
    for i, text in enumerate(lines):
        org = (line_height // 3 + 2, line_height * (i + 1))
        cv2.putText(
            image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )


def label(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write ``lines`` in the top-left corner (white on a darkened band)."""
    image = image.copy()
    band = 14 * len(lines) + 6
    image[:band] = (image[:band] * 0.35).astype(np.uint8)
    _put_lines(image, lines, 14, 0.42)
    return image


def hud_strip(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """Append a black strip under ``frame`` with ``lines`` of heads-up display."""
    strip = np.zeros((18 * len(lines) + 8, frame.shape[1], 3), np.uint8)
    _put_lines(strip, lines, 18, 0.5)
    return np.concatenate([frame, strip], axis=0)


def panels(images: list[np.ndarray], height: int = 420) -> np.ndarray:
    """Upscale (nearest neighbour) to ``height`` rows and lay side by side."""
    scaled = []
    for im in images:
        h, w = im.shape[:2]
        scaled.append(
            cv2.resize(im, (round(w * height / h), height), interpolation=cv2.INTER_NEAREST)
        )
    return np.concatenate(scaled, axis=1)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: figures are files here, never windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], title: str = "", dpi: int = 100) -> Path:
    """Title, lay out, write and close a matplotlib figure; returns its path."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    fig.clf()
    pyplot().close(fig)
    return path


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (the benchmarks' and the sweeps' results)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
