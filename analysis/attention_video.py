"""What the soft-attention agent (Mott et al. 2019) attends to while it plays: each query's map over
the game, beside the Jacobian of its value at the same step and recurrent state, and how much the
two agree.

A query's map lives on the vision core's feature grid (9x9 for 84x84 frames, 12x12 for Catch); a
cell's value is put on the observation's pixels nearest its receptive field's centre, so that a map
lands where the pixels it reads are, and then on the screen as every saliency map is."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.common.checkpoint import atomic_write_text
from agents.soft import SoftAttentionAgent, SoftPolicy
from analysis.objects import pooled_state
from analysis.playback import Moment, play_episodes, playback_env
from analysis.render import RunningPercentile, hud_strip, label, overlay, panels
from analysis.saliency import to_frame
from analysis.video import VideoWriter, check_output_file, check_writable
from envs import FireAfterLifeLoss


def receptive_field_centres(torso: nn.Sequential) -> tuple[float, float]:
    """(offset, stride) of the vision torso: feature cell ``j`` is centred on input pixel ``offset +
    stride * j`` (pixel indices, 0 the first pixel's centre). For a chain of convolutions each one
    multiplies the stride by its own and moves the first centre by ``((kernel - 1) / 2 - padding)``
    times the stride before it (Araujo et al. 2019, "Computing receptive fields of convolutional
    neural networks"). Square kernels, strides and paddings, as the agent's are."""
    offset, stride = 0.0, 1
    for layer in torso:
        if isinstance(layer, nn.Conv2d):
            k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
            offset += ((k - 1) / 2 - p) * stride
            stride *= s
    return offset, stride


def maps_to_obs(maps: np.ndarray, model: SoftAttentionAgent) -> np.ndarray:
    """(..., h, w) feature-grid maps as (..., H, W) observation-sized ones: every observation pixel
    takes the value of the cell whose receptive field's centre is nearest (the last cells take the
    pixels beyond the last centre)."""
    offset, stride = receptive_field_centres(model.vision)
    h, w = maps.shape[-2:]
    height, width = model.input_shape
    # a pixel halfway between two centres goes to the later cell
    rows = np.clip(np.floor((np.arange(height) - offset) / stride + 0.5), 0, h - 1).astype(np.int64)
    cols = np.clip(np.floor((np.arange(width) - offset) / stride + 0.5), 0, w - 1).astype(np.int64)
    return maps[..., rows[:, None], cols[None, :]]


def cells_of(saliency: np.ndarray, model: SoftAttentionAgent, shape: tuple[int, int]) -> np.ndarray:
    """An observation-sized (H, W) map summed over each feature cell's pixels (those nearest its
    centre, as :func:`maps_to_obs` spreads them): a map on the attention's own grid."""
    index = maps_to_obs(np.arange(shape[0] * shape[1]).reshape(shape), model).ravel()
    return np.bincount(index, weights=saliency.ravel(), minlength=shape[0] * shape[1]).reshape(shape)


def attention_on_pixels(maps: np.ndarray, model: SoftAttentionAgent, shape: tuple[int, int]) -> np.ndarray:
    """(..., h, w) attention on the feature grid as (..., H, W) maps on the observation's pixels,
    each cell's probability spread evenly over its pixels (those nearest its centre), so that a map
    still sums to 1: what a pixel-level check (object shares, deletion) reads."""
    pixels = cells_of(np.ones(shape), model, maps.shape[-2:])
    return maps_to_obs(np.divide(maps, pixels, out=np.zeros_like(maps), where=pixels > 0), model)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps' cells (average ranks for ties); nan when either is constant."""
    from scipy.stats import spearmanr

    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


@dataclass
class AttentionStep:
    t: int
    episode: int
    screen: np.ndarray  # (H, W, 3) uint8 frame the observation ends on
    action: int
    value: float
    attention: np.ndarray  # (queries, h, w): each map sums to 1 over the feature grid
    value_jacobian: np.ndarray  # (H, W) |d value / d observation|, summed over channels
    agreement: float  # Spearman of the queries' mean map with the Jacobian's mass per cell
    score: float
    shares: dict[str, tuple[float, ...]]  # per object class: object_shares
    obs: np.ndarray  # (C, H, W) uint8, the observation acted on
    inputs: tuple[int, float]  # the previous action and (clipped) reward the agent was given with it
    state: tuple[torch.Tensor, ...]  # the recurrent state the step was taken from (batch of 1)


def value_jacobian(model: SoftAttentionAgent, obs: torch.Tensor, policy: SoftPolicy) -> np.ndarray:
    """|d value / d obs| (the observation scaled to [0, 1], as every saliency map here) at the
    policy's current recurrent state, previous action and reward, held fixed: what the value reads
    in this frame, given what the agent remembers."""
    x = (obs.to(model.basis.dtype) / 255.0).requires_grad_(True)
    state = tuple(s.detach() for s in policy.state)
    with torch.enable_grad():
        heads, _ = model.step(x, state, policy.prev_action, policy.prev_reward)
        (grad,) = torch.autograd.grad(heads["value"].sum(), x)
    return grad.abs().sum(1)[0].numpy()


def object_shares(game: str, pooled: list[np.ndarray] | None, attention: np.ndarray, jacobian: np.ndarray,
                  model: SoftAttentionAgent) -> dict[str, tuple[float, ...]]:  # fmt: skip
    """Per object class of a game with object tables (:mod:`analysis.objects`): the share of the
    queries' mean map on the class's pixels (the attention's cells spread their probability evenly
    over their pixels, so that the map still sums to 1), the share of the Jacobian's mass, and
    (:func:`peak_near`) how often a query's map peaks within one cell of the class, with the
    chance of that for a cell drawn at random. A sharp map one cell off an object gives it almost
    no mass; the peak's distance says whether the map follows it."""
    from analysis.objects import GAMES, boxes, class_masks, mass_share

    if game not in GAMES or pooled is None:
        return {}
    shape = jacobian.shape
    spread = attention_on_pixels(attention.mean(0), model, shape)
    masks = class_masks(game, boxes(game, pooled), shape)
    return {c: (mass_share(spread, m), mass_share(jacobian, m),
                *peak_near(attention, cells_of(m.astype(float), model, attention.shape[-2:]) > 0))
            for c, m in masks.items()}  # fmt: skip


def peak_near(attention: np.ndarray, cells: np.ndarray) -> tuple[float, float]:
    """The share of the (queries, h, w) maps whose highest cell is within one cell (the 3x3 block
    around it) of a cell in the boolean (h, w) ``cells``, and the share of all cells that are (a
    peak drawn at random); NaN for both when ``cells`` is empty (the object is off screen)."""
    if not cells.any():
        return float("nan"), float("nan")
    padded = np.pad(cells, 1)
    h, w = cells.shape
    near = np.zeros_like(cells)
    for dr in range(3):
        for dc in range(3):
            near |= padded[dr : dr + h, dc : dc + w]
    peaks = [np.unravel_index(a.argmax(), a.shape) for a in attention]
    return float(np.mean([near[p] for p in peaks])), float(near.mean())


def play_attention(model: SoftAttentionAgent, config: dict[str, Any], steps: int | None = None,
                   episodes: int | None = None, seed: int = 0,
                   greedy: bool = True) -> Iterator[AttentionStep]:  # fmt: skip
    """Play one env with the agent until ``steps`` steps or ``episodes`` episodes, the recurrent
    state carried as in training (zeroed at each episode's start) and FIRE pressed after a lost
    life where training pressed it."""
    env = playback_env(config, seed)
    torch.manual_seed(seed)
    policy = SoftPolicy(model.eval(), 1, greedy=greedy)
    fire = None

    def act(m: Moment) -> tuple[int, AttentionStep]:
        x = torch.from_numpy(np.asarray(m.obs)[None])
        inputs = (int(policy.prev_action[0]), float(policy.prev_reward[0]))
        state = tuple(s.clone() for s in policy.state)
        jac = value_jacobian(model, x, policy)
        action = int(fire.actions(np.asarray(policy(x)[:1]))[0])
        maps = policy.heads["attention"][0].numpy()
        agreement = spearman(maps.mean(0), cells_of(jac, model, maps.shape[-2:]))
        shares = object_shares(config["game"], pooled_state(env, config["game"]), maps, jac, model)
        return action, AttentionStep(m.t, m.episode, env.rgb_frame(), action, float(policy.heads["value"][0]),
                                     maps, jac, agreement, m.score, shares, m.obs, inputs, state)  # fmt: skip

    def on_step(action: int, reward: float, ended: bool, info: dict[str, Any]) -> None:
        policy.observe(np.array([action]), np.array([reward], np.float32))
        fire.observe(info, ended)

    def on_reset(info: dict[str, Any]) -> None:
        nonlocal fire
        fire = FireAfterLifeLoss.for_checkpoint(config, info)  # the game the agent learnt
        policy.reset()

    yield from play_episodes(env, act, steps, episodes, seed=seed, on_step=on_step, on_reset=on_reset)


def query_overlays(screen: np.ndarray, attention: np.ndarray, model: SoftAttentionAgent) -> list[np.ndarray]:
    """Each query's (queries, h, w) map over the (H, W, 3) ``screen``, divided by its maximum: a map
    is a distribution, and where it peaks is what it says."""
    maps = maps_to_obs(attention / attention.max(axis=(1, 2), keepdims=True), model)
    return [overlay(screen, to_frame(m, screen.shape[:2])) for m in maps]


def attention_frame(step: AttentionStep, model: SoftAttentionAgent, norm: RunningPercentile,
                    height: int) -> np.ndarray:  # fmt: skip
    """The screen, each query's map over it (:func:`query_overlays`), then the value's Jacobian,
    titled, side by side."""
    shape = step.screen.shape[:2]
    tiles = [step.screen, *query_overlays(step.screen, step.attention, model)]
    tiles.append(overlay(step.screen, to_frame(norm(step.value_jacobian), shape)))
    frame = panels(tiles, height)
    w = frame.shape[1] // len(tiles)
    titles = ["game", *(f"query {q + 1}" for q in range(len(step.attention))), "value Jacobian"]
    for k, title in enumerate(titles):
        frame[:, k * w : (k + 1) * w] = label(frame[:, k * w : (k + 1) * w], [title])
    return frame


def record_attention(model: SoftAttentionAgent, config: dict[str, Any], out: str | os.PathLike[str], *,
                     steps: int | None = None, episodes: int | None = None, seed: int = 0,
                     fps: float = 30.0, height: int = 420, per_frame_norm: bool = False,
                     sequential: str | os.PathLike[str] | None = None,
                     checks: str | os.PathLike[str] | None = None,
                     progress: bool = True) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Play and write an H.264 mp4 of the soft agent's attention (:func:`attention_frame`, with a
    heads-up line: step, episode, score, action, value, agreement); returns the path and
    :func:`attention_summary`. ``sequential``: also plot the value's sequential Jacobian over the
    first episode (:func:`episode_jacobian`) into this .png; the summary then holds the median
    memory span (steps back its sensitivity stays above 10% of its peak). ``checks``: also run
    :func:`analysis.attention_checks.attention_checks` over up to 256 moments of the recording,
    evenly spaced, into this .json; the summary then holds them under ``checks``."""
    from tqdm import tqdm

    out = check_writable(out)
    if sequential is not None:
        sequential = check_output_file(sequential, ".png")
    if checks is not None:
        checks = check_output_file(checks, ".json")
    first: list[AttentionStep] = []
    kept: list[AttentionStep] = []  # without their screens and Jacobians: what the checks replay
    names = config.get("action_set") if isinstance(config.get("action_set"), list) else None
    norm = RunningPercentile(momentum=0.0 if per_frame_norm else 0.95)
    agreement, shares = [], []
    with VideoWriter(out, fps=fps) as video, tqdm(total=steps, desc="attention video", unit="frame",
                                                  disable=not progress) as bar:  # fmt: skip
        for step in play_attention(model, config, steps=steps, episodes=episodes, seed=seed):
            act = names[step.action] if names else str(step.action)
            hud = [f"step {step.t}  ep {step.episode}  score {step.score:.0f}  action {act}",
                   f"V {step.value:.2f}   attention~Jacobian Spearman {step.agreement:.2f}"]  # fmt: skip
            video.write(hud_strip(attention_frame(step, model, norm, height), hud))
            agreement.append(step.agreement)
            shares.append(step.shares)
            if sequential is not None and step.episode == 0 and len(first) < 200:
                first.append(step)
            if checks is not None:
                kept.append(dataclasses.replace(step, screen=np.empty(0), value_jacobian=np.empty(0)))
            bar.update(1)
    summary = attention_summary(agreement, shares)
    if checks is not None:
        from analysis.attention_checks import attention_checks

        chosen = np.unique(np.linspace(0, len(kept) - 1, min(256, len(kept))).round().astype(int))
        summary["checks"] = attention_checks(model, [kept[i] for i in chosen], seed=seed)
        atomic_write_text(checks, json.dumps(summary["checks"], indent=2))
    if sequential is not None:
        jacobian = episode_jacobian(model, first)
        jacobian.plot(str(sequential))
        summary["memory_span_median"] = float(np.median(jacobian.memory_span()))
    return video.path, summary


def attention_summary(agreement: list[float], shares: list[dict[str, tuple[float, ...]]]) -> dict[str, Any]:
    """The steps, the median and quartiles of the attention-Jacobian agreement, and per object class
    the mean share of the attention and of the Jacobian, and of the queries' peaks within one cell
    of it (with its chance), with 95% intervals (batch means: the steps of play are correlated;
    the steps with the class off screen left out of its peaks)."""
    from analysis.compare import mean_ci_dict

    a = np.array(agreement)
    a = a[np.isfinite(a)]
    q = np.percentile(a, [25, 50, 75]) if len(a) else [float("nan")] * 3
    summary: dict[str, Any] = {"steps": len(agreement), "agreement_median": float(q[1]),
                               "agreement_q25": float(q[0]), "agreement_q75": float(q[2])}  # fmt: skip
    if shares and shares[0]:
        kinds = ("attention", "jacobian", "peak_near", "peak_near_chance")
        summary["objects"] = {}
        for c in shares[0]:
            values = np.array([s[c] for s in shares])
            summary["objects"][c] = {kind: mean_ci_dict(v[np.isfinite(v)], series=True)
                                     for kind, v in zip(kinds, values.T, strict=True)}  # fmt: skip
    return summary


def episode_jacobian(model: SoftAttentionAgent, played: list[AttentionStep], head: str = "value",
                     max_steps: int = 200) -> Any:  # fmt: skip
    """The sequential Jacobian (:mod:`analysis.sequential`) of the first recorded episode (at most
    ``max_steps`` steps): how much the ``head`` (``value``, or the chosen action's
    ``policy_logits``) at each step moves with the observation of every step before it, through
    the ConvLSTM's and the policy LSTM's memory. The episode is replayed on the inputs it was
    played with (the previous action and reward of each step), the observations scaled to [0, 1]."""
    from analysis.sequential import sequential_jacobian

    if head not in ("value", "policy_logits"):
        raise ValueError(f"the sequential Jacobian takes the value or the policy_logits head (got {head!r})")
    steps = [s for s in played if s.episode == played[0].episode][:max_steps]
    like = {"dtype": model.basis.dtype}
    frames = torch.from_numpy(np.stack([s.obs for s in steps])).to(**like) / 255.0
    actions = torch.tensor([s.inputs[0] for s in steps])
    rewards = torch.tensor([s.inputs[1] for s in steps], **like)

    def step_fn(x: torch.Tensor, state: Any) -> tuple[dict[str, torch.Tensor], Any]:
        t, memory = state  # the time index, to give each step the inputs it was played with
        heads, memory = model.step(x, memory, actions[t : t + 1], rewards[t : t + 1])
        return heads, (t + 1, memory)

    return sequential_jacobian(step_fn, frames, (0, model.initial_state(1)), head)
