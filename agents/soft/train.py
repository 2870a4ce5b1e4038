"""Training the soft-attention agent (Mott et al. 2019) with recurrent PPO: play a rollout with the
agent's recurrent state carried along, then for a few epochs replay it through the network from
the state it began with, env sequences split into minibatches, and step on PPO's clipped surrogate
(``agents.common.ppo``, shared with the glimpse agent's trainer).

Run directories, TensorBoard tags, checkpoints (safetensors + JSON, atomic), ``--resume`` and
``--time-limit`` are every trainer's (``agents.common.run``)."""

from __future__ import annotations

import collections
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from agents.common.config import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from agents.common.ppo import PPOConfig, advantages, clipped_policy_loss, explained_variance
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
from agents.soft.model import TORSOS, SoftAttentionAgent, restart
from envs import CatchVectorEnv, FireAfterLifeLoss, make_vector_env, resolve_game
from envs.options import AtariOptions


@dataclass
class SoftConfig(PPOConfig):
    """A soft-attention agent's experiment; saved as ``config.json`` beside every run. The defaults
    are Catch's; the ``atari`` preset gives CleanRL's Atari PPO settings with a recurrent core."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # CleanRL's Atari PPO (Adam 2.5e-4, clip 0.1, entropy 0.01, gradient norm 0.5, GAE 0.95)
        # with the glimpse agent's recurrent settings: 16 envs, rollouts of 32, a lost life terminal
        "atari": dict(
            total_steps=10_000_000, num_envs=16, rollout=32, learning_rate=2.5e-4, gamma=0.99,
            gae_lambda=0.95, epochs=4, minibatches=2, clip_coef=0.1, max_grad_norm=0.5,
            entropy_coef=0.01, hidden=256, core_channels=32, queries=4, life_loss_info=True,
            qk_norm=False,  # the paper's inner product of query and key
        ),
    }  # fmt: skip

    game: str = "catch"
    """'catch' or an Atari game (84x84 grayscale frames, one at a time: memory is the ConvLSTM's)."""
    exp_name: str = "soft"
    total_steps: PositiveInt = 2_000_000
    """Environment steps over all envs."""
    num_envs: PositiveInt = 64
    """Parallel environments (one batch through the network per step; on Catch, minibatches of 16
    envs replay several times faster a sample than of 4)."""
    max_grad_norm: PositiveFloat = 0.5
    """Gradient-norm clip (CleanRL's PPO)."""
    hidden: PositiveInt = 64
    """Units of the policy LSTM (the paper's 256 is the Atari preset's)."""
    catch_miss_reward: float = -1.0
    """Catch only: reward for a miss (the paper's is 0; -1 makes a miss as informative as a catch)."""
    save_every: PositiveInt = 250_000
    frame_stack: PositiveInt = 1
    """Atari only: frames per observation (1: the recurrent core remembers the motion)."""
    rollout: PositiveInt = 24
    """Steps per update: one Catch episode (23 steps and the reset step)."""
    learning_rate: PositiveFloat = 2e-3
    """Adam learning rate: on Catch, many small steps (16 a rollout: 4 epochs of 4 minibatches)
    learn where few large ones do not (docs/guide/soft.md)."""
    torso: str = ""
    """Convolutions before the ConvLSTM: nature (84x84 to 9x9), small (24x24 to 12x12) or patch
    (24x24 to 6x6; agents.soft.model.vision_torso); empty: patch on Catch, nature on Atari."""
    core_channels: PositiveInt = 8
    """Channels of the vision core's ConvLSTM."""
    key_channels: PositiveInt = 8
    """Channels of the keys, before the spatial basis is joined to them."""
    value_channels: PositiveInt = 16
    """Channels of the values, before the spatial basis is joined to them."""
    queries: PositiveInt = 2
    """Attention queries a step (the paper's 4 is the Atari preset's)."""
    frequencies: PositiveInt = 4
    """Frequencies of the spatial basis along each axis, 0 to this: (frequencies + 1) squared less
    one channels (agents.soft.attention.spatial_basis)."""
    qk_norm: bool = True
    """Attend by the cosine of queries and keys times a learned temperature (starting at 10)
    instead of their inner product (the paper's, --no-qk-norm): maps sharp from the first step,
    which on Catch every seed learns from (QK-norm, Henry et al. 2020; docs/guide/soft.md)."""
    attention_every: NonNegativeInt = 250_000
    """Environment steps between the attention maps' images and clip in TensorBoard (0: never)."""
    compile: bool = False
    """Run the acting step and PPO's whole replay (its recurrent steps unrolled into one graph,
    forward and backward) through ``torch.compile`` (inductor), which fuses the LSTMs' gates, the
    attention's softmax and the restarts into a few kernels and drops the per-step overhead of
    small batches (docs/benchmarks.md); the first rollout and update wait for the compilation
    (minutes for the Atari preset). Needs a C++ compiler on a CPU."""

    AUTO_BF16: ClassVar[bool] = False
    SESSION: ClassVar[tuple[str, ...]] = (*PPOConfig.SESSION, "compile")

    def validate(self) -> None:
        super().validate()
        if self.precision == "bf16":
            raise ValueError("--precision bf16 is not available for the soft-attention agent: use fp32 "
                             "or auto (which is fp32 for it)")  # fmt: skip
        if self.torso not in ("", *TORSOS):
            raise ValueError(f"--torso must be one of {', '.join(TORSOS)} (got {self.torso!r})")
        if self.is_catch() and (self.frame_stack != 1 or self.life_loss_info):
            raise ValueError("--frame-stack and --life-loss-info are for Atari games (got them with "
                             "--game catch)")  # fmt: skip

    def memory_needed(self) -> dict[str, tuple[int, str]]:
        """The emulators and the rollout's observations (uint8, kept for PPO's replay)."""
        frame = (24, 24) if self.is_catch() else (84, 84)
        return {"the envs": (emulator_bytes(self.game, self.num_envs, frame), "--num-envs"),
                "the rollout": (self.rollout * self.num_envs * self.frame_stack * frame[0] * frame[1],
                                "--num-envs or --rollout")}  # fmt: skip


def make_soft_env(cfg: SoftConfig, seed: int) -> tuple[Any, AtariOptions | None, str]:
    """Catch with one frame an observation, or an Atari game at 84x84 with ``frame_stack`` frames;
    Atari rewards stay unclipped so that returns are game scores (the trainer clips)."""
    if cfg.is_catch():
        env = CatchVectorEnv(cfg.num_envs, stack_num=1, miss_reward=cfg.catch_miss_reward, seed=seed)
        return env, None, "catch"
    game = resolve_game(cfg.game)
    options = AtariOptions(stack_num=cfg.frame_stack, reward_clipping=False,
                           life_loss_info=cfg.life_loss_info)  # fmt: skip
    return make_vector_env(game, cfg.num_envs, seed=seed, **options.as_dict()), options, game


class SoftTrainer:
    """Parallel envs, one batched step of the agent per env step, and every ``rollout`` steps PPO's
    epochs over the rollout. A step at which an env performs its automatic reset (ALE's NEXT_STEP
    mode) is no decision of the agent's: it is masked out of the loss, and the env's recurrent
    state and previous action and reward start afresh after it."""

    def __init__(self, cfg: SoftConfig, callbacks: list[Callback] | None = None,
                 given: Collection[str] = ()) -> None:  # fmt: skip
        cfg, resume_from = cfg.prepare(given)
        self.cfg = cfg
        self.callbacks = list(callbacks or [])
        keep_freed_memory()
        torch.manual_seed(cfg.seed)
        self.env, self.env_options, self.game = make_soft_env(cfg, cfg.seed)
        shape = self.env.single_observation_space.shape
        self.n_actions = int(self.env.single_action_space.n)
        self.model = SoftAttentionAgent(self.n_actions, shape[0], input_shape=tuple(shape[1:]),
                                        torso=cfg.torso or ("patch" if cfg.is_catch() else "nature"),
                                        core_channels=cfg.core_channels,
                                        key_channels=cfg.key_channels,
                                        value_channels=cfg.value_channels, queries=cfg.queries,
                                        frequencies=cfg.frequencies, hidden=cfg.hidden,
                                        qk_norm=cfg.qk_norm)  # fmt: skip
        # --compile: the same weights, the acting step and the whole replay (its T recurrent steps
        # unrolled into one graph, forward and backward) compiled for the shapes of the rollout and
        # its minibatches
        self.act, self.unroll = self.model.step, self.model.unroll
        if cfg.compile:
            compiled = (torch.compile(f, dynamic=False, fullgraph=True) for f in (self.act, self.unroll))
            self.act, self.unroll = compiled
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate, fused=True)
        self.run_dir = Path(cfg.run_dir or cfg.default_run_dir())
        self.action_names = action_names(self.game, self.env_options)
        self.fire_action = cfg.fire_action(self.action_names)
        self.global_step = self.updates = 0
        self.tracker = EpisodeTracker(cfg.num_envs, self.env_options)
        self.stop_signal: int | None = None
        self.stopped_by = ""
        self.writer: Any = None  # RunSession opens it on the run directory
        # env 0's frames and attention maps over the last rollout, for the TensorBoard clip
        self.last_attention: tuple[np.ndarray, np.ndarray] | None = None
        open_run(self, resume_from, self._restore)

    # ---- acting -------------------------------------------------------------------------------
    def rollout(self, obs: np.ndarray, state: tuple[torch.Tensor, ...],
                prev: tuple[torch.Tensor, torch.Tensor], fire: FireAfterLifeLoss,
                session: RunSession) -> tuple[Any, ...]:  # fmt: skip
        """Play ``rollout`` steps from ``obs``, the recurrent ``state`` and the previous action and
        reward ``prev``; returns the rows the update needs and the observation, state and ``prev``
        the next rollout starts from. The agent reads the clipped rewards it was given and the
        action the env played (FIRE after a lost life under ``fire``, a step that is no decision)."""
        c, tracker = self.cfg, self.tracker
        rows: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
        prev_action, prev_reward = prev
        watched = []
        for _ in range(c.rollout):
            images = torch.from_numpy(obs)
            with torch.no_grad():
                heads, state = self.act(images, state, prev_action, prev_reward)
            watched.append(heads["attention"][0])
            dist = torch.distributions.Categorical(logits=heads["policy_logits"])
            action = dist.sample()
            played = fire.actions(action.numpy())
            obs, rew, term, trunc, info = self.env.step(played)
            ended = tracker.ended  # envs whose step was a reset step: no decision
            decision = ~ended & ~fire.forced
            now_ended = tracker.update(rew, term, trunc, info, self.writer, self.global_step)
            reward = torch.from_numpy(np.where(ended, 0.0, np.clip(rew, -1, 1))).float()
            done = torch.from_numpy(now_ended | (np.asarray(term) & decision))  # a life under life_loss_info
            fresh = torch.from_numpy(ended)
            step = {"obs": images, "prev_action": prev_action, "prev_reward": prev_reward, "action": action,
                    "logp": dist.log_prob(action), "value": heads["value"], "reward": reward, "done": done,
                    "mask": torch.from_numpy(decision), "restart": fresh}  # fmt: skip
            for k, v in step.items():
                rows[k].append(v)
            fire.observe(info, now_ended)  # term is a life's end under life_loss_info
            prev_action, prev_reward = torch.from_numpy(played), reward
            if ended.any():  # an env whose reset step just happened starts over
                state = restart(state, fresh)
                prev_action = torch.where(fresh, torch.zeros_like(prev_action), prev_action)
                prev_reward = torch.where(fresh, torch.zeros_like(prev_reward), prev_reward)
            self.global_step += c.num_envs
            session.bar.update(c.num_envs)
        self.last_attention = (torch.stack([o[0] for o in rows["obs"]]).numpy(), torch.stack(watched).numpy())
        return rows, obs, state, (prev_action, prev_reward)

    def replay(self, start: tuple[torch.Tensor, ...], rows: dict[str, torch.Tensor],
               envs: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        """A rollout's steps for the envs at index ``envs``, played again with the current weights
        from the state ``start`` it began with, on the recorded inputs: (T, len(envs)) log-
        probabilities of the actions taken, entropies and values."""
        state = tuple(s[envs] for s in start)
        heads = self.unroll(rows["obs"][:, envs], state, rows["prev_action"][:, envs],
                            rows["prev_reward"][:, envs], rows["restart"][:, envs])  # fmt: skip
        dist = torch.distributions.Categorical(logits=heads["policy_logits"])
        return {"logp": dist.log_prob(rows["action"][:, envs]), "entropy": dist.entropy(),
                "value": heads["value"]}

    # ---- learning -----------------------------------------------------------------------------
    def update(self, rows: dict[str, list[torch.Tensor]], bootstrap: torch.Tensor,
               start: tuple[torch.Tensor, ...]) -> dict[str, float]:  # fmt: skip
        """PPO's epochs over a rollout; returns the logged statistics."""
        c = self.cfg
        lr = c.learning_rate * (max(0.0, 1.0 - self.global_step / c.total_steps) if c.anneal_lr else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t = {k: torch.stack(v) for k, v in rows.items()}
        mask = t["mask"].float()
        adv, targets = advantages(t["reward"], t["value"], t["done"].float(), bootstrap, c.gamma,
                                  c.gae_lambda)  # fmt: skip
        m = t["mask"]
        explained = explained_variance(t["value"][m], targets[m])
        adv = (adv - adv[m].mean()) / (adv[m].std() + 1e-8)
        for _ in range(c.epochs):
            for envs in torch.randperm(c.num_envs).chunk(c.minibatches):
                played = self.replay(start, t, envs)
                stats = self._step(played, t["logp"][:, envs], adv[:, envs], targets[:, envs], mask[:, envs])
        self.updates += 1
        return {**stats, "losses/explained_variance": explained, "charts/learning_rate": lr}

    def _step(self, played: dict[str, torch.Tensor], old_logp: torch.Tensor, adv: torch.Tensor,
              targets: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:  # fmt: skip
        """One gradient step on PPO's clipped surrogate, the value's squared error and the entropy
        bonus, over the decisions of a minibatch of env sequences."""
        c = self.cfg
        decisions = mask.sum().clamp_min(1)
        policy_loss, clipped, kl = clipped_policy_loss(played["logp"], old_logp, adv, mask, c.clip_coef)
        value_loss = (((played["value"] - targets) ** 2) * mask).sum() / decisions
        entropy = (played["entropy"] * mask).sum() / decisions
        loss = policy_loss + c.baseline_coef * value_loss - c.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
        self.optimizer.step()
        return {"losses/policy_loss": policy_loss.item(), "losses/value_loss": value_loss.item(),
                "losses/entropy": entropy.item(), "losses/clipfrac": clipped.item(),
                "losses/approx_kl": kl.item(), "losses/grad_norm": float(grad_norm)}  # fmt: skip

    # ---- the loop -----------------------------------------------------------------------------
    def run(self) -> Path:
        """Train until ``total_steps`` (or the time limit, or Ctrl-C/SIGTERM); a checkpoint every
        ``save_every`` steps and at the end, so that ``--resume`` continues from where it stopped."""
        return run_loop(self, self._loop)

    def _loop(self, session: RunSession) -> None:
        c = self.cfg
        obs, info = self.env.reset(seed=c.seed + self.global_step)
        fire = FireAfterLifeLoss(c.fire_after_life_loss, self.fire_action, info)
        state = self.model.initial_state(c.num_envs)
        prev = (torch.zeros(c.num_envs, dtype=torch.long), torch.zeros(c.num_envs))
        log, save = Every(c.log_every, self.global_step), Every(c.save_every, self.global_step)
        while self.global_step < c.total_steps and not session.should_stop():
            start = state
            rows, obs, state, prev = self.rollout(obs, state, prev, fire, session)
            with torch.no_grad():
                heads, _ = self.act(torch.from_numpy(obs), state, *prev)
            stats = self.update(rows, heads["value"], start)
            state = tuple(s.detach() for s in state)
            if log(self.global_step):
                sps = session.steps_per_second()
                for k, v in {**stats, "charts/SPS": sps}.items():
                    self.writer.add_scalar(k, v, self.global_step)
                session.bar.set_postfix(SPS=f"{sps:.0f}", ret=f"{self.tracker.recent_mean():.2f}")
            end_of_update(self, save)

    # ---- checkpoints --------------------------------------------------------------------------
    def env_config(self) -> dict[str, Any]:
        """The env options a checkpoint records: Atari's, or Catch's one frame an observation."""
        return self.env_options.as_dict() if self.env_options else {"stack_num": 1}

    def save(self) -> Path:
        return save_training(self, "soft", self.model, self.env_config())

    def _restore(self, ckpt: Path) -> None:
        load_training(self, self.model, ckpt)
