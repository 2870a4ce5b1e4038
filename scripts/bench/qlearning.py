"""Q-learning benchmarks: the DQN trainer against SB3's DQN, the replay memory against SB3's
buffers, PQN with learning, where PQN's learner spends an update, what actors and learners could
each keep up with, and whether bf16 learns Catch as float32 does.

Each trainer runs in a fresh spawned process (``in_fresh_process``) so that its peak RSS is its
own. The DQN's steps/s is measured over the steps after ``learning_starts`` only (the regime that
training spends its time in)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from scripts.bench.timing import peak_rss_mb, rate, rss_mb


def run_ours(game: str, steps: int, learning_starts: int, buffer_size: int, num_envs: int,
             options: dict[str, Any], device: str = "cpu") -> dict[str, float]:  # fmt: skip
    """Our trainer; returns steps/s after learning starts and peak RSS."""
    import tempfile

    import torch

    from agents.qlearning.dqn import DQNConfig, DQNTrainer

    torch.set_num_threads(os.cpu_count() or 1)
    marks: dict[str, float] = {}

    def clock(trainer: DQNTrainer, step: int) -> None:
        if step >= learning_starts and "t0" not in marks:
            marks["t0"], marks["s0"] = time.perf_counter(), step

    with tempfile.TemporaryDirectory() as tmp:
        cfg = DQNConfig(
            game=game, total_steps=learning_starts + steps, learning_starts=learning_starts,
            buffer_size=buffer_size, num_envs=num_envs, train_freq=4, batch_size=32,
            target_update=1000, save_every=10**12, progress=False, run_dir=tmp, device=device,
            **options,
        )  # fmt: skip
        trainer = DQNTrainer(cfg, callbacks=[clock])
        trainer.run()
        elapsed = time.perf_counter() - marks["t0"]
        return {"sps": (trainer.global_step - marks["s0"]) / elapsed, "peak_rss_mb": peak_rss_mb()}


def run_pqn(game: str, steps: int, num_envs: int, options: dict[str, Any],
            device: str = "cpu") -> dict[str, float]:  # fmt: skip
    """Our PQN trainer; steps/s with learning, over the rollouts after the first (warm-up) one,
    the seconds that first rollout and its update took (compiling, with --compile), the shares of
    the loop spent in the emulators, acting (forward and transfers) and learning, and peak RSS."""
    import tempfile

    import torch

    from agents.qlearning.pqn import PQNConfig, PQNTrainer

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PQNConfig(game=game, num_envs=num_envs, save_every=10**12, progress=False,
                        saliency_every=0, run_dir=tmp, device=device, **options)  # fmt: skip
        warmup = cfg.num_envs * cfg.rollout
        cfg.total_steps = warmup + max(steps, warmup)
        trainer = PQNTrainer(cfg)
        marks: dict[str, Any] = {}

        def clock(tr: PQNTrainer, step: int) -> None:
            if step > warmup and "t0" not in marks:  # first step of the second rollout
                if tr.device.type == "cuda":
                    torch.cuda.synchronize()
                marks["t0"], marks["s0"] = time.perf_counter(), step - tr.cfg.num_envs
                marks["seconds"] = dict(tr.seconds)

        trainer.callbacks.append(clock)
        start = time.perf_counter()
        trainer.run()
        elapsed = time.perf_counter() - marks["t0"]
        spent = {k: trainer.seconds[k] - marks["seconds"][k] for k in trainer.seconds}
        total = sum(spent.values())
        result = {"sps": (trainer.global_step - marks["s0"]) / elapsed,
                  "warmup_s": marks["t0"] - start,  # the first rollout and update (--compile's)
                  "peak_rss_mb": peak_rss_mb(),
                  **{f"{k}_share": v / total for k, v in spent.items()}}  # fmt: skip
        if trainer.device.type != "cpu":  # on CPU the rollout's tensor is the numpy array itself
            result["transfer_ms"] = observation_transfer_ms(num_envs, trainer.device)
            # the share of a rollout step (num_envs / sps seconds) that the copy takes
            result["transfer_share"] = result["transfer_ms"] / 1000 * result["sps"] / num_envs
        return result


def observation_transfer_ms(num_envs: int, device: Any, repeats: int = 50) -> float:
    """Median milliseconds to move one rollout step's observations (``num_envs`` stacks of four
    84x84 uint8 frames, in pageable numpy memory as the emulators return them) into a buffer on
    ``device``, as PQN's rollout does, synchronised so that the copy has ended: the transfer part
    of the act share, which the trainer's own clock cannot separate without syncing every step."""
    import statistics

    import torch

    device = torch.device(device)
    obs = np.random.default_rng(0).integers(0, 256, (num_envs, 4, 84, 84), dtype=np.uint8)
    buffer = torch.empty(obs.shape, dtype=torch.uint8, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(repeats + 5):  # the first five warm the allocator and the copy engine
        sync()
        start = time.perf_counter()
        buffer.copy_(torch.from_numpy(obs).to(device, non_blocking=True))
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[5:])


def run_sb3(game: str, steps: int, learning_starts: int, buffer_size: int) -> dict[str, float]:
    """SB3's DQN with the RL Zoo's Atari settings (CnnPolicy, train_freq 4, batch 32, target update
    1000, AtariWrapper + 4-frame stack), same buffer and learning start as ours."""
    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    from envs import resolve_game

    torch.set_num_threads(os.cpu_count() or 1)
    gym.register_envs(ale_py)
    camel = "".join(part.capitalize() for part in resolve_game(game).split("_"))
    env = VecFrameStack(make_atari_env(f"{camel}NoFrameskip-v4", n_envs=1, seed=0), 4)
    marks: dict[str, float] = {}

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= learning_starts and "t0" not in marks:
                marks["t0"], marks["s0"] = time.perf_counter(), self.num_timesteps
            return True

    model = DQN(
        "CnnPolicy", env, buffer_size=buffer_size, learning_rate=1e-4, batch_size=32,
        learning_starts=learning_starts, target_update_interval=1000, train_freq=4,
        gradient_steps=1, exploration_fraction=0.1, exploration_final_eps=0.01,
        optimize_memory_usage=False, verbose=0, seed=0, device="cpu",
    )  # fmt: skip
    model.learn(total_timesteps=learning_starts + steps, callback=Clock())
    elapsed = time.perf_counter() - marks["t0"]
    return {"sps": (model.num_timesteps - marks["s0"]) / elapsed, "peak_rss_mb": peak_rss_mb()}


def replay_memory(capacity: int, fill: int, large: int = 1_000_000) -> dict[str, Any]:
    """Bytes per transition: allocated arrays at ``capacity``, and RSS growth while writing
    ``fill`` real-sized transitions (pages are only resident once written); and whether a
    ``large``-capacity memory can be allocated at all on this machine."""
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    from agents.qlearning.replay import FrameReplayBuffer

    obs_space = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 4, 84, 84), dtype=np.uint8)
    out: dict[str, float] = {}
    for name, optimize in (("sb3", False), ("sb3_optimized", True)):
        before = rss_mb()
        buf = ReplayBuffer(capacity, obs_space, spaces.Discrete(6), "cpu", optimize_memory_usage=optimize,
                           handle_timeout_termination=not optimize)  # fmt: skip
        arrays = [buf.observations, buf.actions, buf.rewards, buf.dones, buf.timeouts]
        if not optimize:
            arrays.append(buf.next_observations)
        out[f"{name}_bytes_per_transition"] = sum(a.nbytes for a in arrays) / capacity
        for i in range(fill):
            o = frames[i % 64][None]
            buf.add(o, o, np.array([1]), np.array([0.0]), np.array([False]), [{}])
        out[f"{name}_rss_per_transition"] = (rss_mb() - before) * 2**20 / fill
        del buf, arrays
        try:
            ReplayBuffer(large, obs_space, spaces.Discrete(6), "cpu", optimize_memory_usage=optimize,
                         handle_timeout_termination=not optimize)  # fmt: skip
            out[f"{name}_large"] = "allocates"
        except MemoryError as e:
            out[f"{name}_large"] = f"fails: {str(e).split(' for ')[0]}"
    before = rss_mb()
    ours = FrameReplayBuffer(capacity, 1)
    out["ours_bytes_per_transition"] = ours.nbytes() / ours.capacity
    ours.reset(frames[:1])
    for i in range(fill):
        ours.add(np.array([1]), np.array([0.0]), np.array([False]), frames[i % 64][None])
    out["ours_rss_per_transition"] = (rss_mb() - before) * 2**20 / fill
    del ours
    try:
        FrameReplayBuffer(large, 8)
        out["ours_large"] = "allocates"
    except MemoryError as e:
        out["ours_large"] = f"fails: {e}"
    return out


def pqn_with_a_rollout(cfg: Any, events: str) -> tuple[Any, int]:
    """A PQN trainer (not run) that has played one rollout into its buffer, logging to ``events``:
    a learner measured on the data it would learn from. Returns it and the rollout's steps."""
    from torch.utils.tensorboard import SummaryWriter

    from agents.common.checkpoint import StopFlag
    from agents.qlearning.pqn import PQNTrainer

    pqn = PQNTrainer(cfg)
    pqn.writer = SummaryWriter(events)
    pqn.obs, _ = pqn.env.reset(seed=0)
    stop = StopFlag()
    try:
        return pqn, pqn.collect(stop)
    finally:
        stop.restore()


def ingest_rates(game: str, seconds: float = 10.0, device: str = "cpu") -> dict[str, float]:
    """What splitting a trainer into actors and a learner (Ape-X, Horgan et al. 2018) would gain
    here: the env steps/s one actor process produces (8 envs and batched epsilon-greedy acting with
    the dueling network, one torch thread) against the env steps/s each learner alone can consume
    at its own replay ratio (the DQN: batches of 32 every 4 steps; PQN: 2 epochs x 32 minibatches
    of a 128 x 32 rollout), with every core for the learner."""
    import tempfile

    import torch

    from agents.qlearning.dqn import DQNConfig, DQNTrainer
    from agents.qlearning.pqn import PQNConfig

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        dqn = DQNTrainer(DQNConfig(game=game, buffer_size=20_000, run_dir=f"{tmp}/dqn", device=device,
                                   progress=False))  # fmt: skip
        obs, _ = dqn.env.reset(seed=0)
        dqn.replay.reset(obs)
        state = {"obs": obs}

        def act_and_step() -> None:
            actions = dqn.act(state["obs"], epsilon=0.01)
            state["obs"], rewards, terminated, _, _ = dqn.env.step(actions)
            dqn.replay.add(actions, np.clip(rewards, -1, 1), terminated, state["obs"])

        torch.set_num_threads(1)
        out["actor_steps_per_s"] = rate(act_and_step, seconds) * dqn.cfg.num_envs
        while len(dqn.replay) < 4 * dqn.cfg.batch_size:
            act_and_step()
        torch.set_num_threads(os.cpu_count() or 1)
        out["dqn_updates_per_s"] = rate(dqn.learn, seconds)
        samples_per_step = dqn.cfg.batch_size * dqn.cfg.gradient_steps / dqn.cfg.train_freq
        out["dqn_learner_steps_per_s"] = out["dqn_updates_per_s"] * dqn.cfg.batch_size / samples_per_step
        dqn.env.close()

        pqn, steps = pqn_with_a_rollout(PQNConfig(game=game, run_dir=f"{tmp}/pqn", device=device,
                                                  progress=False), f"{tmp}/pqn_events")  # fmt: skip
        rollout = steps * pqn.cfg.num_envs
        out["pqn_learner_steps_per_s"] = rate(lambda: pqn.learn(steps), seconds) * rollout
        pqn.writer.close()
        pqn.env.close()
    return out


# operator name -> what it does in a PQN update; the rest of a category's time is in "other ops"
LEARNER_CATEGORIES = {
    "aten::mkldnn_convolution": "conv forward", "aten::convolution_backward": "conv backward",
    "aten::mm": "linear (matmul)", "aten::addmm": "linear (matmul)",
    "aten::native_layer_norm": "LayerNorm", "aten::native_layer_norm_backward": "LayerNorm",
    "aten::index": "minibatch gather", "aten::copy_": "dtype and layout copies",
    "aten::div": "input scaling (/255)", "aten::threshold_backward": "ReLU",
    "aten::relu": "ReLU", "aten::clamp_min": "ReLU",
    "aten::linalg_vector_norm": "gradient clipping",
}  # fmt: skip
# --compile: inductor's kernels run inside a call of the compiled graph; the wrappers around them
# (guards, autograd's calls) are its overhead
COMPILED_CATEGORIES = {"## Call CompiledFxGraph": "compiled kernels (fused elementwise)",
                       "CompiledFunction": "compiled graphs' calls and guards",
                       "Torch-Compiled Region": "compiled graphs' calls and guards",
                       "TorchDynamo Cache Lookup": "compiled graphs' calls and guards"}  # fmt: skip


def op_category(name: str) -> str:
    """What an operator of a PQN update does (:data:`LEARNER_CATEGORIES`, and the compiled graphs'
    parts by their names' beginnings), or "other ops"."""
    if name in LEARNER_CATEGORIES:
        return LEARNER_CATEGORIES[name]
    return next((v for k, v in COMPILED_CATEGORIES.items() if name.startswith(k)), "other ops")


def op_categories(events: Any) -> dict[str, float]:
    """Self CPU milliseconds of a profile's operators by :data:`LEARNER_CATEGORIES`; everything
    that runs inside an optimizer step counts as "optimizer", whatever the operator."""
    out: dict[str, float] = {}
    for e in events:
        if e.name.startswith("Optimizer."):
            continue
        parent, in_optimizer = e.cpu_parent, False
        while parent is not None and not in_optimizer:
            in_optimizer = parent.name.startswith("Optimizer.step")
            parent = parent.cpu_parent
        key = "optimizer" if in_optimizer else op_category(e.name)
        out[key] = out.get(key, 0.0) + e.self_cpu_time_total / 1000
    return out


def matmul_peak_gflops(dtype: Any, size: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of a large square matmul on every core: what the cores reach at ``dtype`` (AMX
    tiles for bfloat16 where oneDNN finds them, AVX-512 for float32), the ceiling a learner's
    achieved rate is read against."""
    import torch

    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    return rate(lambda: a @ b, seconds) * 2 * size**3 / 1e9


def learner_profile(game: str = "pong", precision: str = "fp32", repeats: int = 3,
                    **preset: Any) -> dict[str, Any]:  # fmt: skip
    """Where PQN's learner spends an update (2 epochs x 32 minibatches of a 128 x 32 rollout, the
    Atari preset): wall milliseconds per update (median of ``repeats``), the operators' self time
    by category in one profiled update (torch.profiler, whose own cost lengthens that update: its
    wall time is returned beside), the FLOPs of an update (torch's FlopCounterMode: convolutions
    and matmuls, forward and backward) and the rate achieved, on a real rollout."""
    import statistics
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from agents.qlearning.pqn import PQNConfig

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        pqn, steps = pqn_with_a_rollout(PQNConfig(game=game, run_dir=f"{tmp}/pqn", device="cpu",
                                                  progress=False, precision=precision, **preset),
                                        f"{tmp}/events")  # fmt: skip
        pqn.learn(steps)  # warm-up: oneDNN's kernels chosen, the optimizer's state made
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pqn.learn(steps)
            walls.append((time.perf_counter() - t0) * 1000)
        compiled, pqn.compiled = pqn.compiled, None  # counted on the eager passes: the same arithmetic
        with FlopCounterMode(display=False) as counter:
            pqn.learn(steps)
        pqn.compiled = compiled
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            pqn.learn(steps)
            profiled = (time.perf_counter() - t0) * 1000
        pqn.writer.close()
        pqn.env.close()
    wall = statistics.median(walls)
    flops = counter.get_total_flops()
    return {"ms_per_update": wall, "profiled_ms": profiled, "categories": op_categories(prof.events()),
            "flops": flops, "gflops": flops / wall / 1e6, "transitions": steps * pqn.cfg.num_envs,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def catch_parity_run(algo: str, seed: int, precision: str, episodes: int = 200) -> dict[str, float]:
    """One Catch preset run (``algo``: pqn or dqn) at ``precision``: the greedy catch rate of its
    final network over ``episodes`` episodes and the run's peak RSS."""
    import tempfile

    import torch

    from agents.qlearning.dqn import DQNConfig, DQNTrainer, greedy_catch_rate
    from agents.qlearning.pqn import PQNConfig, PQNTrainer

    torch.set_num_threads(os.cpu_count() or 1)
    config, trainer = {"pqn": (PQNConfig, PQNTrainer), "dqn": (DQNConfig, DQNTrainer)}[algo]
    with tempfile.TemporaryDirectory() as tmp:
        run = trainer(config.for_game("catch", seed=seed, precision=precision, run_dir=tmp, progress=False,
                                   saliency_every=0))  # fmt: skip
        run.run()
    return {"catch_rate": greedy_catch_rate(run.q_network.cpu(), episodes=episodes),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip
