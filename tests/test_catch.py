"""Catch dynamics against hand-worked cases (Mnih et al. 2014's game)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers Catch-v0)
from envs import CatchEnv, CatchVectorEnv

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
