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

On Breakout it also asks the question the score hides: while the ball falls, does the core know on
which side of the paddle it will land (a linear probe, fitted on some envs and tested on others),
and does the policy move there? A blind policy that parks the paddle where the serve lands scores
as well as a young tracking one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


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
    ball_probe: float = float("nan")
    """Breakout: held-out accuracy of a linear probe from the core's output to the side of the
    paddle a falling ball will land on (NaN for other games); compare with ``ball_majority``."""
    ball_majority: float = float("nan")
    """Breakout: the probe's floor, the share of the held-out steps on the commoner side."""
    toward_ball: float = float("nan")
    """Breakout: probability that the policy moves the paddle towards where the ball will land."""
    away_from_ball: float = float("nan")
    """Breakout: probability that it moves the paddle away from there."""
    paddle_at_wall: float = float("nan")
    """Breakout: share of the steps with the ball in sight that find the paddle against a side wall
    (its centre within 12 pixels of one): a policy that parks the paddle there, pressing into the
    wall, moves "away" from every ball that lands beside it."""


# Breakout's 210x160 grey frame (measured with ALE 0.12): the ball and the paddle share one grey
# (their red), the walls end at column 8 and 151, the bricks at row 93, the paddle fills rows 189-192
BREAKOUT_RED, BREAKOUT_INSIDE, BREAKOUT_BELOW_BRICKS, BREAKOUT_PADDLE = 110, slice(8, 152), 94, 189


def breakout_objects(frame: np.ndarray) -> tuple[float, float, float]:
    """(ball row, ball column, paddle column) of the centres in a 210x160 grey Breakout frame, NaN
    where one is not in sight: the ball is looked for below the bricks (the top row of bricks is
    red too), the paddle in its rows; a paddle half behind a wall has its visible half's centre.
    A ball in the paddle's rows (being missed) counts as paddle: read the paddle while the ball is
    in sight above it."""
    inside = frame[:, BREAKOUT_INSIDE] == BREAKOUT_RED
    rows, cols = np.nonzero(inside[BREAKOUT_BELOW_BRICKS:BREAKOUT_PADDLE])
    _, paddle = np.nonzero(inside[BREAKOUT_PADDLE : BREAKOUT_PADDLE + 5])
    first, nan = BREAKOUT_INSIDE.start, float("nan")
    if not len(rows):
        return nan, nan, float(paddle.mean()) + first if len(paddle) else nan
    ball = float(rows.mean()) + BREAKOUT_BELOW_BRICKS, float(cols.mean()) + first
    return (*ball, float(paddle.mean()) + first if len(paddle) else nan)


def landing_column(before: tuple[float, float], now: tuple[float, float]) -> float:
    """Where a falling ball seen at (row, column) ``before`` and ``now`` reaches the paddle's row,
    straight on and bounced off the side walls; NaN unless it is falling. Below the bricks only
    the walls turn it, so one step's motion says where it lands: the column the paddle must
    reach, which the ball's present column is not."""
    (r0, c0), (r1, c1) = before, now
    if not r1 > r0:
        return float("nan")
    lo, hi = BREAKOUT_INSIDE.start + 0.5, BREAKOUT_INSIDE.stop - 1.5  # the 2-pixel ball's centre
    width = hi - lo
    u = (c1 + (BREAKOUT_PADDLE - r1) * (c1 - c0) / (r1 - r0) - lo) % (2 * width)
    return lo + (u if u <= width else 2 * width - u)


def ball_tracking(states: torch.Tensor, offsets: np.ndarray, actions: np.ndarray, envs: np.ndarray,
                  right: int, left: int) -> dict[str, float]:  # fmt: skip
    """The Breakout fields of :class:`CoreStats` from steps with a falling ball: core outputs
    ``states`` (n, hidden), where it will land minus the paddle's column ``offsets`` (n,), the
    ``actions`` taken and the ``envs`` they were taken in. A standardised logistic probe is fitted
    on the first three quarters of the envs and tested on the rest, so that no episode is in both."""
    if len(np.unique(envs)) < 2 or len(offsets) < 3:  # envs to fit on and envs to test on
        raise ValueError("too few steps with the ball in sight for a probe; play more --steps")
    side = torch.as_tensor(offsets > 0, dtype=torch.float32)
    test = torch.as_tensor(envs >= np.quantile(np.unique(envs), 0.75))
    fit = ~test
    x = (states - states[fit].mean(0)) / (states[fit].std(0) + 1e-6)
    probe = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=200)

    def loss() -> torch.Tensor:
        opt.zero_grad()
        out = F.binary_cross_entropy_with_logits(probe(x[fit]).squeeze(1), side[fit])
        out = out + 1e-3 * probe.weight.pow(2).sum()  # keeps a separable fit finite
        out.backward()
        return out

    opt.step(loss)
    with torch.no_grad():
        accuracy = ((probe(x[test]).squeeze(1) > 0).float() == side[test]).float().mean()
    towards = np.where(offsets > 0, right, left)
    away = np.where(offsets > 0, left, right)
    share = float(side[test].mean())
    return {"ball_probe": float(accuracy), "ball_majority": max(share, 1 - share),
            "toward_ball": float(np.mean(actions == towards)),
            "away_from_ball": float(np.mean(actions == away))}  # fmt: skip


def core_state_stats(model: Any, config: dict[str, Any], steps: int = 300, num_envs: int = 8,
                     seed: int = 7, step: int = 0) -> CoreStats:  # fmt: skip
    """Play ``steps`` steps of ``num_envs`` envs with the sampled policy of a glimpse checkpoint
    (``load_checkpoint``'s network and config; its glimpses per step), and measure its core."""
    from agents.common.evaluate import make_eval_env
    from agents.glimpse import GlimpsePolicy
    from agents.glimpse.model import CELL_STATE_CORES
    from envs import FireAfterLifeLoss

    env = make_eval_env(config, num_envs, seed)
    torch.manual_seed(seed)
    policy = GlimpsePolicy.for_checkpoint(model, config, num_envs, greedy=False)
    obs, info = env.reset(seed=seed)
    fire = FireAfterLifeLoss.for_checkpoint(config, info)  # the game the agent learnt
    inputs, cells, outputs, probs = [], [], [], []
    breakout = config["game"] == "breakout"
    seen: list[tuple[int, int, float, int]] = []  # Breakout: (step, env, landing - paddle, action)
    paddles: list[float] = []  # Breakout: the paddle's column while the ball is in sight
    ball = np.full((num_envs, 2), np.nan)  # Breakout: where each env's ball was a step before
    ended = np.zeros(num_envs, bool)
    with torch.no_grad():
        for t in range(steps):
            actions = policy(torch.from_numpy(obs))
            # the glimpse vector the core just read, from the patches and location it was taken at
            inputs.append(model.glimpse.encode(policy.patches[-1], policy.locations[-1]).abs().mean())
            outputs.append(policy.state[0].clone())
            probs.append(policy.heads["action_logits"].softmax(-1))
            if model.core_kind in CELL_STATE_CORES:
                cells.append(policy.state[1].abs().mean())
            for i in range(num_envs) if breakout else ():
                *now, paddle = breakout_objects(obs[i, -1])
                offset = landing_column(tuple(ball[i]), tuple(now)) - paddle  # NaN: nothing to reach
                ball[i] = np.nan if ended[i] else now
                if not ended[i] and not np.isnan(now[0]):
                    paddles.append(paddle)
                if abs(offset) > 8 and not ended[i]:  # beyond the paddle's half-width
                    seen.append((t, i, offset, int(actions[i])))
            obs, _, terminated, truncated, info = env.step(fire.actions(np.asarray(actions)))
            fire.observe(info, np.logical_or(terminated, truncated))
            if ended.any():  # after an env's reset step, as evaluation does
                policy.reset(ended)
            ended = np.logical_or(terminated, truncated)
    env.close()
    h, p = torch.cat(outputs), torch.cat(probs)
    tracking = {}
    if breakout:
        t, i, offsets, actions = np.array(seen).reshape(-1, 4).T
        t, i = t.astype(int), i.astype(int)
        names = config["action_set"]
        tracking = ball_tracking(h[t * num_envs + i], offsets, actions.astype(int), i,
                                 names.index("RIGHT"), names.index("LEFT"))  # fmt: skip
        walls = BREAKOUT_INSIDE.start + 12, BREAKOUT_INSIDE.stop - 1 - 12
        tracking["paddle_at_wall"] = float(np.mean([p < walls[0] or p > walls[1] for p in paddles]))
    return CoreStats(step=step, input_size=float(torch.stack(inputs).mean()),
                     cell_size=float(torch.stack(cells).mean()) if cells else float("nan"),
                     output_spread=float(h.std(0).mean()),
                     action_information=action_information(p), **tracking)  # fmt: skip


def action_information(probs: torch.Tensor) -> float:
    """I(S; A) in nats for action distributions ``probs`` (states, actions) over visited states,
    each state weighted alike: ``mean_s KL(pi(.|s) || mean_s' pi(.|s'))``."""
    mean = probs.mean(0, keepdim=True)
    return float((probs * (probs.clamp_min(1e-12).log() - mean.clamp_min(1e-12).log())).sum(1).mean())


def core_state_over_training(run: str | os.PathLike[str], steps: int = 300,
                             seed: int = 7) -> list[CoreStats]:  # fmt: skip
    """:func:`core_state_stats` at every checkpoint of a glimpse run, oldest first."""
    from agents.common.checkpoint import load_checkpoint, run_checkpoints

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
    table = [[f"{r.step:,}", f"{r.input_size:.3g}", f"{r.cell_size:.3g}", f"{r.output_spread:.3g}",
              f"{r.action_information:.3g}"] for r in rows]  # fmt: skip
    if any(not np.isnan(r.ball_probe) for r in rows):  # Breakout
        header += ["ball side probe (majority)", "P(towards ball)", "P(away)", "paddle at a wall"]
        for line, r in zip(table, rows, strict=True):
            line += [f"{r.ball_probe:.2f} ({r.ball_majority:.2f})", f"{r.toward_ball:.2f}",
                     f"{r.away_from_ball:.2f}", f"{r.paddle_at_wall:.2f}"]  # fmt: skip
    return markdown_table(header, table)
