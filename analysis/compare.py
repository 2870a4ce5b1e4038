"""Comparing two saliency maps (value against advantage, actor against critic), per frame and over
an episode. All maps are non-negative (H, W) arrays; nothing here knows about networks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[
    int, int, int, int
]  # (top, left, bottom, right) in frame pixels, bottom/right exclusive

# Regions in 210x160 screen coordinates, read off the games' screens.
REGION_PRESETS: dict[str, dict[str, Box]] = {
    # Enduro: the horizon where new cars appear, against the road just ahead of the player's car
    "enduro": {
        "horizon": (50, 8, 100, 160),
        "road_near_car": (120, 8, 155, 160),
        "score": (160, 40, 190, 120),
    },
    # Pong: each paddle's column and the score strip
    "pong": {
        "left_paddle": (34, 14, 194, 24),
        "right_paddle": (34, 136, 194, 146),
        "score": (0, 0, 24, 160),
    },
}


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    total = m.sum()
    return m / total if total > 0 else np.full_like(m, 1.0 / m.size)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho needs."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, first, counts = np.unique(sorted_x, return_index=True, return_counts=True)
    mean_rank = first + (counts - 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return pearson(_ranks(np.ravel(a)), _ranks(np.ravel(b)))


def top_mask(m: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` most salient pixels (at least one)."""
    k = max(1, int(round(fraction * m.size)))
    flat = np.ravel(m)
    idx = np.argpartition(-flat, k - 1)[:k]
    mask = np.zeros(m.size, bool)
    mask[idx] = True
    return mask.reshape(m.shape)


def top_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.05) -> float:
    ma, mb = top_mask(a, fraction), top_mask(b, fraction)
    return float((ma & mb).sum() / (ma | mb).sum())


def concentration(m: np.ndarray, fraction: float = 0.05) -> float:
    """Share of the total saliency in the top ``fraction`` of pixels (1/fraction-uniform = fraction)."""
    p = _normalise(m)
    return float(p[top_mask(p, fraction)].sum())


def entropy(m: np.ndarray) -> float:
    """Shannon entropy (nats) of the map as a distribution over pixels; log(H*W) when uniform."""
    p = _normalise(m).ravel()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def centre_of_mass(m: np.ndarray) -> tuple[float, float]:
    """(row, column) of the map's centre of mass."""
    p = _normalise(m)
    rows, cols = np.indices(p.shape)
    return float((p * rows).sum()), float((p * cols).sum())


def profiles(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical (per row) and horizontal (per column) shares of the mass."""
    p = _normalise(m)
    return p.sum(1), p.sum(0)


def region_shares(m: np.ndarray, regions: dict[str, Box]) -> dict[str, float]:
    p = _normalise(m)
    out = {}
    for name, (top, left, bottom, right) in regions.items():
        out[name] = float(p[top:bottom, left:right].sum())
    return out


def stack_shares(per_frame: np.ndarray) -> np.ndarray:
    """Share of saliency on each stacked frame, oldest first: how far back in time a head looks."""
    totals = per_frame.reshape(per_frame.shape[0], -1).sum(1)
    s = totals.sum()
    return totals / s if s > 0 else np.full(len(totals), 1.0 / len(totals))


@dataclass
class FrameComparison:
    pearson: float
    spearman: float
    top5_iou: float
    concentration_a: float
    concentration_b: float
    entropy_a: float
    entropy_b: float
    centre_a: tuple[float, float]
    centre_b: tuple[float, float]
    centre_distance: float
    regions_a: dict[str, float]
    regions_b: dict[str, float]


def compare_maps(
    a: np.ndarray, b: np.ndarray, regions: dict[str, Box] | None = None
) -> FrameComparison:
    """Every per-frame metric between map ``a`` and map ``b`` (same shape)."""
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} and {b.shape}")
    ca, cb = centre_of_mass(a), centre_of_mass(b)
    return FrameComparison(
        pearson=pearson(a, b),
        spearman=spearman(a, b),
        top5_iou=top_iou(a, b, 0.05),
        concentration_a=concentration(a),
        concentration_b=concentration(b),
        entropy_a=entropy(a),
        entropy_b=entropy(b),
        centre_a=ca,
        centre_b=cb,
        centre_distance=float(np.hypot(ca[0] - cb[0], ca[1] - cb[1])),
        regions_a=region_shares(a, regions or {}),
        regions_b=region_shares(b, regions or {}),
    )


def mean_ci(values: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95% confidence interval of the mean."""
    v = np.asarray(values, np.float64)
    mean = float(v.mean())
    half = float(z * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return mean, mean - half, mean + half


def batch_means_ci(values: np.ndarray, batches: int = 20, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and confidence interval of the mean of a *time series* by batch means.

    Consecutive frames of an episode are strongly correlated, so the frame-wise interval of
    :func:`mean_ci` is far too narrow for them. The means of ``batches`` contiguous blocks are close
    to independent once a block is much longer than the correlation time; a t-interval over them is
    the classic remedy (Law & Kelton, "Simulation Modeling and Analysis", batch means). Fewer than
    four values fall back to :func:`mean_ci`."""
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    k = min(batches, len(v) // 2)
    if k < 2:
        return mean_ci(v)
    means = np.array([b.mean() for b in np.array_split(v, k)])
    half = float(t.ppf(0.5 + level / 2, k - 1) * means.std(ddof=1) / np.sqrt(k))
    mean = float(v.mean())
    return mean, mean - half, mean + half


def mean_ci_dict(values: np.ndarray, series: bool = False) -> dict[str, float]:
    """:func:`mean_ci` (or :func:`batch_means_ci` for a time ``series``) as the
    ``{"mean", "ci_low", "ci_high"}`` record every report writes."""
    stats = batch_means_ci(values) if series else mean_ci(values)
    return dict(zip(("mean", "ci_low", "ci_high"), stats, strict=True))
