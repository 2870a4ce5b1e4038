"""Saliency against hand-built networks, captum, SB3 models and the frame mapping."""

import numpy as np
import pytest
import torch
from torch import nn

from analysis.compare import centre_of_mass, compare_maps, region_shares, stack_shares
from analysis.saliency import jacobian_saliency, perturbation_saliency, to_frame


class Linear(nn.Module):
    """value = <w, x> (x the float input), advantage = W x: the Jacobian is the weights."""

    def __init__(self, shape=(4, 84, 84), n_actions=3):
        super().__init__()
        torch.manual_seed(0)
        self.w = nn.Parameter(torch.randn(*shape))
        self.W = nn.Parameter(torch.randn(n_actions, *shape))

    def forward(self, obs):
        x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
        return {
            "value": (x * self.w).sum((1, 2, 3)),
            "advantage": torch.einsum("bchw,achw->ba", x, self.W),
        }


class TopBottom(nn.Module):
    """value sees only the top half of the screen, advantage only the bottom half."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 5, padding=2)
        self.v = nn.Linear(8 * 42 * 84, 1)
        self.a = nn.Linear(8 * 42 * 84, 3)

    def forward(self, obs):
        x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
        top, bottom = torch.relu(self.conv(x[:, :, :42])), torch.relu(self.conv(x[:, :, 42:]))
        return {"value": self.v(top.flatten(1)).squeeze(1), "advantage": self.a(bottom.flatten(1))}


def obs_batch(n=6, seed=0):
    return torch.from_numpy(
        np.random.default_rng(seed).integers(0, 256, (n, 4, 84, 84), dtype=np.uint8)
    )


def test_linear_network_jacobian_is_its_weights():
    net = Linear()
    obs = obs_batch()
    v = jacobian_saliency(net, obs, head="value")
    np.testing.assert_allclose(
        v.per_frame, np.broadcast_to(net.w.abs().detach().numpy(), v.per_frame.shape), rtol=1e-6
    )
    a = jacobian_saliency(net, obs, head="advantage", action=np.array([0, 1, 2, 0, 1, 2]))
    for i, act in enumerate([0, 1, 2, 0, 1, 2]):
        np.testing.assert_allclose(a.per_frame[i], net.W[act].abs().detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.combined, v.per_frame.sum(1))
    everything = jacobian_saliency(net, obs[:2], head="advantage", action="all")
    assert everything.per_frame.shape == (2, 3, 4, 84, 84)
    np.testing.assert_allclose(
        everything.per_frame[1, 2], net.W[2].abs().detach().numpy(), rtol=1e-6
    )


def test_default_action_is_argmax_of_the_head():
    net = Linear()
    obs = obs_batch()
    maps = jacobian_saliency(net, obs, head="advantage")
    expected = net(obs)["advantage"].argmax(1).numpy()
    np.testing.assert_array_equal(maps.actions, expected)


def test_batched_equals_per_sample():
    torch.manual_seed(1)
    from agents.qlearning.networks import DuelingQNetwork

    net = DuelingQNetwork(4)
    obs = obs_batch(5)
    batched = jacobian_saliency(net, obs, head="advantage").per_frame
    single = np.concatenate(
        [jacobian_saliency(net, obs[i : i + 1], head="advantage").per_frame for i in range(5)]
    )
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-9)


def test_agrees_with_captum():
    from captum.attr import Saliency

    from agents.qlearning.networks import DuelingQNetwork

    torch.manual_seed(0)
    net = DuelingQNetwork(6).eval()
    obs = obs_batch(4)
    x = (obs.float() / 255).contiguous(memory_format=torch.channels_last)  # as ours feeds the net
    for head, target in (("value", None), ("q", 2)):
        ours = jacobian_saliency(net, obs, head=head, action=target)
        fn = (
            (lambda inp: net(inp)["value"][:, None])
            if head == "value"
            else (lambda inp: net(inp)["q"])
        )
        ref = Saliency(fn).attribute(x, target=0 if head == "value" else target, abs=True)
        np.testing.assert_allclose(ours.per_frame, ref.numpy(), atol=1e-6, rtol=0)


def test_top_and_bottom_heads_are_told_apart():
    torch.manual_seed(0)
    net = TopBottom()
    obs = obs_batch(8)
    v = jacobian_saliency(net, obs, head="value").combined
    a = jacobian_saliency(net, obs, head="advantage").combined
    assert v[:, 42:].sum() == 0 and v[:, :42].sum() > 0
    assert a[:, :42].sum() == 0 and a[:, 42:].sum() > 0
    vf, af = to_frame(v), to_frame(a)
    regions = {"top": (0, 0, 105, 160), "bottom": (105, 0, 210, 160)}
    for i in range(len(vf)):
        c = compare_maps(vf[i], af[i], regions)
        assert c.regions_a["top"] == pytest.approx(1.0) and c.regions_b["bottom"] == pytest.approx(
            1.0
        )
        assert c.top5_iou == 0.0 and c.pearson < 0
        assert c.centre_a[0] < 105 < c.centre_b[0] and c.centre_distance > 50
    pert = perturbation_saliency(net, obs[:2], head="value")
    assert pert[:, :30].sum() > 20 * pert[:, 55:].sum()


def test_perturbation_finds_the_pixels_a_network_reads():
    class OnePatch(nn.Module):
        def forward(self, obs):
            x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
            return {"value": x[:, -1, 60:64, 20:24].sum((1, 2)) * 10}

    net = OnePatch()
    net.p = nn.Parameter(torch.zeros(1))  # a parameter so the device can be found
    obs = obs_batch(2)
    maps = perturbation_saliency(net, obs, head="value")
    assert maps.shape == (2, 84, 84)
    for m in maps:
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert abs(r - 62) <= 5 and abs(c - 22) <= 5


def test_frame_mapping_puts_saliency_where_the_pixel_is():
    import cv2

    # a screen pixel takes the saliency of an observation cell that INTER_AREA averages it into
    source = to_frame(np.arange(84 * 84).reshape(84, 84))  # which cell each screen pixel shows
    for y in range(0, 210, 3):
        for x in range(0, 160, 3):
            screen = np.zeros((210, 160), np.float32)
            screen[y, x] = 1.0
            cells = cv2.resize(screen, (84, 84), interpolation=cv2.INTER_AREA).reshape(-1) > 0
            assert cells[source[y, x]], (y, x)
    # and the mapped mass keeps the area proportions: every cell covers ~2.5 x 1.9 screen pixels
    assert to_frame(np.ones((84, 84))).sum() == 210 * 160


def test_stack_shares_and_region_shares():
    per_frame = np.zeros((4, 84, 84))
    per_frame[3] = 3.0
    per_frame[2] = 1.0
    np.testing.assert_allclose(stack_shares(per_frame), [0, 0, 0.25, 0.75])
    m = np.zeros((210, 160))
    m[:10, :10] = 1
    assert region_shares(m, {"corner": (0, 0, 10, 10), "rest": (10, 0, 210, 160)}) == pytest.approx(
        {
            "corner": 1.0,
            "rest": 0.0,
        }
    )
    assert centre_of_mass(m) == pytest.approx((4.5, 4.5))


def test_bad_heads_and_inputs_are_refused():
    net = Linear()
    with pytest.raises(
        ValueError, match="unknown head 'logits'; this network has: value, advantage"
    ):
        jacobian_saliency(net, obs_batch(1), head="logits")
    with pytest.raises(ValueError, match=r"batch \(B, stack, H, W\)"):
        jacobian_saliency(net, torch.zeros(4, 84, 84, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        jacobian_saliency(net, torch.zeros(1, 4, 84, 84, dtype=torch.int32))
    with pytest.raises(ValueError, match="takes no action"):
        jacobian_saliency(net, obs_batch(1), head="value", action=1)
    with pytest.raises(ValueError, match="actions must be in"):
        jacobian_saliency(net, obs_batch(1), head="advantage", action=7)


def test_batch_means_interval_covers_the_mean_of_a_correlated_series():
    """Saliency shares over consecutive frames are autocorrelated: the frame-wise interval misses
    the true mean far more often than 5%, the batch-means interval about as often as it should."""
    from analysis.compare import batch_means_ci, mean_ci

    rng = np.random.default_rng(0)
    phi, n, trials = 0.95, 2000, 200  # AR(1) with a correlation time of about 40 frames, mean 0
    naive = batch = 0
    for _ in range(trials):
        e = rng.standard_normal(n)
        x = np.empty(n)
        x[0] = e[0] / np.sqrt(1 - phi**2)  # start in the stationary distribution
        for i in range(1, n):
            x[i] = phi * x[i - 1] + e[i]
        naive += mean_ci(x)[1] <= 0 <= mean_ci(x)[2]
        batch += batch_means_ci(x)[1] <= 0 <= batch_means_ci(x)[2]
    assert naive / trials < 0.5  # 0.2 here: the frame-wise interval is far too narrow
    assert batch / trials > 0.88
    # the mean itself is the plain mean; too few values fall back to the frame-wise interval
    v = np.array([1.0, 2.0, 4.0])
    assert batch_means_ci(v) == pytest.approx(mean_ci(v))
    assert batch_means_ci(np.arange(40.0))[0] == pytest.approx(19.5)


def test_head_report_pairs_the_region_shares_per_frame():
    from analysis.report import head_report

    regions = {"top": (0, 0, 105, 160), "bottom": (105, 0, 210, 160)}
    a = np.zeros((50, 84, 84))
    b = np.zeros((50, 84, 84))
    a[:, :42] = 3.0  # head a: all on top; head b: a quarter on top
    a[:, 42:] = 0.0
    b[:, :42] = 1.0
    b[:, 42:] = 3.0
    r = head_report(("value", "advantage"), {"value": a, "advantage": b}, regions)
    d = r["region_differences"]["value - advantage/top"]
    assert d["mean"] == pytest.approx(0.75, abs=0.01) and d["ci_low"] == pytest.approx(d["ci_high"])
    assert r["region_differences"]["value - advantage/bottom"]["mean"] == pytest.approx(-0.75, abs=0.01)


def _bias_free(net: nn.Module, norms_too: bool = False) -> nn.Module:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) or (norms_too and isinstance(m, nn.LayerNorm)):
                m.bias.zero_()
    return net.eval()


@pytest.mark.parametrize("head", ["value", "advantage", "q"])
def test_lrp_of_a_bias_free_relu_network_is_gradient_times_input(head):
    """LRP's epsilon rule with a vanishing epsilon, on a ReLU network without biases, equals the
    gradient times the input (Ancona et al. 2018, Section 3); here times sqrt(2), the dueling
    torso's training-time gradient scale that the network's gradients carry and LRP leaves out."""
    from agents.qlearning.networks import DuelingQNetwork
    from analysis.saliency import attribute

    torch.manual_seed(0)
    net = _bias_free(DuelingQNetwork(4, 4))
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    lrp, gxi = attribute(net, obs, head, "lrp"), attribute(net, obs, head, "gradient_x_input")
    scale = gxi.per_frame.max()
    np.testing.assert_allclose(lrp.per_frame, np.sqrt(2) * gxi.per_frame, rtol=1e-3, atol=1e-4 * scale)
    assert lrp.method == "lrp" and np.array_equal(lrp.actions, gxi.actions)


@pytest.mark.parametrize("head", ["value", "advantage", "q"])
def test_lrp_relevance_sums_to_the_head_s_output_through_layer_norms(head):
    """Relevance is conserved layer by layer: on PQN's network (LayerNorms, which pass relevance
    through unchanged) without biases and LayerNorm offsets (which, as biases do, take a share of
    the relevance), the relevance of the input pixels sums to the head's output."""
    from agents.qlearning.networks import DuelingQNetwork
    from analysis.saliency import lrp_saliency

    torch.manual_seed(1)
    net = _bias_free(DuelingQNetwork(6, 4, layer_norm=True), norms_too=True)
    x = torch.rand(4, 4, 84, 84)
    out = net(x)[head]
    actions = None if out.dim() == 1 else out.argmax(1).numpy()
    picked = out if out.dim() == 1 else out.gather(1, torch.as_tensor(actions)[:, None]).squeeze(1)
    relevance = lrp_saliency(net, x, head, actions).sum((1, 2, 3))
    np.testing.assert_allclose(relevance.detach().numpy(), picked.detach().numpy(), rtol=2e-3, atol=1e-5)


def test_lrp_stream_is_the_network_s_head_and_the_q_aggregation_explicit():
    from agents.qlearning.networks import DuelingQNetwork, SingleStreamQNetwork
    from analysis.saliency import LRPStream

    torch.manual_seed(2)
    net = DuelingQNetwork(5, 4, layer_norm=True).eval()
    x = torch.rand(3, 4, 84, 84)
    out = net(x)
    torch.testing.assert_close(LRPStream(net, "value")(x)[:, 0], out["value"])
    torch.testing.assert_close(LRPStream(net, "advantage")(x), out["advantage"])
    torch.testing.assert_close(LRPStream(net, "q")(x), out["q"], rtol=1e-5, atol=1e-5)
    single = SingleStreamQNetwork(5, 4).eval()
    torch.testing.assert_close(LRPStream(single, "q")(x), single(x)["q"])
    assert not any(hasattr(m, "rule") for m in net.modules())  # the network itself is untouched


def test_lrp_refuses_networks_it_has_no_rules_for_in_one_line():
    from agents.qlearning.networks import DuelingQNetwork
    from agents.soft.model import SoftAttentionAgent
    from analysis.saliency import attribute

    soft = SoftAttentionAgent(3, 1, input_shape=(24, 24))
    with pytest.raises(ValueError, match="^the lrp method runs on this suite's DQN and PQN networks, not on a"
                                         " SoftAttentionAgent$"):  # fmt: skip
        attribute(soft, torch.zeros(1, 1, 24, 24, dtype=torch.uint8), "value", "lrp")
    with pytest.raises(ValueError, match="q head needs the mean aggregation"):
        attribute(DuelingQNetwork(3, 4, aggregation="max"), torch.zeros(1, 4, 84, 84), "q", "lrp")
