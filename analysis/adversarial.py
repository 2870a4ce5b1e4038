"""Adversarial observations at every step of play (Huang et al. 2017, "Adversarial attacks on neural
network policies"): untargeted L-infinity attacks that push an agent off the action it would take.

* FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) on the CNN agents (our DQN and PQN, SB3
  models) come from the Adversarial Robustness Toolbox (ART, LF AI & Data): maintained, L-infinity
  FGSM and PGD in the data's own units (``clip_values=(0, 255)``, so epsilon is in pixel levels of
  the uint8 frame), batched, and it takes a PyTorch module as the classifier. torchattacks assumes
  [0, 1] inputs and pins torchvision; foolbox adds its own tensor layer. The agent's action head is
  the classifier's logits (the Q-values or the policy logits) and the loss is the cross-entropy
  with the action the agent takes on the clean frame, Huang et al.'s choice for DQN and A3C.
* The glimpse agent has no such head to hand over: its action comes out of a recurrent loop whose
  glimpse locations depend on what it saw. :class:`GlimpseAttack` differentiates through that loop
  by hand: through the retina at the gaze the agent is taking, its core, and (for a second glimpse
  within a step) the location head, from the agent's current state. Or the perturbation is crafted
  on a CNN agent of the same game and transferred (:class:`TransferAttack`).
* The control is random noise of the same budget: every pixel moved by +epsilon or -epsilon at
  random (the largest random perturbation within the L-infinity ball).

Perturbed frames are rounded back to uint8 inside the budget: the attacker changes the screen the
agent would see, and no frame leaves [0, 255] or ``obs +- epsilon``.
"""

from __future__ import annotations

import logging
import os
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


class _Logits(nn.Module):
    """ART's classifier: pixel levels in, the agent's action head out (as logits)."""

    def __init__(self, net: nn.Module, head: str) -> None:
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 255.0)[self.head]


class CNNAttack:
    """``attack(obs_uint8) -> perturbed obs_uint8`` against a feed-forward agent (FGSM, PGD via ART, or
    the noise control); ``last_clean_actions`` holds the actions the attack pushed away from."""

    def __init__(self, net: nn.Module, obs_shape: tuple[int, ...], attack: str, eps: float,
                 steps: int = 10, step_size: float | None = None, seed: int = 0) -> None:  # fmt: skip
        check_attack(attack, [eps])
        if steps < 1:
            raise ValueError(f"PGD steps must be >= 1, got {steps}")
        self.net, self.attack, self.eps = net, attack, float(eps)
        self.head = action_head(net, obs_shape)
        self.generator = torch.Generator().manual_seed(seed)
        self.last_clean_actions = np.zeros(0, np.int64)
        self._art = None
        if attack != "noise" and eps > 0:
            logging.getLogger("art").setLevel(logging.ERROR)
            from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
            from art.estimators.classification import PyTorchClassifier

            with torch.no_grad():
                n = self.net(torch.zeros(1, *obs_shape, dtype=torch.uint8,
                                         device=_device(net)))[self.head].shape[1]  # fmt: skip
            classifier = PyTorchClassifier(
                model=_Logits(net, self.head), loss=nn.CrossEntropyLoss(), input_shape=obs_shape,
                nb_classes=n, clip_values=(0.0, 255.0),
                device_type="gpu" if _device(net).type == "cuda" else "cpu",
            )  # fmt: skip
            if attack == "fgsm":
                self._art = FastGradientMethod(classifier, norm=np.inf, eps=self.eps,
                                               targeted=False, batch_size=4096)  # fmt: skip
            else:
                # Madry et al.'s step: 2.5 * eps / steps, so that the iterates can cross the ball
                step = step_size if step_size is not None else 2.5 * self.eps / steps
                self._art = ProjectedGradientDescent(
                    classifier, norm=np.inf, eps=self.eps, eps_step=step, max_iter=steps,
                    targeted=False, num_random_init=0, batch_size=4096, verbose=False,
                )  # fmt: skip

    def clean_actions(self, obs: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return self.net(obs.to(_device(self.net)))[self.head].argmax(1).cpu().numpy()

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        self.last_clean_actions = self.clean_actions(obs)
        if self.eps == 0:
            return obs
        if self.attack == "noise":
            return random_sign_noise(obs, self.eps, self.generator)
        x = obs.detach().cpu().float().numpy()
        with torch.enable_grad():  # evaluation plays under no_grad; the attack needs gradients
            adv = self._art.generate(x=x, y=self.last_clean_actions)
        return quantise(obs, torch.from_numpy(adv).to(obs.device), self.eps)


class GlimpseAttack:
    """FGSM or PGD against the glimpse agent, by hand: the loss is the cross-entropy of the action
    logits at the end of the agent's step (all its glimpses, from its current core state and
    location) with the action it takes on the clean frame; its gradient reaches the frame through
    the patches the retina takes. The agent's state is not advanced here: the policy then plays the
    perturbed frame as usual."""

    def __init__(self, policy: Any, attack: str, eps: float, steps: int = 10,
                 step_size: float | None = None, seed: int = 0) -> None:  # fmt: skip
        check_attack(attack, [eps])
        if steps < 1:
            raise ValueError(f"PGD steps must be >= 1, got {steps}")
        self.policy, self.attack, self.eps = policy, attack, float(eps)
        self.steps = 1 if attack == "fgsm" else steps
        self.step = self.eps if attack == "fgsm" else (step_size or 2.5 * self.eps / steps)
        self.generator = torch.Generator().manual_seed(seed)
        self.last_clean_actions = np.zeros(0, np.int64)

    def logits(self, images01: torch.Tensor) -> torch.Tensor:
        """The action logits the agent would produce on ``images01`` (floats in [0, 1])."""
        model, state, loc = self.policy.model, self.policy.state, self.policy.loc
        heads: dict[str, torch.Tensor] = {}
        for _ in range(self.policy.glimpses_per_step):
            heads, state = model(images01, loc, state)
            loc = model.greedy_location(heads) if self.policy.greedy else model.sample_location(heads)[0]
        return heads["action_logits"]

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        with torch.no_grad():
            self.last_clean_actions = self.logits(x / 255).argmax(1).cpu().numpy()
        if self.eps == 0:
            return obs
        if self.attack == "noise":
            return random_sign_noise(obs, self.eps, self.generator)
        target = torch.as_tensor(self.last_clean_actions, device=obs.device)
        delta = torch.zeros_like(x)
        for _ in range(self.steps):
            xa = (x + delta).requires_grad_(True)
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(self.logits(xa / 255), target)
                (g,) = torch.autograd.grad(loss, xa)
            delta = (delta + self.step * g.sign()).clamp(-self.eps, self.eps)
            delta = (x + delta).clamp(0, 255) - x
        return quantise(obs, x + delta, self.eps)


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

    def _target_clean(self, obs: torch.Tensor) -> np.ndarray:
        """The target agent's most likely action on the clean frame (a sampling policy asked for
        its mode, as the white-box attacks count flips), without advancing a recurrent state."""
        state, loc = getattr(self.policy, "state", None), getattr(self.policy, "loc", None)
        if state is None:  # a Q-network's greedy policy: nothing to keep
            return np.asarray(self.policy(obs))
        greedy, self.policy.greedy = self.policy.greedy, True
        actions = np.asarray(self.policy(obs))
        self.policy.state, self.policy.loc, self.policy.greedy = state, loc, greedy
        return actions

    @property
    def flip_rate(self) -> float:
        return self.flips / self.steps if self.steps else 0.0


def catch_rate(scores: list[float]) -> float:
    """Share of Catch episodes that ended with the ball caught (a positive return)."""
    return float(np.mean(np.asarray(scores) > 0))


def load_agent(checkpoint: str, game: str | None = None,
               sample: bool = False) -> tuple[Any, Any, dict[str, Any]]:  # fmt: skip
    """(network, a fresh-policy factory ``make(num_envs)``, config) for our DQN, PQN and glimpse
    checkpoints and SB3 zips. ``sample``: a glimpse agent samples its actions and glimpse locations,
    the policy it is scored with (``evaluate.py --sample``); Q-networks act greedily and refuse it."""
    from agents.common.checkpoint import load_checkpoint, read_json, resolve_checkpoint
    from analysis.playback import load_policy, obs_shape

    ours = not str(checkpoint).endswith(".zip")
    if ours and read_json(resolve_checkpoint(checkpoint) / "config.json").get("agent") == "glimpse":
        from agents.glimpse import GlimpsePolicy

        net, config = load_checkpoint(checkpoint)
        return net, lambda n: GlimpsePolicy.for_checkpoint(net, config, n, greedy=not sample), config
    if sample:
        raise ValueError(f"sampling is for glimpse agents, whose policies are distributions; {checkpoint} "
                         "is a Q-network, which acts greedily")  # fmt: skip
    net, config = load_policy(checkpoint, None if ours else game)  # ours record their game
    head = action_head(net, obs_shape(net, config))
    return net, lambda n: (lambda obs: net(obs)[head].argmax(1).cpu().numpy()), config


def transfer_source(checkpoint: str, game: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The CNN agent a transfer attack is crafted on (not a glimpse agent: it has no frame-wide
    head to differentiate)."""
    net, _, config = load_agent(checkpoint, game)
    if config.get("agent") == "glimpse":
        raise ValueError("--transfer-from needs a CNN agent (DQN, PQN or SB3) to craft on")
    return net, config


def check_same_screen(source: dict[str, Any], target: dict[str, Any]) -> None:
    """One line when a transfer attack's source sees frames of another size than the agent it
    attacks (the Breakout glimpse agent's 210x160 against the PQN agent's 84x84): its perturbation
    would not fit the frames it is applied to."""
    sizes = [tuple(c.get("env_options", {}).get(k) for k in ("img_height", "img_width"))
             for c in (source, target)]  # fmt: skip
    if None not in sizes[0] + sizes[1] and sizes[0] != sizes[1]:
        (h, w), (th, tw) = sizes
        raise ValueError(f"--transfer-from sees {h}x{w} frames and the agent attacked {th}x{tw}: a transfer "
                         "attack needs both to see frames of one size")  # fmt: skip


def make_attack(attack: str, eps: float, net: nn.Module, policy: Any, config: dict[str, Any],
                source: tuple[nn.Module, dict[str, Any]] | None = None, steps: int = 10,
                step_size: float | None = None, seed: int = 0) -> Any:  # fmt: skip
    """The attack on one agent: crafted on ``source`` (a CNN agent: a transfer attack) when given,
    else on the agent itself (through the glimpse loop for the glimpse agent)."""
    from analysis.playback import obs_shape

    if source is not None:
        src_net, src_config = source
        shape = obs_shape(src_net, src_config)
        return TransferAttack(CNNAttack(src_net, shape, attack, eps, steps, step_size, seed), shape[0])
    if config.get("agent") == "glimpse":
        return GlimpseAttack(policy, attack, eps, steps, step_size, seed)
    return CNNAttack(net, obs_shape(net, config), attack, eps, steps, step_size, seed)


def robustness(checkpoint: str, attack: str, epsilons: list[float], episodes: int = 100,
               game: str | None = None, transfer_from: str | None = None, steps: int = 10,
               step_size: float | None = None, seed: int = 0, num_envs: int = 8,
               progress: bool = True, sample: bool = False) -> dict[str, Any]:  # fmt: skip
    """Mean return (and catch rate on Catch) and the share of flipped actions at each epsilon, the
    agent attacked at every step of ``episodes`` evaluation episodes (the evaluation protocol).
    ``sample``: a glimpse agent plays its sampled policy (seeded from ``seed`` at each epsilon); a
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
        check_same_screen(source[1], config)
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
SCORES = {"catch_rate": "catch rate", "return_share": "return / clean return", "mean_return": "mean return"}


def plot_robustness(summary: dict[str, dict[str, Any]], path: str | os.PathLike[str],
                    title: str = "") -> Path:  # fmt: skip
    """One column per attack: the return (or catch rate) and the flipped-action share against
    epsilon, a line per kind of agent with its 95% interval over seeds."""
    from analysis.render import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(2, len(summary), figsize=(4.6 * len(summary), 7), squeeze=False)
    for col, (attack, groups) in enumerate(summary.items()):
        for k, (label, rows) in enumerate(groups.items()):
            eps = [r["epsilon"] for r in rows]
            score = next(k for k in SCORES if k in rows[0])
            for row, key in ((0, score), (1, "flip_rate")):
                mean = [r[key]["mean"] for r in rows]
                ax = axes[row, col]
                ax.plot(eps, mean, "-o", ms=3, color=f"C{k}", label=f"{label} (n={rows[0]['runs']})")
                ax.fill_between(eps, [r[key]["ci_low"] for r in rows], [r[key]["ci_high"] for r in rows],
                                color=f"C{k}", alpha=0.2)  # fmt: skip
                ax.set_xscale("symlog", linthresh=1)
                ax.set_xlabel("epsilon (pixel levels of 255)")
                ax.set_ylabel(SCORES[score] if row == 0 else "share of actions flipped")
        axes[0, col].set_title(attack.upper() if attack != "noise" else "random noise (control)")
        axes[0, col].legend(fontsize=7)
    return save_figure(fig, path, title or "robustness to adversarial observations")
