"""The soft-attention agent's video: its maps land on the pixels their feature cells read (receptive
fields by hand), the value's Jacobian at a recurrent state matches finite differences and, at an
episode's start, the saliency module's, and the agreement statistic is a rank correlation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.soft import SoftAttentionAgent, SoftPolicy
from analysis.attention_video import (
    cells_of,
    maps_to_obs,
    object_shares,
    receptive_field_centres,
    spearman,
    value_jacobian,
)
from analysis.saliency import jacobian_saliency


def _agent(shape: tuple[int, int] = (24, 24), n_actions: int = 3) -> SoftAttentionAgent:
    torch.manual_seed(0)
    return SoftAttentionAgent(n_actions, 1, input_shape=shape, core_channels=4, hidden=16, queries=2).eval()


def test_receptive_field_centres_by_hand():
    # nature: 8x8 stride 4 puts the first centre at 3.5, then 4x4 stride 2 at 3.5 + 1.5 * 4 = 9.5;
    # the stride is 4 * 2. small: padded 3x3 convolutions keep the first centre on pixel 0
    assert receptive_field_centres(_agent((84, 84)).vision) == (9.5, 8)
    assert receptive_field_centres(_agent((24, 24)).vision) == (0.0, 2)


def test_a_cell_lands_on_the_pixels_nearest_its_centre():
    model = _agent((84, 84))
    assert model.map_shape == (9, 9)
    corner = np.zeros((9, 9))
    corner[0, 0] = corner[8, 8] = 1.0
    obs = maps_to_obs(corner, model)
    assert obs.shape == (84, 84)
    # cell 0 is centred on 9.5 and cell 1 on 17.5: pixels 0-13 are nearer cell 0; cell 8 is centred
    # on 73.5, nearest to pixels 70-83
    lit = np.flatnonzero(obs.any(1))
    assert list(lit) == [*range(14), *range(70, 84)]
    assert obs[:14, :14].all() and obs[70:, 70:].all() and obs.sum() == 2 * 14 * 14
    # summing back over each cell's pixels gives the cell its pixel count; no mass is lost
    counts = cells_of(obs, model, (9, 9))
    assert counts[0, 0] == counts[8, 8] == 14 * 14 and counts.sum() == obs.sum()
    x = np.random.default_rng(0).random((84, 84))
    assert cells_of(x, model, (9, 9)).sum() == pytest.approx(x.sum())


def test_the_value_jacobian_is_the_saliency_module_s_at_an_episode_s_start():
    model = _agent()
    obs = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (1, 1, 24, 24), dtype=np.uint8))
    ours = value_jacobian(model, obs, SoftPolicy(model, 1))
    theirs = jacobian_saliency(model, obs, "value").combined[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-9)


def test_the_value_jacobian_at_a_recurrent_state_matches_finite_differences():
    model = _agent().double()  # differences of a value well above its rounding
    rng = np.random.default_rng(2)
    policy = SoftPolicy(model, 1)
    for _ in range(3):  # a state that is no longer zero, a previous action and reward
        policy(torch.from_numpy(rng.integers(0, 256, (1, 1, 24, 24), dtype=np.uint8)))
        policy.observe(np.array([2]), np.array([1.0]))
    obs = torch.from_numpy(rng.integers(0, 256, (1, 1, 24, 24), dtype=np.uint8))
    jac = value_jacobian(model, obs, policy)
    state = tuple(s.clone() for s in policy.state)

    def value(x: torch.Tensor) -> float:
        with torch.no_grad():
            return float(model.step(x, state, policy.prev_action, policy.prev_reward)[0]["value"][0])

    x = obs.double() / 255.0
    for r, c in zip(*np.unravel_index(np.argsort(jac, axis=None)[-3:], jac.shape), strict=True):
        h = 1e-5
        up, down = x.clone(), x.clone()
        up[0, 0, r, c] += h
        down[0, 0, r, c] -= h
        assert abs(value(up) - value(down)) / (2 * h) == pytest.approx(jac[r, c], rel=1e-4)
    assert not np.allclose(jac, value_jacobian(model, obs, SoftPolicy(model, 1)))  # the state counts


def test_agreement_is_a_rank_correlation():
    a = np.arange(9.0).reshape(3, 3)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones((3, 3))))


def test_object_shares_spread_a_cell_over_its_pixels():
    """On Catch's 24x24 screen the small torso's cell j is centred on pixel 2j; a pixel halfway
    between two centres goes to the later cell, so cell 3 holds pixels 5 and 6 on each axis."""
    model = _agent()
    assert list(np.flatnonzero(maps_to_obs(np.eye(12)[3][:, None], model)[:, 0])) == [5, 6]
    attention = np.zeros((2, 12, 12))
    attention[:, 3, 3] = 1.0  # both queries on the cell holding pixels (5-6, 5-6)
    jacobian = np.zeros((24, 24))
    jacobian[6, 5] = 2.0
    state = [np.array([6, 5, 10, 2, 24])]  # the ball at row 6, column 5; the paddle at columns 10-11
    shares = object_shares("catch", state, attention, jacobian, model)
    # both peaks on the ball's cell; a random cell is within one of it 9 times in 144
    assert shares["ball"] == pytest.approx((0.25, 1.0, 1.0, 9 / 144))
    assert shares["paddle"][:3] == (0.0, 0.0, 0.0) and 0 < shares["paddle"][3] < 9 / 144
    assert object_shares("pong", None, attention, jacobian, model) == {}


def test_a_peak_is_near_an_object_within_one_cell_of_it():
    from analysis.attention_video import peak_near

    cells = np.zeros((6, 6), bool)
    cells[2, 2] = True
    maps = np.zeros((3, 6, 6))
    maps[0, 3, 3] = maps[1, 2, 1] = maps[2, 4, 2] = 1.0  # one cell diagonally, one beside, two below
    assert peak_near(maps, cells) == pytest.approx((2 / 3, 9 / 36))
    cells[5, 5] = True  # a second cell of the class, in the corner: 4 more cells near it
    assert peak_near(maps, cells)[1] == pytest.approx(13 / 36)
    assert all(np.isnan(peak_near(maps, np.zeros((6, 6), bool))))


def test_the_sequential_jacobian_replays_the_episode_and_its_diagonal_is_the_video_s_jacobian():
    from analysis.attention_video import episode_jacobian, play_attention

    model = _agent()
    config = {"game": "catch", "env_options": {"stack_num": 1, "size": 24}}
    played = list(play_attention(model, config, episodes=1, seed=4))
    assert len(played) == 23 and played[1].inputs[0] == played[0].action  # each step told the last action
    seq = episode_jacobian(model, played)
    assert seq.matrix.shape == (23, 23) and np.allclose(np.triu(seq.matrix, 1), 0)
    diagonal = [np.sqrt((s.value_jacobian**2).sum()) for s in played]  # one channel: |grad| is the grad
    np.testing.assert_allclose(np.diag(seq.matrix), diagonal, rtol=1e-4)
    assert seq.matrix[10, :10].max() > 0  # the value at step 10 still moves with earlier frames
    with pytest.raises(ValueError, match="takes the value or the policy_logits head"):
        episode_jacobian(model, played, head="attention")
