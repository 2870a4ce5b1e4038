"""The soft, query-based attention of Mott et al. 2019 ("Towards Interpretable Reinforcement Learning
Using Attention Augmented Agents", NeurIPS; arXiv 1906.02500, Section 2): a fixed spatial basis
joined to the keys and the values, and each query's softmax over the feature map's positions.

Pure functions of tensors, so that what the attention computes can be tested by hand apart from
the network that learns its keys, values and queries."""

from __future__ import annotations

import math

import torch


def spatial_basis(height: int, width: int, frequencies: int) -> torch.Tensor:
    """((frequencies + 1)**2 - 1, height, width): the products ``cos(pi u (i + 0.5) / height)
    cos(pi v (j + 0.5) / width)`` for ``u, v`` in ``0 .. frequencies``, less the constant ``u = v =
    0``: a fixed Fourier basis of positions (Mott et al. 2019, Section 2.1). Joined to the keys, it
    lets a query ask for a place; joined to the values, it tells the answer where it was found. The
    terms with ``u = 0`` (``v = 0``) are cosines of the column (the row) alone, so that a linear
    readout of an answer gives an object's column whatever its row (with products alone, the
    column's terms vanish wherever the row's cosine does)."""
    if frequencies < 1:
        raise ValueError(f"the spatial basis needs at least one frequency (got {frequencies})")
    if frequencies >= min(height, width):
        raise ValueError(f"a spatial basis of {frequencies} frequencies is finer than the {height}x{width} "
                         f"feature map it labels: use at most {min(height, width) - 1}")  # fmt: skip
    u = torch.arange(frequencies + 1, dtype=torch.float32)
    rows = torch.cos(math.pi * u[:, None] * (torch.arange(height) + 0.5) / height)  # (F + 1, H)
    cols = torch.cos(math.pi * u[:, None] * (torch.arange(width) + 0.5) / width)  # (F + 1, W)
    return (rows[:, None, :, None] * cols[None, :, None, :]).reshape(-1, height, width)[1:]


def attend(keys: torch.Tensor, values: torch.Tensor, queries: torch.Tensor,
           temperature: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Each query's attention over the positions of a feature map, and its answer.

    ``keys`` (B, K, H, W) and ``values`` (B, V, H, W), the spatial basis already joined to both;
    ``queries`` (B, N, K). Returns the attention maps (B, N, H, W), each a softmax over the H x W
    positions of the query's inner product with the key there, and the answers (B, N, V), the
    values summed under each map. With a ``temperature``, the logits are the cosine of query and
    key times it instead (QK-norm, Henry et al. 2020): bounded, so that a map can start sharp and
    never saturates past ``exp(2 * temperature)`` between two positions."""
    if queries.shape[1] < 1:
        raise ValueError("the attention needs at least one query (got 0)")
    if temperature is not None:
        keys = torch.nn.functional.normalize(keys, dim=1)
        queries = torch.nn.functional.normalize(queries, dim=-1) * temperature
    b, k, h, w = keys.shape
    logits = torch.einsum("bnk,bkp->bnp", queries, keys.reshape(b, k, h * w))
    maps = logits.softmax(-1)
    answers = torch.einsum("bnp,bvp->bnv", maps, values.reshape(b, values.shape[1], h * w))
    return maps.reshape(b, -1, h, w), answers
