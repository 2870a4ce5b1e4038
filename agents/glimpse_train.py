"""Training the Recurrent Attention Model with REINFORCE through the environment: at every step the
agent glimpses the current frame where it chose to look, updates its core, acts, and picks where to
look next (Mnih et al. 2014, Section 3)."""

from __future__ import annotations

import collections
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from agents.checkpoint import CONFIG, FORMAT_VERSION, MODEL, prepare_run_dir, write_checkpoint
from agents.glimpse import RecurrentAttentionModel, reinforce_loss
from envs import CatchVectorEnv, make_vector_env, resolve_game


@dataclass
class GlimpseConfig:
    """A glimpse-agent experiment; saved as ``config.json`` beside every run."""

    env: str = "catch"
    """'catch' or an Atari game (full-resolution 210x160 grayscale frames, no stack)."""
    seed: int = 1
    """Seed for the network, the sampling and the environments."""
    total_steps: int = 600_000
    """Environment steps over all envs."""
    num_envs: int = 64
    """Parallel environments."""
    rollout: int = 24
    """Steps per update; Catch episodes fit in one rollout (Monte-Carlo returns), longer Atari
    episodes are truncated and bootstrapped from the baseline."""
    patch_size: int = 6
    """Width of the finest glimpse patch in pixels."""
    num_scales: int = 3
    """Patches per glimpse, each twice as wide as the previous."""
    glimpses_per_step: int = 1
    """Glimpses taken (and cores updated) before each action."""
    location_policy: Literal["gaussian", "tiles"] = "gaussian"
    """Gaussian around a mean location, or a softmax over a grid of tiles."""
    location_std: float = 0.15
    """Standard deviation of the Gaussian location policy."""
    core: Literal["lstm", "gru", "rnn"] = "lstm"
    """Recurrent core."""
    hidden: int = 256
    """Core size."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    gamma: float = 1.0
    """Discount (Catch's single reward needs none)."""
    entropy_coef: float = 0.01
    """Weight of the action policy's entropy bonus."""
    location_entropy_coef: float = 0.0
    """Weight of the location policy's entropy bonus (tiles only; the Gaussian's is constant)."""
    baseline_coef: float = 0.5
    """Weight of the baseline's squared error."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    catch_miss_reward: float = 0.0
    """Catch only: reward for a miss."""
    run_dir: str = ""
    """Run directory; empty picks runs/<env>__glimpse__<seed>__<timestamp>."""
    save_every: int = 100_000
    """Environment steps between checkpoints (and one at the end)."""
    progress: bool = True
    """Show a progress bar."""


class GlimpseTrainer:
    def __init__(self, cfg: GlimpseConfig) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        if cfg.env.lower() == "catch":
            self.env = CatchVectorEnv(
                cfg.num_envs, seed=cfg.seed, miss_reward=cfg.catch_miss_reward
            )
            self.game = "catch"
        else:
            self.game = resolve_game(cfg.env)
            self.env = make_vector_env(self.game, cfg.num_envs, seed=cfg.seed, img_height=210,
                                       img_width=160, stack_num=1, reward_clipping=False)  # fmt: skip
        shape = self.env.single_observation_space.shape  # (1, H, W)
        self.model = RecurrentAttentionModel(
            int(self.env.single_action_space.n), channels=shape[0], patch_size=cfg.patch_size,
            num_scales=cfg.num_scales, hidden=cfg.hidden, core=cfg.core,
            location_policy=cfg.location_policy, location_std=cfg.location_std,
        )  # fmt: skip
        self.model.retina.check_frame(*shape[1:])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        self.run_dir = Path(
            cfg.run_dir or f"runs/{self.game}__glimpse__{cfg.seed}__{int(time.time())}"
        )
        self.global_step = 0
        self.recent: collections.deque[float] = collections.deque(maxlen=100)

    def act(self, obs: np.ndarray, loc: torch.Tensor, state):
        """Glimpse(s) at ``loc``, then sample an action and the next location."""
        images = torch.from_numpy(obs).float() / 255.0
        logp = torch.zeros(len(obs))
        ent_l = torch.zeros(len(obs))
        for _ in range(self.cfg.glimpses_per_step):
            heads, state = self.model(images, loc, state)
            loc, lp, el = self.model.sample_location(heads)
            logp, ent_l = logp + lp, ent_l + el
        dist = torch.distributions.Categorical(logits=heads["action_logits"])
        action = dist.sample()
        return (
            action,
            logp + dist.log_prob(action),
            dist.entropy(),
            ent_l,
            heads["baseline"],
            loc,
            state,
        )

    def run(self) -> Path:
        from tqdm import tqdm

        c = self.cfg
        prepare_run_dir(self.run_dir, dataclasses.asdict(c))
        writer = SummaryWriter(str(self.run_dir))
        obs, _ = self.env.reset()
        n = c.num_envs
        state = self.model.initial_state(n)
        loc = torch.zeros(n, 2)
        ended = np.zeros(n, bool)
        ep_return = np.zeros(n)
        bar = tqdm(total=c.total_steps, unit="step", disable=not c.progress)
        next_save = c.save_every
        while self.global_step < c.total_steps:
            logps, rewards, baselines, masks, dones, ents, loc_ents = [], [], [], [], [], [], []
            for _ in range(c.rollout):
                action, logp, ent_a, ent_l, baseline, loc, state = self.act(obs, loc, state)
                obs, rew, term, trunc, _ = self.env.step(action.numpy())
                mask = torch.from_numpy(~ended).float()  # a reset step is no decision
                ep_return += np.where(ended, 0.0, rew)
                now_ended = term | trunc
                for i in np.flatnonzero(now_ended & ~ended):
                    self.recent.append(float(ep_return[i]))
                    writer.add_scalar("charts/episodic_return", ep_return[i], self.global_step)
                    ep_return[i] = 0.0
                logps.append(logp)
                rewards.append(torch.from_numpy(np.where(ended, 0.0, rew)).float())
                baselines.append(baseline)
                masks.append(mask)
                dones.append(torch.from_numpy(now_ended & ~ended).float())
                ents.append(ent_a)
                loc_ents.append(ent_l)
                # envs whose reset step just happened start over: fresh core and a central glimpse
                restart = torch.from_numpy(ended)
                if restart.any():
                    state = tuple(
                        torch.where(restart[:, None], torch.zeros_like(s), s) for s in state
                    )
                    loc = torch.where(restart[:, None], torch.zeros_like(loc), loc)
                ended = now_ended & ~ended
                self.global_step += n
                bar.update(n)
            returns = torch.zeros(c.rollout, n)
            running = baselines[-1].detach()  # bootstrap a truncated rollout from the baseline
            for t in reversed(range(c.rollout)):
                running = rewards[t] + c.gamma * running * (1.0 - dones[t])
                returns[t] = running
            logp_t, base_t, mask_t = torch.stack(logps), torch.stack(baselines), torch.stack(masks)
            policy_loss, baseline_loss = reinforce_loss(logp_t, returns, base_t, mask_t)
            decisions = mask_t.sum().clamp_min(1)
            entropy = (torch.stack(ents) * mask_t).sum() / decisions
            loc_entropy = (torch.stack(loc_ents) * mask_t).sum() / decisions
            loss = (policy_loss + c.baseline_coef * baseline_loss - c.entropy_coef * entropy
                    - c.location_entropy_coef * loc_entropy)  # fmt: skip
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
            self.optimizer.step()
            state = tuple(s.detach() for s in state)  # truncated backpropagation through time
            writer.add_scalar("losses/policy_loss", policy_loss.item(), self.global_step)
            writer.add_scalar("losses/baseline_loss", baseline_loss.item(), self.global_step)
            writer.add_scalar("charts/action_entropy", entropy.item(), self.global_step)
            writer.add_scalar("charts/location_std", c.location_std, self.global_step)
            if self.recent:
                bar.set_postfix(ret=f"{np.mean(self.recent):.2f}")
            if self.global_step >= next_save:
                next_save += c.save_every
                self.save()
        bar.close()
        writer.close()
        return self.save()

    def save(self) -> Path:
        config = {
            "format_version": FORMAT_VERSION,
            "agent": "glimpse",
            "architecture": {"class": "RecurrentAttentionModel", **self.model.config},
            "game": self.game,
            "step": self.global_step,
            "train_config": dataclasses.asdict(self.cfg),
        }
        return write_checkpoint(
            self.run_dir, self.global_step, {MODEL: self.model.state_dict(), CONFIG: config}
        )


@torch.no_grad()
def glimpse_catch_rate(model: RecurrentAttentionModel, episodes: int = 100, seed: int = 10_000,
                       greedy: bool = True) -> float:  # fmt: skip
    """Fraction of Catch episodes caught: greedy actions, the location policy's mean (or mode)."""
    env = CatchVectorEnv(episodes, seed=seed)
    obs, _ = env.reset()
    state = model.initial_state(episodes)
    loc = torch.zeros(episodes, 2)
    caught = np.zeros(episodes)
    for _ in range(env.size - 1):
        heads, state = model(torch.from_numpy(obs).float() / 255.0, loc, state)
        if model.location_policy == "gaussian":
            loc = heads["location_mean"]
        else:
            loc, _, _ = model.sample_location(heads)
        logits = heads["action_logits"]
        action = (
            logits.argmax(1) if greedy else torch.distributions.Categorical(logits=logits).sample()
        )
        obs, rew, *_ = env.step(action.numpy())
        caught += rew > 0
    return float(caught.mean())
