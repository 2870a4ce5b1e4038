"""The saliency checks on the soft-attention agent's own maps (analysis.attention_checks): the agent
at recorded moments as a function of its observation, and what must hold whatever the weights."""

import numpy as np
import pytest
import torch

from agents.soft import SoftAttentionAgent
from analysis.attention_checks import Moments, StepFrom, attention_checks, attention_randomisation
from analysis.attention_video import attention_on_pixels, play_attention


@pytest.fixture(scope="module")
def played():
    torch.manual_seed(0)
    model = SoftAttentionAgent(3, 1, input_shape=(24, 24), torso="patch", hidden=32, queries=2,
                               core_channels=8, qk_norm=True).eval()  # fmt: skip
    return model, list(play_attention(model, {"game": "catch", "agent": "soft"}, steps=40, seed=0))


def test_the_agent_at_its_moments_is_the_agent_that_played(played):
    """Each moment steps from the state it was met with: the actions and attention of the play,
    for the moments in order, repeated, or a first few of them."""
    model, steps = played
    moments = Moments.of(steps)
    view = StepFrom(model, moments)
    with torch.no_grad():
        heads = view(moments.obs)
        twice = view(torch.cat([moments.obs, moments.obs]))
        first = view(moments.obs[:3])
    np.testing.assert_array_equal(heads["policy_logits"].argmax(1).numpy(), [s.action for s in steps])
    np.testing.assert_allclose(heads["attention"].numpy(), np.stack([s.attention for s in steps]), atol=1e-6)
    torch.testing.assert_close(twice["value"], heads["value"].repeat(2))
    torch.testing.assert_close(first["log_policy"], heads["log_policy"][:3])
    torch.testing.assert_close(heads["log_policy"].exp().sum(1), torch.ones(len(steps)))


def test_attention_on_pixels_keeps_each_cells_mass():
    """A patch torso's cell is a 4x4 block of pixels: each gets a sixteenth of the cell's mass."""
    model = SoftAttentionAgent(3, 1, input_shape=(24, 24), torso="patch", hidden=8, queries=1)
    grid = np.zeros((6, 6))
    grid[2, 5] = 1.0
    pixels = attention_on_pixels(grid, model, (24, 24))
    assert pixels.sum() == pytest.approx(1.0) and pixels[8:12, 20:24].tolist() == [[1 / 16] * 4] * 4


def test_randomising_the_layers_above_the_attention_leaves_its_maps_alone(played):
    """The attention is computed before the policy LSTM and the heads: re-initialising them leaves
    the maps exactly as they were, and the query network's re-initialisation changes them."""
    model, steps = played
    result = attention_randomisation(model, Moments.of(steps))
    names = [s.name for s in result.stages]
    assert names == ["heads", "policy_lstm", "queries", "keys_values", "conv_lstm", "conv1"]
    rho = {s.name: s.similarity["attention"]["spearman"] for s in result.stages}
    assert np.allclose(rho["heads"], 1) and np.allclose(rho["policy_lstm"], 1)
    assert rho["queries"].mean() < 0.9
    before = [p.clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # untouched


def test_deleting_every_pixel_is_the_same_whatever_ranks_them(played):
    """At a fraction of 1 every ranking blurs the whole frame: the ranked and random curves agree,
    for the attention and the Jacobian, on the action's log-probability and the value."""
    model, steps = played
    checks = attention_checks(model, steps[:12], fractions=(0.25, 1.0))
    assert checks["moments"] == 12
    for curve in checks["deletion"].values():
        assert curve["salient"][-1]["mean"] == pytest.approx(curve["random"][-1]["mean"], rel=1e-5)
    assert set(checks["randomisation"]) == {"attention", "jacobian"}
