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
        # gather only the patches' pixels (clamped indices, zeroed outside the frame): the cost
        # does not grow with the frame's size, and uint8 frames are converted pixel by pixel.
        # Bounds and masks are per row and per column, broadcast to the patch.
        flat = images.reshape(b, c, h * w)
        scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
        patches = []
        for size in self.sizes:
            offsets = torch.arange(size, device=images.device) - size // 2
            rows, cols = row[:, None] + offsets, col[:, None] + offsets  # (B, size) each
            row_in = ((rows >= 0) & (rows < h)).float()
            col_in = ((cols >= 0) & (cols < w)).float() * scale
            index = (rows.clamp(0, h - 1) * w)[:, :, None] + cols.clamp(0, w - 1)[:, None, :]
            patch = torch.gather(flat, 2, index.reshape(b, 1, size * size).expand(b, c, -1))
            patch = patch.reshape(b, c, size, size).float()
            patch = patch * (row_in[:, None, :, None] * col_in[:, None, None, :])
            if size != self.patch_size:
                patch = self.pool(patch, size // self.patch_size)
            patches.append(patch)
        return torch.stack(patches, 1)
