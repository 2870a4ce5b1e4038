"""PQN: Q-learning from many parallel environments with no replay memory and no target network
(Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning", arXiv 2407.04811).

Each iteration plays ``rollout`` steps in ``num_envs`` envs epsilon-greedily, computes Q(lambda)
targets for the whole rollout from the Q-values seen while acting, and takes ``epochs`` passes of
``minibatches`` gradient steps over it. LayerNorm in the network keeps this stable without a target
network. The network is the same dueling network the DQN trains, so every analysis reads both.

Defaults are PQN's Atari configuration (purejaxql, ``config/alg/pqn_atari.yaml`` and
``pqn_atari.py``) unless a line says otherwise; :meth:`PQNConfig.catch` is tuned here.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from agents.common.checkpoint import (
    CONFIG,
    MODEL,
    StopFlag,
    check_run_dir,
    checkpoint_config,
    load_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_json,
    read_tensors,
    require_same_network,
    require_unfinished,
    restore_trainer,
    resume_config,
    write_checkpoint,
)
from agents.common.optim import FusedRAdam
from agents.common.precision import (
    bf16_copy_for,
    gradient_step,
    resolve_precision,
    with_resolved_precision,
)
from agents.common.resources import (
    cnn_pass_bytes,
    emulator_bytes,
    keep_freed_memory,
    require_memory,
)
from agents.common.run import RunSession
from agents.common.training import (
    EpisodeTracker,
    action_names,
    check_config_types,
    linear_schedule,
    make_env_groups,
    resolve_device,
)
from agents.qlearning.graphed import GraphedForward, GraphedStep
from agents.qlearning.networks import build_q_network
from envs import resolve_game


@dataclass
class PQNConfig:
    """A PQN experiment; saved as ``config.json`` beside every run. The defaults are Atari's."""

    game: str = "pong"
    """Atari game (pong, Pong, ALE/Pong-v5 ...) or 'catch' for the 24x24 Catch game."""
    seed: int = 1
    """Seed for the network, exploration, minibatches and the environments."""
    exp_name: str = "pqn"
    """Experiment name used in the run directory's name."""
    total_steps: int = 10_000_000
    """Environment steps over all envs (PQN's TOTAL_TIMESTEPS, 1e7)."""
    num_envs: int = 128
    """Parallel environments (PQN's NUM_ENVS)."""
    rollout: int = 32
    """Steps per env between updates (PQN's NUM_STEPS): 4,096 transitions an update at 128 envs."""
    epochs: int = 2
    """Passes over each rollout (PQN's NUM_EPOCHS)."""
    minibatches: int = 32
    """Gradient steps per pass (PQN's NUM_MINIBATCHES): minibatches of 128 at the defaults, two
    gradient samples per environment step in all."""
    learning_rate: float = 2.5e-4
    """Learning rate (PQN's LR)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero at ``total_steps`` (PQN's LR_LINEAR_DECAY option;
    CleanRL's PPO does the same). A function of the step: a resumed run continues the schedule."""
    optimizer: Literal["radam", "adam"] = "radam"
    """RAdam is what purejaxql's code uses (``optax.radam``); Adam is one flag away."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip (PQN's MAX_GRAD_NORM)."""
    gamma: float = 0.99
    """Discount (PQN's GAMMA)."""
    q_lambda: float = 0.65
    """Lambda of the Q(lambda) targets (PQN's LAMBDA): 0 is one-step Q-learning, 1 Monte Carlo."""
    start_e: float = 1.0
    """Initial exploration epsilon (PQN's EPS_START)."""
    end_e: float = 0.001
    """Final exploration epsilon (PQN's EPS_FINISH)."""
    exploration_fraction: float = 0.10
    """Fraction of total_steps over which epsilon decays linearly (PQN's EPS_DECAY)."""
    network: Literal["dueling", "single"] = "dueling"
    """Dueling streams (Wang et al. 2016) or the single-stream network of PQN's paper."""
    aggregation: Literal["mean", "max"] = "mean"
    """Dueling aggregation: Eq. 9 (mean) or Eq. 8 (max) of Wang et al. 2016."""
    hidden: int = 0
    """Units per stream; 0 picks 512 for dueling (PQN's dense layer) and 1024 for single."""
    layer_norm: bool = True
    """LayerNorm before every ReLU (PQN's NORM_TYPE layer_norm): what replaces the target network."""
    stack_num: int = 4
    """Frames per observation (Atari); Catch uses 2 so that the ball's direction is visible."""
    reward_clipping: bool = True
    """Clip rewards to [-1, 1] for the targets (PQN's reward_clip); logged returns stay raw."""
    catch_miss_reward: float = 0.0
    """Catch only: reward for a miss (0 as in Mnih et al. 2014; -1 is the common variant)."""
    repeat_action_probability: float = 0.0
    """Sticky actions (PQN's Atari runs use none; 0.25 per Machado et al. 2018)."""
    life_loss_info: bool = True
    """A life loss is terminal for the targets while the game goes on (PQN's envpool
    ``episodic_life``); logged returns are whole games."""
    time_limit: float = 0.0
    """Seconds of training after which the run stops at the next rollout boundary, with a final
    checkpoint (0: no limit). How a run fits a fixed GPU window."""
    save_every: int = 1_000_000
    """Environment steps between checkpoints (one is also written at the end and on Ctrl-C)."""
    keep_checkpoints: int = 3
    """Newest checkpoints kept; older ones are deleted (0 keeps all, for saliency over training)."""
    run_dir: str = ""
    """Run directory; empty picks runs/<game>__<exp_name>__<seed>__<timestamp>."""
    resume: str = ""
    """Run directory to resume from its latest checkpoint (its config is reused)."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu' or 'cuda'."""
    channels_last: bool = True
    """channels_last memory format for the convolutions (faster on CPU and on GPUs with tensor
    cores, measured for the DQN)."""
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    """Arithmetic of the network passes: fp32; bf16 (convolutions and matmuls in bfloat16: on a CPU
    on a bfloat16 copy of the weights, on CUDA under autocast; the weights the optimizer steps, its
    state, LayerNorm, the output layers, targets, loss and checkpoints stay float32); auto, the
    default: bf16 on CUDA and on CPUs with AVX-512 BF16 or AMX, else fp32. On Pong with 2 Xeon cores
    bf16 trains 1.5x faster than fp32 and learns Catch as well (docs/benchmarks.md). A resumed run
    keeps its own."""
    cuda_graph: bool = False
    """Capture the minibatch update (forward, backward, clipping, optimizer step) and the acting
    pass as CUDA graphs and replay them: on an H200 both were bound by launching their small
    kernels one by one (docs/benchmarks.md). CUDA only; its speed has not been measured yet."""
    env_groups: int = 1
    """Split the envs into this many groups, each its own ALE vector env, and act on one group
    while ALE's threads emulate the others (``envs.groups``): for a GPU machine with cores to
    spare. The games and the exploration draws are those of one group (a forward pass over fewer
    observations may round differently). Atari only."""
    threads: int = 0
    """Torch CPU threads (0: torch's default)."""
    log_every: int = 10_000
    """Environment steps between scalar logs."""
    saliency_every: int = 250_000
    """Environment steps between value/advantage saliency images in TensorBoard (0: off)."""
    progress: bool = True
    """Show a progress bar."""

    @classmethod
    def catch(cls, **overrides: Any) -> PQNConfig:
        """Defaults for the 24x24 Catch game, tuned here (one seed each, 200 greedy episodes, see
        docs/benchmarks.md): 32 envs, short rollouts of 8 steps, 4 epochs of 8 minibatches of 32
        (8 gradient samples per step: with PQN's 2, 0.64 of balls were caught after 300k steps;
        with 8, 0.96 after 200k), Adam (0.91 at 150k where RAdam had 0.76), a larger learning
        rate for the small network, a miss reward of -1 (a miss as informative as a catch), and
        lambda 0.9, which carries the one reward of an episode back faster than 0.65."""
        preset = dict(
            game="catch", exp_name="pqn_catch", total_steps=200_000, num_envs=32, rollout=8,
            epochs=4, minibatches=8, learning_rate=1e-3, optimizer="adam", q_lambda=0.9,
            exploration_fraction=0.2, end_e=0.01, catch_miss_reward=-1.0, hidden=128,
            save_every=50_000, log_every=2_000, saliency_every=50_000,
        )  # fmt: skip
        return cls(**{**preset, **overrides})

    def validate(self) -> None:
        """Refuse bad values, one line each, before any environment or network is built."""
        check_config_types(self)
        positive = ("total_steps", "num_envs", "rollout", "epochs", "minibatches", "save_every",
                    "log_every", "stack_num", "env_groups")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        for name in ("saliency_every", "threads", "hidden", "keep_checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
        if self.num_envs % self.env_groups:
            raise ValueError(f"--env-groups {self.env_groups} must divide --num-envs {self.num_envs}")
        if self.env_groups > 1 and self.game.lower() == "catch":
            raise ValueError("--env-groups must be 1 for catch: its games step in the trainer's own "
                             "thread, so there is no emulation to overlap")
        if self.num_envs * self.rollout < self.minibatches:
            raise ValueError(
                f"--minibatches {self.minibatches} exceeds the {self.num_envs * self.rollout} "
                "transitions of a rollout (num_envs x rollout)"
            )
        ranges = {"gamma": (0.0, 1.0), "q_lambda": (0.0, 1.0), "start_e": (0.0, 1.0),
                  "end_e": (0.0, 1.0), "exploration_fraction": (0.0, 1.0),
                  "repeat_action_probability": (0.0, 1.0)}  # fmt: skip
        for name, (lo, hi) in ranges.items():
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be in [{lo:g}, {hi:g}], got {getattr(self, name)}"
                )
        for name in ("learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if self.time_limit < 0:
            raise ValueError(f"--time-limit must be >= 0 seconds, got {self.time_limit}")
        if self.cuda_graph and (device := resolve_device(self.device)).type != "cuda":
            raise ValueError(f"--cuda-graph needs a CUDA device (--device cuda), got {device}")
        resolve_precision(self.precision, self.device)  # checks the device too
        if self.game.lower() != "catch":
            resolve_game(self.game)
        require_memory(self.memory_needed())

    def memory_needed(self) -> dict[str, tuple[int, str]]:
        """The large allocations of a run and the flags that size them (see
        ``agents.common.resources``): the emulators, the rollout (uint8 observations, an action
        and six floats per transition), one acting pass over the envs and one minibatch update."""
        catch = self.game.lower() == "catch"
        obs = (2, 24, 24) if catch else (self.stack_num, 84, 84)
        transitions = self.rollout * self.num_envs
        minibatch = -(-transitions // self.minibatches)
        return {"the envs": (emulator_bytes(self.game, self.num_envs, obs[1:]), "--num-envs"),
                "the rollout": (transitions * (obs[0] * obs[1] * obs[2] + 8 + 6 * 4),
                                "--num-envs or --rollout"),
                "acting": (cnn_pass_bytes(self.num_envs, obs, False), "--num-envs"),
                "a minibatch": (cnn_pass_bytes(minibatch, obs, True),
                                "--num-envs or --rollout, or raise --minibatches")}  # fmt: skip


def q_lambda_targets(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    cut: torch.Tensor,
    next_max_q: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Q(lambda) targets of a (T, N) rollout, computed backwards (Gallici et al. 2024, Eq. 7;
    Peng's Q(lambda) with the greedy value as the bootstrap):

        G_t = r_t + gamma (1 - terminated_t) [(1 - lambda_t) max_a Q(s_t+1, a) + lambda_t G_t+1]

    with ``lambda_t = lambda (1 - cut_t)``. ``next_max_q[t]`` is ``max_a Q(s_t+1, a)``: the value
    of the observation step ``t`` returned (at a truncation, the last one of the episode). ``cut``
    marks steps after which the next step does not continue the trajectory (an episode ended and a
    reset step follows): the return is not carried across them, only the one-step bootstrap. The
    last step of the rollout bootstraps from ``next_max_q[-1]`` alone.
    """
    targets = torch.empty_like(rewards)
    carried = next_max_q[-1]
    for t in reversed(range(rewards.shape[0])):
        lam_t = lam * (1.0 - cut[t]) if t < rewards.shape[0] - 1 else 0.0
        blend = (1.0 - lam_t) * next_max_q[t] + lam_t * carried
        carried = rewards[t] + gamma * (1.0 - terminated[t]) * blend
        targets[t] = carried
    return targets


Callback = Callable[["PQNTrainer", int], None]


class PQNTrainer:
    """Owns the network, the envs, the rollout storage and the logs of one run; ``run()`` trains
    until ``total_steps`` or ``time_limit``.

    The rollout lives on the training device: each step's observations cross once, as uint8, and
    the targets and minibatches are computed where the network is. ``callbacks`` are called as
    ``callback(trainer, global_step)`` after every vector step (saliency images, say), so this module
    never imports ``analysis``.
    ``given``: the config fields named on the command line, for ``--resume`` (see resume_config).
    """

    def __init__(self, cfg: PQNConfig, callbacks: list[Callback] | None = None,
                 given: Collection[str] = ()) -> None:
        resume_from = None
        if "precision" in given:  # --precision auto on a resume means what auto runs here
            cfg = with_resolved_precision(cfg)
        if cfg.resume:
            resume_from, fields = resume_config(
                cfg, session=("device", "progress", "time_limit", "threads", "cuda_graph", "env_groups"),
                budget=("total_steps", "save_every", "log_every", "keep_checkpoints"), given=given,
            )
            cfg = PQNConfig(**fields)
        cfg = with_resolved_precision(cfg)  # what config.json records: the precision that ran
        cfg.validate()
        self.cfg = cfg
        self.callbacks = list(callbacks or [])
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        self.run_dir = Path(cfg.run_dir or self._default_run_dir())
        self.env, self.env_options, self.game = make_env_groups(cfg, cfg.seed, cfg.env_groups)
        obs_shape = tuple(self.env.single_observation_space.shape)
        self.n_actions = int(self.env.single_action_space.n)
        self.action_names = action_names(self.game, self.env_options)
        torch.manual_seed(cfg.seed)
        self.q_network = build_q_network(cfg, self.n_actions, obs_shape).to(self.device)
        if cfg.channels_last:
            self.q_network.to(memory_format=torch.channels_last)
        # bf16 on a CPU: the passes run on a bfloat16 copy, the output layers float32 (Q, targets)
        self.bf16_copy = bf16_copy_for(self.q_network, cfg.precision, self.device,
                                       keep_float=self.q_network.layer_groups()[-1][1])  # fmt: skip
        self.online = self.bf16_copy.net if self.bf16_copy else self.q_network
        self.optimizer = self._make_optimizer()
        # one generator for exploration and minibatches, on the device: saved with checkpoints
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)
        self.global_step = 0
        self.updates = 0
        self.tracker = EpisodeTracker(cfg.num_envs, self.env_options)
        t, n = cfg.rollout, cfg.num_envs
        dev = self.device
        self.buffer = {
            "obs": torch.zeros((t, n, *obs_shape), dtype=torch.uint8, device=dev),
            "actions": torch.zeros((t, n), dtype=torch.long, device=dev),
            "rewards": torch.zeros((t, n), device=dev),
            "terminated": torch.zeros((t, n), device=dev),
            "cut": torch.zeros((t, n), device=dev),
            "valid": torch.zeros((t, n), device=dev),
            "max_q": torch.zeros((t + 1, n), device=dev),
            "targets": torch.zeros((t, n), device=dev),
        }
        # per update: sums over its minibatches of the TD loss, Q(s, a), V and std A, on the device
        self.sums = torch.zeros(4, device=dev)
        self.graphed: GraphedStep | None = None  # the captured minibatch update (--cuda-graph)
        self.graphed_act: GraphedForward | None = None  # and the captured acting pass
        self.obs: np.ndarray | None = None
        self.last_obs: np.ndarray | None = None  # for callbacks (SaliencyLogger reads it)
        self.writer: SummaryWriter | None = None
        self.seconds = {"env": 0.0, "act": 0.0, "learn": 0.0}
        self.stopped_by = ""
        self.stop_signal: int | None = None  # the signal that stopped run(), if one did
        check_run_dir(self.run_dir, resuming=resume_from is not None)
        if resume_from is not None:
            restore_trainer(self._restore, resume_from)
            require_unfinished(cfg.resume, self.global_step, cfg.total_steps)
        if self.bf16_copy:
            self.bf16_copy.refresh()
        if self.device.type == "cpu":
            keep_freed_memory()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """RAdam or Adam on the float32 weights. On a CPU, RAdam runs fused Adam's kernel
        (agents.common.optim) and Adam is the fused one; on CUDA RAdam is foreach. With
        --cuda-graph both keep their step counts and their learning rate on the device
        (capturable), so that a replayed graph sees them change."""
        c, params = self.cfg, self.q_network.parameters()
        if c.cuda_graph:
            lr = torch.tensor(c.learning_rate, device=self.device)
            opt = torch.optim.RAdam if c.optimizer == "radam" else torch.optim.Adam
            return opt(params, lr=lr, foreach=True, capturable=True)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.learning_rate, fused=True)
        if self.device.type == "cpu":
            return FusedRAdam(params, lr=c.learning_rate)
        return torch.optim.RAdam(params, lr=c.learning_rate, foreach=True)

    def _default_run_dir(self) -> str:
        game = "catch" if self.cfg.game.lower() == "catch" else resolve_game(self.cfg.game)
        return f"runs/{game}__{self.cfg.exp_name}__{self.cfg.seed}__{int(time.time())}"

    def _autocast(self) -> torch.autocast:
        # bf16 on CUDA; a captured graph must not keep autocast's cache of cast weights
        # (torch.cuda.graphs' notes)
        on = self.cfg.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=on,
                              cache_enabled=not self.cfg.cuda_graph)  # fmt: skip

    def _layout(self, t: torch.Tensor) -> torch.Tensor:
        return t.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else t

    # ---- schedules ----------------------------------------------------------------------------
    def epsilon(self) -> float:
        c = self.cfg
        return linear_schedule(
            c.start_e, c.end_e, c.exploration_fraction * c.total_steps, self.global_step
        )

    def learning_rate(self) -> float:
        c = self.cfg
        if not c.anneal_lr:
            return c.learning_rate
        return c.learning_rate * max(0.0, 1.0 - self.global_step / c.total_steps)

    # ---- acting -------------------------------------------------------------------------------
    def _q(self, obs: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.online(self._layout(obs))["q"].float()

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: torch.Tensor, random: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Epsilon-greedy actions for a batch (one forward pass) and max_a Q: ``random`` where
        ``explore`` is set, else greedy. With --cuda-graph the forward pass is a replayed graph."""
        if self.cfg.cuda_graph:
            if self.graphed_act is None:
                self.graphed_act = GraphedForward(self._q, obs, capture=self.device.type == "cuda")
            q = self.graphed_act(obs)
        else:
            q = self._q(obs)
        return torch.where(explore, random, q.argmax(1)), q.max(1).values

    def collect(self, stop: StopFlag) -> int:
        """Play one rollout into ``self.buffer``; returns the steps per env played (fewer than
        ``rollout`` only when a stop was requested).

        Each step acts on the env groups in turn and sends each its actions at once; a group's
        results are received just before it acts again, so that acting on one group overlaps the
        emulation of the others (with one group: act, step, act, step). The exploration draws are
        made for all envs at once, so the number of groups changes no action."""
        c, b, env = self.cfg, self.buffer, self.env
        epsilon = self.epsilon()
        results: list[Any] = [None] * len(env)
        t = 0
        while True:
            last = t == c.rollout or (t > 0 and stop.requested)
            if not last:
                explore = torch.rand(c.num_envs, generator=self.generator, device=self.device) < epsilon
                random = torch.randint(self.n_actions, (c.num_envs,), generator=self.generator,
                                       device=self.device)  # fmt: skip
            for g, s in enumerate(env.slices):
                if t > 0:
                    t0 = time.perf_counter()
                    results[g] = env.recv(g)
                    self.seconds["env"] += time.perf_counter() - t0
                    if len(env) == 1:
                        self.obs = results[g][0]
                    else:
                        self.obs[s] = results[g][0]
                    if g == len(env) - 1:
                        self._record(t - 1, env.merge(results))
                if not last:
                    t0 = time.perf_counter()
                    obs = torch.from_numpy(self.obs[s]).to(self.device, non_blocking=True)
                    b["obs"][t, s] = obs
                    actions, b["max_q"][t, s] = self.act(obs, explore[s], random[s])
                    b["actions"][t, s] = actions
                    env.send(g, actions.cpu().numpy())
                    self.seconds["act"] += time.perf_counter() - t0
            if last:
                return t
            t += 1

    def _record(self, t: int, step: tuple[Any, ...]) -> None:
        """Step ``t``'s rewards and flags into the buffer, once every group has returned it."""
        _, rewards, terminated, truncated, info = step
        valid = ~self.tracker.ended  # a reset step (NEXT_STEP autoreset) is no transition
        clipped = np.clip(rewards, -1, 1) if self.cfg.reward_clipping else rewards
        ended = self.tracker.update(rewards, terminated, truncated, info, self.writer, self.global_step)
        # the step's four rows cross to the device in one copy
        rows = np.stack([valid, clipped, terminated, ended]).astype(np.float32)
        rows_t = torch.from_numpy(rows).to(self.device, non_blocking=True)
        b = self.buffer
        b["valid"][t], b["rewards"][t], b["terminated"][t], b["cut"][t] = rows_t
        self.last_obs = self.obs
        self.global_step += self.cfg.num_envs
        for callback in self.callbacks:
            callback(self, self.global_step)

    # ---- learning -----------------------------------------------------------------------------
    def learn(self, steps: int) -> dict[str, float]:
        """Q(lambda) targets for the rollout's first ``steps`` steps, then ``epochs`` passes of
        ``minibatches`` gradient steps on 0.5 (Q(s, a) - G)^2 over its valid transitions (a reset
        step of NEXT_STEP autoreset is not one)."""
        c, b = self.cfg, self.buffer
        with torch.no_grad():
            obs = torch.from_numpy(self.obs).to(self.device, non_blocking=True)
            b["max_q"][steps] = self._q(obs).max(1).values
        b["targets"][:steps] = q_lambda_targets(
            b["rewards"][:steps], b["terminated"][:steps], b["cut"][:steps],
            b["max_q"][1 : steps + 1], c.gamma, c.q_lambda,
        )  # fmt: skip
        size = steps * c.num_envs
        flat = {k: b[k][:steps].reshape(size, *b[k].shape[2:])
                for k in ("obs", "actions", "targets", "valid")}  # fmt: skip
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        minibatch = max(1, size // c.minibatches)

        def step(idx: torch.Tensor) -> None:
            self.sums.add_(self._minibatch_step(flat, idx))

        if c.cuda_graph and steps == c.rollout:  # the buffers' full views: fixed addresses
            if self.graphed is None:
                self.graphed = GraphedStep(step, torch.arange(minibatch, device=self.device),
                                           self.optimizer, capture=self.device.type == "cuda")  # fmt: skip
            step = self.graphed
        self.sums.zero_()
        for _ in range(c.epochs):
            order = torch.randperm(size, generator=self.generator, device=self.device)
            for start in range(0, minibatch * c.minibatches, minibatch):
                step(order[start : start + minibatch])
        self.updates += 1
        loss, q_mean, value, adv_std = (self.sums / (c.epochs * c.minibatches)).tolist()
        stats = {"losses/td_loss": loss, "losses/q_values": q_mean, "charts/learning_rate": lr}
        if c.network == "dueling":
            stats["values/value_mean"], stats["values/advantage_std"] = value, adv_std
        return stats

    def _minibatch_step(self, flat: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        """One gradient step on 0.5 (Q(s, a) - G)^2 over the valid transitions ``idx`` of the
        rollout; returns its TD loss, mean Q(s, a), mean V and mean std of A (zeros without the
        dueling streams). Only device work and no host sync: it can be captured as a CUDA graph."""
        with self._autocast():
            heads = self.online(self._layout(flat["obs"][idx]))
        q_taken = heads["q"].float().gather(1, flat["actions"][idx, None]).squeeze(1)
        mask = flat["valid"][idx]
        loss = 0.5 * ((q_taken - flat["targets"][idx]).square() * mask).sum() / mask.sum().clamp_min(1)
        gradient_step(loss, self.q_network, self.optimizer, self.cfg.max_grad_norm, self.bf16_copy)
        if "value" in heads:  # the dueling streams
            value = heads["value"].detach().float().mean()
            adv_std = heads["advantage"].detach().float().std(1).mean()
        else:
            value = adv_std = loss.new_zeros(())
        return torch.stack([loss.detach(), q_taken.detach().mean(), value, adv_std])

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until ``total_steps`` (or ``time_limit``, or Ctrl-C/SIGTERM); a checkpoint every
        ``save_every`` steps and at the end, so that ``--resume`` continues from where it stopped."""
        c = self.cfg
        with RunSession(self) as session:
            if self.obs is None:
                self.obs, _ = self.env.reset(seed=c.seed + self.global_step)
            next_log = self.global_step + c.log_every
            next_save = self.global_step + c.save_every
            while self.global_step < c.total_steps:
                before = self.global_step
                steps = self.collect(session.stop)
                t0 = time.perf_counter()
                stats = self.learn(steps)
                self.seconds["learn"] += time.perf_counter() - t0
                session.bar.update(self.global_step - before)
                if self.global_step >= next_log:
                    next_log = self.global_step + c.log_every
                    sps = session.steps_per_second()
                    self._log(stats, sps)
                    session.bar.set_postfix(SPS=f"{sps:.0f}", ret=f"{self.tracker.recent_mean():.2f}",
                                            eps=f"{self.epsilon():.3f}")  # fmt: skip
                if session.stop.requested:
                    self.stopped_by = "signal"
                    break
                if c.time_limit and session.elapsed() >= c.time_limit:
                    self.stopped_by = "time limit"
                    break
                if self.global_step >= next_save and self.global_step < c.total_steps:
                    next_save = self.global_step + c.save_every
                    self.save()
        return session.path

    def _log(self, stats: dict[str, float], sps: float) -> None:
        w, step = self.writer, self.global_step
        w.add_scalar("charts/epsilon", self.epsilon(), step)
        w.add_scalar("charts/SPS", sps, step)
        total = sum(self.seconds.values()) or 1.0
        for part, seconds in self.seconds.items():  # where the time goes, as shares of the loop
            w.add_scalar(f"perf/{part}_share", seconds / total, step)
        for k, v in stats.items():
            w.add_scalar(k, v, step)

    # ---- checkpoints --------------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        """What a checkpoint needs to be used without the training code: see agents.common.checkpoint."""
        env_options = self.env_options.as_dict() if self.env_options else {"stack_num": 2}
        return checkpoint_config("pqn", self.q_network.architecture(), self.game, self.action_names,
                                 env_options, self.global_step, dataclasses.asdict(self.cfg))  # fmt: skip

    def save(self) -> Path:
        """A checkpoint at a rollout boundary: weights, optimizer, generators, the episodes in
        progress and (Catch) the games themselves, so that a resume continues exactly."""
        opt_tensors, opt_meta = optimizer_to_tensors(self.optimizer)
        tensors = {**opt_tensors, "rng.torch": torch.get_rng_state(),
                   "rng.generator": self.generator.get_state(),
                   "obs": torch.from_numpy(np.ascontiguousarray(self.obs))}  # fmt: skip
        state: dict[str, Any] = {
            "global_step": self.global_step,
            "updates": self.updates,
            "episodes": self.tracker.episodes,
            "tracker": self.tracker.state(),
            "optimizer": opt_meta,
        }
        if (games := self._restorable_env()) is not None:
            arrays, rngs = games.get_state()
            tensors.update({f"env.{k}": torch.from_numpy(v) for k, v in arrays.items()})
            state["env_rngs"] = rngs
        files: dict[str, Any] = {
            MODEL: self.q_network.state_dict(),
            CONFIG: self.checkpoint_config(),
            "trainer.safetensors": tensors,
            "trainer.json": state,
        }
        return write_checkpoint(self.run_dir, self.global_step, files, self.cfg.keep_checkpoints)

    def _restorable_env(self) -> Any:
        """The vector env whose games a checkpoint can hold (Catch, one group), or None."""
        games = self.env.envs[0]
        return games if len(self.env) == 1 and hasattr(games, "get_state") else None

    def _restore(self, ckpt: Path) -> None:
        require_same_network(ckpt, self.q_network.architecture(), self.game)
        load_state(self.q_network, read_tensors(ckpt / MODEL), ckpt / MODEL)
        tensors = read_tensors(ckpt / "trainer.safetensors")
        state = read_json(ckpt / "trainer.json")
        optimizer_from_tensors(self.optimizer, tensors, state["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        self.generator.set_state(tensors["rng.generator"])
        self.global_step, self.updates = state["global_step"], state["updates"]
        if "env_rngs" in state and (games := self._restorable_env()) is not None:
            arrays = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("env.")}
            games.set_state(arrays, state["env_rngs"])
            self.obs = tensors["obs"].numpy().copy()
            self.tracker.load(state["tracker"])
        else:  # ALE's vector env cannot be restored: the episodes in progress start afresh
            self.tracker.episodes = state["episodes"]


def train_pqn(cfg: PQNConfig, callbacks: list[Callback] | None = None) -> Path:
    """Train (or resume) a run; returns the final checkpoint's directory."""
    return PQNTrainer(cfg, callbacks).run()
