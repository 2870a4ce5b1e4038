"""Training the Recurrent Attention Model with REINFORCE through the environment: at every step the
agent glimpses the current frame where it chose to look, updates its core, acts, and picks where to
look next (Mnih et al. 2014, Section 3).

Run directories, TensorBoard tags, checkpoints (safetensors + JSON, atomic) and ``--resume`` follow
the DQN's (see :mod:`agents.common.checkpoint`); Ctrl-C or SIGTERM saves a checkpoint before exiting.
"""

from __future__ import annotations

import collections
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import cv2
import numpy as np
import torch
import tyro
from torch.utils.tensorboard import SummaryWriter

from agents.common.checkpoint import (
    CONFIG,
    MODEL,
    load_state,
    read_json,
    read_tensors,
    require_same_network,
    resolve_checkpoint,
)
from agents.common.config import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Precision,
    Probability,
    Range,
    flag,
    refuse,
)
from agents.common.ppo import PPOConfig, advantages, explained_variance
from agents.common.precision import resolve_precision
from agents.common.resources import emulator_bytes, keep_freed_memory
from agents.common.run import (
    Callback,
    Every,
    RunSession,
    end_of_update,
    load_training,
    open_run,
    run_loop,
    save_training,
)
from agents.common.training import EpisodeTracker, action_names
from agents.glimpse import (
    GlimpsePolicy,
    RecurrentAttentionModel,
    factored_clipped_loss,
    orthogonal_init,
    reinforce_loss,
)
from envs import CatchVectorEnv, FireAfterLifeLoss, make_vector_env, resolve_game
from envs.options import AtariOptions


@dataclass
class GlimpseConfig(PPOConfig):
    """A glimpse-agent experiment; saved as ``config.json`` beside every run. The defaults are
    chosen for Catch; the ``atari`` preset gives those for Atari games. Why each default is what it
    is, with the runs that chose it: docs/glimpse_agent.md."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # Atari: long episodes cut into bootstrapped rollouts of 32 steps; patches of 16, 64 and
        # 256 pixels max-pooled to 16x16, so that the widest sees the whole frame from almost any
        # gaze with a 2x4-pixel ball at full contrast; recurrent PPO with CleanRL's Atari PPO
        # settings (Adam 2.5e-4, clip 0.1, entropy 0.01, gradient norm 0.5, GAE 0.95) and a lost
        # life terminal for the targets
        "atari": dict(
            total_steps=10_000_000, num_envs=16, rollout=32, patch_size=16, num_scales=3,
            scale_factor=4, retina_pool="max", hidden=256, location_std=0.1, gamma=0.99,
            gae_lambda=0.95, epochs=4, minibatches=2, clip_coef=0.1, learning_rate=2.5e-4,
            max_grad_norm=0.5, entropy_coef=0.01, anneal_lr=False, life_loss_info=True,
        ),
        "default": {},
        # the foveal Catch: the paper's 24x24 screen seen through patches of 6 and 12 pixels (the
        # widest covers a quarter of it); a rollout of 48 holds two whole episodes, or one 47-step
        # episode of --catch-size 48, so that returns stay Monte-Carlo
        "foveal": dict(preset="foveal", catch_size=24, patch_size=6, num_scales=2, rollout=48),
    }  # fmt: skip

    game: Annotated[str, tyro.conf.arg(aliases=("--env",))] = "catch"
    """'catch' or an Atari game (full-resolution 210x160 grayscale frames, one at a time unless
    --frame-stack says more); --env is the same flag."""
    exp_name: str = "glimpse"
    total_steps: PositiveInt = 16_000_000
    """Environment steps over all envs (on Catch about 9 minutes on two cores)."""
    num_envs: PositiveInt = 128
    """Parallel environments (one batch through the network per step)."""
    learning_rate: PositiveFloat = 4e-3
    """Adam learning rate (for 128 envs; 2e-3 suits 32)."""
    gamma: Probability = 1.0
    """Discount (Catch's single reward needs none)."""
    max_grad_norm: PositiveFloat = 5.0
    """Gradient-norm clip, applied to the location head and to the rest of the network separately:
    the Gaussian location's score is about 1/location_std times the action's, so one global norm
    would rescale the action policy's gradient by the location's noise."""
    hidden: PositiveInt = 128
    """Core size (also the glimpse vector's). The paper's 256 is the model's default and Atari's;
    Catch learns as much per step with 128, faster."""
    catch_miss_reward: float = -1.0
    """Catch only: reward for a miss (the paper's is 0; -1 makes a miss as informative as a catch)."""
    save_every: PositiveInt = 500_000
    precision: Precision = "auto"
    """Arithmetic of the network passes: fp32, or bf16 (the glimpse network's and the core's
    matmuls under bfloat16 autocast; the weights Adam steps and its state, the heads and their
    distributions, the loss and the checkpoints stay float32). auto is fp32: at this agent's sizes
    bf16 is hardly faster (docs/glimpse_agent.md). bf16 needs a CPU with AVX-512 BF16 or AMX. A
    resumed run keeps its own."""
    frame_stack: PositiveInt = 1
    """Atari only: the last N frames, stacked as channels of every patch. 1 (the paper's): one
    frame a step, and which way the ball moves is the core's to remember. 2: one glimpse shows the
    ball's motion (two dots), whatever the gaze's jitter between steps."""
    preset: Literal["default", "foveal"] = "default"
    """Catch only: 'foveal' is a Catch whose screen the glimpse cannot see at once (patch 6, 2 scales:
    the widest patch, 12 pixels, is a quarter of the 24x24 screen; checked to be at most a quarter
    of any --catch-size), so the location policy has to work, as in Mnih et al. 2014's translated
    tasks."""
    catch_size: Annotated[int, Range(ge=4)] = 24
    """Catch only: width and height of the screen in pixels (at least a ball above a 2-pixel paddle)."""
    catch_turn_prob: Probability = 0.0
    """Catch only: probability that the ball reverses its horizontal direction at a step (0: the
    paper's game, whose landing a few early glimpses predict; with turns the gaze must follow)."""
    catch_paddle_width: PositiveInt = 2
    """Catch only: paddle width in pixels (the paper's is 2). With 3, a paddle kept under the ball
    catches it whatever its turns, so a ball that turns must be watched to the end."""
    rollout: PositiveInt = 24
    """Steps per update. A Catch episode (23 steps and the reset step) fills one rollout, so its
    returns are Monte-Carlo; longer Atari episodes are cut and bootstrapped from the baseline."""
    patch_size: PositiveInt = 6
    """Width of the finest glimpse patch in pixels."""
    num_scales: PositiveInt = 3
    """Patches per glimpse, each scale-factor times wider than the previous."""
    scale_factor: PositiveInt = 2
    """Width ratio of consecutive patches."""
    retina_pool: Literal["avg", "max"] = "avg"
    """How each wider patch is reduced to patch-size pixels: 'avg' (the paper's) or 'max', which
    keeps an object smaller than a coarse cell (a ball) at full contrast in the periphery."""
    glimpses_per_step: PositiveInt = 1
    """Glimpses taken (and core updates) before each action."""
    location_policy: Literal["gaussian", "tiles"] = "gaussian"
    """Gaussian around a mean location, or a softmax over a grid of tiles."""
    location_std: PositiveFloat = 0.15
    """Standard deviation of the Gaussian location policy (in units of half the frame)."""
    tiles: Annotated[int, Range(ge=2)] = 4
    """Tiles per side of the tiles location policy's grid."""
    core: Literal["lstm", "gru", "rnn", "lnlstm"] = "lstm"
    """Recurrent core: LSTM, GRU, the paper's ReLU RNN, or a layer-normalised LSTM (lnlstm, whose cell
    state cannot saturate the output over long Atari episodes: agents.glimpse.model.LayerNormLSTMCell)."""
    glimpse_net: Literal["linear", "conv"] = "linear"
    """What reads the patches: the paper's one linear layer, or two convolutions over the scales
    stacked as channels and then the linear layer (Ba et al. 2015's deep attention model)."""
    normalize_glimpse: bool = True
    """Standardise each glimpse vector (LayerNorm without parameters) before the glimpse network."""
    orthogonal_init: bool = False
    """Initialise the network as PPO's reference implementations do (orthogonal weights, heads at
    gain 0.01, zero biases: ``agents.glimpse.orthogonal_init``) rather than PyTorch's default."""
    action_input: bool = False
    """Feed the previous action (one-hot) to the core with each glimpse, as IMPALA's recurrent agent
    does (Espeholt et al. 2018, with the last reward): the agent then knows where its moves took it
    (the Catch paddle) without looking there, so its gaze can stay on the ball. Off: the paper's
    core, which sees only glimpses."""
    detach_baseline: bool = False
    """Baseline reads a detached core state (the baseline then does not train the core)."""
    anneal_from: NonNegativeInt = 0
    """With --anneal-lr: the step the decay starts from; the rate is constant before it. Resuming a
    run that trained without --anneal-lr with the flag starts the decay at the step resumed from,
    so a run that has plateaued spends the rest of its budget at a falling rate and keeps its Adam
    moments, step count and logs (a fresh run from its weights, --init-from, would lose them)."""
    location_lr_scale: PositiveFloat = 0.1
    """The location head learns at this fraction of the learning rate: its REINFORCE gradient is
    mostly noise at first, and at the full rate the gaze random-walks to a border (where tanh
    saturates) before the actions have learned anything."""
    epochs: PositiveInt = 1
    """Passes over each rollout. 1: one REINFORCE step on the rollout as it was played (the
    paper's). More: PPO (Schulman et al. 2017), recurrent as SB3-contrib's RecurrentPPO is: each pass
    replays the rollout through the core with the current weights (the same patches, sampled
    locations and actions) and steps on the clipped surrogate, so that every environment step
    teaches several times; the rollout itself then runs without a graph."""
    minibatches: PositiveInt = 1
    """With --epochs above 1: each pass is split into this many minibatches of whole env sequences
    (the core's state runs through a sequence, so envs are split, not steps)."""
    clip_coef: PositiveFloat = 0.1
    """With --epochs above 1: PPO's clip range on the probability ratio (CleanRL's Atari PPO: 0.1)."""
    gae_lambda: Probability = 1.0
    """1.0: Monte-Carlo returns minus the baseline (REINFORCE, the paper); below 1, advantages mix in
    the baseline's bootstrapped estimates (GAE, Schulman et al. 2016)."""
    normalize_advantage: bool = True
    """Standardise the advantages of each update (scale-free learning rate across games)."""
    entropy_coef: NonNegativeFloat = 0.003
    """Weight of the action policy's entropy bonus."""
    location_entropy_coef: NonNegativeFloat = 0.0
    """Weight of the location policy's entropy bonus (the Gaussian's is a constant)."""
    init_from: str = ""
    """Checkpoint (run, checkpoint directory or model.safetensors) whose network weights start this
    run, with a fresh optimizer and step count: a curriculum, such as an agent of the paper's game
    trained on again on a ball that turns. Its network must be this run's (retina, core, actions)."""
    heatmap_every: NonNegativeInt = 250_000
    """Environment steps between heat-map images of where glimpses landed (0: never)."""

    BUDGET: ClassVar[tuple[str, ...]] = (*PPOConfig.BUDGET, "anneal_from")
    AUTO_BF16: ClassVar[bool] = False

    def widest_patch(self) -> int:
        return self.patch_size * self.scale_factor ** (self.num_scales - 1)

    def catch_game(self) -> dict[str, Any]:
        """The Catch game's options (keyword arguments of ``CatchVectorEnv``, and what checkpoints
        record), so that training, evaluation and benchmarks play the same game."""
        return {"size": self.catch_size, "turn_prob": self.catch_turn_prob,
                "paddle_width": self.catch_paddle_width}  # fmt: skip

    def validate(self) -> None:
        """One-line errors for values that cannot work, before anything starts."""
        super().validate()
        resolve_precision(self.precision, "cpu")
        if self.anneal_from and not (self.anneal_lr and self.anneal_from < self.total_steps):
            raise ValueError(f"--anneal-from starts the decay of --anneal-lr, so it needs that flag "
                             f"and a step before --total-steps ({self.total_steps:,}); got "
                             f"{self.anneal_from:,} with anneal_lr={self.anneal_lr}")  # fmt: skip
        self._check_game()

    def _check_game(self) -> None:
        """The flags that belong to Catch or to Atari, and the Catch screen's sizes."""
        catch, size = self.is_catch(), self.catch_size
        atari_only = {"frame_stack": self.frame_stack != 1, "life_loss_info": self.life_loss_info}
        catch_only = {"catch_turn_prob": self.catch_turn_prob != 0, "preset": self.preset != "default",
                      "catch_paddle_width": self.catch_paddle_width != 2}  # fmt: skip
        for name, set_away in (catch_only if not catch else atari_only).items():
            if set_away:
                raise ValueError(f"{flag(name)} is for {'Atari games' if catch else '--game catch'} "
                                 f"only (got {getattr(self, name)!r} with --game {self.game})")  # fmt: skip
        if catch and self.catch_paddle_width > size // 2:
            raise refuse("catch_paddle_width", f"in [1, --catch-size // 2 = {size // 2}]",
                         self.catch_paddle_width)  # fmt: skip
        if catch and self.patch_size > size:  # the retina's own check, before anything is built
            p = self.patch_size
            raise ValueError(f"retina patch {p}x{p} is larger than the {size}x{size} frame at every "
                             f"scale; use --patch-size <= {size}")  # fmt: skip
        widest = self.widest_patch()
        if self.preset == "foveal" and 4 * widest * widest > size * size:
            raise ValueError(
                f"--preset foveal needs a retina that sees at most a quarter of the screen, but "
                f"its widest patch ({widest}x{widest}) covers {min(1.0, widest**2 / size**2):.0%}"
                f" of the {size}x{size} screen; use fewer --num-scales, a smaller --patch-size "
                f"or a larger --catch-size"
            )

    def memory_needed(self) -> dict[str, tuple[int, str]]:
        """The emulators; for every glimpse of a rollout its patches (recorded, replayed and their
        gradients) and the networks' activations; the retina's widest crop of every env's frame at
        each step."""
        catch = self.is_catch()
        channels = 1 if catch else self.frame_stack
        frame = (self.catch_size,) * 2 if catch else (210, 160)
        glimpses = self.rollout * self.num_envs * self.glimpses_per_step
        patches = self.num_scales * channels * self.patch_size**2 * 4
        return {"the envs": (emulator_bytes(self.game, self.num_envs, frame), "--num-envs"),
                "the rollout's glimpses": (glimpses * (3 * patches + 16 * self.hidden * 4),
                                           "--num-envs, --rollout or --patch-size"),
                "the retina's crops": (self.num_envs * channels * self.widest_patch()**2 * 4,
                                       "--num-envs or --patch-size")}  # fmt: skip


def make_glimpse_env(cfg: GlimpseConfig, seed: int) -> tuple[Any, AtariOptions | None, str]:
    """Catch, or an Atari game at full resolution (210x160 grayscale, ``frame_stack`` frames: by
    default one, and memory is the core's job); Atari rewards stay unclipped so that returns are
    game scores."""
    if cfg.game.lower() == "catch":
        env = CatchVectorEnv(cfg.num_envs, seed=seed, miss_reward=cfg.catch_miss_reward,
                             **cfg.catch_game())  # fmt: skip
        return env, None, "catch"
    game = resolve_game(cfg.game)
    options = AtariOptions(img_height=210, img_width=160, stack_num=cfg.frame_stack,
                           reward_clipping=False, life_loss_info=cfg.life_loss_info)  # fmt: skip
    return make_vector_env(game, cfg.num_envs, seed=seed, **options.as_dict()), options, game


class GlimpseTrainer:
    """Parallel envs, one batched forward per step; every ``rollout`` steps one REINFORCE update
    (truncated back-propagation through time: the core's state carries over, its graph does not).

    Steps at which an env performs its automatic reset (ALE's NEXT_STEP mode) are masked out of the
    loss, and the core state and glimpse location of that env start afresh after them.
    ``callbacks`` are called as ``callback(trainer, global_step)`` after every update.
    ``given``: the config fields named on the command line, for ``--resume`` (see resume_config).
    """

    def __init__(self, cfg: GlimpseConfig, callbacks: list[Callback] | None = None,
                 given: Collection[str] = ()) -> None:
        cfg, resume_from = cfg.prepare(given)
        # --anneal-lr given to a run that trained without it: the decay starts where it resumes
        decay_from_here = (resume_from is not None and cfg.anneal_lr and not cfg.anneal_from
                           and not read_json(Path(cfg.resume) / CONFIG).get("anneal_lr", True))  # fmt: skip
        self.cfg = cfg
        self.callbacks = list(callbacks or [])
        keep_freed_memory()  # the rollout's patches and activations reused, not faulted in again
        torch.manual_seed(cfg.seed)
        self.env, self.env_options, self.game = make_glimpse_env(cfg, cfg.seed)
        shape = self.env.single_observation_space.shape  # (1, H, W)
        self.frame_shape = tuple(shape[1:])
        self.model = RecurrentAttentionModel(
            int(self.env.single_action_space.n), channels=shape[0], patch_size=cfg.patch_size,
            num_scales=cfg.num_scales, scale_factor=cfg.scale_factor, hidden=cfg.hidden,
            core=cfg.core, location_policy=cfg.location_policy, location_std=cfg.location_std,
            tiles=cfg.tiles, detach_baseline=cfg.detach_baseline,
            normalize_glimpse=cfg.normalize_glimpse, action_input=cfg.action_input,
            retina_pool=cfg.retina_pool, glimpse_net=cfg.glimpse_net,
        )  # fmt: skip
        self.model.retina.check_frame(*self.frame_shape)
        if cfg.orthogonal_init:
            orthogonal_init(self.model)
        location = list(self.model.location_head.parameters())
        rest = [p for p in self.model.parameters() if all(p is not q for q in location)]
        self.base_lrs = [cfg.learning_rate, cfg.learning_rate * cfg.location_lr_scale]
        self.optimizer = torch.optim.Adam([  # fused: one pass over the weights, the same maths
            {"params": rest, "lr": self.base_lrs[0]},
            {"params": location, "lr": self.base_lrs[1]},
        ], fused=True)  # fmt: skip
        self.run_dir = Path(cfg.run_dir or cfg.default_run_dir())
        self.action_names = action_names(self.game, self.env_options)
        self.fire_action = cfg.fire_action(self.action_names)
        self.global_step = self.updates = 0
        self.tracker = EpisodeTracker(cfg.num_envs, self.env_options)
        self.heat = np.zeros(self.frame_shape, np.float64)
        self.stop_signal: int | None = None  # the signal that stopped run(), if one did
        self.stopped_by = ""
        self.writer: SummaryWriter | None = None  # RunSession opens it on the run directory
        open_run(self, resume_from, self._restore)
        if decay_from_here:  # --anneal-lr turned on now: the decay starts at this step
            cfg.anneal_from = self.global_step
        elif cfg.init_from and resume_from is None:
            start = resolve_checkpoint(cfg.init_from)
            require_same_network(start, self.model.architecture(), self.game)
            load_state(self.model, read_tensors(start / MODEL), start / MODEL)

    def _autocast(self) -> torch.autocast:
        """bf16 autocast for --precision bf16 (the heads run float32 inside it: model.heads_of)."""
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    # ---- acting -------------------------------------------------------------------------------
    def act(self, images: torch.Tensor, loc: torch.Tensor, state: tuple[torch.Tensor, ...],
            record: dict[str, list[torch.Tensor]] | None = None):  # fmt: skip
        """Glimpse(s) at ``loc``, then sample an action and the next location.

        Returns (action, its log-probability, the log-probability of the locations sampled,
        action entropy, location entropy, baseline, next location, next state). ``record``
        collects what :meth:`replay` needs.
        """
        logp_l = torch.zeros(len(images))
        ent_l = torch.zeros(len(images))
        for _ in range(self.cfg.glimpses_per_step):
            self._count_glimpses(loc)
            patches = self.model.retina(images, loc)
            heads, state = self.model.step_patches(patches, loc, state)
            sampled, lp, el = self.model.sample_location(heads)
            if record is not None:
                record["patches"].append(patches)
                record["looked"].append(loc)
                record["sampled"].append(sampled)
            loc, logp_l, ent_l = sampled, logp_l + lp, ent_l + el
        dist = torch.distributions.Categorical(logits=heads["action_logits"])
        action = dist.sample()
        state = self.model.record_action(state, action)
        if record is not None:
            record["action"].append(action)
        return action, dist.log_prob(action), logp_l, dist.entropy(), ent_l, heads["baseline"], loc, state

    def replay(self, start: tuple[torch.Tensor, ...], rows: dict[str, list[torch.Tensor]],
               envs: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        """A rollout's decisions for the envs at index ``envs``, played again with the current
        weights from the core state ``start`` it began with: (T, len(envs)) log-probabilities of
        the actions and of the locations sampled, action and location entropies, and baselines
        (for PPO's epochs).

        Only the core runs in sequence (:meth:`RecurrentAttentionModel.core_sequence`, fused for an
        LSTM or GRU): the glimpse network encodes every glimpse of the rollout in one batch before
        it, and the heads and distributions read every core output in one batch after it (several
        times faster than replaying whole steps)."""
        g, b = self.cfg.glimpses_per_step, len(envs)
        steps = len(rows["action"])
        m = self.model
        patches = torch.stack(rows["patches"])[:, envs]  # (T*g, b, scales, C, p, p)
        looked = torch.stack(rows["looked"])[:, envs]
        vectors = m.glimpse.encode(patches.flatten(0, 1), looked.flatten(0, 1)).unflatten(0, (steps * g, b))
        state = tuple(s[envs] for s in start)
        hs = m.core_sequence(vectors, state, torch.stack(rows["restart"])[:, envs],
                             torch.stack(rows["action"])[:, envs], g)  # fmt: skip
        heads = m.heads_of(hs.flatten(0, 1))  # (T*g*b, ...)
        sampled = torch.stack(rows["sampled"])[:, envs].flatten(0, 1)
        loc_logp, loc_entropy = (x.view(steps, g, b).sum(1) for x in m.location_log_prob(heads, sampled))
        last = {k: v.view(steps, g, b, *v.shape[1:])[:, -1] for k, v in heads.items()}  # acts on it
        logits = last["action_logits"].log_softmax(-1)
        actions = torch.stack(rows["action"])[:, envs]
        return {
            "logp_a": logits.gather(-1, actions[..., None]).squeeze(-1),
            "logp_l": loc_logp,
            "ent_a": -(logits.exp() * logits).sum(-1),
            "ent_l": loc_entropy,
            "baseline": last["baseline"],
        }

    def _count_glimpses(self, loc: torch.Tensor) -> None:
        if self.cfg.heatmap_every:
            row, col = self.model.retina.centres(loc, *self.frame_shape)
            np.add.at(self.heat, (row.numpy(), col.numpy()), 1.0)

    # ---- training -----------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until ``total_steps``; returns the final checkpoint's directory."""
        return run_loop(self, self._loop)

    def _loop(self, session: RunSession) -> None:
        """Play rollouts, one update after each, logging, heat maps and checkpoints, until the
        budget is spent or a signal asks to stop."""
        c = self.cfg
        obs, info = self.env.reset(seed=c.seed + self.global_step)
        state, loc = self.model.initial_state(c.num_envs), torch.zeros(c.num_envs, 2)
        fire = FireAfterLifeLoss(c.fire_after_life_loss, self.fire_action, info)
        log, heat, save = (Every(n, self.global_step) for n in (c.log_every, c.heatmap_every, c.save_every))
        while self.global_step < c.total_steps and not session.should_stop():
            start = state
            rows, obs, loc, state = self.rollout(obs, loc, state, fire, session)
            with torch.no_grad(), self._autocast():  # the baseline, for a cut episode
                heads, _ = self.model(torch.from_numpy(obs), loc, state)
            stats = self.update(rows, heads["baseline"], start)
            state = tuple(s.detach() for s in state)  # truncated back-propagation through time
            if log(self.global_step):
                sps = session.steps_per_second()
                for k, v in {**stats, "charts/location_std": c.location_std, "charts/SPS": sps}.items():
                    self.writer.add_scalar(k, v, self.global_step)
                session.bar.set_postfix(SPS=f"{sps:.0f}", ret=f"{self.tracker.recent_mean():.2f}")
            if heat(self.global_step):
                self.writer.add_image("glimpses/heatmap", self.heatmap(obs[0, -1]),
                                      self.global_step, dataformats="HWC")  # fmt: skip
                self.heat[:] = 0.0
            end_of_update(self, save)

    def rollout(self, obs: np.ndarray, loc: torch.Tensor, state: tuple[torch.Tensor, ...],
                fire: FireAfterLifeLoss, session: RunSession) -> tuple[Any, ...]:  # fmt: skip
        """Play ``rollout`` steps from ``obs``, the gaze ``loc`` and the core ``state``; returns
        what the update needs per step (``rows``) and the observation, gaze and state it ends at.
        With PPO's epochs the rollout is played without a graph: each epoch replays it."""
        c, tracker, ppo = self.cfg, self.tracker, self.cfg.epochs > 1
        rows: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
        for _ in range(c.rollout):
            images = torch.from_numpy(obs)  # uint8: the retina converts only its patches
            with torch.set_grad_enabled(not ppo), self._autocast():
                action, logp_a, logp_l, ent_a, ent_l, baseline, loc, state = self.act(
                    images, loc, state, rows if ppo else None
                )
            # FIRE after a lost life is the env's step, not a decision of the policy's
            obs, rew, term, trunc, info = self.env.step(fire.actions(action.numpy()))
            ended = tracker.ended  # envs whose step was a reset step: no decision
            decision = ~ended & ~fire.forced
            now_ended = tracker.update(rew, term, trunc, info, self.writer, self.global_step)
            reward = torch.from_numpy(np.where(ended, 0.0, np.clip(rew, -1, 1)))
            # the targets' episode: the game's, or a life under life_loss_info
            done = torch.from_numpy(now_ended | (np.asarray(term) & decision))
            for k, v in {"logp_a": logp_a, "logp_l": logp_l, "reward": reward, "baseline": baseline,
                         "mask": torch.from_numpy(decision), "done": done, "ent_a": ent_a,
                         "ent_l": ent_l, "restart": torch.from_numpy(ended)}.items():  # fmt: skip
                rows[k].append(v)
            # an env whose reset step just happened starts over: fresh core, central glimpse
            if ended.any():
                state, loc = self.model.restart(torch.from_numpy(ended), state, loc)
            fire.observe(info, now_ended)  # term is a life's end under life_loss_info
            self.global_step += c.num_envs
            session.bar.update(c.num_envs)
        return rows, obs, loc, state

    def update(self, rows: dict[str, list[torch.Tensor]], bootstrap: torch.Tensor,
               start: tuple[torch.Tensor, ...]) -> dict[str, float]:  # fmt: skip
        """One REINFORCE step on a rollout, or PPO's epochs over it (replayed from the core state
        ``start`` it began with); returns the logged statistics."""
        c = self.cfg
        if c.anneal_lr:  # a function of the step alone: a resumed run continues the same schedule
            left = (c.total_steps - self.global_step) / (c.total_steps - c.anneal_from)
            left = min(1.0, max(0.0, left))
            for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
                group["lr"] = base * left
        per_step = ("logp_a", "logp_l", "reward", "baseline", "mask", "done", "ent_a", "ent_l")
        t = {k: torch.stack(rows[k]) for k in per_step}
        mask = t["mask"].float()
        adv, targets = advantages(t["reward"].float(), t["baseline"].detach(), t["done"].float(),
                                  bootstrap, c.gamma, c.gae_lambda)  # fmt: skip
        m = mask.bool()
        explained = explained_variance(t["baseline"].detach()[m], targets[m])
        if c.normalize_advantage:
            adv = (adv - adv[m].mean()) / (adv[m].std() + 1e-8)
        if c.epochs == 1:
            stats = self._step(t, targets, mask, adv)
        else:
            for _ in range(c.epochs):
                order = torch.randperm(c.num_envs) if c.minibatches > 1 else torch.arange(c.num_envs)
                for envs in order.chunk(c.minibatches):
                    with self._autocast():
                        played = self.replay(start, rows, envs)
                    old = {k: t[k][:, envs] for k in ("logp_a", "logp_l")}
                    stats = self._step(played, targets[:, envs], mask[:, envs], adv[:, envs], old)
        self.updates += 1
        return {**stats, "losses/explained_variance": explained,
                "charts/learning_rate": self.optimizer.param_groups[0]["lr"]}  # fmt: skip

    def _step(self, played: dict[str, torch.Tensor], targets: torch.Tensor, mask: torch.Tensor,
              adv: torch.Tensor, old: dict[str, torch.Tensor] | None = None) -> dict[str, float]:  # fmt: skip
        """One gradient step on (T, N) log-probabilities, entropies and baselines: REINFORCE's
        loss, or with the collecting policy's log-probabilities ``old`` PPO's clipped one, the
        action's and the locations' ratios clipped apart (:func:`factored_clipped_loss`)."""
        c = self.cfg
        extra: dict[str, float] = {}
        decisions = mask.sum().clamp_min(1)
        if old is None:
            policy_loss, baseline_loss = reinforce_loss(played["logp_a"] + played["logp_l"], targets,
                                                        played["baseline"], mask, adv)  # fmt: skip
        else:
            parts = {k: played[k] for k in old}
            policy_loss, clipped, kl = factored_clipped_loss(parts, old, adv, mask, c.clip_coef)
            baseline_loss = (((played["baseline"] - targets) ** 2) * mask).sum() / decisions
            extra = {"losses/clipfrac": clipped["logp_a"].item(), "losses/approx_kl": kl["logp_a"].item(),
                     "losses/location_clipfrac": clipped["logp_l"].item(),
                     "losses/location_approx_kl": kl["logp_l"].item()}  # fmt: skip
        entropy = (played["ent_a"] * mask).sum() / decisions
        loc_entropy = (played["ent_l"] * mask).sum() / decisions
        loss = (policy_loss + c.baseline_coef * baseline_loss - c.entropy_coef * entropy
                - c.location_entropy_coef * loc_entropy)  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        rest, location = (group["params"] for group in self.optimizer.param_groups)
        grad_norm = torch.nn.utils.clip_grad_norm_(rest, c.max_grad_norm)
        location_norm = torch.nn.utils.clip_grad_norm_(location, c.max_grad_norm)
        self.optimizer.step()
        return {
            "losses/policy_loss": policy_loss.item(),
            "losses/baseline_loss": baseline_loss.item(),
            "losses/grad_norm": float(grad_norm),
            "losses/location_grad_norm": float(location_norm),
            "charts/action_entropy": entropy.item(),
            "charts/location_entropy": loc_entropy.item(),
            **extra,
        }

    def heatmap(self, frame: np.ndarray | None = None) -> np.ndarray:
        """Where the glimpses landed since the last image: counts per pixel, square-root scaled (so
        rare places stay visible), inferno colours over the grey ``frame`` (a current screen, to
        see what was looked at), enlarged to at least 240 rows."""
        h, w = self.heat.shape
        heat = self.heat
        sigma = min(h, w) / 40  # on large frames single pixels speckle: smooth over a few pixels
        if sigma > 1:
            heat = cv2.GaussianBlur(heat, (0, 0), sigma)
        level = np.sqrt(heat / max(heat.max(), 1e-12))
        image = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32)
        if frame is not None:
            grey = np.repeat(frame.astype(np.float32)[..., None], 3, axis=2)
            image = np.where(level[..., None] > 0.02, 0.75 * image + 0.25 * grey, 0.5 * grey)
        k = max(1, -(-240 // h))
        image = cv2.resize(image.astype(np.uint8), (w * k, h * k), interpolation=cv2.INTER_NEAREST)
        return image

    # ---- checkpoints --------------------------------------------------------------------------
    def env_config(self) -> dict[str, Any]:
        """The env options a checkpoint records: Atari's, or the Catch game's."""
        return self.env_options.as_dict() if self.env_options else {"stack_num": 1, **self.cfg.catch_game()}

    def save(self) -> Path:
        return save_training(self, "glimpse", self.model, self.env_config())

    def _restore(self, ckpt: Path) -> None:
        load_training(self, self.model, ckpt)


def train_glimpse(cfg: GlimpseConfig, callbacks: list[Callback] | None = None) -> Path:
    """Train (or resume) a run; returns the final checkpoint's directory."""
    return GlimpseTrainer(cfg, callbacks).run()


def glimpse_catch_rate(model: RecurrentAttentionModel, episodes: int = 100, seed: int = 10_000,
                       glimpses_per_step: int = 1, greedy: bool = True, **game: Any) -> float:
    """Fraction of Catch episodes caught (one episode per env, all in one batch); ``game`` holds
    the game's options (:meth:`GlimpseConfig.catch_game`; the paper's game without them)."""
    env = CatchVectorEnv(episodes, seed=seed, **game)
    obs, _ = env.reset()
    policy = GlimpsePolicy(model, episodes, glimpses_per_step, greedy)
    caught = np.zeros(episodes)
    for _ in range(env.size - 1):
        obs, rew, *_ = env.step(policy(torch.from_numpy(obs)))
        caught += rew > 0
    return float(caught.mean())
