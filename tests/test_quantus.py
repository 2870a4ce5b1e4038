"""Our fidelity and randomisation checks against the XAI field's evaluation library, Quantus
(Hedström et al. 2023, JMLR): on the same frames and maps, our deletion curve is Quantus's pixel
flipping with the same removal, and our randomisation test agrees with its MPRT wherever whole maps
can be compared; where a network reads only part of the screen, Quantus's whole-map correlation is
fooled by the zeros the maps share, and ours is not (the reason we keep our own)."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from test_saliency_checks import Dense, Energy, TopQuarterReader, dots
from torch import nn

from analysis.fidelity import FRACTIONS, deletion_curve
from analysis.saliency import _gaussian_blur, attribute
from analysis.sanity import randomization_test


class Logits(nn.Module):
    """One head of a network of named heads as the (N, outputs) tensor Quantus expects."""

    def __init__(self, net: nn.Module, head: str = "value") -> None:
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)[self.head]
        return y[:, None] if y.dim() == 1 else y


class Tanh(nn.Module):
    """A non-linear value over the whole of a 24x24 screen, so that the deletion curve bends (and
    Quantus flips 576 positions, not 84x84's 7,056)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4 * 24 * 24, 3, generator=torch.Generator().manual_seed(0)) * 0.1)

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (obs.float() / 255 if obs.dtype == torch.uint8 else obs).flatten(1)
        return {"value": torch.tanh(x @ self.w).sum(1)}


def removal_by_blur(x: np.ndarray, sigma: float = 3.0):
    """Quantus's perturbation as ours: a removed feature takes its value in the blurred frame."""
    blurred = _gaussian_blur(torch.from_numpy(x), sigma).numpy().reshape(len(x), -1)

    def replace(arr: np.ndarray, indices: np.ndarray, **_: object) -> np.ndarray:
        out, rows = arr.copy(), np.arange(len(arr))[:, None]
        out[rows, indices] = blurred[rows, indices]
        return out

    return replace


def test_our_deletion_curve_is_quantus_pixel_flipping_with_the_same_removal():
    """Quantus flips (stacked frame, pixel) features in the order of the map broadcast over the
    stack, 4 at a time: one pixel position in every stacked frame a step, as ours removes them.
    Its prediction after k positions is ours at the fraction of k positions."""
    net = Tanh()
    obs = torch.from_numpy((np.random.default_rng(0).random((3, 4, 24, 24)) < 0.2).astype(np.float32))
    maps = attribute(net, obs, "value").combined
    ours = deletion_curve(net, obs, maps, "value", repeats=1)
    flipping = quantus.PixelFlipping(features_in_step=4, perturb_func=removal_by_blur(obs.numpy()),
                                     normalise=False, abs=False, disable_warnings=True)  # fmt: skip
    curves = np.array(flipping(model=Logits(net).eval(), x_batch=obs.numpy(), y_batch=np.zeros(3, int),
                               a_batch=maps[:, None], channel_first=True, softmax=False,
                               device="cpu"))  # fmt: skip
    positions = np.maximum(1, np.round(np.asarray(FRACTIONS) * 24 * 24).astype(int))
    start = net(obs)["value"].detach().numpy()
    theirs = np.abs(curves[:, positions - 1] - start[:, None]).T  # (fractions, observations)
    np.testing.assert_allclose(ours.salient, theirs, atol=1e-6)
    assert theirs[-1].min() > 0.01  # the curve moves: the agreement is not of two zeros


def _explain(method: str):
    """Quantus's explain_func: our method's map, |d output / d input| (times the input for
    gradient x input), summed over the stack as ours are."""

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray,
                **_: object) -> np.ndarray:  # fmt: skip
        x = torch.as_tensor(inputs, dtype=torch.float32).requires_grad_(True)
        model(x)[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
        grad = x.grad * x.detach() if method == "gradient_x_input" else x.grad
        return grad.abs().sum(1, keepdim=True).numpy()

    return explain


def _bright_screens() -> np.ndarray:
    """Pixels log-uniform in 1-255, one frame stacked four times: no map holds a zero."""
    frame = np.round(255 ** np.random.default_rng(0).random((6, 1, 84, 84)))
    return np.repeat(frame, 4, 1).astype(np.float32) / 255


def _mprt_last(net: nn.Module, x: np.ndarray, method: str) -> float:
    """Quantus's MPRT (Adebayo et al. 2018's cascading test), the Spearman at the last layer."""
    mprt = quantus.MPRT(layer_order="top_down", seed=1, return_last_correlation=True, disable_warnings=True,
                        similarity_func=quantus.similarity_func.correlation_spearman)  # fmt: skip
    last = mprt(model=Logits(net).eval(), x_batch=x, y_batch=np.zeros(len(x), int), a_batch=None,
                explain_func=_explain(method), channel_first=True, softmax=False, device="cpu")  # fmt: skip
    return float(np.mean(last))


@pytest.mark.parametrize("method, verdict", [("jacobian", False), ("gradient_x_input", True)])
def test_our_randomisation_verdict_is_quantus_mprt_s_where_maps_share_no_zeros(method, verdict):
    """A network reading the whole screen, on screens without black: the Jacobian changes with the
    weights in both (about 0), gradient x input is the input in both (about 1)."""
    torch.manual_seed(0)
    net, x = Dense(), _bright_screens()
    ours = randomization_test(net, torch.from_numpy(x), "value", method, seed=1)
    theirs = _mprt_last(net, x, method)
    assert ours.survives["value"] == verdict == (theirs >= ours.threshold)
    assert abs(ours.stages[-1].similarity["value"]["spearman"].mean() - theirs) < 0.1


def test_quantus_whole_map_mprt_is_fooled_by_the_pixels_a_network_never_reads_and_ours_is_not():
    torch.manual_seed(0)
    net, x = TopQuarterReader(), _bright_screens()
    assert _mprt_last(net, x, "jacobian") > 0.9  # three quarters of both maps are zero
    assert abs(randomization_test(net, torch.from_numpy(x), "value", seed=1).stages[-1]
               .similarity["value"]["spearman"].mean()) < 0.1  # fmt: skip


class Pixels(nn.Module):
    """value = <w, x> with ``w`` equal to 1 on ``k`` fixed pixels and 0 elsewhere: its Jacobian is
    ``w`` on every frame, so Quantus's scores of the map are known by hand."""

    def __init__(self, k: int) -> None:
        super().__init__()
        w = torch.zeros(4 * 84 * 84)
        w[torch.randperm(len(w), generator=torch.Generator().manual_seed(0))[:k]] = 1.0
        self.value = nn.Linear(len(w), 1, bias=False)
        with torch.no_grad():
            self.value.weight.copy_(w[None])

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (obs.float() / 255 if obs.dtype == torch.uint8 else obs).flatten(1)
        return {"value": self.value(x).squeeze(1)}


def test_quantus_scores_of_a_map_known_by_hand():
    """k equal pixels of n: the Gini index is 1 - k/n and the entropy ln k; randomising the
    network spreads its Jacobian over every pixel, so the maps' complexity rises (eMPRT well above
    0). The perturbation method has no map per stacked frame and gets no scores."""
    from analysis.xai_metrics import SCORES, quantus_scores

    k, n = 100, 4 * 84 * 84
    obs = np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    scores = quantus_scores(Pixels(k), obs, "value", "jacobian")
    assert set(scores) == set(SCORES) - {"random_logit"}  # a scalar head: no other action
    assert scores["sparseness"]["mean"] == pytest.approx(1 - k / n, abs=1e-4)
    assert scores["complexity"]["mean"] == pytest.approx(np.log(k), abs=1e-4)
    assert scores["emprt"]["mean"] > 0.5
    assert quantus_scores(Pixels(k), obs, "value", "perturbation") is None


class Columns(nn.Module):
    """Three actions, each one's advantage the sum of its own third of the screen's columns: the
    map for one action and the map for another share no pixel."""

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
        thirds = [x[..., 28 * a : 28 * (a + 1)].sum((1, 2, 3)) for a in range(3)]
        return {"value": x.sum((1, 2, 3)), "advantage": torch.stack(thirds, 1) * self.scale}

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))


def test_random_logit_tells_maps_that_name_the_action_from_maps_that_do_not():
    """Quantus's random logit on the advantage head: where every action's advantage reads the same
    pixels (``Energy``: c_a times the bottom half's energy) the chosen and a random action's maps
    are the same once normalised, SSIM near 1; where each action reads its own columns, they share
    no lit pixel and the SSIM falls to what their shared black background leaves. A scalar head
    gets no random-logit score."""
    from analysis.xai_metrics import quantus_scores

    obs = dots(4).numpy()
    same = quantus_scores(Energy(), obs, "advantage", "jacobian")["random_logit"]["mean"]
    apart = quantus_scores(Columns(), obs, "advantage", "jacobian")["random_logit"]["mean"]
    assert same > 0.95 and apart < 0.3, (same, apart)  # measured 0.97 and 0.22
    assert "random_logit" not in quantus_scores(Energy(), obs, "value", "jacobian")
