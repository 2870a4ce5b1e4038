"""Environment throughput: our two paths beside SB3's Atari pipeline and the raw emulator.

Every figure is agent steps per second with uniformly random actions (frames per second for the raw
emulator), the median of ``repeats`` timed windows of ``seconds`` each after a warm-up.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs import make_atari_env, make_vector_env, resolve_game
from scripts.bench.timing import rate


@dataclass
class Measurement:
    game: str
    setup: str
    rate: float
    unit: str = "steps/s"


class Setup:
    """Something to time: ``step()`` does some work and returns how many units it did."""

    def __init__(
        self,
        name: str,
        step: Callable[[], int],
        close: Callable[[], None] = lambda: None,
        unit: str = "steps/s",
    ) -> None:
        self.name, self.step, self.close, self.unit = name, step, close, unit
        self.rates: list[float] = []

    def window(self, seconds: float) -> None:
        self.rates.append(rate(self.step, seconds, warmup=False))


def interleaved(setups: list[Setup], seconds: float, repeats: int) -> dict[str, float]:
    """Median rate of each setup; windows are taken round-robin so that a slow spell of this
    shared machine lands on every setup alike instead of on whichever ran then."""
    for s in setups:
        s.window(min(0.5, seconds))  # warm-up: caches, thread pools, first resets
        s.rates.clear()
    for _ in range(repeats):
        for s in setups:
            s.window(seconds)
    for s in setups:
        s.close()
    return {s.name: statistics.median(s.rates) for s in setups}


def raw_emulator(game: str) -> Setup:
    """Frames/s of bare ``ALEInterface.act`` with random minimal actions: the emulation ceiling."""
    import ale_py
    from ale_py import roms

    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setInt("random_seed", 0)
    ale.loadROM(roms.get_rom_path(resolve_game(game)))
    actions = ale.getMinimalActionSet()
    rng = np.random.default_rng(0)

    def step() -> int:
        for a in rng.integers(len(actions), size=100):
            ale.act(actions[a])
            if ale.game_over():
                ale.reset_game()
        return 100

    return Setup(RAW, step, unit="frames/s")


def _batched(name: str, env, num_envs: int) -> Setup:
    env.reset()
    rng = np.random.default_rng(0)
    n = env.action_space.nvec[0] if hasattr(env.action_space, "nvec") else env.action_space.n

    def step() -> int:
        env.step(rng.integers(n, size=num_envs))
        return num_envs

    return Setup(name, step, env.close)


def vector_env(game: str, num_envs: int) -> Setup:
    return _batched(
        f"ours, make_vector_env x{num_envs}", make_vector_env(game, num_envs, seed=0), num_envs
    )


def single_env(game: str) -> Setup:
    env = make_atari_env(game, seed=0)
    env.reset()
    rng = np.random.default_rng(0)

    def step() -> int:
        _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        if term or trunc:
            env.reset()
        return 1

    return Setup("ours, make_atari_env (single)", step)


def sb3_pipeline(game: str, num_envs: int, seed: int = 0, wrapper_kwargs: dict | None = None,
                 env_kwargs: dict | None = None):  # fmt: skip
    """SB3's documented Atari pipeline: ``make_atari_env`` (DummyVecEnv) + ``VecFrameStack(4)``;
    ``wrapper_kwargs`` go to SB3's ``AtariWrapper``, ``env_kwargs`` to the ALE env."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env as sb3_make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    camel = "".join(part.capitalize() for part in resolve_game(game).split("_"))
    vec = sb3_make_atari_env(f"{camel}NoFrameskip-v4", n_envs=num_envs, seed=seed,
                             wrapper_kwargs=wrapper_kwargs, env_kwargs=env_kwargs)  # fmt: skip
    return VecFrameStack(vec, 4)


def sb3(game: str, num_envs: int) -> Setup:
    return _batched(f"SB3 make_atari_env, DummyVecEnv x{num_envs}", sb3_pipeline(game, num_envs),
                    num_envs)  # fmt: skip


def ppo_rollout_rate(env, n_steps: int, device: str = "cpu") -> dict[str, float]:
    """Steps/s of SB3 PPO's ``collect_rollouts`` (policy forward on ``device``, env step, rollout
    buffer) for one rollout of ``n_steps`` per env, and the share of it spent inside the env's
    ``step``."""
    from stable_baselines3 import PPO

    model = PPO("CnnPolicy", env, n_steps=n_steps, seed=0, device=device)
    _, callback = model._setup_learn(n_steps * env.num_envs, None)
    callback.on_training_start({}, {})
    inner, in_env = model.env.step, [0.0]

    def timed_step(actions):
        t = time.perf_counter()
        out = inner(actions)
        in_env[0] += time.perf_counter() - t
        return out

    model.env.step = timed_step
    start = time.perf_counter()
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_steps)
    elapsed = time.perf_counter() - start
    env.close()
    return {"rate": n_steps * env.num_envs / elapsed, "env_share": in_env[0] / elapsed}


def benchmark_sb3_rollouts(game: str, num_envs: int, n_steps: int, repeats: int,
                           device: str = "cpu") -> dict[str, dict[str, float]]:  # fmt: skip
    """PPO rollouts (the policy on ``device``) on our ``sb3_vec_env`` and on SB3's pipeline,
    alternated ``repeats`` times; medians of each setup's rate and env share."""
    from envs.sb3 import sb3_vec_env

    makers = {
        f"ours, envs.sb3_vec_env x{num_envs}": lambda: sb3_vec_env(game, num_envs, seed=0),
        f"SB3 make_atari_env + VecFrameStack x{num_envs}": lambda: sb3_pipeline(game, num_envs),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            runs[name].append(ppo_rollout_rate(make(), n_steps, device))
    return {name: {k: statistics.median(r[k] for r in rs) for k in ("rate", "env_share")}
            for name, rs in runs.items()}  # fmt: skip


RAW = "raw ALE emulator (1 core)"
SB3_1 = "SB3 make_atari_env, DummyVecEnv x1"


def benchmark_envs(
    games: list[str], vector_sizes: list[int], seconds: float = 2.0, repeats: int = 3
) -> list[Measurement]:
    """Every setup on every game; within a game the setups' windows are interleaved."""
    out: list[Measurement] = []
    for game in games:
        setups = [raw_emulator(game), sb3(game, 1), sb3(game, 8), single_env(game)]
        setups += [vector_env(game, n) for n in vector_sizes]
        units = {s.name: s.unit for s in setups}
        for name, measured in interleaved(setups, seconds, repeats).items():
            out.append(Measurement(game, name, measured, units[name]))
    return out


def ratio_rows(results: list[Measurement], frameskip: int = 4) -> list[list[str]]:
    """Table rows with each setup's rate, its ratio to SB3 x1 and to the emulation ceiling.

    The ceiling is cores x raw frames/s / frameskip agent steps/s: what ALE alone could do if
    every core emulated and nothing else ran.
    """
    cores = os.cpu_count() or 1
    rows = []
    by_game: dict[str, dict[str, float]] = {}
    for m in results:
        by_game.setdefault(m.game, {})[m.setup] = m.rate
    for m in results:
        rates = by_game[m.game]
        ceiling = cores * rates[RAW] / frameskip
        if m.unit == "frames/s":
            rows.append(
                [m.game, m.setup, f"{m.rate:,.0f} frames/s", "", f"ceiling {ceiling:,.0f} steps/s"]
            )
        else:
            rows.append(
                [
                    m.game,
                    m.setup,
                    f"{m.rate:,.0f}",
                    f"{m.rate / rates[SB3_1]:.2f}x",
                    f"{m.rate / ceiling:.0%}",
                ]
            )
    return rows
