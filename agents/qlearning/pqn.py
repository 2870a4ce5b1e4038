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

import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from agents.common.checkpoint import (
    StopFlag,
)
from agents.common.config import NonNegativeInt, PositiveFloat, PositiveInt, Probability
from agents.common.optim import FusedRAdam
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
    Callback,
    Every,
    RunSession,
    load_training,
    open_run,
    run_loop,
    save_training,
)
from agents.common.training import (
    EpisodeTracker,
    action_names,
    linear_schedule,
    make_env_groups,
    resolve_device,
)
from agents.qlearning.config import QConfig
from agents.qlearning.graphed import GraphedForward, GraphedStep
from agents.qlearning.networks import build_q_network


@dataclass
class PQNConfig(QConfig):
    """A PQN experiment; saved as ``config.json`` beside every run. The defaults are PQN's Atari
    configuration (purejaxql's ``pqn_atari.yaml``: TOTAL_TIMESTEPS 1e7, GAMMA 0.99, MAX_GRAD_NORM 10,
    EPS_START 1, EPS_DECAY 0.1, no sticky actions, a 512-unit dense layer) unless a field says
    otherwise."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # Catch, tuned here (one seed each, 200 greedy episodes, docs/benchmarks.md): 32 envs,
        # rollouts of 8 steps, 4 epochs of 8 minibatches of 32 (8 gradient samples per step where
        # PQN's Atari preset takes 2), Adam, a larger learning rate for the small network, a miss
        # reward of -1 and lambda 0.9, which carries the one reward of an episode back faster
        "catch": dict(
            exp_name="pqn_catch", total_steps=200_000, num_envs=32, rollout=8, epochs=4,
            minibatches=8, learning_rate=1e-3, optimizer="adam", q_lambda=0.9,
            exploration_fraction=0.2, end_e=0.01, catch_miss_reward=-1.0, hidden=128,
            save_every=50_000, log_every=2_000, saliency_every=50_000,
        ),
    }  # fmt: skip

    exp_name: str = "pqn"
    num_envs: PositiveInt = 128
    """Parallel environments (PQN's NUM_ENVS)."""
    learning_rate: PositiveFloat = 2.5e-4
    """Learning rate (PQN's LR)."""
    life_loss_info: bool = True
    """A life loss is terminal for the targets while the game goes on (PQN's envpool
    ``episodic_life``); logged returns are whole games."""
    save_every: PositiveInt = 1_000_000
    end_e: Probability = 0.001
    """Final exploration epsilon (PQN's EPS_FINISH)."""
    layer_norm: bool = True
    """LayerNorm before every ReLU (PQN's NORM_TYPE layer_norm): what replaces the target network."""
    saliency_every: NonNegativeInt = 250_000
    rollout: PositiveInt = 32
    """Steps per env between updates (PQN's NUM_STEPS): 4,096 transitions an update at 128 envs."""
    epochs: PositiveInt = 2
    """Passes over each rollout (PQN's NUM_EPOCHS)."""
    minibatches: PositiveInt = 32
    """Gradient steps per pass (PQN's NUM_MINIBATCHES): minibatches of 128 at the defaults, two
    gradient samples per environment step in all."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero at ``total_steps`` (PQN's LR_LINEAR_DECAY option;
    CleanRL's PPO does the same). A function of the step: a resumed run continues the schedule."""
    optimizer: Literal["radam", "adam"] = "radam"
    """RAdam is what purejaxql's code uses (``optax.radam``); Adam is one flag away."""
    q_lambda: Probability = 0.65
    """Lambda of the Q(lambda) targets (PQN's LAMBDA): 0 is one-step Q-learning, 1 Monte Carlo."""
    reward_clipping: bool = True
    """Clip rewards to [-1, 1] for the targets (PQN's reward_clip); logged returns stay raw."""
    cuda_graph: bool = False
    """Capture the minibatch update (forward, backward, clipping, optimizer step) and the acting
    pass as CUDA graphs and replay them: on an H200 both were bound by launching their small
    kernels one by one (docs/benchmarks.md). CUDA only."""
    compile: bool = False
    """Run the network's passes through ``torch.compile`` (inductor): it fuses the input scaling,
    the LayerNorms, the ReLUs and the dtype and layout copies between the convolutions into a few
    kernels: with bf16 on 2 CPU cores, Pong trains 1.12x faster (docs/benchmarks.md), after
    compiling at the start (longest on a first run, before inductor's cache holds the graphs).
    Needs a C++ compiler on a CPU; not with --cuda-graph."""
    env_groups: PositiveInt = 1
    """Split the envs into this many groups, each its own ALE vector env, and act on one group
    while ALE's threads emulate the others (``envs.groups``): for a GPU machine with cores to
    spare. The games and the exploration draws are those of one group (a forward pass over fewer
    observations may round differently). Atari only."""

    SESSION: ClassVar[tuple[str, ...]] = (*QConfig.SESSION, "cuda_graph", "compile", "env_groups")

    def validate(self) -> None:
        super().validate()
        if self.num_envs % self.env_groups:
            raise ValueError(f"--env-groups {self.env_groups} must divide --num-envs {self.num_envs}")
        if self.env_groups > 1 and self.is_catch():
            raise ValueError("--env-groups must be 1 for catch: its games step in the trainer's own "
                             "thread, so there is no emulation to overlap")
        if self.num_envs * self.rollout < self.minibatches:
            raise ValueError(
                f"--minibatches {self.minibatches} exceeds the {self.num_envs * self.rollout} "
                "transitions of a rollout (num_envs x rollout)"
            )
        if self.compile and self.cuda_graph:
            raise ValueError("--compile and --cuda-graph both replace the eager passes; use one")
        if self.cuda_graph and (device := resolve_device(self.device)).type != "cuda":
            raise ValueError(f"--cuda-graph needs a CUDA device (--device cuda), got {device}")

    def memory_needed(self) -> dict[str, tuple[int, str]]:
        """The emulators, the rollout (uint8 observations, an action and six floats per
        transition), one acting pass over the envs and one minibatch update."""
        obs = self.observation_shape()
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
        cfg, resume_from = cfg.prepare(given)
        self.cfg = cfg
        self.callbacks = list(callbacks or [])
        self.device = resolve_device(cfg.device)
        self.run_dir = Path(cfg.run_dir or cfg.default_run_dir())
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
        # --compile: the same module, its passes compiled for the shapes a full rollout uses (one
        # graph each: acting, the bootstrap, the minibatch); other shapes run eagerly
        self.compiled = torch.compile(self.online, dynamic=False) if cfg.compile else None
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
        open_run(self, resume_from, self._restore)
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
    def _net(self, full: bool = True) -> nn.Module:
        """The network that runs a pass: the compiled one (--compile) for acting and for the
        minibatches of a full rollout; a rollout cut short by a stop learns eagerly, so that its
        new minibatch shape costs no compilation on the way out."""
        return self.compiled if self.compiled is not None and full else self.online

    def _q(self, obs: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self._net()(self._layout(obs))["q"].float()

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
        net = self._net(full=steps == c.rollout)

        def step(idx: torch.Tensor) -> None:
            self.sums.add_(self._minibatch_step(flat, idx, net))

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

    def _minibatch_step(self, flat: dict[str, torch.Tensor], idx: torch.Tensor, net: nn.Module
                        ) -> torch.Tensor:  # fmt: skip
        """One gradient step on 0.5 (Q(s, a) - G)^2 over the valid transitions ``idx`` of the
        rollout, the passes run by ``net`` (:meth:`_net`); returns its TD loss, mean Q(s, a),
        mean V and mean std of A (zeros without the dueling streams). Only device work and no host
        sync: it can be captured as a CUDA graph."""
        with self._autocast():
            heads = net(self._layout(flat["obs"][idx]))
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
        return run_loop(self, self._loop)

    def _loop(self, session: RunSession) -> None:
        """Collect a rollout, learn from it, log and save, until the budget is spent, a signal
        asks to stop or the time limit has passed."""
        c = self.cfg
        if self.obs is None:
            self.obs, _ = self.env.reset(seed=c.seed + self.global_step)
        log, save = Every(c.log_every, self.global_step), Every(c.save_every, self.global_step)
        while self.global_step < c.total_steps:
            before = self.global_step
            steps = self.collect(session.stop)
            t0 = time.perf_counter()
            stats = self.learn(steps)
            self.seconds["learn"] += time.perf_counter() - t0
            session.bar.update(self.global_step - before)
            if log(self.global_step):
                sps = session.steps_per_second()
                self._log(stats, sps)
                session.bar.set_postfix(SPS=f"{sps:.0f}", ret=f"{self.tracker.recent_mean():.2f}",
                                        eps=f"{self.epsilon():.3f}")  # fmt: skip
            if session.should_stop():
                break
            if self.global_step < c.total_steps and save(self.global_step):
                self.save()

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
    def env_config(self) -> dict[str, Any]:
        """The env options a checkpoint records: Atari's, or Catch's two stacked frames."""
        return self.env_options.as_dict() if self.env_options else {"stack_num": 2}

    def save(self) -> Path:
        """A checkpoint at a rollout boundary: weights, optimizer, generators, the episodes in
        progress and (Catch) the games themselves, so that a resume continues exactly."""
        tensors = {"rng.generator": self.generator.get_state(),
                   "obs": torch.from_numpy(np.ascontiguousarray(self.obs))}  # fmt: skip
        state: dict[str, Any] = {"tracker": self.tracker.state()}
        if (games := self._restorable_env()) is not None:
            arrays, rngs = games.get_state()
            tensors.update({f"env.{k}": torch.from_numpy(v) for k, v in arrays.items()})
            state["env_rngs"] = rngs
        return save_training(self, "pqn", self.q_network, self.env_config(), tensors, state)

    def _restorable_env(self) -> Any:
        """The vector env whose games a checkpoint can hold (Catch, one group), or None."""
        games = self.env.envs[0]
        return games if len(self.env) == 1 and hasattr(games, "get_state") else None

    def _restore(self, ckpt: Path) -> None:
        tensors, state = load_training(self, self.q_network, ckpt)
        self.generator.set_state(tensors["rng.generator"])
        if "env_rngs" in state and (games := self._restorable_env()) is not None:
            arrays = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("env.")}
            games.set_state(arrays, state["env_rngs"])
            self.obs = tensors["obs"].numpy().copy()
            self.tracker.load(state["tracker"])
        # else ALE's vector env cannot be restored: the episodes in progress start afresh


def train_pqn(cfg: PQNConfig, callbacks: list[Callback] | None = None) -> Path:
    """Train (or resume) a run; returns the final checkpoint's directory."""
    return PQNTrainer(cfg, callbacks).run()
