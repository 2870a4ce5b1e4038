"""The Recurrent Attention Model: heads, what is detached, and the REINFORCE estimator."""

import numpy as np
import pytest
import torch

from agents.common.ppo import clipped_policy_loss
from agents.glimpse import (
    GlimpsePolicy,
    RecurrentAttentionModel,
    factored_clipped_loss,
    orthogonal_init,
    reinforce_loss,
)


def step_once(model, batch=4):
    images = torch.rand(batch, 1, 24, 24)
    state = model.initial_state(batch)
    return model(images, torch.zeros(batch, 2), state)


@pytest.mark.parametrize("core", ["lstm", "gru", "rnn", "lnlstm"])
@pytest.mark.parametrize("policy", ["gaussian", "tiles"])
def test_heads_by_name(core, policy):
    model = RecurrentAttentionModel(3, core=core, location_policy=policy, hidden=32)
    heads, state = step_once(model)
    assert heads["action_logits"].shape == (4, 3) and heads["baseline"].shape == (4,)
    key = "location_mean" if policy == "gaussian" else "location_logits"
    assert key in heads
    loc, logp, ent = model.sample_location(heads)
    assert loc.shape == (4, 2) and loc.abs().max() <= 1 + 1e-6 and logp.shape == (4,)
    if policy == "gaussian":
        assert heads["location_mean"].abs().max() < 1
    else:  # tile centres
        assert set(torch.unique(loc * 4).tolist()) <= {-3.0, -1.0, 1.0, 3.0}


@pytest.mark.parametrize("detach_location", [True, False])
def test_sampled_location_is_detached_and_logp_is_not(detach_location):
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=32, detach_location=detach_location)
    heads, _ = step_once(model)
    loc, logp, _ = model.sample_location(heads)
    assert not loc.requires_grad
    logp.sum().backward()
    assert model.location_head.weight.grad.abs().sum() > 0
    core_grad = model.core.weight_ih.grad
    # the location's REINFORCE term reaches the core only when the location head is not detached
    assert (core_grad is not None and core_grad.abs().sum() > 0) == (not detach_location)


def test_baseline_does_not_shape_the_core():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=32)
    heads, _ = step_once(model)
    heads["baseline"].sum().backward()
    assert model.baseline_head.weight.grad.abs().sum() > 0
    for p in (model.core.weight_ih, model.glimpse.what.weight, model.action_head.weight):
        assert p.grad is None or p.grad.abs().sum() == 0


def test_shared_baseline_trains_the_core_but_not_the_policy_heads():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=32, detach_baseline=False)
    heads, _ = step_once(model)
    heads["baseline"].sum().backward()
    assert (
        model.core.weight_ih.grad.abs().sum() > 0 and model.glimpse.what.weight.grad.abs().sum() > 0
    )
    assert model.action_head.weight.grad is None and model.location_head.weight.grad is None


def test_normalized_glimpse_lets_a_faint_pixel_through():
    """Average pooling dims a lit pixel 4x per scale; standardised, the glimpse vector has zero
    mean and unit variance, the same for a bright and a faint pixel (above LayerNorm's eps)."""
    model = RecurrentAttentionModel(3, hidden=32, normalize_glimpse=True)
    images = torch.zeros(2, 1, 24, 24)
    images[0, 0, 12, 12] = 1.0
    images[1, 0, 12, 12] = 0.25
    rho = model.glimpse.norm(model.retina(images, torch.zeros(2, 2)).flatten(1))
    assert torch.allclose(rho[0], rho[1], rtol=0.05, atol=0.02)
    assert rho.mean(1).abs().max() < 1e-5 and torch.allclose(
        rho.std(1, unbiased=False), torch.ones(2), atol=0.02
    )


def test_glimpse_policy_keeps_and_resets_state_per_env():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=16)
    policy = GlimpsePolicy(model, 3, glimpses_per_step=2)
    images = torch.rand(3, 1, 24, 24)
    actions = policy(images)
    # by hand: the first glimpse at the centre, the second where the first one's mean points
    heads1, state1 = model(images, torch.zeros(3, 2), model.initial_state(3))
    loc1 = model.greedy_location(heads1)
    heads2, _ = model(images, loc1, state1)
    assert policy.locations.shape == (2, 3, 2) and policy.locations[0].abs().sum() == 0
    assert torch.allclose(policy.locations[1], loc1)
    assert torch.equal(policy.patches[1], model.retina(images, loc1))  # what it saw, kept
    assert np.array_equal(actions, heads2["action_logits"].argmax(1).numpy())
    before = [s.clone() for s in policy.state]
    policy.reset(np.array([False, True, False]))
    assert all(
        s[1].abs().sum() == 0 and torch.equal(s[0], b[0])
        for s, b in zip(policy.state, before, strict=True)
    )
    assert policy.loc[1].abs().sum() == 0
    # a fresh policy and a reset env act alike on the same input
    fresh = GlimpsePolicy(model, 1, glimpses_per_step=2)
    policy(images)
    fresh(images[1:2])
    assert torch.allclose(
        policy.heads["action_logits"][1], fresh.heads["action_logits"][0], atol=1e-6
    )


def test_reinforce_estimator_matches_the_analytic_policy_gradient():
    """E[r] = sum_a p_a r_a for a softmax policy; d/d theta_k = p_k (r_k - E[r]). The mean of
    REINFORCE's estimate (with any constant baseline) matches it within Monte-Carlo error."""
    torch.manual_seed(0)
    theta = torch.tensor([0.2, -0.5, 1.0], requires_grad=True)
    r = torch.tensor([1.0, 3.0, -2.0])
    p = torch.softmax(theta, 0)
    analytic = (p * (r - (p * r).sum())).detach()
    n = 200_000
    dist = torch.distributions.Categorical(logits=theta.expand(n, 3))
    a = dist.sample()
    policy_loss, _ = reinforce_loss(dist.log_prob(a), r[a], torch.full((n,), 0.7))
    (grad,) = torch.autograd.grad(-policy_loss, theta)  # ascent direction
    per_sample_sd = 4.0  # |r - b| * |d log p| is bounded by ~4 here
    assert torch.allclose(grad, analytic, atol=4 * per_sample_sd / n**0.5)


def test_reinforce_loss_masks_and_baseline_error():
    logp = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    returns = torch.tensor([1.0, 2.0, 3.0])
    baseline = torch.tensor([0.0, 1.0, 5.0], requires_grad=True)
    mask = torch.tensor([1.0, 1.0, 0.0])
    pl, bl = reinforce_loss(logp, returns, baseline, mask)
    assert pl.item() == pytest.approx(-(1 * 0.5 + 1 * 1.0) / 2)
    assert bl.item() == pytest.approx((1 + 1) / 2)
    pl.backward()
    assert baseline.grad is None  # the advantage is detached in the policy term


def test_clipped_policy_loss_by_hand():
    """Ratios 1.5, 0.5, 1.05 and 1.5 (masked) against clip 0.2: the first is clipped for a positive
    advantage (no gradient), the second for a negative one (no gradient), the third is not."""
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.05, 1.5])).requires_grad_()
    adv = torch.tensor([2.0, -1.0, 1.0, 7.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    loss, clipped, kl = clipped_policy_loss(logp, old, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx(-(1.2 * 2.0 + 0.8 * -1.0 + 1.05 * 1.0) / 3)
    assert clipped.item() == pytest.approx(2 / 3)
    r = torch.tensor([1.5, 0.5, 1.05])
    assert kl.item() == pytest.approx(((r - 1) - r.log()).mean().item(), rel=1e-5)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([0.0, 0.0, -1.05 / 3, 0.0]))
    # at the policy that collected the data the gradient is REINFORCE's
    logp = torch.tensor([-0.3, -1.2, -0.7], requires_grad=True)
    adv = torch.tensor([0.5, -2.0, 1.5])
    ppo, _, kl0 = clipped_policy_loss(logp, logp.detach(), adv, torch.ones(3), clip=0.1)
    (g_ppo,) = torch.autograd.grad(ppo, logp)
    reinforce, _ = reinforce_loss(logp, torch.zeros(3), torch.zeros(3), advantage=adv)
    (g_reinforce,) = torch.autograd.grad(reinforce, logp)
    torch.testing.assert_close(g_ppo, g_reinforce)
    assert kl0.item() == 0.0


def test_factored_loss_clips_each_part_on_its_own_ratio():
    """The location's ratio (3) is far outside the clip, the action's (1.05) inside: the action
    keeps its gradient, the location loses its own. One joint ratio (3.15) would have clipped both."""
    adv, mask = torch.tensor([1.0, 2.0]), torch.ones(2)
    logp = {"a": torch.log(torch.tensor([1.05, 1.0])).requires_grad_(),
            "l": torch.log(torch.tensor([3.0, 1.0])).requires_grad_()}  # fmt: skip
    old = {"a": torch.zeros(2), "l": torch.zeros(2)}
    loss, clipped, kl = factored_clipped_loss(logp, old, adv, mask, clip=0.1)
    assert loss.item() == pytest.approx(-((1.05 * 1 + 1.0 * 2) + (1.1 * 1 + 1.0 * 2)) / 2)
    assert clipped["a"].item() == 0.0 and clipped["l"].item() == 0.5
    assert kl["l"].item() == pytest.approx(((3.0 - 1) - np.log(3.0)) / 2)
    loss.backward()
    torch.testing.assert_close(logp["a"].grad, torch.tensor([-1.05 / 2, -2.0 / 2]))
    torch.testing.assert_close(logp["l"].grad, torch.tensor([0.0, -2.0 / 2]))
    joint, _, _ = clipped_policy_loss(logp["a"] + logp["l"], torch.zeros(2), adv, mask, clip=0.1)
    (g_joint,) = torch.autograd.grad(joint, logp["a"])
    assert g_joint[0].item() == 0.0  # what the factored loss avoids


@pytest.mark.parametrize("patch_size", [6, 16])
def test_conv_glimpse_network_round_trips_and_reads_every_scale(patch_size):
    from agents.common.architecture import build_network

    torch.manual_seed(0)
    model = RecurrentAttentionModel(4, patch_size=patch_size, num_scales=3, hidden=32, glimpse_net="conv")
    assert model.architecture()["glimpse_net"] == "conv"
    assert "glimpse_net" not in RecurrentAttentionModel(4).architecture()  # old checkpoints load as they were
    rebuilt = build_network(model.architecture())
    rebuilt.load_state_dict(model.state_dict())
    patches = torch.rand(5, 3, 1, patch_size, patch_size, requires_grad=True)
    loc = torch.rand(5, 2) * 2 - 1
    g = model.glimpse.encode(patches, loc)
    assert g.shape == (5, 32)
    torch.testing.assert_close(rebuilt.glimpse.encode(patches, loc), g)
    (grad,) = torch.autograd.grad(g.sum(), patches)
    assert (grad.flatten(2).abs().sum(-1) > 0).all()  # every sample's every scale reaches the output
    with pytest.raises(ValueError, match="unknown glimpse network 'mlp'; accepted: linear, conv"):
        RecurrentAttentionModel(4, glimpse_net="mlp")


@pytest.mark.parametrize(("core", "glimpse_net"), [("lstm", "conv"), ("gru", "linear"), ("lnlstm", "linear")])
def test_orthogonal_init_sets_every_layer_s_gain(core, glimpse_net):
    """Every weight matrix's singular values equal its gain (sqrt 2 in the ReLU layers, 1 in the
    core, 0.01 in the action and location heads, 1 in the baseline), every bias is zero, and the
    first policy is uniform to within 1% whatever the glimpse."""
    torch.manual_seed(0)
    model = orthogonal_init(RecurrentAttentionModel(4, patch_size=6, hidden=64, core=core,
                                                    glimpse_net=glimpse_net))  # fmt: skip
    gains = {"action_head": 0.01, "location_head": 0.01, "baseline_head": 1.0, "core": 1.0}
    checked = 0
    for name, p in model.named_parameters():
        if name.endswith("bias") or "bias_" in name:
            assert torch.count_nonzero(p) == 0, name
            continue
        if ".norm" in name:  # the layer-normalised core's gains: ones, as LayerNorm starts
            assert torch.equal(p, torch.ones_like(p)), name
            continue
        gain = next((g for prefix, g in gains.items() if name.startswith(prefix)), 2**0.5)
        matrix = p.detach().flatten(1)
        torch.testing.assert_close(torch.linalg.svdvals(matrix), torch.full((min(matrix.shape),), gain),
                                   rtol=1e-4, atol=1e-6, msg=name)  # fmt: skip
        checked += 1
    assert checked == (9 if glimpse_net == "conv" else 7) + 2  # glimpse layers, core's two, heads
    heads, _ = step_once(model)
    probs = heads["action_logits"].softmax(-1)
    torch.testing.assert_close(probs, torch.full_like(probs, 0.25), atol=0.01, rtol=0)


def test_layer_norm_lstm_follows_its_equations_and_tells_saturated_states_apart():
    """Ba et al. 2016, Section 3.1, worked out with F.layer_norm. Then cell states far beyond tanh's
    range, as a plain LSTM's were on Breakout after 1M steps (|c| 24-37 here): what the
    plain LSTM's memory passes on, tanh(c), is the same +-1 for every state, the normalised cell's,
    tanh(LN(c)), still tells the states apart."""
    import torch.nn.functional as F

    from agents.glimpse.model import LayerNormLSTMCell

    torch.manual_seed(0)
    cell = LayerNormLSTMCell(5, 8)
    x, h, c = torch.randn(3, 5), torch.randn(3, 8), torch.randn(3, 8)
    gates = F.layer_norm(x @ cell.ih.weight.T, (32,)) + F.layer_norm(
        h @ cell.hh.weight.T + cell.hh.bias, (32,)
    )
    i, f, g, o = gates.chunk(4, 1)
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_ref = torch.sigmoid(o) * torch.tanh(F.layer_norm(c_ref, (8,)))
    out_h, out_c = cell(x, (h, c))
    torch.testing.assert_close(out_c, c_ref)
    torch.testing.assert_close(out_h, h_ref)

    lstm = torch.nn.LSTMCell(5, 8)
    sign = torch.sign(torch.randn(1, 8))
    c = sign * (24 + 13 * torch.rand(64, 8))  # 64 states, every unit's sign the same in all
    x, h = torch.randn(64, 5), torch.zeros(64, 8)
    spread = {}
    with torch.no_grad():
        _, c_plain = lstm(x, (h, c))
        spread["plain"] = torch.tanh(c_plain).std(0).mean().item()
        _, c_norm = cell(x, (h, c))
        spread["normalised"] = torch.tanh(cell.norm_c(c_norm)).std(0).mean().item()
    assert spread["plain"] < 1e-3 < 0.05 < spread["normalised"]


def test_tile_locations_map_back_to_their_tiles():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=16, location_policy="tiles", tiles=4)
    heads, _ = model(torch.rand(64, 1, 24, 24), torch.zeros(64, 2), model.initial_state(64))
    sample, logp, entropy = model.sample_location(heads)
    again, entropy_again = model.location_log_prob(heads, sample)
    torch.testing.assert_close(again, logp)
    torch.testing.assert_close(entropy_again, entropy)


def test_bad_model_options():
    with pytest.raises(ValueError, match="unknown core 'transformer'"):
        RecurrentAttentionModel(3, core="transformer")
    with pytest.raises(ValueError, match="unknown location policy"):
        RecurrentAttentionModel(3, location_policy="uniform")
    with pytest.raises(ValueError, match="location_std must be > 0"):
        RecurrentAttentionModel(3, location_std=0.0)
    with pytest.raises(ValueError, match="tiles must be an integer >= 2"):
        RecurrentAttentionModel(3, location_policy="tiles", tiles=1)


def test_architecture_round_trips_through_build_network():
    from agents.common.architecture import build_network

    model = RecurrentAttentionModel(6, patch_size=8, num_scales=2, hidden=24, core="gru",
                                    location_policy="tiles", normalize_glimpse=True)  # fmt: skip
    rebuilt = build_network(model.architecture())
    assert rebuilt.architecture() == model.architecture()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    assert "retina_pool" not in model.architecture()  # the default: older checkpoints load as they were
    maxed = RecurrentAttentionModel(6, patch_size=4, num_scales=3, retina_pool="max")
    rebuilt = build_network(maxed.architecture())
    rebuilt.load_state_dict(maxed.state_dict())
    images = torch.zeros(1, 1, 33, 33)
    images[0, 0, 10, 20] = 1.0  # seen only by the coarsest scale, where the pooling differs
    state = maxed.initial_state(1)
    assert torch.equal(rebuilt.retina(images, torch.zeros(1, 2)), maxed.retina(images, torch.zeros(1, 2)))
    assert torch.equal(rebuilt(images, torch.zeros(1, 2), state)[0]["action_logits"],
                       maxed(images, torch.zeros(1, 2), state)[0]["action_logits"])  # fmt: skip


@pytest.mark.parametrize("core", ["lstm", "gru", "rnn", "lnlstm"])
def test_action_input_feeds_the_previous_action_to_the_core(core):
    from agents.common.architecture import build_network

    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=16, core=core, action_input=True)
    state = model.initial_state(2)
    assert torch.equal(state[-1], torch.zeros(2, 3))  # no action before the first
    images, loc = torch.rand(2, 1, 24, 24), torch.zeros(2, 2)
    _, state = model(images, loc, state)
    left = model.record_action(state, torch.tensor([0, 0]))
    right = model.record_action(state, torch.tensor([2, 0]))
    assert torch.equal(left[-1], torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))
    assert all(torch.equal(a, b) for a, b in zip(left[:-1], state[:-1], strict=True))
    heads_l, _ = model(images, loc, left)
    heads_r, _ = model(images, loc, right)
    # env 0 moved differently: the core reads it; env 1 did the same: the same output
    assert not torch.allclose(heads_l["action_logits"][0], heads_r["action_logits"][0])
    assert torch.equal(heads_l["action_logits"][1], heads_r["action_logits"][1])
    restarted, _ = model.restart(torch.tensor([True, False]), left, loc)
    assert restarted[-1][0].abs().sum() == 0 and torch.equal(restarted[-1][1], left[-1][1])
    # the policy records what it did; a checkpoint records the option (only when on)
    policy = GlimpsePolicy(model, 2)
    actions = policy(images)
    assert torch.equal(policy.state[-1].argmax(1), torch.from_numpy(actions))
    assert build_network(model.architecture()).architecture()["action_input"] is True
    plain = RecurrentAttentionModel(3, hidden=16, core=core)
    assert "action_input" not in plain.architecture()
    fresh = plain.initial_state(2)
    assert plain.record_action(fresh, torch.tensor([0, 0])) is fresh
    assert len(fresh) == len(state) - 1


@pytest.mark.parametrize("core", ["lstm", "gru", "rnn", "lnlstm"])
@pytest.mark.parametrize("action_input", [False, True])
@pytest.mark.parametrize("glimpses_per_step", [1, 2])
def test_core_sequence_is_the_core_step_by_step(core, action_input, glimpses_per_step):
    """What PPO's replay runs: the whole rollout through the core (fused for an LSTM or GRU without
    the action input), against core_step, record_action and restart one step at a time: the same
    outputs and gradients (to float rounding: the fused kernel batches the input's product over the
    steps), with restarts inside the rollout and on its last step."""
    torch.manual_seed(3)
    model = RecurrentAttentionModel(5, patch_size=4, num_scales=2, hidden=16, core=core,
                                    action_input=action_input)  # fmt: skip
    steps, batch, g = 7, 3, glimpses_per_step
    vectors = torch.randn(steps * g, batch, 16, requires_grad=True)
    restart = torch.zeros(steps, batch, dtype=torch.bool)
    restart[2, 1] = restart[3, 0] = restart[3, 2] = restart[6, 1] = True
    actions = torch.randint(0, 5, (steps, batch))
    start = tuple(torch.randn_like(s) for s in model.initial_state(batch))
    fused = model.core_sequence(vectors, start, restart, actions, g)
    state, outputs = start, []
    for k in range(steps * g):
        h, state = model.core_step(vectors[k], state)
        outputs.append(h)
        if (k + 1) % g == 0:
            state = model.record_action(state, actions[k // g])
            state = model.restart(restart[k // g], state, torch.zeros(batch, 2))[0]
    stepped = torch.stack(outputs)
    assert fused.shape == (steps * g, batch, 16)
    torch.testing.assert_close(fused, stepped)
    weights = torch.randn_like(fused)
    grads = [torch.autograd.grad((out * weights).sum(), [vectors, *model.core.parameters()])
             for out in (model.core_sequence(vectors, start, restart, actions, g), stepped)]  # fmt: skip
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    never = torch.zeros_like(restart)  # the restarts did change the outputs after them
    assert not torch.equal(fused[3 * g], model.core_sequence(vectors, start, never, actions, g)[3 * g])
    if action_input:
        with pytest.raises(ValueError, match="needs the actions"):
            model.core_sequence(vectors, start, restart)
