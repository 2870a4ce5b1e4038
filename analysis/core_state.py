"""Is the glimpse agent's memory still reading its input? A recurrent core whose input grows
during training can saturate: an LSTM's cell state sums inputs near +-1 over hundreds of steps,
``tanh`` of it is +-1 whatever the agent saw, and the core's output stops varying between states.
The policy then cannot depend on the screen, and PPO sharpens the one action sequence that does best
blind (on Breakout: hold LEFT and FIRE).

``core_state_stats`` plays a checkpoint's own sampled policy and measures, over every step of every
env: the mean size of the core's input (the glimpse vector), of the LSTM's cell state, and the
*output spread*, the standard deviation of each unit of the core's output across the states visited,
averaged over units. A spread that falls towards zero as training goes on is saturation. And whether
the policy reads what the core holds: the mutual information between state and action (0 for a
policy that plays the same distribution everywhere, however good its score).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class CoreStats:
    step: int
    """Training step of the checkpoint (0 for a network measured directly)."""
    input_size: float
    """Mean |g|, the glimpse vector the core reads."""
    cell_size: float
    """Mean |c|, the cell state of an LSTM core (NaN for cores without one)."""
    output_spread: float
    """Standard deviation of each unit of the core's output across states, averaged over units."""
    action_information: float
    """Mutual information between the state and the action policy's choice, in nats: the mean
    KL divergence from each state's action distribution to their average. 0 is a blind policy,
    one distribution everywhere; log(actions) is a deterministic one that differs everywhere."""


def core_state_stats(model: Any, config: dict[str, Any], steps: int = 300, num_envs: int = 8,
                     seed: int = 7, step: int = 0) -> CoreStats:  # fmt: skip
    """Play ``steps`` steps of ``num_envs`` envs with the sampled policy of a glimpse checkpoint
    (``load_checkpoint``'s network and config; its glimpses per step), and measure its core."""
    from agents.common.evaluate import FireAfterLifeLoss, make_eval_env
    from agents.glimpse import GlimpsePolicy
    from agents.glimpse.model import CELL_STATE_CORES

    env = make_eval_env(config, num_envs, seed)
    torch.manual_seed(seed)
    policy = GlimpsePolicy.for_checkpoint(model, config, num_envs, greedy=False)
    obs, info = env.reset(seed=seed)
    fire = FireAfterLifeLoss.for_checkpoint(config, info)  # the game the agent learnt
    inputs, cells, outputs, probs = [], [], [], []
    ended = np.zeros(num_envs, bool)
    with torch.no_grad():
        for _ in range(steps):
            actions = policy(torch.from_numpy(obs))
            # the glimpse vector the core just read, from the patches and location it was taken at
            inputs.append(model.glimpse.encode(policy.patches[-1], policy.locations[-1]).abs().mean())
            outputs.append(policy.state[0].clone())
            probs.append(policy.heads["action_logits"].softmax(-1))
            if model.core_kind in CELL_STATE_CORES:
                cells.append(policy.state[1].abs().mean())
            obs, _, terminated, truncated, info = env.step(fire.actions(np.asarray(actions)))
            fire.observe(info, np.logical_or(terminated, truncated))
            if ended.any():  # after an env's reset step, as evaluation does
                policy.reset(ended)
            ended = np.logical_or(terminated, truncated)
    env.close()
    h, p = torch.cat(outputs), torch.cat(probs)
    return CoreStats(step=step, input_size=float(torch.stack(inputs).mean()),
                     cell_size=float(torch.stack(cells).mean()) if cells else float("nan"),
                     output_spread=float(h.std(0).mean()),
                     action_information=action_information(p))  # fmt: skip


def action_information(probs: torch.Tensor) -> float:
    """I(S; A) in nats for action distributions ``probs`` (states, actions) over visited states,
    each state weighted alike: ``mean_s KL(pi(.|s) || mean_s' pi(.|s'))``."""
    mean = probs.mean(0, keepdim=True)
    return float((probs * (probs.clamp_min(1e-12).log() - mean.clamp_min(1e-12).log())).sum(1).mean())


def core_state_over_training(run: str | os.PathLike[str], steps: int = 300,
                             seed: int = 7) -> list[CoreStats]:  # fmt: skip
    """:func:`core_state_stats` at every checkpoint of a glimpse run, oldest first."""
    from agents.common.checkpoint import load_checkpoint
    from analysis.over_training import run_checkpoints

    rows = []
    for step, path in run_checkpoints(run):
        model, config = load_checkpoint(path)
        if config["architecture"]["class"] != "RecurrentAttentionModel":
            raise ValueError(f"{str(run)!r} is not a glimpse agent's run (its network is "
                             f"{config['architecture']['class']})")  # fmt: skip
        rows.append(core_state_stats(model.eval(), config, steps, seed=seed, step=step))
    return rows


def markdown(rows: list[CoreStats]) -> str:
    """The rows as a markdown table."""
    from analysis.render import markdown_table

    header = ["step", "core input (mean abs g)", "cell state (mean abs c)", "output spread",
              "I(state; action), nats"]  # fmt: skip
    return markdown_table(header, [[f"{r.step:,}", f"{r.input_size:.3g}", f"{r.cell_size:.3g}",
                                    f"{r.output_spread:.3g}", f"{r.action_information:.3g}"]
                                   for r in rows])  # fmt: skip
