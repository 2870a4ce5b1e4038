"""The Atari pipeline: parity of the two paths, each option's effect, seeding, bad input."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import AtariOptions, episode_ended, make_atari_env, make_vector_env


def run_parity(game, steps, seed=3, **opts):
    """Step both paths with the same random actions; resets where an episode ended."""
    single = make_atari_env(game, seed=seed, noop_max=0, **opts)
    vec = make_vector_env(game, 1, seed=seed, noop_max=0, **opts)
    o1, _ = single.reset()
    o2, _ = vec.reset()
    np.testing.assert_array_equal(o1, o2[0])
    rng = np.random.default_rng(0)
    ended = False
    counts = {"life_losses": 0, "episodes": 0}
    lives = single.ale.lives()
    for t in range(steps):
        action = int(rng.integers(single.action_space.n))
        o2, r2, te2, tr2, info2 = vec.step(np.array([action]))
        if ended:  # NEXT_STEP: the vector env resets now, the single env is reset by hand
            o1, _ = single.reset()
            r1, te1, tr1 = 0.0, False, False
        else:
            o1, r1, te1, tr1, info1 = single.step(action)
            counts["life_losses"] += info1["lives"] < lives
            lives = info1["lives"]
        assert np.array_equal(o1, o2[0]), f"{game} {opts} obs differ at step {t}"
        assert (r1, te1, tr1) == (r2[0], te2[0], tr2[0]), f"{game} {opts} step {t}"
        ended = bool(episode_ended([te1], [tr1], [single.ale.lives()], single.options)[0])
        counts["episodes"] += ended
        if ended:
            lives = 99
    vec.close()
    return counts


@pytest.mark.parametrize("game", ["pong", "breakout"])
def test_parity_single_and_vector(game):
    counts = run_parity(game, 2500)
    assert counts["episodes"] >= 1  # crossed at least one episode end


def test_parity_across_life_losses_and_sticky_actions():
    counts = run_parity(
        "breakout", 1500, episodic_life=True, repeat_action_probability=0.25, reward_clipping=False
    )
    assert counts["episodes"] >= 5
    counts = run_parity("breakout", 1500, life_loss_info=True)
    assert counts["life_losses"] >= 5


def test_parity_across_truncation():
    counts = run_parity("pong", 600, max_num_frames_per_episode=400)
    assert counts["episodes"] >= 5


def test_agrees_with_gymnasium_atari_preprocessing():
    """gymnasium's own wrappers (maxpool, grayscale, INTER_AREA) give the same 84x84 frames."""
    import ale_py

    gym.register_envs(ale_py)
    ref = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    ref = gym.wrappers.AtariPreprocessing(ref, noop_max=0, frame_skip=4, screen_size=84)
    ref = gym.wrappers.FrameStackObservation(ref, 4, padding_type="zero")
    ours = make_atari_env("pong", seed=0, noop_max=0, use_fire_reset=False, reward_clipping=False)
    r_obs, _ = ref.reset(seed=0)
    o_obs, _ = ours.reset()
    np.testing.assert_array_equal(r_obs, o_obs)
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = int(rng.integers(6))
        r_obs, r_rew, *_ = ref.step(a)
        o_obs, o_rew, *_ = ours.step(a)
        np.testing.assert_array_equal(r_obs, o_obs)
        assert r_rew == o_rew


def test_check_env_and_spaces():
    env = make_atari_env("pong", seed=0)
    check_env(env)
    assert env.observation_space.shape == (4, 84, 84)
    assert env.observation_space.dtype == np.uint8
    assert env.action_space.n == 6
    assert make_atari_env("pong", full_action_space=True).action_space.n == 18
    assert env.get_action_meanings()[:2] == ["NOOP", "FIRE"]


def test_rgb_frame_is_the_real_screen():
    env = make_atari_env("pong", seed=0, render_mode="rgb_array")
    env.reset()
    frame = env.rgb_frame()
    assert frame.shape == (210, 160, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, env.render())
    gray = env.ale.getScreenGrayscale()
    assert gray.shape == (210, 160)


def test_episodic_life_ends_episode_on_life_loss():
    env = make_atari_env("breakout", seed=0, episodic_life=True)
    env.reset()
    lives0 = env.ale.lives()
    terminated = False
    while not terminated:
        _, _, terminated, truncated, info = env.step(0)
        assert not truncated
    assert info["lives"] == lives0 - 1 and not env.ale.game_over()

    plain = make_atari_env("breakout", seed=0)
    plain.reset()
    while plain.ale.lives() == lives0:
        _, _, terminated, _, _ = plain.step(0)
    assert not terminated  # without the option a life loss is not the end


def test_reward_clipping():
    def rewards(clip):
        env = make_atari_env("space_invaders", seed=0, reward_clipping=clip)
        env.reset()
        rng = np.random.default_rng(0)
        return np.array([env.step(int(rng.integers(6)))[1] for _ in range(600)])

    raw, clipped = rewards(False), rewards(True)
    assert raw.max() > 1  # invaders are worth 5 to 30 points
    assert set(np.unique(clipped)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(clipped, np.clip(raw, -1, 1))


def trajectory(seed, steps=400, **opts):
    env = make_atari_env("breakout", seed=seed, **opts)
    obs, _ = env.reset()
    frames = [obs]
    rng = np.random.default_rng(0)  # the same actions whatever the env seed
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(int(rng.integers(4)))
        frames.append(obs)
        if term or trunc:
            frames.append(env.reset()[0])
    return np.stack(frames)


def test_sticky_actions_change_outcomes_under_same_seed():
    plain = trajectory(0, noop_max=0)
    sticky = trajectory(0, noop_max=0, repeat_action_probability=0.25)
    assert plain.shape != sticky.shape or not np.array_equal(plain, sticky)


def test_same_seed_same_observations_different_seeds_differ():
    a = trajectory(5, repeat_action_probability=0.25)
    b = trajectory(5, repeat_action_probability=0.25)
    np.testing.assert_array_equal(a, b)
    c = trajectory(6, repeat_action_probability=0.25)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_deterministic_game_is_seed_independent_without_noops_or_sticky_actions():
    np.testing.assert_array_equal(trajectory(1, noop_max=0), trajectory(2, noop_max=0))


def test_fire_reset_launches_the_ball():
    def lives_after_noops(fire):
        env = make_atari_env("breakout", seed=0, noop_max=0, use_fire_reset=fire)
        _, info = env.reset()
        for _ in range(300):
            _, _, _, _, info = env.step(0)
        return info["lives"], info["episode_frame_number"]

    lives_fire, _ = lives_after_noops(True)
    lives_nofire, frames = lives_after_noops(False)
    assert lives_nofire == 5  # the ball never comes without FIRE
    assert lives_fire < 5
    assert frames == 300 * 4


def test_vector_env_next_step_autoreset_and_shapes():
    vec = make_vector_env("pong", 2, seed=0, max_num_frames_per_episode=40)
    obs, _ = vec.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    for _ in range(10):
        obs, rew, term, trunc, info = vec.step(np.zeros(2, np.int64))
    assert trunc.all() and not term.any()  # 10 steps x 4 frames = the 40-frame cap
    obs, rew, term, trunc, info = vec.step(np.zeros(2, np.int64))
    assert not rew.any() and not term.any() and not trunc.any()
    assert not obs[:, :3].any() and obs[:, 3].any()  # a fresh stack: zeros behind one frame
    vec.close()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"frameskip": 0}, "frameskip must be >= 1"),
        ({"noop_max": -1}, "noop_max must be >= 0"),
        ({"frame_skip": 4}, "unknown Atari option 'frame_skip'; did you mean 'frameskip'"),
        ({"repeat_action_probability": 1.5}, r"repeat_action_probability must be in \[0, 1\]"),
        ({"grayscale": "yes"}, "grayscale must be True or False"),
        ({"stack_num": 2.5}, "stack_num must be an integer"),
    ],
)
def test_bad_options_raise_before_anything_starts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_atari_env("pong", **kwargs)
    with pytest.raises(ValueError, match=match):
        make_vector_env("pong", 2, **kwargs)


def test_bad_num_envs_and_game():
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        make_vector_env("pong", 0)
    with pytest.raises(ValueError, match="unknown game 'pongg'"):
        make_vector_env("pongg", 2)
    with pytest.raises(ValueError, match="action must be in"):
        env = make_atari_env("pong")
        env.reset()
        env.step(6)


def test_options_defaults_match_ale_vector_env():
    import inspect

    from ale_py.vector_env import AtariVectorEnv

    params = inspect.signature(AtariVectorEnv.__init__).parameters
    for name, value in AtariOptions().as_dict().items():
        assert params[name].default == value, name


def test_env_groups_are_the_games_of_one_vector_env():
    """Two groups of 4, sent and received in turn (or stepped together), return what one vector env
    of 8 returns for the same seed and actions, across life losses and NEXT_STEP reset steps
    (Breakout, random play, sticky actions)."""
    from envs.groups import EnvGroups

    opts = dict(life_loss_info=True, repeat_action_probability=0.25)
    whole = make_vector_env("breakout", 8, seed=3, **opts)
    groups = EnvGroups([make_vector_env("breakout", 4, seed=None, **opts) for _ in range(2)])
    obs, info = whole.reset()
    obs_g, info_g = groups.reset(seed=3)
    assert np.array_equal(obs, obs_g) and np.array_equal(info["env_id"], info_g["env_id"])
    rng = np.random.default_rng(0)
    lives_lost = 0
    for i in range(300):
        actions = rng.integers(0, 4, 8)
        step = whole.step(actions)
        if i % 2:
            got = groups.step(actions)
        else:  # what the PQN trainer does: each group sent, later received
            for g, s in enumerate(groups.slices):
                groups.send(g, actions[s])
            got = groups.merge([groups.recv(g) for g in range(len(groups))])
        for a, b in zip(step[:4], got[:4], strict=True):
            assert np.array_equal(a, b)
        for key in step[4]:
            assert np.array_equal(step[4][key], got[4][key]), key
        lives_lost += int(step[2].sum())
    assert lives_lost > 0  # the check crossed terminations and their reset steps
    whole.close()
    groups.close()
