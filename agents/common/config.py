"""Configs of trainers and scripts: limits declared on the fields, one check for every field, the
fields every trainer has, and presets as data.

A field's limit is part of its type, ``total_steps: PositiveInt``, so that it is written once, read
by :func:`check_config` for every trainer and every script's flags, and never drifts from a
hand-written check elsewhere. Every refusal is one line in one style, naming the flag, what it
accepts and what it got: ``--hidden must be >= 1 (got -1)``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import torch

from agents.common.checkpoint import resume_config
from agents.common.precision import with_resolved_precision
from agents.common.resources import require_memory
from envs import resolve_game

C = TypeVar("C", bound="TrainConfig")


@dataclass(frozen=True)
class Range:
    """The numbers a field accepts: ``ge``/``gt`` below, ``le``/``lt`` above (None: unbounded)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def admits(self, value: float) -> bool:
        low = (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
        return low and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt)

    def __str__(self) -> str:
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]


PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Probability = Annotated[float, Range(ge=0, le=1)]
"""A probability or a fraction: epsilon, lambda, a share of the budget."""
Precision = Literal["fp32", "bf16", "auto"]


def flag(name: str) -> str:
    """The command-line flag of a config field: ``total_steps`` -> ``--total-steps``."""
    return "--" + name.replace("_", "-")


def refuse(name: str, accepted: str, value: Any) -> ValueError:
    """The one message style of a refused value: ``--hidden must be >= 1 (got -1)``."""
    return ValueError(f"{flag(name)} must be {accepted} (got {value!r})")


def check_config(cfg: Any) -> None:
    """Refuse, in one line, the first field of ``cfg`` (a dataclass: a trainer's config or a
    script's flags) whose value is of the wrong kind (a string where a number goes, a bool where an
    integer goes, a choice outside its ``Literal``), not finite, or outside the :class:`Range` its
    type declares. No field takes infinity or NaN: ``inf`` slips past a check written ``> 0`` and
    ``nan`` past most others, and either trains a network to NaN weights or breaks a video writer
    (``--time-limit 0`` is the one "no limit", and it says so)."""
    hints = typing.get_type_hints(type(cfg), include_extras=True)
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        kind, limits = _unpack(hint)
        for number in _floats(value, kind):
            if not math.isfinite(number):
                raise refuse(f.name, "a finite number", number)
        _check_kind(f.name, value, kind)
        for limit in limits:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not limit.admits(value):
                raise refuse(f.name, str(limit), value)


def _unpack(hint: Any) -> tuple[Any, list[Range]]:
    """A field's type without ``Annotated``, and the ranges it declares (an optional field's too:
    ``PositiveInt | None`` checks a number and lets None pass)."""
    if typing.get_origin(hint) is Annotated:
        kind, *extras = typing.get_args(hint)
        return kind, [e for e in extras if isinstance(e, Range)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return hint, [r for member in typing.get_args(hint) for r in _unpack(member)[1]]
    return hint, []


def _check_kind(name: str, value: Any, kind: Any) -> None:
    if typing.get_origin(kind) is Literal:
        if value not in typing.get_args(kind):
            raise refuse(name, "one of " + ", ".join(map(str, typing.get_args(kind))), value)
    elif kind is bool and not isinstance(value, bool):
        raise refuse(name, "true or false", value)
    elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise refuse(name, "an integer", value)
    elif kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise refuse(name, "a number", value)
    elif kind is str and not isinstance(value, str):
        raise refuse(name, "a string", value)


def _floats(value: Any, kind: Any) -> list[float]:
    """The floats that a field of type ``kind`` holds: ``float``, ``float | None``, and tuples or
    lists of floats (``--epsilons 0 2 inf``)."""
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    found = []
    for k in typing.get_args(kind) if union else (kind,):
        k = _unpack(k)[0]
        if k is float and isinstance(value, float):
            found.append(value)
        elif typing.get_origin(k) in (tuple, list) and isinstance(value, (tuple, list)):
            found += [v for v in value if isinstance(v, float)]
    return found


@dataclass
class TrainConfig:
    """The fields every trainer's config has, with their limits; each trainer's config extends it
    and sets its own defaults (those of its paper), documented where it declares them.

    ``PRESETS`` are the trainer's per-game overrides of those defaults, as data: ``"catch"`` for the
    Catch game, ``"atari"`` for every Atari game, or a game's own name (``"breakout"``), which is
    applied after ``"atari"``. :meth:`for_game` builds a config from them, and ``attn train`` starts
    from it, so ``--help`` shows the game's defaults and every flag overrides them."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    game: str = "pong"
    """Atari game (pong, Pong, ALE/Pong-v5 ...) or 'catch' for the 24x24 Catch game."""
    seed: int = 1
    """Seed for the network, exploration, sampling and the environments."""
    exp_name: str = "run"
    """Experiment name used in the run directory's name."""
    total_steps: PositiveInt = 10_000_000
    """Environment steps over all envs (agent steps: 4 frames each on Atari)."""
    num_envs: PositiveInt = 8
    """Parallel environments; acting is batched over them."""
    learning_rate: PositiveFloat = 1e-4
    """Learning rate of the optimizer."""
    gamma: Probability = 0.99
    """Discount."""
    max_grad_norm: PositiveFloat = 10.0
    """Gradient-norm clip."""
    hidden: NonNegativeInt = 0
    """Units of the network's hidden layer."""
    catch_miss_reward: float = 0.0
    """Catch only: reward for a miss (0 as in Mnih et al. 2014; -1 is the common variant)."""
    life_loss_info: bool = False
    """Atari only: a life loss is terminal for the targets while the game, and its logged return,
    go on (DeepMind's 'terminal on life loss')."""
    time_limit: NonNegativeFloat = 0.0
    """Seconds of training after which the run stops at the next update, with a final checkpoint
    (0: no limit). How a run fits a fixed window of machine time."""
    save_every: PositiveInt = 250_000
    """Environment steps between checkpoints (one is also written at the end and on Ctrl-C)."""
    keep_checkpoints: NonNegativeInt = 3
    """Newest checkpoints kept; older ones are deleted (0 keeps all, for saliency over training)."""
    run_dir: str = ""
    """Run directory; empty picks runs/<game>__<exp_name>__<seed>__<timestamp>."""
    resume: str = ""
    """Run directory to resume from its latest checkpoint (its config is reused)."""
    precision: Precision = "auto"
    """Arithmetic of the network passes: fp32, bf16 (bfloat16 matmuls and convolutions; the weights
    the optimizer steps, its state and the checkpoints stay float32) or auto (the trainer's choice
    for this machine). A resumed run keeps its own."""
    threads: NonNegativeInt = 0
    """Torch CPU threads (0: torch's default)."""
    log_every: PositiveInt = 10_000
    """Environment steps between scalar logs."""
    progress: bool = True
    """Show a progress bar."""

    SESSION: ClassVar[tuple[str, ...]] = ("progress", "threads", "time_limit")
    """Fields of this invocation, not of the run: a resume takes them from the command line."""
    BUDGET: ClassVar[tuple[str, ...]] = ("total_steps", "save_every", "log_every", "keep_checkpoints")
    """Fields a resume may change when the command line names them (a longer run, say)."""
    AUTO_BF16: ClassVar[bool] = True
    """Whether ``--precision auto`` is bf16 on a machine that runs it (else fp32 everywhere)."""

    @classmethod
    def for_game(cls: type[C], game: str, preset: str = "", **overrides: Any) -> C:
        """The config ``attn train --game GAME`` starts from: the class defaults, then the game's
        presets (``"catch"`` or ``"atari"``, then the game's own name, then ``preset``), then
        ``overrides``."""
        catch = game.lower() == "catch"
        names = ["catch"] if catch else ["atari", game.lower()]
        if preset:
            if preset not in cls.PRESETS:
                known = ", ".join(sorted(k for k in cls.PRESETS if k not in ("catch", "atari")))
                raise ValueError(f"unknown preset {preset!r}; known: {known or 'none'}")
            names.append(preset)
        fields: dict[str, Any] = {}
        for name in names:
            fields.update(cls.PRESETS.get(name, {}))
        return cls(**{**fields, "game": game, **overrides})

    def is_catch(self) -> bool:
        return self.game.lower() == "catch"

    def validate(self) -> None:
        """Refuse a bad value before any environment or network is built: every field's kind and
        limit (:func:`check_config`), the game's name and the memory the run needs; trainers add
        the checks that relate fields to each other."""
        check_config(self)
        if not self.is_catch():
            resolve_game(self.game)
        require_memory(self.memory_needed())

    def memory_needed(self) -> dict[str, tuple[int, str]]:
        """The large allocations of a run and the flags that size them, for ``require_memory``
        (``agents.common.resources``) to refuse a run this machine cannot hold, before it starts."""
        return {}

    def default_run_dir(self) -> str:
        """``runs/<game>__<exp_name>__<seed>__<timestamp>``, the game by its ROM's name."""
        game = "catch" if self.is_catch() else resolve_game(self.game)
        return f"runs/{game}__{self.exp_name}__{self.seed}__{int(time.time())}"

    def prepare(self: C, given: Collection[str] = ()) -> tuple[C, Path | None]:
        """The config a trainer runs with, validated, and the checkpoint it resumes from (None for
        a new run). A resume takes the run's saved config with this invocation's ``SESSION``
        fields and the ``BUDGET`` fields that ``given`` (the flags on the command line) names,
        and refuses any other change by name (``resume_config``). ``auto`` precision is resolved
        so that config.json records what ran; given on a resume, it means what auto runs here.
        The thread count is set here, before any network is built."""
        cfg, resume_from = self, None
        if "precision" in given:
            cfg = with_resolved_precision(cfg, cfg.AUTO_BF16)
        if cfg.resume:
            resume_from, fields = resume_config(cfg, session=cfg.SESSION, budget=cfg.BUDGET, given=given)
            cfg = type(cfg)(**fields)
        cfg = with_resolved_precision(cfg, cfg.AUTO_BF16)
        cfg.validate()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return cfg, resume_from
