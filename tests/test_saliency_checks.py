"""Attribution methods, the randomisation sanity check and deletion/insertion fidelity, on
hand-built networks whose answers are known."""

import numpy as np
import pytest
import torch
from torch import nn

from analysis.fidelity import deletion_curve, insertion_curve
from analysis.saliency import METHODS, attribute
from analysis.sanity import layer_groups, randomization_test


class Energy(nn.Module):
    """value: the energy (sum of squares) of the top half of the screen; advantage: ``c_a`` times
    that of the bottom half. The Jacobian of the value is ``2x`` on the top half and zero below."""

    def __init__(self):
        super().__init__()
        self.c = nn.Parameter(torch.tensor([0.5, 1.0, 2.0]))

    def forward(self, obs):
        x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
        e = x**2
        top, bottom = e[:, :, :42].sum((1, 2, 3)), e[:, :, 42:].sum((1, 2, 3))
        return {"value": top, "advantage": bottom[:, None] * self.c}


class TopBottomLinear(nn.Module):
    """value = <w, x> with ``w`` zero on the bottom half (trained to read only the top), advantage
    = W x with ``W`` zero on the top half: Jacobians are the weights, whatever the input."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.value = nn.Linear(4 * 84 * 84, 1)
        self.advantage = nn.Linear(4 * 84 * 84, 3)
        with torch.no_grad():
            w = torch.randn(1, 4, 84, 84, generator=g)
            w[..., 42:, :] = 0
            self.value.weight.copy_(w.flatten(1))
            w = torch.randn(3, 4, 84, 84, generator=g)
            w[..., :42, :] = 0
            self.advantage.weight.copy_(w.flatten(1))

    def forward(self, obs):
        x = (obs.float() / 255 if obs.dtype == torch.uint8 else obs).flatten(1)
        return {"value": self.value(x).squeeze(1), "advantage": self.advantage(x)}


class Dense(nn.Module):
    """value = <w, x> over the whole screen, ``w`` random."""

    def __init__(self):
        super().__init__()
        self.value = nn.Linear(4 * 84 * 84, 1)

    def forward(self, obs):
        x = (obs.float() / 255 if obs.dtype == torch.uint8 else obs).flatten(1)
        return {"value": self.value(x).squeeze(1)}


def dots(n=6, seed=0, density=0.05):
    """Black frames with sparse white dots: small objects, as on an Atari screen."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((n, 4, 84, 84)) < density).astype(np.uint8) * 255)


def test_methods_agree_with_hand_computed_maps():
    net = Energy()
    obs = dots()
    x = obs.float().numpy() / 255
    grad = 2 * x * np.where(np.arange(84)[:, None] < 42, 1.0, 0.0)  # d value / d x
    np.testing.assert_allclose(attribute(net, obs, "value").per_frame, grad, atol=1e-6)
    # gradient x input: 2 x^2; integrated gradients from black along the straight path: x^2
    np.testing.assert_allclose(attribute(net, obs, "value", "gradient_x_input").per_frame,
                               grad * x, atol=1e-6)  # fmt: skip
    ig = attribute(net, obs, "value", "integrated_gradients", samples=64).per_frame
    np.testing.assert_allclose(ig, grad * x / 2, atol=1e-3)
    # completeness: the attributions of a positive-gradient head sum to f(x) - f(black)
    np.testing.assert_allclose(ig.sum((1, 2, 3)), net(obs)["value"].detach().numpy(), rtol=1e-3)
    # SmoothGrad of a quadratic: the mean of |2(x + noise)|, positive where the head reads only
    sg = attribute(net, obs, "value", "smoothgrad", samples=8, noise=0.1).per_frame
    assert (sg[:, :, 42:] == 0).all() and (sg[:, :, :42] > 0).all()
    adv = attribute(net, obs, "advantage", "gradient_x_input")
    np.testing.assert_array_equal(adv.actions, 2)  # the largest c
    assert adv.combined[:, :42].max() == 0 and adv.combined[:, 42:].max() > 0


def test_methods_are_batched_and_seeded():
    torch.manual_seed(0)
    from agents.qlearning.networks import DuelingQNetwork

    net = DuelingQNetwork(4).eval()
    obs = dots(4, density=0.3)
    for method in ("smoothgrad", "integrated_gradients", "gradient_x_input"):
        whole = attribute(net, obs, "advantage", method, samples=4).combined
        parts = np.concatenate([attribute(net, obs[i : i + 1], "advantage", method,
                                          samples=4).combined for i in range(2)])  # fmt: skip
        if method != "smoothgrad":  # its noise is drawn for the whole batch at once
            np.testing.assert_allclose(whole[:2], parts, rtol=1e-4, atol=1e-8)
        again = attribute(net, obs, "advantage", method, samples=4).combined
        np.testing.assert_array_equal(whole, again)
    perturbation = attribute(net, obs, "value", "perturbation")
    assert perturbation.per_frame is None and perturbation.combined.shape == (4, 84, 84)


def test_bad_method_and_head_are_one_line():
    net = Energy()
    with pytest.raises(ValueError, match="unknown saliency method 'grad'; accepted: jacobian"):
        attribute(net, dots(1), "value", "grad")
    with pytest.raises(ValueError, match="unknown head 'logits'; this network has: value"):
        attribute(net, dots(1), "logits", "smoothgrad")
    with pytest.raises(ValueError, match="unknown head"):
        randomization_test(net, dots(1), "logits")
    assert set(METHODS) == {"jacobian", "smoothgrad", "integrated_gradients",
                            "gradient_x_input", "perturbation", "lrp"}  # fmt: skip


def test_deletion_of_the_value_map_moves_the_value_far_more_than_random():
    net = Energy()
    obs = dots(8)
    for head in ("value", "advantage"):
        maps = attribute(net, obs, head)
        for curve in (deletion_curve(net, obs, maps, head), insertion_curve(net, obs, maps, head)):
            assert curve.ratio > 3, (head, curve.kind, curve.ratio)
            assert (curve.salient.mean(1) >= curve.random.mean(1) - 1e-6).all()
    # the value map's top pixels are the top half's dots: deleting 5% of the screen by it leaves
    # the advantage (the bottom half) exactly as it was
    value_map = attribute(net, obs, "value", "smoothgrad")
    cross = deletion_curve(net, obs, value_map, "advantage", fractions=[0.01, 0.05])
    np.testing.assert_allclose(cross.salient, 0, atol=1e-4)
    assert cross.random.min() > 0


def test_deletion_curve_equals_hand_computation():
    """A linear value: the change from blurring a set S is exactly sum_S w (blur(x) - x)."""
    from analysis.saliency import _gaussian_blur

    net = TopBottomLinear()
    obs = dots(3)
    maps = attribute(net, obs, "value")
    curve = deletion_curve(net, obs, maps, "value", fractions=[0.1, 0.25, 0.5], repeats=1)
    x = obs.float() / 255
    delta = (_gaussian_blur(x, 3.0) - x).numpy()
    w = net.value.weight.detach().reshape(4, 84, 84).numpy()
    for i in range(3):
        order = np.argsort(-maps.combined[i].ravel(), kind="stable")  # no ties on the top half
        for k, f in enumerate((0.1, 0.25, 0.5)):
            mask = np.zeros(84 * 84, bool)
            mask[order[: round(f * 84 * 84)]] = True
            expected = abs((w * delta[i] * mask.reshape(84, 84)).sum())
            assert curve.salient[k, i] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert curve.summary()["fractions"] == [0.1, 0.25, 0.5]


@pytest.mark.parametrize("fractions", [[0.0, 0.5], [0.5, 1.5], [-0.1], []])
def test_fractions_outside_the_unit_interval_are_refused(fractions):
    net = Energy()
    obs = dots(2)
    with pytest.raises(ValueError, match=r"fractions must"):
        deletion_curve(net, obs, attribute(net, obs, "value"), "value", fractions=fractions)


def test_randomisation_drops_to_near_zero_for_weight_maps_and_not_for_input_maps():
    net = TopBottomLinear()
    obs = dots(6)
    result = randomization_test(net, obs, ("value", "advantage"), seed=1)
    names = [name for name, _ in result]
    assert names == ["advantage", "value"]  # the output layers first, in reverse order
    for h in ("value", "advantage"):
        last = result.stages[-1].similarity[h]
        assert abs(last["spearman"].mean()) < 0.1 and last["top5_iou"].mean() < 0.1, (h, last)
    assert result.survives == {"value": False, "advantage": False}
    # stage 1 re-initialises the advantage layer only: the value's maps are untouched
    np.testing.assert_allclose(result.stages[0].similarity["value"]["spearman"], 1.0)
    # on the sparse dots gradient x input passes: the zeros both maps share are left out, and on
    # the dots themselves the map is the weights
    assert not randomization_test(net, obs, "value", "gradient_x_input", seed=1).survives["value"]


def test_gradient_x_input_of_a_network_reading_everything_shows_the_input_and_fails():
    """A dense linear network on screens whose pixels span two orders of magnitude (log-uniform in
    1-255, the same frame four times): gradient x input is mostly the input and survives full
    randomisation (Adebayo et al. 2018's finding), the Jacobian (the weights) does not."""
    torch.manual_seed(0)
    net = Dense()
    frame = np.round(255 ** np.random.default_rng(0).random((6, 1, 84, 84))).astype(np.uint8)
    bright = torch.from_numpy(np.repeat(frame, 4, 1))
    gxi = randomization_test(net, bright, "value", "gradient_x_input", seed=1)
    assert gxi.survives == {"value": True} and gxi.stages[-1].similarity["value"]["spearman"].mean() > 0.9
    summary = gxi.summary()
    assert summary["survives_full_randomisation"] == {"value": True}
    assert summary["stages"][-1]["randomised_down_to"] == "value"
    assert randomization_test(net, bright, "value", seed=1).survives == {"value": False}


def test_randomisation_walks_the_dueling_network_down_and_leaves_it_untouched():
    from agents.qlearning.networks import DuelingQNetwork

    torch.manual_seed(0)
    net = DuelingQNetwork(4, layer_norm=True).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = randomization_test(net, dots(3, density=0.3), ("value", "advantage"))
    assert [n for n, _ in result] == ["output", "hidden", "conv3", "conv2", "conv1"]
    assert [n for n, _ in layer_groups(net)][0] == "conv1"
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


class TopQuarterReader(nn.Module):
    """Reads only the top quarter of the screen, by construction: value = <w, x[top]>. Its
    Jacobian is ``w`` there and exactly zero below, trained or randomised."""

    def __init__(self):
        super().__init__()
        self.value = nn.Linear(4 * 21 * 84, 1)

    def forward(self, obs):
        x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
        return {"value": self.value(x[:, :, :21].flatten(1)).squeeze(1)}


def test_randomisation_is_not_fooled_by_the_pixels_a_network_never_reads():
    """Three quarters of every map are zero in the trained and the randomised network alike; over
    the whole map those tied zeros alone give a rank correlation of about 0.75 (checked below), yet
    the randomised weights have nothing to do with the trained ones: the check must pass it."""
    from analysis.compare import spearman

    torch.manual_seed(0)
    net = TopQuarterReader()
    obs = dots(4)
    result = randomization_test(net, obs, "value", seed=1)
    last = result.stages[-1]
    assert abs(last.similarity["value"]["spearman"].mean()) < 0.1
    assert result.survives == {"value": False}
    trained = np.abs(net.value.weight.detach().numpy().reshape(4, 21, 84)).sum(0)
    whole = np.zeros((84, 84)), np.zeros((84, 84))
    whole[0][:21], whole[1][:21] = trained, last.example["value"][:21]
    assert spearman(*whole) > 0.7  # what the whole-map correlation would have said


class HalvesPerAction(nn.Module):
    """advantage[a]: action 0 reads the top half of the screen, action 1 the bottom half (random
    weights); value: all of it. Its advantage maps for the two actions share no pixel."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        w = torch.randn(2, 4, 84, 84, generator=g)
        w[0, :, 42:], w[1, :, :42] = 0, 0
        self.w = nn.Parameter(w.flatten(1))

    def forward(self, obs):
        x = (obs.float() / 255 if obs.dtype == torch.uint8 else obs).flatten(1)
        return {"value": x.sum(1), "advantage": x @ self.w.T}


def test_the_random_action_control_tells_a_choice_map_from_one_every_action_shares():
    """Energy's advantage is one quantity scaled per action (c_a times the bottom's energy): every
    action's map is the same map, and the control says so (Spearman 1). HalvesPerAction reads a
    different half per action: the chosen and the other action's maps differ (each is zero where
    the other is not: a negative Spearman, no top-5% pixel in common)."""
    from analysis.report import action_control

    obs = dots(6, density=0.3)
    cases = ((Energy(), (0.999, 1.0), 1.0), (HalvesPerAction(), (-1.0, -0.5), 0.0))
    for net, spearman_range, iou_max in cases:
        chosen = attribute(net, obs, "advantage").combined
        control = action_control(net, obs.numpy(), chosen, "advantage")
        sim = control["similarity"]
        assert spearman_range[0] <= sim["spearman"]["mean"] <= spearman_range[1], (net, sim)
        assert sim["top5_iou"]["mean"] <= iou_max + 1e-9
        assert control["frames"] == 6 and control["head"] == "advantage"
