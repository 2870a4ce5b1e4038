"""The Recurrent Attention Model: heads, what is detached, and the REINFORCE estimator."""

import pytest
import torch

from agents.glimpse import RecurrentAttentionModel, reinforce_loss


def step_once(model, batch=4):
    images = torch.rand(batch, 1, 24, 24)
    state = model.initial_state(batch)
    return model(images, torch.zeros(batch, 2), state)


@pytest.mark.parametrize("core", ["lstm", "gru", "rnn"])
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


def test_sampled_location_is_detached_and_logp_is_not():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=32)
    heads, _ = step_once(model)
    loc, logp, _ = model.sample_location(heads)
    assert not loc.requires_grad
    logp.sum().backward()
    assert (
        model.location_head.weight.grad is not None
        and model.location_head.weight.grad.abs().sum() > 0
    )
    assert (
        model.core.weight_ih.grad.abs().sum() > 0
    )  # REINFORCE on the location trains the core too


def test_baseline_does_not_shape_the_core():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=32)
    heads, _ = step_once(model)
    heads["baseline"].sum().backward()
    assert model.baseline_head.weight.grad.abs().sum() > 0
    for p in (model.core.weight_ih, model.glimpse.what.weight, model.action_head.weight):
        assert p.grad is None or p.grad.abs().sum() == 0


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


def test_bad_model_options():
    with pytest.raises(ValueError, match="unknown core 'transformer'"):
        RecurrentAttentionModel(3, core="transformer")
    with pytest.raises(ValueError, match="unknown location policy"):
        RecurrentAttentionModel(3, location_policy="uniform")
