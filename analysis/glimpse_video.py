"""Videos of where a glimpse agent looks: the full-resolution frame with each scale's box at the
glimpse location and the trail of recent locations, beside the patches exactly as the agent saw
them -- hard attention needs no saliency estimate, the agent's input *is* the explanation."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from agents.glimpse import GlimpsePolicy, RecurrentAttentionModel
from analysis.render import hud_strip
from analysis.video import VideoWriter, check_writable
from envs import FireAfterLifeLoss

# one colour per scale, finest first (RGB): green, yellow, orange, red, magenta
SCALE_COLOURS = [(60, 220, 60), (240, 220, 40), (255, 140, 0), (230, 40, 40), (220, 60, 220)]


def load_glimpse_agent(checkpoint: str) -> tuple[RecurrentAttentionModel, dict[str, Any]]:
    """The model and config of a glimpse checkpoint; any other checkpoint is refused in one line
    that names the script that fits it."""
    from agents.common.checkpoint import load_checkpoint, read_json, resolve_checkpoint

    if str(checkpoint).endswith(".zip"):
        raise ValueError(f"{checkpoint!r} is an SB3 zip; draw its saliency with "
                         "scripts/record_saliency.py")  # fmt: skip
    agent = read_json(resolve_checkpoint(checkpoint) / "config.json").get("agent")
    if agent != "glimpse":
        raise ValueError(f"{checkpoint!r} is a {agent or 'dqn'!r} checkpoint, not a glimpse agent; "
                         "draw its value and advantage saliency with scripts/record_saliency.py")  # fmt: skip
    return load_checkpoint(checkpoint)  # type: ignore[return-value]


@dataclass
class GlimpseStep:
    t: int
    episode: int
    screen: np.ndarray  # (H, W, 3) uint8 full-resolution frame the agent looked at
    locations: torch.Tensor  # (glimpses, 2) locations looked at this step
    patches: torch.Tensor  # (glimpses, scales, C, p, p) what the retina returned
    action: int
    heads: dict[str, np.ndarray]
    score: float


def play_glimpses(model: RecurrentAttentionModel, config: dict[str, Any], steps: int | None = None,
                  episodes: int | None = None, seed: int = 0,
                  greedy: bool = True) -> Iterator[GlimpseStep]:  # fmt: skip
    """Play one env with the agent until ``steps`` steps or ``episodes`` episodes."""
    from analysis.playback import Moment, play_episodes, playback_env

    env = playback_env(config, seed)
    policy = GlimpsePolicy.for_checkpoint(model, config, 1, greedy=greedy)
    torch.manual_seed(seed)
    fire = None

    def act(m: Moment) -> tuple[int, GlimpseStep]:
        action = int(fire.actions(np.asarray(policy(torch.from_numpy(m.obs[None]))[0])))
        heads = {k: v[0].cpu().numpy() for k, v in policy.heads.items()}
        return action, GlimpseStep(m.t, m.episode, env.rgb_frame(), policy.locations[:, 0],
                                   policy.patches[:, 0], action, heads, m.score)  # fmt: skip

    def on_reset(info: dict[str, Any]) -> None:
        nonlocal fire
        fire = FireAfterLifeLoss.for_checkpoint(config, info)  # the game the agent learnt
        policy.reset()

    yield from play_episodes(env, act, steps, episodes, seed=seed, on_reset=on_reset,
                             on_step=lambda _a, _r, ended, info: fire.observe(info, ended))  # fmt: skip


def draw_glimpse(step: GlimpseStep, retina, trail: list[tuple[int, int]], action_names: list[str],
                 height: int = 420) -> np.ndarray:  # fmt: skip
    """One video frame: the screen with boxes and trail, the patches, and a heads-up strip."""
    h, w = step.screen.shape[:2]
    k = max(1, round(height / h))
    screen = cv2.resize(step.screen, (w * k, h * k), interpolation=cv2.INTER_NEAREST)
    screen = (screen * 0.8).astype(np.uint8)
    for i, (row, col) in enumerate(trail):  # older locations fainter
        shade = int(80 + 175 * (i + 1) / len(trail))
        centre = (col * k + k // 2, row * k + k // 2)
        if i:
            prev = (trail[i - 1][1] * k + k // 2, trail[i - 1][0] * k + k // 2)
            cv2.line(screen, prev, centre, (shade, shade, 255), 1, cv2.LINE_AA)
        cv2.circle(screen, centre, 2, (shade, shade, 255), -1, cv2.LINE_AA)
    rows, cols = retina.centres(step.locations, h, w)
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        for s, size in enumerate(retina.sizes):
            top, left = (row - size // 2) * k, (col - size // 2) * k
            colour = SCALE_COLOURS[s % len(SCALE_COLOURS)]
            cv2.rectangle(screen, (left, top), (left + size * k - 1, top + size * k - 1), colour, 1)
    # the patches of the last glimpse, finest on top, each as large as the screen's height allows
    patches = step.patches[-1].mean(1).clamp(0, 1).numpy()  # (scales, p, p), channels averaged
    side = screen.shape[0] // len(patches)
    tiles = []
    for s, patch in enumerate(patches):
        grey = cv2.resize((patch * 255).astype(np.uint8), (side - 4, side - 4),
                          interpolation=cv2.INTER_NEAREST)  # fmt: skip
        tile = np.zeros((side, side, 3), np.uint8)
        tile[:] = SCALE_COLOURS[s % len(SCALE_COLOURS)]
        tile[2:-2, 2:-2] = grey[..., None]
        tiles.append(tile)
    column = np.concatenate(tiles, axis=0)
    column = np.pad(column, ((0, screen.shape[0] - column.shape[0]), (0, 0), (0, 0)))
    frame = np.concatenate([screen, column], axis=1)
    x, y = step.locations[-1].tolist()
    name = action_names[step.action] if step.action < len(action_names) else str(step.action)
    return hud_strip(frame, [
        f"step {step.t}  episode {step.episode}  score {step.score:g}",
        f"action {name}  glimpse ({x:+.2f}, {y:+.2f})  baseline {float(step.heads['baseline']):+.2f}",
    ])  # fmt: skip


def record_glimpses(model: RecurrentAttentionModel, config: dict[str, Any], out: str | Path,
                    steps: int | None = None, episodes: int | None = None, seed: int = 0,
                    fps: float = 10.0, height: int = 420, trail: int = 8, greedy: bool = True,
                    progress: bool = True) -> tuple[Path, list[GlimpseStep]]:  # fmt: skip
    """Write the video; returns its path and the steps played (for the sequential Jacobian)."""
    from tqdm import tqdm

    out = check_writable(out)
    recent: collections.deque[tuple[int, int]] = collections.deque(maxlen=max(1, trail))
    played: list[GlimpseStep] = []
    names = config.get("action_set") or [str(i) for i in range(model.config["n_actions"])]
    bar = tqdm(total=steps, unit="step", desc="recording", disable=not progress)
    with VideoWriter(out, fps) as video:
        for step in play_glimpses(model, config, steps, episodes, seed, greedy):
            if played and step.episode != played[-1].episode:
                recent.clear()  # a new episode: no trail from the last one
            h, w = step.screen.shape[:2]
            rows, cols = model.retina.centres(step.locations, h, w)
            recent.extend(zip(rows.tolist(), cols.tolist(), strict=True))
            video.write(draw_glimpse(step, model.retina, list(recent), names, height))
            played.append(step)
            bar.update(1)
    bar.close()
    return out, played


def check_jacobian_head(model: RecurrentAttentionModel, head: str) -> None:
    """One line, before anything is played, for a head the agent does not have."""
    with torch.no_grad():
        heads = model.heads_of(torch.zeros(1, model.action_head.in_features))
    if head not in heads:
        raise ValueError(f"--jacobian-head {head!r} is not a head of this agent; it has: "
                         f"{', '.join(heads)}")  # fmt: skip


def episode_jacobian(model: RecurrentAttentionModel, played: list[GlimpseStep], head: str = "action_logits",
                     max_steps: int = 200):  # fmt: skip
    """The sequential Jacobian of the first recorded episode (at most ``max_steps`` core steps)
    with respect to the glimpse input x_t, the patches the agent saw. Its time is the core's: with
    several glimpses per agent step, every glimpse is a time step."""
    from analysis.sequential import sequential_jacobian

    steps = [s for s in played if s.episode == played[0].episode]
    patches = torch.cat([s.patches for s in steps])[:max_steps]  # (T, scales, C, p, p)
    locations = torch.cat([s.locations for s in steps])[:max_steps]
    glimpses = len(steps[0].locations)

    def step_fn(x, state):  # the state carries the time index, to look up where x_t was taken
        t, core = state
        heads, core = model.step_patches(x, locations[t][None], core)
        if (t + 1) % glimpses == 0:  # the agent acted after its last glimpse of the step
            core = model.record_action(core, torch.tensor([steps[t // glimpses].action]))
        return heads, (t + 1, core)

    return sequential_jacobian(step_fn, patches, (0, model.initial_state(1)), head)
