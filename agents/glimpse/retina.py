"""The foveated retina of the Recurrent Attention Model (Mnih, Heess, Graves, Kavukcuoglu 2014).

A glimpse at location ``l`` is ``num_scales`` square patches centred on ``l``: the first
``patch_size`` pixels wide, each next one ``scale_factor`` times wider, every one reduced to
``patch_size`` x ``patch_size`` by average pooling -- high resolution at the centre of gaze, coarse
context around it, as in the paper's Section 3.1. Max pooling is the option for screens whose
objects are smaller than a coarse cell (Breakout's 2x4-pixel ball): averaged over a 16x16 cell the
ball keeps 1/32 of its contrast, pooled by its maximum it keeps all of it, so the periphery still
says *where* something is and the fovea can be sent there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("avg", "max")
# A max-pooled patch is read off the frame's map when the frame holds fewer than this many times the
# patch's pixels (measured: the map is 2.4 times cheaper still at 4.4 times; Retina._from_map). An
# average is always gathered: a map of sums would round differently from the gathered mean (1e-7),
# and Catch's documented seeds were trained with the gathered one.
MAP_AREA = 4


class Retina(nn.Module):
    """``retina(images, locations)`` -> (B, num_scales, C, patch_size, patch_size).

    ``images``: (B, C, H, W) float, or uint8 (read as /255: pass raw frames, only the patches'
    pixels are converted). ``locations``: (B, 2) as (x, y) in [-1, 1], x the column and y
    the row, (0, 0) the centre and (-1, -1) the top-left pixel; (1, 1) is the bottom-right pixel.
    Locations outside [-1, 1] are clamped onto the border (a policy's Gaussian sample can leave the
    square; clamping keeps its log-probability well defined and the glimpse on the screen). Pixels
    beyond the border read as zeros. Batched: no Python loop over the batch.
    """

    def __init__(self, patch_size: int, num_scales: int, scale_factor: int = 2, pool: str = "avg") -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown retina pooling {pool!r}; accepted: {', '.join(POOLS)}")
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be an integer >= 1, got {patch_size!r}")
        if isinstance(num_scales, bool) or not isinstance(num_scales, int) or num_scales < 1:
            raise ValueError(f"num_scales must be an integer >= 1, got {num_scales!r}")
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
            raise ValueError(f"scale_factor must be an integer >= 1, got {scale_factor!r}")
        self.patch_size, self.num_scales, self.scale_factor = patch_size, num_scales, scale_factor
        self.pool_name = pool
        self.map_area = MAP_AREA  # 0 gathers every patch (the benchmark's comparison)
        self.pool = F.avg_pool2d if pool == "avg" else F.max_pool2d
        self.sizes = [patch_size * scale_factor**k for k in range(num_scales)]

    def check_frame(self, height: int, width: int) -> None:
        """Refuse a retina whose smallest patch is larger than the frame (every scale would be)."""
        if self.patch_size > max(height, width):
            raise ValueError(
                f"retina patch {self.patch_size}x{self.patch_size} is larger than the {height}x{width} "
                f"frame at every scale; use --patch-size <= {max(height, width)}"
            )

    def centres(
        self, locations: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel (row, column) of each location's centre."""
        loc = locations.clamp(-1.0, 1.0)
        col = torch.round((loc[:, 0] + 1) / 2 * (width - 1)).long()
        row = torch.round((loc[:, 1] + 1) / 2 * (height - 1)).long()
        return row, col

    def forward(self, images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        if locations.shape != (images.shape[0], 2):
            raise ValueError(f"locations must be (B, 2), got {tuple(locations.shape)}")
        b, c, h, w = images.shape
        self.check_frame(h, w)
        row, col = self.centres(locations, h, w)
        # a patch is gathered pixel by pixel (clamped indices, zeroed outside the frame), so that
        # its cost does not grow with the frame's; a max-pooled one that is not much smaller than
        # the frame is read off the frame's map, for less (see _from_map), unless the frame needs
        # a gradient: the map's maxima would split a tie's gradient among the tied pixels, where
        # max_pool2d gives it to the first (attacks and saliency keep the gradient they had)
        scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
        patches = []
        for size in self.sizes:
            f = size // self.patch_size
            by_map = (f > 1 and self.pool_name == "max" and not images.requires_grad
                      and h * w < self.map_area * size * size)  # fmt: skip
            read = self._from_map if by_map else self._gathered
            patches.append(read(images, row, col, size, f, scale))
        return torch.stack(patches, 1)

    def _gathered(self, images: torch.Tensor, row: torch.Tensor, col: torch.Tensor, size: int,
                  f: int, scale: float) -> torch.Tensor:  # fmt: skip
        """A patch from its pixels, gathered and then pooled: the cost is the patch's, whatever the
        frame's size. Bounds and masks are per row and per column, broadcast to the patch."""
        b, c, h, w = images.shape
        offsets = torch.arange(size, device=images.device) - size // 2
        rows, cols = row[:, None] + offsets, col[:, None] + offsets  # (B, size) each
        row_in = ((rows >= 0) & (rows < h)).float()
        col_in = ((cols >= 0) & (cols < w)).float() * scale  # uint8 frames read as /255
        index = (rows.clamp(0, h - 1) * w)[:, :, None] + cols.clamp(0, w - 1)[:, None, :]
        flat = images.reshape(b, c, h * w)
        patch = torch.gather(flat, 2, index.reshape(b, 1, size * size).expand(b, c, -1))
        patch = patch.reshape(b, c, size, size).float()
        patch = patch * (row_in[:, None, :, None] * col_in[:, None, None, :])
        return self.pool(patch, f) if f > 1 else patch

    def _from_map(self, images: torch.Tensor, row: torch.Tensor, col: torch.Tensor, size: int,
                  f: int, scale: float) -> torch.Tensor:  # fmt: skip
        """A max-pooled patch read off the frame's map of every f x f window's max, at every
        offset (:func:`max_map`), one value gathered per cell: the same values, bitwise, as the
        gathered patch. The map costs a few uint8 maxima per frame pixel where the gathered
        patch costs a float pixel's gather, mask and pool: for Atari's 256-pixel patch (batch 32,
        one thread) 0.8-3.2 ms from 84x84 to 420x320 frames against 31-36 ms gathered, and still
        12.6 against 30.9 ms on a 600x480 frame, 4.4 times the patch's pixels."""
        b, c, h, w = images.shape
        pooled = max_map(images, f)
        mh, mw = pooled.shape[-2:]  # h + f - 1, w + f - 1: map index = window's top-left + f - 1
        starts = torch.arange(self.patch_size, device=images.device) * f - size // 2 + f - 1
        rows, cols = row[:, None] + starts, col[:, None] + starts  # (B, p) each
        row_in = ((rows >= 0) & (rows < mh)).float()
        col_in = ((cols >= 0) & (cols < mw)).float() * scale
        index = (rows.clamp(0, mh - 1) * mw)[:, :, None] + cols.clamp(0, mw - 1)[:, None, :]
        p = self.patch_size
        cells = torch.gather(pooled.reshape(b, c, mh * mw), 2, index.reshape(b, 1, p * p).expand(b, c, -1))
        cells = cells.reshape(b, c, p, p).float()
        return cells * (row_in[:, None, :, None] * col_in[:, None, None, :])


def max_map(images: torch.Tensor, f: int) -> torch.Tensor:
    """The max of every f x f window of the zero-padded frames, one per top-left corner from
    (1 - f, 1 - f) to (H - 1, W - 1): (B, C, H + f - 1, W + f - 1) (a window wholly outside the
    frame would be zero and is left out). A doubling table along each axis (windows of 1, 2, 4, ...
    pixels, the last two overlapping to make f), exact in the frame's own dtype: about 2 log2(f)
    element-wise maxima per pixel, where torch's max_pool2d at stride 1 was ~100 times slower."""
    x = F.pad(images, (f - 1, f - 1, f - 1, f - 1))
    for dim in (-2, -1):
        k = 1
        while 2 * k <= f:  # x[i] is the max of k values from i on; make it 2k
            n = x.size(dim) - k
            x = torch.maximum(x.narrow(dim, 0, n), x.narrow(dim, k, n))
            k *= 2
        if k < f:  # two windows of k that overlap make one of f
            n = x.size(dim) - (f - k)
            x = torch.maximum(x.narrow(dim, 0, n), x.narrow(dim, f - k, n))
    return x
