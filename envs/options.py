"""Preprocessing options shared by the single and the vector Atari environment.

The names and defaults are exactly those of ``ale_py.vector_env.AtariVectorEnv`` (ale-py 0.11+), so
that a user of ALE reads the same words here; sticky actions default to 0.0 as in that constructor
(and in the Dueling paper's tables), not 0.25 as ``gymnasium.make("ALE/...-v5")`` applies.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AtariOptions:
    """The DQN preprocessing (Mnih et al. 2015), one field per ``AtariVectorEnv`` keyword."""

    noop_max: int = 30
    """Up to this many no-op actions after reset (uniform in [0, noop_max - 1])."""
    frameskip: int = 4
    """Emulator frames per agent step; the action repeats on each."""
    stack_num: int = 4
    """Frames stacked into one observation."""
    img_height: int = 84
    """Observation height after INTER_AREA resizing."""
    img_width: int = 84
    """Observation width after INTER_AREA resizing."""
    grayscale: bool = True
    """Grayscale (one channel per frame); RGB adds a trailing axis of 3."""
    maxpool: bool = True
    """Pixel-wise max over the last two frames of a skip (removes Atari sprite flicker)."""
    episodic_life: bool = False
    """A life loss ends the episode; ALE then resets the whole game on the next reset."""
    life_loss_info: bool = False
    """A life loss sets ``terminated`` but the game goes on (DeepMind's 'terminal on life loss')."""
    reward_clipping: bool = True
    """Clip each step's reward to {-1, 0, 1} (trainers keep it off and clip themselves)."""
    use_fire_reset: bool = True
    """Press FIRE after reset in games that have it (Breakout needs it to start)."""
    repeat_action_probability: float = 0.0
    """Sticky actions (Machado et al. 2018 use 0.25)."""
    full_action_space: bool = False
    """All 18 actions instead of the game's minimal set."""
    max_num_frames_per_episode: int = 108_000
    """Episode cap in emulator frames (30 minutes at 60 Hz, the evaluation cap of the papers)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be True or False, got {value!r}")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{f.name} must be an integer, got {value!r}")
        for name in ("frameskip", "stack_num", "img_height", "img_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noop_max < 0:
            raise ValueError(f"noop_max must be >= 0, got {self.noop_max}")
        if self.max_num_frames_per_episode < 1:
            raise ValueError(
                f"max_num_frames_per_episode must be >= 1, got {self.max_num_frames_per_episode}"
            )
        p = self.repeat_action_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"repeat_action_probability must be in [0, 1], got {p!r}")

    @classmethod
    def from_kwargs(cls, **options: Any) -> AtariOptions:
        """Validate user keywords; an unknown name raises with the accepted names."""
        known = [f.name for f in dataclasses.fields(cls)]
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"unknown Atari option {name!r}; {hint}accepted: {', '.join(known)}"
                )
        return cls(**options)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
