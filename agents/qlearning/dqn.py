"""Dueling Double DQN training: act, step, store, learn, log -- in that order, top to bottom.

Defaults follow CleanRL's ``dqn_atari.py`` (itself Mnih et al. 2015 at 10M steps) unless a line
cites otherwise; the dueling-specific choices are Wang et al. 2016's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from agents.common.checkpoint import (
    CheckpointError,
    load_state,
)
from agents.common.config import NonNegativeInt, PositiveFloat, PositiveInt, Probability
from agents.common.precision import (
    bf16_copy_for,
    gradient_step,
)
from agents.common.resources import (
    cnn_pass_bytes,
    emulator_bytes,
    keep_freed_memory,
)
from agents.common.run import (
    TRAINER_TENSORS,
    Callback,
    Every,
    RunSession,
    end_of_update,
    load_training,
    open_run,
    run_loop,
    save_training,
)
from agents.common.training import (
    EpisodeTracker,
    action_names,
    linear_schedule,
    make_training_env,
    resolve_device,
)
from agents.qlearning.config import QConfig
from agents.qlearning.networks import QNetwork, build_q_network
from agents.qlearning.replay import FrameReplayBuffer
from envs import CatchVectorEnv


@dataclass
class DQNConfig(QConfig):
    """A dueling Double DQN experiment; saved as ``config.json`` beside every run. The defaults are
    CleanRL's ``dqn_atari.py`` (10M steps) unless a field cites otherwise; the gradient-norm clip
    of 10 is Wang et al. 2016's (Section 4.2)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # Catch, tuned here to catch every ball after about 72k steps (docs/benchmarks.md): 4-step
        # returns carry the one end-of-episode reward back quickly, a miss reward of -1 doubles the
        # gap between catching and missing, and a frequent target sync and a larger learning rate
        # suit the small network
        "catch": dict(
            exp_name="dueling_dqn_catch", total_steps=80_000, buffer_size=50_000,
            learning_starts=1_000, target_update=200, learning_rate=1e-3, exploration_fraction=0.32,
            catch_miss_reward=-1.0, end_e=0.05, n_step=4, hidden=128, train_freq=2,
            save_every=16_000, log_every=500, saliency_every=8_000, channels_last=False,
        ),
    }  # fmt: skip

    exp_name: str = "dueling_dqn"
    learning_rate: PositiveFloat = 1e-4
    """Adam learning rate (CleanRL; Wang et al. 2016 use 6.25e-5 with prioritized replay)."""
    log_every: PositiveInt = 1_000
    buffer_size: PositiveInt = 1_000_000
    """Replay capacity in transitions (Mnih et al. 2015); ~7.1 KB each, 7 GB at 1M."""
    batch_size: PositiveInt = 32
    """Transitions per gradient step (Mnih et al. 2015)."""
    adam_eps: PositiveFloat = 1.5e-4
    """Adam epsilon (Hessel et al. 2018, Rainbow)."""
    learning_starts: NonNegativeInt = 80_000
    """Environment steps of random-ish play before learning starts (CleanRL)."""
    train_freq: PositiveInt = 4
    """Environment steps (over all envs) per round of gradient steps: a replay ratio of 1/4."""
    gradient_steps: PositiveInt = 1
    """Gradient steps per round."""
    target_update: PositiveInt = 1_000
    """Environment steps between copies of the online network into the target (CleanRL)."""
    n_step: PositiveInt = 1
    """n-step returns (1: plain DQN; 3 as in Rainbow)."""
    prioritized: bool = False
    """Prioritized replay, proportional (Schaul et al. 2016), as in Wang et al.'s best agent."""
    priority_alpha: Probability = 0.7
    """Priority exponent (Wang et al. 2016, Section 4.3)."""
    priority_beta: Probability = 0.5
    """Initial importance-sampling exponent, annealed to 1 (Wang et al. 2016, Section 4.3)."""
    double: bool = True
    """Double DQN targets (van Hasselt et al. 2016); False gives the Nature DQN target."""
    save_replay: bool = False
    """Also save the replay memory with each checkpoint (large) so a resume continues with it."""
    overlap: bool = True
    """Learn while ALE's C++ threads step the emulators (send/recv), instead of in turn."""

    def validate(self) -> None:
        super().validate()
        if self.buffer_size // self.num_envs <= self.stack_num + self.n_step:
            raise ValueError(f"--buffer-size {self.buffer_size} leaves each of the {self.num_envs} "
                             f"envs fewer slots than a stacked observation and its {self.n_step}-step "
                             f"return need ({self.stack_num + self.n_step + 1}); raise --buffer-size "
                             "or lower --num-envs")  # fmt: skip

    def memory_needed(self) -> dict[str, tuple[int, str]]:
        """The emulators, the replay memory (a frame, an action, a reward and three flags per slot;
        the priority tree), one acting pass over the envs and one update over a batch (s and s')."""
        stack, *frame = self.observation_shape()
        slot = frame[0] * frame[1] + 1 + 4 + 3 + (16 if self.prioritized else 0)
        return {"the envs": (emulator_bytes(self.game, self.num_envs, tuple(frame)), "--num-envs"),
                "the replay memory": (self.buffer_size * slot, "--buffer-size"),
                "acting": (cnn_pass_bytes(self.num_envs, (stack, *frame), False), "--num-envs"),
                "an update": (cnn_pass_bytes(2 * self.batch_size, (stack, *frame), True),
                              "--batch-size")}  # fmt: skip


def td_targets(
    online_next_q: torch.Tensor,
    target_next_q: torch.Tensor,
    returns: torch.Tensor,
    dones: torch.Tensor,
    discounts: torch.Tensor,
    double: bool = True,
) -> torch.Tensor:
    """n-step (Double) DQN target ``R + gamma^k (1 - done) Q_target(s', a*)``.

    Double DQN (van Hasselt et al. 2016) picks ``a*`` with the online network and evaluates it with
    the target network; the Nature DQN takes the target network's own max.
    """
    if double:
        best = online_next_q.argmax(1, keepdim=True)
        next_value = target_next_q.gather(1, best).squeeze(1)
    else:
        next_value = target_next_q.max(1).values
    return returns + discounts * (1.0 - dones) * next_value


class DQNTrainer:
    """Owns the networks, replay memory, envs and logs of one run; ``run()`` trains to the end.

    ``callbacks`` are called as ``callback(trainer, global_step)`` after every vector step: the
    training script wires analysis (saliency images, say) in through them, so this module never
    imports ``analysis``.
    ``given``: the config fields named on the command line, for ``--resume`` (see resume_config).
    """

    def __init__(self, cfg: DQNConfig, callbacks: list[Callback] | None = None,
                 given: Collection[str] = ()) -> None:
        cfg, resume_from = cfg.prepare(given)
        self.cfg = cfg
        self.callbacks = list(callbacks or [])
        self.device = resolve_device(cfg.device)
        self.run_dir = Path(cfg.run_dir or cfg.default_run_dir())
        self.env, self.env_options, self.game = make_training_env(cfg, cfg.seed)
        obs_shape = self.env.single_observation_space.shape
        self.n_actions = int(self.env.single_action_space.n)
        self.action_names = action_names(self.game, self.env_options)
        torch.manual_seed(cfg.seed)
        self.q_network = build_q_network(cfg, self.n_actions, obs_shape).to(self.device)
        self.target_network = build_q_network(cfg, self.n_actions, obs_shape).to(self.device)
        if cfg.channels_last:
            self.q_network.to(memory_format=torch.channels_last)
            self.target_network.to(memory_format=torch.channels_last)
        self.target_network.load_state_dict(self.q_network.state_dict())
        self.target_network.requires_grad_(False)
        # bf16 on a CPU: the passes run on bfloat16 copies, the output layers float32 (Q, targets)
        self.bf16_copy, self.target_copy = (
            bf16_copy_for(net, cfg.precision, self.device, keep_float=net.layer_groups()[-1][1])
            for net in (self.q_network, self.target_network))  # fmt: skip
        self.online = self.bf16_copy.net if self.bf16_copy else self.q_network
        self.target = self.target_copy.net if self.target_copy else self.target_network
        # fused: one kernel for the whole update (same maths), measured ~20% faster per step on CPU
        self.optimizer = torch.optim.Adam(
            self.q_network.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps, fused=True
        )
        self.replay = FrameReplayBuffer(
            cfg.buffer_size,
            cfg.num_envs,
            frame_shape=obs_shape[1:],
            stack_num=obs_shape[0],
            n_step=cfg.n_step,
            gamma=cfg.gamma,
            prioritized=cfg.prioritized,
            alpha=cfg.priority_alpha,
            seed=cfg.seed,
        )
        self.rng = np.random.default_rng(cfg.seed)
        self.global_step = 0
        self.updates = 0
        self.tracker = EpisodeTracker(cfg.num_envs, self.env_options)
        self.learning_starts_at = cfg.learning_starts
        self.stop_signal: int | None = None  # the signal that stopped run(), if one did
        self.stopped_by = ""
        open_run(self, resume_from, self._restore)
        for weights in (self.bf16_copy, self.target_copy):
            if weights:
                weights.refresh()
        if self.device.type == "cpu":
            keep_freed_memory()
        self.writer: SummaryWriter | None = None
        self.last_obs: np.ndarray | None = None

    # ---- acting -------------------------------------------------------------------------------
    def epsilon(self) -> float:
        c = self.cfg
        return linear_schedule(
            c.start_e, c.end_e, c.exploration_fraction * c.total_steps, self.global_step
        )

    @torch.no_grad()
    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations, one forward pass for all envs."""
        with self._autocast():
            q = self.online(self._tensor(obs))["q"]
        greedy = q.argmax(1).cpu().numpy()
        explore = self.rng.random(len(obs)) < epsilon
        return np.where(explore, self.rng.integers(self.n_actions, size=len(obs)), greedy)

    def _autocast(self) -> torch.autocast:
        on = self.cfg.precision == "bf16" and self.device.type == "cuda"  # a CPU runs the bf16 copies
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(array).to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else t

    # ---- learning -----------------------------------------------------------------------------
    def beta(self) -> float:
        """Importance-sampling exponent annealed linearly to 1 over training (Schaul et al. 2016)."""
        return linear_schedule(self.cfg.priority_beta, 1.0, self.cfg.total_steps, self.global_step)

    def learn(self) -> dict[str, float]:
        """One gradient step on a replay batch; returns the scalars worth logging."""
        c = self.cfg
        b = self.replay.sample(c.batch_size, beta=self.beta())
        obs, next_obs = self._tensor(b.obs), self._tensor(b.next_obs)
        t = {
            k: torch.from_numpy(getattr(b, k)).to(self.device)
            for k in ("actions", "returns", "dones", "discounts", "weights")
        }
        with torch.no_grad(), self._autocast():
            target_next = self.target(next_obs)["q"].float()
            online_next = self.online(next_obs)["q"].float() if c.double else target_next
            target = td_targets(
                online_next, target_next, t["returns"], t["dones"], t["discounts"], c.double
            )
        with self._autocast():
            heads = {k: v.float() for k, v in self.online(obs).items()}
        q_taken = heads["q"].gather(1, t["actions"][:, None]).squeeze(1)
        per_sample = F.smooth_l1_loss(q_taken, target, reduction="none")  # Huber (Mnih et al. 2015)
        loss = (t["weights"] * per_sample).mean()
        gradient_step(loss, self.q_network, self.optimizer, c.max_grad_norm, self.bf16_copy)
        if self.replay.prioritized:
            self.replay.update_priorities(b.indices, (q_taken - target).detach().cpu().numpy())
        self.updates += 1
        stats = {"losses/td_loss": loss.item(), "losses/q_values": q_taken.mean().item()}
        if "value" in heads:
            stats["values/value_mean"] = heads["value"].mean().item()
            stats["values/advantage_std"] = heads["advantage"].std(1).mean().item()
        return stats

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until ``total_steps``; checkpoints every ``save_every`` and at the end (also on
        Ctrl-C or SIGTERM, so that ``--resume`` continues from where it stopped)."""
        return run_loop(self, self._loop)

    def _loop(self, session: RunSession) -> None:
        """Act, learn every ``train_freq`` steps, copy the target network, log and save, until the
        budget is spent or a signal asks to stop."""
        c = self.cfg
        obs, _ = self.env.reset(seed=c.seed + self.global_step)
        self.replay.reset(obs)
        tracker = self.tracker
        since_train = since_target = 0
        log, save = Every(c.log_every, self.global_step), Every(c.save_every, self.global_step)
        stats: dict[str, float] = {}
        overlap = c.overlap and hasattr(self.env, "send")
        while self.global_step < c.total_steps and not session.should_stop():
            epsilon = self.epsilon()
            actions = self.act(obs, epsilon)
            if overlap:  # the emulators step in ALE's C++ threads while we learn below
                self.env.send(actions)
            if self.global_step >= self.learning_starts_at:
                while since_train >= c.train_freq:
                    since_train -= c.train_freq
                    for _ in range(c.gradient_steps):
                        stats = self.learn()
                if since_target >= c.target_update:
                    since_target = 0
                    self.target_network.load_state_dict(self.q_network.state_dict())
                    if self.target_copy:
                        self.target_copy.refresh()
            else:
                since_train = 0
            step = self.env.recv() if overlap else self.env.step(actions)
            next_obs, rewards, terminated, truncated, info = step
            # the NEXT_STEP reset step of an env whose episode just ended is not a transition
            self.replay.add(
                actions, np.clip(rewards, -1, 1), terminated, next_obs, reset_step=tracker.ended
            )
            tracker.update(rewards, terminated, truncated, info, self.writer, self.global_step)
            obs = next_obs
            self.last_obs = obs
            self.global_step += c.num_envs
            since_train += c.num_envs
            since_target += c.num_envs
            session.bar.update(c.num_envs)

            if log(self.global_step):
                sps = session.steps_per_second()
                self.writer.add_scalar("charts/epsilon", epsilon, self.global_step)
                self.writer.add_scalar("charts/SPS", sps, self.global_step)
                for k, v in stats.items():
                    self.writer.add_scalar(k, v, self.global_step)
                session.bar.set_postfix(SPS=f"{sps:.0f}", ret=f"{tracker.recent_mean():.2f}",
                                        eps=f"{epsilon:.2f}")  # fmt: skip
            end_of_update(self, save)

    # ---- checkpoints --------------------------------------------------------------------------
    def env_config(self) -> dict[str, Any]:
        """The env options a checkpoint records: Atari's, or Catch's two stacked frames."""
        return self.env_options.as_dict() if self.env_options else {"stack_num": 2}

    def save(self) -> Path:
        """A checkpoint: weights, the target network, optimizer, generators and, with
        --save-replay, the replay memory, so that a resume continues where the run stopped."""
        tensors = {f"target.{k}": v for k, v in self.target_network.state_dict().items()}
        state = {"rng.numpy": self.rng.bit_generator.state, "replay": self.replay.state()}
        files = {}
        if self.cfg.save_replay:
            fd, tmp = tempfile.mkstemp(suffix=".npz", dir=self.run_dir)
            os.close(fd)
            np.savez(tmp, **self.replay.arrays())
            files["replay.npz"] = Path(tmp)
        return save_training(self, "dqn", self.q_network, self.env_config(), tensors, state, files)

    def _restore(self, ckpt: Path) -> None:
        tensors, state = load_training(self, self.q_network, ckpt)
        target = {k[len("target.") :]: v for k, v in tensors.items() if k.startswith("target.")}
        load_state(self.target_network, target, ckpt / TRAINER_TENSORS)
        self.rng.bit_generator.state = state["rng.numpy"]
        replay = state.get("replay") or {"rng": state["rng.replay"],  # written before state()
                                         "max_priority": state["max_priority"]}
        if (ckpt / "replay.npz").exists():
            with np.load(ckpt / "replay.npz", allow_pickle=False) as data:
                try:
                    self.replay.load(replay, data)
                except ValueError as e:
                    raise CheckpointError(f"{ckpt / 'replay.npz'}: {e}") from None
        else:  # an empty memory: collect learning_starts steps again before learning
            self.replay.load(replay)
            self.learning_starts_at = self.global_step + self.cfg.learning_starts


def train_dqn(cfg: DQNConfig, callbacks: list[Callback] | None = None) -> Path:
    """Train (or resume) a run; returns the final checkpoint's directory."""
    return DQNTrainer(cfg, callbacks).run()


def greedy_catch_rate(
    network: QNetwork, episodes: int = 100, seed: int = 10_000, epsilon: float = 0.0
) -> float:
    """Fraction of Catch episodes caught by ``network`` acting (epsilon-)greedily."""
    env = CatchVectorEnv(episodes, stack_num=network.in_channels, seed=seed)
    obs, _ = env.reset()
    rng = np.random.default_rng(seed)
    total = np.zeros(episodes)
    for _ in range(env.size - 1):
        with torch.no_grad():
            actions = network(torch.from_numpy(obs))["q"].argmax(1).numpy()
        explore = rng.random(episodes) < epsilon
        actions = np.where(explore, rng.integers(3, size=episodes), actions)
        obs, rewards, *_ = env.step(actions)
        total += rewards > 0
    return float(total.mean())
