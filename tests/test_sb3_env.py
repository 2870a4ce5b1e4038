"""envs.sb3_vec_env: SB3's VecEnv semantics on ALE's vector env, checked against SB3's own Atari
pipeline and against SB3's algorithms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import envs
from scripts.bench.envs import sb3_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("game", ["ms_pacman", "freeway"])
def test_transitions_agree_with_sb3_make_atari_env(game):
    """Same seeds, same actions: equal rewards, dones, truncation flags and episode scores; frames
    within SB3's own conversion differences (it greys the max of two RGB screens with OpenCV, ALE
    takes the max of two palette-grey screens). Games without FIRE: SB3 presses FIRE and then
    action 2 at every reset, which shifts a FIRE game by two steps."""
    ours = envs.sb3_vec_env(game, 2, seed=3, noop_max=0, reward_clipping=False,
                            max_num_frames_per_episode=1200)  # fmt: skip
    # no-op starts, life-loss terminals and clipping off, as on our side
    wrapper = {"noop_max": 0, "terminal_on_life_loss": False, "clip_reward": False}
    theirs = sb3_pipeline(game, 2, seed=3, wrapper_kwargs=wrapper,
                          env_kwargs={"max_num_frames_per_episode": 1200})  # fmt: skip
    try:
        a, b = ours.reset(), theirs.reset().transpose(0, 3, 1, 2)
        assert a.shape == b.shape == (2, 4, 84, 84) and a.dtype == b.dtype == np.uint8
        rng = np.random.default_rng(0)
        diffs, ends = [], 0
        for _ in range(700):  # three truncated episodes per env (300 agent steps each)
            actions = rng.integers(ours.action_space.n, size=2)
            a, ra, da, ia = ours.step(actions)
            b, rb, db, ib = theirs.step(actions)
            b = b.transpose(0, 3, 1, 2)
            np.testing.assert_array_equal(ra, rb)
            np.testing.assert_array_equal(da, db)
            diffs.append(np.abs(a.astype(int) - b.astype(int)))
            for i in np.flatnonzero(da):
                ends += 1
                assert ia[i]["TimeLimit.truncated"] == ib[i]["TimeLimit.truncated"]
                assert ia[i]["episode"]["r"] == ib[i]["episode"]["r"]
                last = np.abs(ia[i]["terminal_observation"].astype(int)
                              - ib[i]["terminal_observation"].transpose(2, 0, 1).astype(int))  # fmt: skip
                diffs.append(last)
        d = np.concatenate([x.ravel() for x in diffs])
        assert ends >= 4
        assert d.mean() < 0.2, d.mean()  # measured 0.03 (ms_pacman) and 0.05 (freeway)
        assert (d > 2).mean() < 0.02, (d > 2).mean()  # measured 0.3% and 0.7%
    finally:
        ours.close()
        theirs.close()


def test_same_step_autoreset_and_monitor_infos_under_life_loss():
    """Breakout, a life loss terminal (SB3's terminal_on_life_loss): every life loss is a done whose
    terminal observation is the observation the game goes on from; only the game over writes an
    ``episode`` (unclipped score, agent steps) and a fresh game's first observation."""
    env = envs.sb3_vec_env("breakout", 2, seed=0, life_loss_info=True)
    obs = env.reset()
    assert env.get_attr("lives") == [5, 5]
    rng = np.random.default_rng(1)
    steps, game_overs, life_losses = np.zeros(2, int), 0, 0
    while game_overs < 2:
        prev = obs
        obs, rewards, dones, infos = env.step(rng.integers(4, size=2))
        assert set(np.unique(rewards)) <= {0.0, 1.0}  # clipped to their sign by default
        steps += 1
        for i in np.flatnonzero(dones):
            last = infos[i]["terminal_observation"]
            np.testing.assert_array_equal(last[:3], prev[i][1:])  # the episode's own next frame
            if "episode" in infos[i]:
                game_overs += 1
                assert infos[i]["lives"] == 5 and infos[i]["episode"]["l"] == steps[i]
                assert infos[i]["episode"]["r"] >= 0 and not infos[i]["TimeLimit.truncated"]
                assert not np.array_equal(obs[i][:3], last[1:])  # a new game starts at once
                steps[i] = 0
            else:
                life_losses += 1
                np.testing.assert_array_equal(last, obs[i])  # the game goes on from here
    assert life_losses >= 8  # four lost lives before each game over
    env.close()


def test_seeding_follows_sb3():
    def run(seed, **options):
        env = envs.sb3_vec_env("pong", 2, seed=seed, **options)
        out = [env.reset()]
        for _ in range(60):
            out.append(env.step(np.full(2, 2))[0])
        env.close()
        return np.stack(out)

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))  # no-op starts are drawn from the seed
    env = envs.sb3_vec_env("pong", 1, seed=0)
    env.seed(5)  # SB3's API: the next reset seeds env i with 5 + i
    first = env.reset()
    np.testing.assert_array_equal(first, run(5)[0][:1])
    env.close()


def test_sb3_algorithms_train_and_evaluate_on_it(tmp_path):
    """SB3's PPO and DQN train on the env, ``evaluate_policy`` scores whole games on it, and a PPO
    saved from it gets a saliency video from record_saliency.py."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    env = envs.sb3_vec_env("pong", 4, seed=0, max_num_frames_per_episode=400)
    ppo = PPO("CnnPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    ppo.learn(512)
    assert ppo.num_timesteps == 512 and len(ppo.ep_info_buffer) > 0  # Monitor-style episode infos
    rewards, lengths = evaluate_policy(ppo, env, n_eval_episodes=4, return_episode_rewards=True)
    assert len(rewards) == 4 and all(r <= 0 for r in rewards)  # a barely trained Pong player
    assert all(n == 100 for n in lengths)  # whole games (capped at 400 frames), not lives
    ppo.save(tmp_path / "ppo_pong.zip")
    env.close()

    env = envs.sb3_vec_env("pong", 2, seed=0)
    dqn = DQN("CnnPolicy", env, buffer_size=2000, learning_starts=200, train_freq=4, seed=0,
              device="cpu")  # fmt: skip
    dqn.learn(600)
    assert dqn.num_timesteps == 600
    env.close()

    out = tmp_path / "ppo.mp4"
    cmd = [sys.executable, "scripts/record_saliency.py", "--checkpoint", str(tmp_path / "ppo_pong.zip"),
           "--game", "pong", "--steps", "20", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0


def test_render_attributes_and_methods():
    env = envs.sb3_vec_env("breakout", 3, seed=0, render_mode="rgb_array")
    env.reset()
    image = env.render()
    assert image.ndim == 3 and image.shape[-1] == 3  # SB3 tiles the envs' frames
    assert env.get_attr("game") == ["breakout"] * 3
    assert env.get_attr("frameskip", indices=[0]) == [4]
    assert env.env_method("get_action_meanings", indices=1) == [["NOOP", "FIRE", "RIGHT", "LEFT"]]
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecMonitor

    assert env.env_is_wrapped(Monitor) == [True] * 3
    assert env.env_is_wrapped(VecMonitor) == [False] * 3
    env.close()


@pytest.mark.parametrize("call,message", [
    (lambda: envs.sb3_vec_env("pongg", 2), "unknown game 'pongg'; did you mean 'pong'"),
    (lambda: envs.sb3_vec_env("pong", 2, stacks=4), "unknown Atari option 'stacks'"),
    (lambda: envs.sb3_vec_env("pong", 2, render_mode="human"), "render_mode must be None or"),
    (lambda: envs.sb3_vec_env("pong", 0), "num_envs must be an integer >= 1"),
])  # fmt: skip
def test_bad_input_is_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_unsupported_calls_say_what_is_there():
    env = envs.sb3_vec_env("pong", 1)
    with pytest.raises(AttributeError, match="has no attribute 'ale'; it has lives, render_mode"):
        env.get_attr("ale")
    with pytest.raises(AttributeError, match="options are fixed"):
        env.set_attr("frameskip", 2)
    with pytest.raises(AttributeError, match="only get_action_meanings"):
        env.env_method("clone_state")
    env.close()


def test_sb3_benchmark_measures_both_envs_and_refuses_a_bad_device(tmp_path):
    """benchmark.py sb3 at a tiny size times one PPO rollout on each env (the CPU path of the
    --device flag a GPU window passes as cuda); a device torch cannot use is one line."""
    tiny = ["--n-steps", "8", "--num-envs", "2", "--repeats", "1", "--out", str(tmp_path)]
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "sb3", *tiny], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| pong |")]
    assert [row.split(" | ")[1] for row in rows] == [
        "ours, envs.sb3_vec_env x2", "SB3 make_atari_env + VecFrameStack x2"]  # fmt: skip
    assert rows[1].split(" | ")[3] == "1.00x" and "GPU:" not in done.stdout
    saved = json.loads((tmp_path / "sb3.json").read_text())  # the results: the table and its data
    assert [row[1] for row in saved["blocks"][0]["rows"]] == [row.split(" | ")[1] for row in rows]
    done = subprocess.run([sys.executable, "scripts/benchmark.py", "sb3", "--device", "tpu", *tiny],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert done.stderr == "error: --device must be auto, cpu or cuda (got 'tpu')\n"
