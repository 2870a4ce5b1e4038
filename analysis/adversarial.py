"""Adversarial observations at every step of play (Huang et al. 2017, "Adversarial attacks on neural
network policies"): untargeted L-infinity attacks that push an agent off the action it would take.

* FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018, no random start, steps of 2.5 epsilon /
  steps) are one hand-written loop (:func:`linf_attack`) in the frame's own units (pixel levels,
  so epsilon is in levels of the uint8 frame), for every agent. The loss is the cross-entropy of
  the agent's action logits (the Q-values or the policy logits) with the action it takes on the
  clean frame, Huang et al.'s choice for DQN and A3C. On the CNN agents the loop gives the frames
  that the Adversarial Robustness Toolbox (ART, LF AI & Data) gives, which the tests hold it to,
  at about twice ART's speed: ART's ``PyTorchClassifier`` back-propagates into every weight and
  converts between NumPy and torch at each step (docs/benchmarks.md).
* The recurrent agents' actions come out of a loop: the glimpse agent's glimpse locations depend
  on what it saw, the soft-attention agent's queries on its memory. :class:`RecurrentAttack`
  differentiates through one step of the agent from its current state (the policy's ``logits``):
  for the glimpse agent through the retina at the gaze it is taking, its core, and (for a second
  glimpse within a step) the location head; for the soft agent through its vision core, its
  attention and its policy core. Or the perturbation is crafted on a CNN agent of the same game and
  transferred (:class:`TransferAttack`), through the CNN's own resize when it sees smaller frames
  (:class:`ResizedInput`).
* The control is random noise of the same budget: every pixel moved by +epsilon or -epsilon at
  random (the largest random perturbation within the L-infinity ball).

Perturbed frames are rounded back to uint8 inside the budget: the attacker changes the screen the
agent would see, and no frame leaves [0, 255] or ``obs +- epsilon``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ATTACKS = ("fgsm", "pgd", "noise")


def check_attack(attack: str, epsilons: list[float] | tuple[float, ...]) -> None:
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; accepted: {', '.join(ATTACKS)}")
    for eps in epsilons:
        if not 0 <= eps <= 255:
            raise ValueError(f"epsilon must be in [0, 255] pixel levels of the uint8 frame, got {eps:g}")


def action_head(net: nn.Module, obs_shape: tuple[int, ...]) -> str:
    """The head a CNN agent acts on: ``q`` (our Q-networks, SB3 DQN) or ``logits`` (SB3 PPO/A2C)."""
    with torch.no_grad():
        heads = net(torch.zeros(1, *obs_shape, dtype=torch.uint8, device=_device(net)))
    for name in ("q", "logits"):
        if name in heads:
            return name
    raise ValueError(f"this network has no action head (heads: {', '.join(heads)}); an attack needs "
                     "'q' or 'logits'")  # fmt: skip


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def quantise(clean: torch.Tensor, perturbed: torch.Tensor, eps: float) -> torch.Tensor:
    """Round a float perturbed frame (pixel levels) to uint8 inside ``clean +- eps`` and [0, 255]."""
    x = clean.float()
    low, high = torch.ceil(x - eps).clamp(0, 255), torch.floor(x + eps).clamp(0, 255)
    return torch.minimum(torch.maximum(perturbed.round(), low), high).to(torch.uint8)


def random_sign_noise(obs: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, obs.shape, generator=generator).to(obs.device) * 2 - 1
    return quantise(obs, obs.float() + eps * signs, eps)


def linf_attack(logits: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor, eps: float,
                step: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Untargeted L-infinity FGSM (``steps=1, step=eps``) or PGD: ``steps`` signed-gradient steps
    of ``step`` pixel levels that raise the cross-entropy of ``logits(frames / 255)`` with the most
    likely action on the clean frame, each projected back onto ``obs +- eps`` and [0, 255]; rounded
    to uint8 inside the ball. Only the frame's gradient is taken (none of the weights'). Returns the
    frames and those clean actions, read off the first step's forward pass (on the clean frame), so
    that no pass is spent on them alone."""
    x = obs.float()
    delta = torch.zeros_like(x)
    target: torch.Tensor | None = None
    for _ in range(steps):
        xa = (x + delta).requires_grad_(True)
        with torch.enable_grad():  # evaluation plays under no_grad; the attack needs gradients
            out = logits(xa / 255.0)
            target = out.detach().argmax(1) if target is None else target  # the clean frame's
            (g,) = torch.autograd.grad(nn.functional.cross_entropy(out, target), xa)
        delta = (delta + step * g.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 255) - x
    return quantise(obs, x + delta, eps), target


def pgd_step(eps: float, steps: int, step_size: float | None) -> float:
    """Madry et al.'s step, 2.5 epsilon / steps, so that the iterates can cross the ball."""
    return step_size if step_size is not None else 2.5 * eps / steps


class _StepAttack:
    """What FGSM, PGD and the noise control do at each step for any agent: the perturbed frames, and
    in ``last_clean_actions`` the actions on the clean frames that the attack pushed away from.
    A subclass says how the agent's action logits are read (``logits``) and where they run."""

    def __init__(self, attack: str, eps: float, steps: int, step_size: float | None, seed: int) -> None:
        check_attack(attack, [eps])
        if steps < 1:
            raise ValueError(f"PGD steps must be >= 1, got {steps}")
        self.attack, self.eps = attack, float(eps)
        self.steps = 1 if attack == "fgsm" else steps
        self.step = self.eps if attack == "fgsm" else pgd_step(self.eps, steps, step_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.last_clean_actions = np.zeros(0, np.int64)

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        """The action logits of frames scaled to [0, 1]."""
        raise NotImplementedError

    def device(self) -> torch.device | None:
        """Where the agent runs; ``None``: where the frames are."""
        return None

    def clean_actions(self, obs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.logits(obs.float() / 255).argmax(1).cpu().numpy()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.to(self.device() or obs.device)
        if self.eps == 0 or self.attack == "noise":
            self.last_clean_actions = self.clean_actions(x)
            return obs if self.eps == 0 else random_sign_noise(obs, self.eps, self.generator)
        adv, target = linf_attack(self.logits, x, self.eps, self.step, self.steps)
        self.last_clean_actions = target.cpu().numpy()
        return adv.to(obs.device)


class CNNAttack(_StepAttack):
    """``attack(obs_uint8) -> perturbed obs_uint8`` against a feed-forward agent (FGSM, PGD or the
    noise control) through its action head (``q`` or ``logits``)."""

    rowwise = True  # each frame's perturbation from that frame alone

    def __init__(self, net: nn.Module, obs_shape: tuple[int, ...], attack: str, eps: float,
                 steps: int = 10, step_size: float | None = None, seed: int = 0) -> None:  # fmt: skip
        super().__init__(attack, eps, steps, step_size, seed)
        self.net = net
        self.head = action_head(net, obs_shape)
        self._memo: dict[bytes, tuple[torch.Tensor, int]] = {}  # the last step's frames, attacked

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """FGSM and PGD frames are a function of the frame alone (no random start, no state), so a
        frame stack that was attacked at the previous step is not attacked again: an attacked
        Breakout agent that stops serving idles on one screen to the frame cap, where about 98% of
        the rows repeat and each PGD-10 row costs 20 passes."""
        if self.eps == 0 or self.attack == "noise":
            return super().__call__(obs)
        keys = [hashlib.blake2b(row.cpu().numpy().tobytes(), digest_size=16).digest() for row in obs]
        memo = {k: self._memo[k] for k in keys if k in self._memo}
        new: dict[bytes, int] = {}  # each frame not seen at the last step: its first row
        for i, k in enumerate(keys):
            if k not in memo:
                new.setdefault(k, i)
        if new:
            adv = super().__call__(obs[list(new.values())])
            memo.update(zip(new, zip(adv, self.last_clean_actions.tolist(), strict=True), strict=True))
        self._memo = memo
        self.last_clean_actions = np.array([memo[k][1] for k in keys], np.int64)
        return torch.stack([memo[k][0] for k in keys])

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        return self.net(x01)[self.head]

    def device(self) -> torch.device:
        return _device(self.net)


class RecurrentAttack(_StepAttack):
    """FGSM or PGD against a recurrent agent (the glimpse and soft-attention agents): the loss is the
    cross-entropy of the action logits at the end of the agent's step from its current state (the
    policy's ``logits``: every glimpse of the step, or the soft agent's step with its previous
    action and reward) with the action it takes on the clean frame; its gradient reaches the frame
    through what the agent reads of it. The agent's state is not advanced here: the policy then
    plays the perturbed frame as usual."""

    def __init__(self, policy: Any, attack: str, eps: float, steps: int = 10,
                 step_size: float | None = None, seed: int = 0) -> None:  # fmt: skip
        super().__init__(attack, eps, steps, step_size, seed)
        self.policy = policy

    def logits(self, x01: torch.Tensor) -> torch.Tensor:
        return self.policy.logits(x01)


class TransferAttack:
    """A perturbation crafted on a CNN agent of the same game, applied to another agent's frames.
    The CNN may stack more frames than the target agent sees (Catch: the DQN 2, the glimpse agent
    1): the attacker keeps the frame history the CNN needs and hands over the newest frame's part."""

    def __init__(self, source: CNNAttack, source_stack: int) -> None:
        self.source, self.source_stack = source, source_stack
        self.history: torch.Tensor | None = None
        self.last_clean_actions = np.zeros(0, np.int64)

    def reset(self, mask: np.ndarray) -> None:
        if self.history is not None:
            self.history[torch.as_tensor(mask, dtype=torch.bool)] = 0

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        k = obs.shape[1]
        if self.history is None:
            self.history = torch.zeros(obs.shape[0], self.source_stack, *obs.shape[2:], dtype=obs.dtype)
        self.history = torch.cat([self.history[:, k:], obs.cpu()], 1)[:, -self.source_stack :]
        adv = self.source(self.history)
        return adv[:, -k:].to(obs.device)


class AttackedPolicy:
    """``policy(obs)`` on perturbed frames, for :func:`agents.common.evaluate.evaluate`; counts the steps
    whose action changed from the clean one (the agent's own choice on the clean frame)."""

    def __init__(self, policy: Any, attack: Any) -> None:
        self.policy, self.attack = policy, attack
        self.steps = self.flips = 0
        # a frame-by-frame agent under a frame-by-frame attack: evaluate() may ask for some envs only
        self.rowwise = getattr(policy, "rowwise", False) and getattr(attack, "rowwise", False)

    def reset(self, mask: np.ndarray) -> None:
        if hasattr(self.policy, "reset"):
            self.policy.reset(mask)
        if hasattr(self.attack, "reset"):
            self.attack.reset(mask)

    def __call__(self, obs: torch.Tensor) -> np.ndarray:
        # a transfer attack knows the source CNN's clean actions, not the target's: ask the target
        clean = self._target_clean(obs) if isinstance(self.attack, TransferAttack) else None
        adv = self.attack(obs)
        clean = self.attack.last_clean_actions if clean is None else clean
        actions = np.asarray(self.policy(adv))
        self.steps += len(actions)
        self.flips += int((actions != clean).sum())
        return actions

    def observe(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """What the env played and gave, for an agent that reads its last action and reward."""
        if hasattr(self.policy, "observe"):
            self.policy.observe(actions, rewards)

    def _target_clean(self, obs: torch.Tensor) -> np.ndarray:
        """The target agent's most likely action on the clean frame (a sampling policy asked for
        its mode, as the white-box attacks count flips), without advancing a recurrent state."""
        if not hasattr(self.policy, "logits"):  # a Q-network's greedy policy: nothing to keep
            return np.asarray(self.policy(obs))
        greedy, self.policy.greedy = self.policy.greedy, True
        with torch.no_grad():
            actions = self.policy.logits(obs.float() / 255).argmax(1).cpu().numpy()
        self.policy.greedy = greedy
        return actions

    @property
    def flip_rate(self) -> float:
        return self.flips / self.steps if self.steps else 0.0


def catch_rate(scores: list[float]) -> float:
    """Share of Catch episodes that ended with the ball caught (a positive return)."""
    return float(np.mean(np.asarray(scores) > 0))


def load_agent(checkpoint: str, game: str | None = None,
               sample: bool = False) -> tuple[Any, Any, dict[str, Any]]:  # fmt: skip
    """(network, a fresh-policy factory ``make(num_envs)``, config) for our DQN, PQN, glimpse and
    soft-attention checkpoints and SB3 zips. ``sample``: a recurrent agent (glimpse, soft) samples
    its actions (and glimpse locations), the policy it is scored with (``evaluate.py --sample``);
    Q-networks act greedily and refuse it."""
    from agents.common.checkpoint import load_checkpoint, read_json, resolve_checkpoint
    from agents.common.evaluate import GreedyQPolicy
    from agents.common.registry import POLICIES
    from analysis.playback import load_policy, obs_shape

    ours = not str(checkpoint).endswith(".zip")
    make = POLICIES.get(read_json(resolve_checkpoint(checkpoint) / "config.json").get("agent", "")) \
        if ours else None  # fmt: skip
    if make is not None:
        net, config = load_checkpoint(checkpoint)
        return net, lambda n: make(net, config, n, greedy=not sample), config
    if sample:
        raise ValueError(f"sampling is for the glimpse and soft-attention agents, whose policies are "
                         f"distributions; {checkpoint} is a Q-network, which acts greedily")  # fmt: skip
    net, config = load_policy(checkpoint, None if ours else game)  # ours record their game
    head = action_head(net, obs_shape(net, config))
    return net, lambda n: GreedyQPolicy(net, head), config


def recurrent(config: dict[str, Any]) -> bool:
    """Whether a checkpoint's agent plays through a policy with a state of its own (the glimpse and
    soft-attention agents): attacked through its step, not a frame-wide head."""
    from agents.common.registry import POLICIES

    return config.get("agent") in POLICIES


def transfer_source(checkpoint: str, game: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The CNN agent a transfer attack is crafted on (not a recurrent agent: it has no frame-wide
    head to differentiate)."""
    net, _, config = load_agent(checkpoint, game)
    if recurrent(config):
        raise ValueError("--transfer-from needs a CNN agent (DQN, PQN or SB3) to craft on")
    return net, config


class AreaResize(nn.Module):
    """OpenCV's INTER_AREA downscaling from ``src`` to ``dst`` (height, width), the resize our Atari
    env applies to a CNN agent's frames (``envs/atari.py``), as a differentiable map. Area averaging
    is separable, ``out = rows @ frame @ cols``; both matrices are read off ``cv2.resize`` itself (the
    resize of an identity), so the attacker differentiates through the env's own weights."""

    def __init__(self, src: tuple[int, int], dst: tuple[int, int]) -> None:
        super().__init__()
        import cv2

        (sh, sw), (dh, dw) = src, dst
        if dh > sh or dw > sw:
            raise ValueError(f"area resizing shrinks frames; {sh}x{sw} to {dh}x{dw} would enlarge them")
        area = cv2.INTER_AREA
        self.register_buffer("rows", torch.from_numpy(cv2.resize(np.eye(sh, dtype=np.float32), (sh, dh),
                                                                 interpolation=area)))  # fmt: skip
        self.register_buffer("cols", torch.from_numpy(cv2.resize(np.eye(sw, dtype=np.float32), (dw, sw),
                                                                 interpolation=area)))  # fmt: skip

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.rows @ frames @ self.cols


class ResizedInput(nn.Module):
    """A CNN agent handed another agent's larger frames: each is resized as the CNN's own env would
    resize it (:class:`AreaResize`) before the CNN sees it, so that an attack crafted through this
    module perturbs the frames of the agent attacked. The rounding of the resized frame to uint8 is
    left out (its gradient is taken as the identity)."""

    def __init__(self, net: nn.Module, in_channels: int, src: tuple[int, int], dst: tuple[int, int]) -> None:
        super().__init__()
        self.net, self.resize = net, AreaResize(src, dst)
        self.in_channels, self.input_shape = in_channels, src

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs
        return self.net(self.resize(x))


def _screen(config: dict[str, Any]) -> tuple[tuple[int, int] | None, bool | None]:
    options = config.get("env_options") or {}
    h, w = options.get("img_height"), options.get("img_width")
    return (None if None in (h, w) else (h, w)), options.get("grayscale")


def fit_to_screen(net: nn.Module, source: dict[str, Any], target: dict[str, Any]) -> nn.Module:
    """The transfer source ``net`` as it sees the attacked agent's frames: itself when both see
    frames of one size, else preceded by its env's resize (the Breakout PQN agent's 84x84 made from
    the glimpse agent's 210x160). One line when the frames cannot be matched: the source sees larger
    frames than the target, or colour where the target sees grey."""
    (size, grey), (target_size, target_grey) = _screen(source), _screen(target)
    if None not in (grey, target_grey) and grey != target_grey:
        colours = {True: "grayscale", False: "RGB"}
        raise ValueError(f"--transfer-from sees {colours[grey]} frames and the agent attacked "
                         f"{colours[target_grey]}: a transfer attack needs one colour space")  # fmt: skip
    if size is None or target_size is None or size == target_size:
        return net
    if size[0] > target_size[0] or size[1] > target_size[1]:
        raise ValueError(f"--transfer-from sees {size[0]}x{size[1]} frames and the agent attacked "
                         f"{target_size[0]}x{target_size[1]}: a transfer source must see frames no larger "
                         "than the target's (they are resized down to it)")  # fmt: skip
    from analysis.playback import obs_shape

    return ResizedInput(net, obs_shape(net, source)[0], target_size, size)


def make_attack(attack: str, eps: float, net: nn.Module, policy: Any, config: dict[str, Any],
                source: tuple[nn.Module, dict[str, Any]] | None = None, steps: int = 10,
                step_size: float | None = None, seed: int = 0) -> Any:  # fmt: skip
    """The attack on one agent: crafted on ``source`` (a CNN agent: a transfer attack) when given,
    else on the agent itself (through its step for a recurrent agent)."""
    from analysis.playback import obs_shape

    if source is not None:
        src_net, src_config = source
        shape = obs_shape(src_net, src_config)
        return TransferAttack(CNNAttack(src_net, shape, attack, eps, steps, step_size, seed), shape[0])
    if recurrent(config):
        return RecurrentAttack(policy, attack, eps, steps, step_size, seed)
    return CNNAttack(net, obs_shape(net, config), attack, eps, steps, step_size, seed)


def robustness(checkpoint: str, attack: str, epsilons: list[float], episodes: int = 100,
               game: str | None = None, transfer_from: str | None = None, steps: int = 10,
               step_size: float | None = None, seed: int = 0, num_envs: int = 8,
               progress: bool = True, sample: bool = False) -> dict[str, Any]:  # fmt: skip
    """Mean return (and catch rate on Catch) and the share of flipped actions at each epsilon, the
    agent attacked at every step of ``episodes`` evaluation episodes (the evaluation protocol).
    ``sample``: a recurrent agent plays its sampled policy (seeded from ``seed`` at each epsilon); a
    flipped action is then one that differs from the most likely action on the clean frame, so
    that the flip rate at epsilon 0 is the share of sampled actions that are not the mode."""
    from agents.common.evaluate import evaluate

    check_attack(attack, epsilons)
    if transfer_from is not None and attack == "noise":
        raise ValueError("--transfer-from crafts FGSM or PGD on another agent; noise needs no source")
    net, make_policy, config = load_agent(checkpoint, game, sample)
    source = None if transfer_from is None else transfer_source(transfer_from, game)
    if source is not None and source[1]["game"] != config["game"]:
        raise ValueError(f"--transfer-from is a {source[1]['game']!r} agent; the target plays "
                         f"{config['game']!r}")  # fmt: skip
    if source is not None:
        source = (fit_to_screen(*source, config), source[1])
    n = max(1, min(num_envs, episodes))
    rows = []
    for eps in epsilons:
        if sample:
            torch.manual_seed(seed)
        policy = make_policy(n)
        attacked = AttackedPolicy(policy, make_attack(attack, eps, net, policy, config, source,
                                                      steps, step_size, seed))  # fmt: skip
        result = evaluate(attacked, config, episodes=episodes, seed=seed, num_envs=n,
                          progress=progress)  # fmt: skip
        row = {"epsilon": eps, "mean_return": result.mean, "std_return": result.std,
               "flip_rate": attacked.flip_rate, "steps": attacked.steps, "scores": result.scores}
        if config["game"] == "catch":
            row["catch_rate"] = catch_rate(result.scores)
        rows.append(row)
    return {"checkpoint": str(checkpoint), "agent": config.get("agent") or "dqn",
            "game": config["game"], "attack": attack, "transfer_from": transfer_from,
            "transfer_from_agent": source[1].get("agent") or "dqn" if source else None,
            "pgd_steps": steps if attack == "pgd" else None, "episodes": episodes, "seed": seed,
            "policy": "sample" if sample else "greedy", "results": rows}  # fmt: skip


def group_label(run: dict[str, Any]) -> str:
    """Runs of one kind of agent (over seeds) under one attack share a label; a run may name its
    own group (``label``: one shipped agent among others of its kind)."""
    source = f", crafted on {run['transfer_from_agent']}" if run.get("transfer_from") else ""
    return f"{run.get('label') or run['agent']}{source}"


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per attack and group: per epsilon the mean and 95% interval over the group's runs (seeds)
    of the return, the catch rate (Catch) and the flip rate. A group of one run (one shipped agent)
    has its return's and catch rate's interval over its episodes instead (``interval_over``)."""
    from analysis.compare import mean_ci_dict

    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        out.setdefault(run["attack"], {}).setdefault(group_label(run), []).append(run)
    summary: dict[str, dict[str, Any]] = {}
    for attack, groups in out.items():
        summary[attack] = {}
        for label, members in groups.items():
            one = len(members) == 1
            rows = []
            for i, eps in enumerate(r["epsilon"] for r in members[0]["results"]):
                row: dict[str, Any] = {"epsilon": eps, "runs": len(members),
                                       "interval_over": "episodes" if one else "runs"}  # fmt: skip
                for key in ("mean_return", "catch_rate", "flip_rate"):
                    if key not in members[0]["results"][i]:
                        continue
                    scores = np.asarray(members[0]["results"][i]["scores"], float)
                    if one and key == "mean_return":
                        row[key] = mean_ci_dict(scores)
                    elif one and key == "catch_rate":
                        row[key] = mean_ci_dict((scores > 0).astype(float))
                    else:
                        row[key] = mean_ci_dict([m["results"][i][key] for m in members])
                rows.append(row)
            summary[attack][label] = rows
    return summary


# what a robustness curve plots, in this order of preference, and its axis
SCORES = {"catch_rate": "catch rate", "return_share": "return, random play 0 to clean 1",
          "mean_return": "mean return"}


def plot_robustness(summary: dict[str, dict[str, Any]], path: str | os.PathLike[str],
                    title: str = "") -> Path:  # fmt: skip
    """One column per attack: the return (or catch rate) and the flipped-action share against
    epsilon, a line per kind of agent, in one colour in every column, with its 95% interval over
    its runs (seeds), or over the episodes of a single run."""
    from analysis.render import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(2, len(summary), figsize=(4.6 * len(summary), 7), squeeze=False)
    # one colour an agent in every panel, whichever attacks it has points for
    labels = dict.fromkeys(label for groups in summary.values() for label in groups)
    colours = {label: f"C{k}" for k, label in enumerate(labels)}
    for col, (attack, groups) in enumerate(summary.items()):
        for label, rows in groups.items():
            eps = [r["epsilon"] for r in rows]
            score = next(k for k in SCORES if k in rows[0])
            runs = rows[0]["runs"]  # the interval is over runs (seeds) when there are several, else episodes
            for row, key in ((0, score), (1, "flip_rate")):
                mean = [r[key]["mean"] for r in rows]
                ax = axes[row, col]
                ax.plot(eps, mean, "-o", ms=3, color=colours[label],
                        label=label if runs == 1 else f"{label} ({runs} runs)")  # fmt: skip
                ax.fill_between(eps, [r[key]["ci_low"] for r in rows], [r[key]["ci_high"] for r in rows],
                                color=colours[label], alpha=0.2)  # fmt: skip
                ax.set_xscale("symlog", linthresh=1)
                ax.set_xlabel("epsilon (pixel levels of 255)")
                ax.set_ylabel(SCORES[score] if row == 0 else "share of actions flipped")
        axes[0, col].set_title(attack.upper() if attack != "noise" else "random noise (control)")
        axes[0, col].legend(fontsize=7)
    return save_figure(fig, path, title or "robustness to adversarial observations")
