"""Catch dynamics against hand-worked cases (Mnih et al. 2014's game)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers Catch-v0)
from envs import CatchEnv, CatchVectorEnv
from envs.catch import scripted_catch_rate

LEFT, STAY, RIGHT = 0, 1, 2


def ball_and_paddle(frame):
    size = frame.shape[-1]
    ball = [(r, c) for r, c in zip(*np.nonzero(frame[:-1]), strict=True)]
    paddle = np.flatnonzero(frame[size - 1])
    return ball, paddle


def place(env, col, dx):
    """Put the ball at the top row in ``col`` moving ``dx`` (the reset draw, done by hand)."""
    g = env._game
    g.ball_col[0], g.ball_dx[0], g.ball_row[0] = col, dx, 0


def test_registered_and_checked():
    env = gym.make("Catch-v0")
    assert env.observation_space.shape == (1, 24, 24)
    check_env(env.unwrapped)


def test_reset_layout():
    env = CatchEnv()
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and set(np.unique(obs)) == {0, 255}
    ball, paddle = ball_and_paddle(obs[0])
    assert len(ball) == 1 and ball[0][0] == 0
    assert list(paddle) == [11, 12]


def test_bounce_off_left_wall():
    env = CatchEnv(size=8)
    env.reset(seed=0)
    place(env, col=1, dx=-1)
    cols = []
    for _ in range(3):
        obs, *_ = env.step(STAY)
        cols.append(ball_and_paddle(obs[0])[0][0][1] if obs[0][:-1].any() else None)
    # 1 -> 0 (moving left), then the wall reverses it: 0 -> 1 -> 2
    assert cols == [0, 1, 2]


def test_bounce_off_right_wall():
    env = CatchEnv(size=8)
    env.reset(seed=0)
    place(env, col=7, dx=1)
    obs, *_ = env.step(STAY)
    assert ball_and_paddle(obs[0])[0] == [(1, 6)]


def test_catch_miss_and_episode_length():
    env = CatchEnv(size=8)
    env.reset(seed=0)
    # ball at col 3 moving right: 4, 5, 6, 7, bounce 6, 5, 4 -- lands on col 4 after 7 steps
    place(env, col=3, dx=1)
    rewards, steps, terminated = [], 0, False
    while not terminated:
        _, r, terminated, truncated, _ = env.step(STAY)  # paddle stays on cols 3, 4
        rewards.append(r)
        steps += 1
        assert not truncated
    assert steps == 7 and rewards == [0.0] * 6 + [1.0]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(STAY)

    env = CatchEnv(size=8, miss_reward=-1.0)
    env.reset(seed=0)
    place(env, col=3, dx=1)
    for _ in range(6):
        env.step(LEFT)  # paddle ends on cols 0, 1
    _, r, terminated, _, _ = env.step(LEFT)
    assert terminated and r == -1.0


def test_paddle_is_clamped():
    env = CatchEnv(size=8)
    env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(RIGHT)
    assert list(ball_and_paddle(obs[0])[1]) == [6, 7]


def test_wider_paddle_by_hand():
    env = CatchEnv(size=8, paddle_width=3)
    obs, _ = env.reset(seed=0)
    assert list(ball_and_paddle(obs[0])[1]) == [2, 3, 4]  # left end at (8 - 3) // 2
    for _ in range(6):
        obs, *_ = env.step(RIGHT)
    assert list(ball_and_paddle(obs[0])[1]) == [5, 6, 7]  # clamped at the right wall
    # ball at col 4 moving left lands on col 4 - 7 -> bounce: 3, 2, 1, 0, 1, 2, 3 after 7 steps
    for landing_paddle, reward in [(1, 1.0), (3, 1.0), (4, 0.0), (0, 0.0)]:
        env.reset(seed=0)
        place(env, col=4, dx=-1)
        env._game.paddle[0] = landing_paddle  # the paddle stays there: it covers 3 columns
        for _ in range(7):
            _, r, terminated, _, _ = env.step(STAY)
        assert terminated and r == reward, (landing_paddle, r)
    with pytest.raises(ValueError, match=r"paddle_width must be an integer in \[1, size // 2 = 4\]"):
        CatchEnv(size=8, paddle_width=5)
    with pytest.raises(ValueError, match="paddle_width"):
        CatchVectorEnv(2, paddle_width=0)


def test_scripted_player_shows_what_watching_is_worth():
    # without turns the landing is known from the first frame: watching once is enough
    for width in (2, 3):
        assert scripted_catch_rate(1, episodes=300, paddle_width=width) == 1.0
    # a 3-pixel paddle kept under the ball catches it whatever the turns ...
    assert scripted_catch_rate(None, episodes=300, turn_prob=0.3, paddle_width=3) == 1.0
    # ... and a player that stops watching catches less the earlier it stops
    rates = [scripted_catch_rate(k, episodes=2000, turn_prob=0.1, paddle_width=3) for k in (18, 12, 6)]
    assert 1.0 > rates[0] > rates[1] > rates[2] > 0.1
    # the paper's 2-pixel paddle cannot follow a turn (both move one column a step)
    assert scripted_catch_rate(None, episodes=2000, turn_prob=0.1) < 0.75


def test_stack_shows_direction():
    env = CatchEnv(stack_num=2)
    obs, _ = env.reset(seed=1)
    assert not obs[0].any() and obs[1].any()
    obs2, *_ = env.step(STAY)
    np.testing.assert_array_equal(obs2[0], obs[1])


def test_vector_matches_single_and_autoresets_next_step():
    n, seed = 3, 7
    vec = CatchVectorEnv(n, seed=seed, stack_num=2)
    singles = [CatchEnv(stack_num=2) for _ in range(n)]
    vobs, _ = vec.reset()
    sobs = [s.reset(seed=seed + i)[0] for i, s in enumerate(singles)]
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    rng = np.random.default_rng(0)
    for _ in range(23):
        a = rng.integers(0, 3, n)
        vobs, vr, vt, vtr, _ = vec.step(a)
        outs = [s.step(int(x)) for s, x in zip(singles, a, strict=True)]
        np.testing.assert_array_equal(vobs, np.stack([o[0] for o in outs]))
        np.testing.assert_array_equal(vr, [o[1] for o in outs])
        np.testing.assert_array_equal(vt, [o[2] for o in outs])
        assert not vtr.any()
    assert vt.all()  # every episode is exactly 23 steps
    vobs, vr, vt, vtr, _ = vec.step(np.zeros(n, np.int64))  # the reset step
    assert not vr.any() and not vt.any() and not vtr.any()
    assert not vobs[:, 0].any() and (vobs[:, 1, 0] == 255).sum() == n  # fresh stacks


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        CatchVectorEnv(0)
    with pytest.raises(ValueError, match="size"):
        CatchEnv(size=2)
    with pytest.raises(ValueError, match="actions"):
        vec = CatchVectorEnv(2)
        vec.reset(seed=0)
        vec.step(np.array([0, 3]))


def test_turns_by_hand_and_their_rate():
    # turn_prob 1: the ball reverses before every move, so it zigzags between two columns
    env = CatchEnv(size=8, turn_prob=1.0)
    env.reset(seed=0)
    place(env, col=3, dx=1)
    cols = [ball_and_paddle(env.step(STAY)[0][0])[0][0][1] for _ in range(4)]
    assert cols == [2, 3, 2, 3]
    # a turn into a wall is undone by the bounce: at column 0 moving right, the turn points left
    place(env, col=0, dx=1)
    env._game.ball_row[0] = 0
    assert ball_and_paddle(env.step(STAY)[0][0])[0] == [(1, 1)]
    # turn_prob p: away from the walls the direction flips on about p of the steps
    vec = CatchVectorEnv(2000, size=64, seed=1, turn_prob=0.2)
    vec.reset()
    g = vec._game
    g.ball_col[:] = 32  # the middle of a 64-wide screen: no wall within the next 10 steps
    flips = 0
    for _ in range(10):
        before = g.ball_dx.copy()
        vec.step(np.ones(2000, np.int64))
        flips += (g.ball_dx != before).sum()
    assert abs(flips / 20_000 - 0.2) < 0.01  # 0.2 +- 3.5 standard errors
    # no turns, no draws: each game's generator serves only its resets, so seeded runs of the
    # paper's game are what they were before turns existed (the second episode's start is the
    # generator's third and fourth draws)
    vec = CatchVectorEnv(3, seed=3)
    vec.reset()
    for _ in range(24):  # 23 steps and the reset step
        vec.step(np.ones(3, np.int64))
    for i in range(3):
        rng = np.random.default_rng(3 + i)
        rng.integers(0, 24), rng.integers(0, 2)
        assert vec._game.ball_col[i] == rng.integers(0, 24)
        assert vec._game.ball_dx[i] == (1 if rng.integers(0, 2) else -1)
    with pytest.raises(ValueError, match=r"turn_prob must be a probability in \[0, 1\], got 1.5"):
        CatchVectorEnv(2, turn_prob=1.5)
