"""analysis.core_state: the core's input size, cell-state size and output spread."""

import math

import pytest
import torch
from conftest import call_script

from agents.glimpse import RecurrentAttentionModel
from analysis.core_state import core_state_stats, markdown

CATCH = {"game": "catch", "env_options": {}}


def test_a_core_whose_output_cannot_vary_has_zero_spread_and_the_cell_state_by_hand():
    """An LSTM with zero weights, forget gate shut (bias -100), input gate half open (bias 0) and
    cell input tanh(b) = 0.8: c = 0.5 * 0.8 = 0.4 in every unit at every step, whatever it sees."""
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, patch_size=6, num_scales=2, hidden=16)
    with torch.no_grad():
        for p in model.core.parameters():
            p.zero_()
        h = 16
        model.core.bias_ih[h : 2 * h] = -100.0  # forget
        model.core.bias_ih[2 * h : 3 * h] = math.atanh(0.8)  # cell input
    stats = core_state_stats(model, CATCH, steps=30, num_envs=4)
    assert stats.output_spread == 0.0
    assert stats.cell_size == pytest.approx(0.4, abs=1e-6)
    assert stats.input_size > 0
    assert stats.action_information == pytest.approx(0.0, abs=1e-6)  # one output: one distribution


def test_a_fresh_core_reads_its_input_and_gru_has_no_cell_state():
    torch.manual_seed(0)
    lstm = core_state_stats(RecurrentAttentionModel(3, patch_size=6, num_scales=2, hidden=16), CATCH,
                            steps=30, num_envs=4, step=123)  # fmt: skip
    assert lstm.output_spread > 0.01 and lstm.cell_size > 0 and lstm.step == 123
    gru = core_state_stats(RecurrentAttentionModel(3, patch_size=6, num_scales=2, hidden=16, core="gru"),
                           CATCH, steps=30, num_envs=4)  # fmt: skip
    assert math.isnan(gru.cell_size) and gru.output_spread > 0.01
    table = markdown([lstm, gru]).splitlines()
    assert len(table) == 4 and table[2].startswith("| 123 |") and table[3].count("|") == 6


def test_action_information_by_hand():
    """Two states, deterministic and different: log 2. Two states with one distribution: 0. States
    (1, 0) and (0.5, 0.5): mean (0.75, 0.25), KLs log(1/0.75) and 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)."""
    from analysis.core_state import action_information

    assert action_information(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(math.log(2))
    assert action_information(torch.tensor([[0.3, 0.7], [0.3, 0.7]])) == pytest.approx(0.0, abs=1e-7)
    kl = (math.log(1 / 0.75) + 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)) / 2
    assert action_information(torch.tensor([[1.0, 0.0], [0.5, 0.5]])) == pytest.approx(kl)


def test_cli_refusals_are_one_line(tmp_path):
    for args, message in [(["--run", str(tmp_path / "nope")], "run directory not found"),
                          (["--run", str(tmp_path), "--steps", "0"], "--steps must be >= 1")]:  # fmt: skip
        out = call_script("scripts/core_state.py", *args)
        assert out.returncode != 0 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def breakout_frames(steps: int, seed: int = 0):
    """(grey frame, RAM) pairs of Breakout played at random, FIRE every 15 steps to serve."""
    import ale_py
    import gymnasium as gym
    import numpy as np

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", obs_type="grayscale", frameskip=4, repeat_action_probability=0.0)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for t in range(steps):
        obs, _, terminated, truncated, _ = env.step(1 if t % 15 == 0 else int(rng.choice([0, 2, 3])))
        yield obs, env.unwrapped.ale.getRAM()
        if terminated or truncated:
            env.reset()
    env.close()


def test_breakout_objects_agree_with_the_games_ram():
    """The columns read off the frame move with the game's own positions (RAM 99: ball x, 72:
    paddle x; AtariARI's annotations) at a fixed offset, within a pixel, whenever the ball is
    below the bricks and the paddle clear of the walls."""
    import numpy as np

    from analysis.core_state import breakout_objects

    ball, paddle = [], []
    for frame, ram in breakout_frames(600):
        row, col, pad = breakout_objects(frame)
        if not np.isnan(col):  # in sight above the paddle's rows, so not mistaken for the paddle
            ball.append(col - ram[99])
            assert 94 <= row < 189
            if 20 < pad < 140:
                paddle.append(pad - ram[72])
    assert len(ball) > 50 and len(paddle) > 50
    for offsets in (ball, paddle):  # a ball half behind a wall or the paddle moves its centre by 0.5
        assert np.ptp(offsets) <= 1 and np.mean(np.array(offsets) == np.median(offsets)) > 0.9


def test_landing_column_by_hand_and_along_real_falls():
    import numpy as np

    from analysis.core_state import breakout_objects, landing_column

    assert landing_column((100, 50), (104, 54)) == 54 + 85  # straight down and right
    assert landing_column((100, 140), (104, 144)) == 72.0  # off the right wall (centre 150.5)
    assert landing_column((100, 20), (104, 16)) == pytest.approx(8.5 + (85 - 16 + 8.5))  # left wall
    assert math.isnan(landing_column((104, 54), (100, 50)))  # rising
    # every sighting of a fall predicts where its last sighting, at the paddle, says it lands
    before, fall, errors = (math.nan, math.nan), [], []
    for frame, _ in breakout_frames(3000, seed=1):
        row, col, _ = breakout_objects(frame)
        landing = landing_column(before, (row, col))
        fall = fall + [landing] if not math.isnan(landing) else []
        if fall and row >= 185:
            errors += [abs(x - fall[-1]) for x in fall[:-1]]
            fall = []
        before = (row, col)
    assert len(errors) > 300 and np.median(errors) == 0 and np.mean(np.array(errors) < 2) > 0.95


def test_ball_tracking_probe_and_moves_by_hand():
    import numpy as np

    from analysis.core_state import ball_tracking

    rng = np.random.default_rng(0)
    n = 800
    offsets = rng.choice([-30.0, 30.0], n)
    envs = np.arange(n) % 8
    noise = torch.randn(n, 16)
    knows = noise.clone()
    knows[:, 3] += torch.as_tensor(np.sign(offsets), dtype=torch.float32) * 3
    right, left = 2, 3
    towards = np.where(offsets > 0, right, left)
    actions = np.where(np.arange(n) % 4 == 0, 5 - towards, towards)  # towards 3 times in 4
    seen = ball_tracking(knows, offsets, actions, envs, right, left)
    assert seen["ball_probe"] > 0.95
    assert seen["toward_ball"] == 0.75 and seen["away_from_ball"] == 0.25
    blind = ball_tracking(noise, offsets, np.zeros(n, int), envs, right, left)
    assert abs(blind["ball_probe"] - 0.5) < 0.1 and blind["toward_ball"] == 0.0
    test_share = np.mean(offsets[envs >= 6] > 0)
    assert blind["ball_majority"] == pytest.approx(max(test_share, 1 - test_share))
    for n in (0, 1):  # nothing seen, or one env only: nothing to test a probe on
        with pytest.raises(ValueError, match="too few steps with the ball in sight"):
            ball_tracking(noise[:n], offsets[:n], actions[:n], envs[:n], right, left)


def test_a_policy_parked_at_the_right_wall_is_seen_parked_and_moving_away():
    """Actions RIGHT 9 times in 10 and FIRE otherwise, whatever the agent sees: the paddle sits
    against the right wall, every falling ball lands to its left, and pressing RIGHT moves away."""
    import numpy as np

    torch.manual_seed(0)
    model = RecurrentAttentionModel(4, patch_size=16, num_scales=3, scale_factor=4, hidden=16,
                                    retina_pool="max")  # fmt: skip
    with torch.no_grad():
        model.action_head.weight.zero_()
        model.action_head.bias.copy_(torch.tensor([-100.0, np.log(0.1), np.log(0.9), -100.0]))
    options = {"img_height": 210, "img_width": 160, "stack_num": 1}
    config = {"game": "breakout", "env_options": options,
              "action_set": ["NOOP", "FIRE", "RIGHT", "LEFT"]}  # fmt: skip
    stats = core_state_stats(model, config, steps=300, num_envs=4)
    assert stats.paddle_at_wall > 0.8
    assert stats.away_from_ball > 0.8 and stats.toward_ball == 0.0
    assert 0.0 <= stats.ball_probe <= 1.0 and stats.ball_majority > 0.8  # it lands left, mostly
    table = markdown([stats]).splitlines()
    assert table[0].count("|") == 10 and "ball side probe" in table[0]
