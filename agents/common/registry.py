"""What each agent package makes known to the rest of the suite, so that ``agents/common`` imports
no concrete agent: its networks (a checkpoint names its network's class, and loading rebuilds it
from JSON, never from code in a file), the policy that plays its checkpoints, and its trainer (the
sweeps build one by name). Each package registers its parts when it is imported, and
``agents/__init__.py`` imports every package, so that any ``import agents...`` fills the registry."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from torch import nn

if TYPE_CHECKING:
    from agents.common.run import Trainer

N = TypeVar("N", bound=type[nn.Module])

NETWORKS: dict[str, type[nn.Module]] = {}
POLICIES: dict[str, Callable[..., Any]] = {}  # agent name -> (network, config, envs, greedy) -> policy


@dataclass(frozen=True)
class TrainerKind:
    """A trainer the sweeps can build: its config and trainer classes, named by module so that the
    imports wait until a trial needs them (in the Ray worker that runs it)."""

    module: str
    config: str
    trainer: str

    def config_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.config)

    def preset(self, game: str, **fields: Any) -> Any:
        """The config ``attn train NAME --game GAME`` starts from (the game's preset: a swept
        ``preset`` field picks the glimpse agent's), with ``fields`` on top."""
        return self.config_class().for_game(game, **fields)

    def build(self, cfg: Any, callbacks: list[Any], given: Collection[str] = ()) -> Trainer:
        """The trainer of ``cfg``; ``given``: the flags on the command line, for a resume."""
        cls = getattr(importlib.import_module(self.module), self.trainer)
        return cls(cfg, callbacks=callbacks, given=given)


TRAINERS: dict[str, TrainerKind] = {}


def register_network(cls: N) -> N:
    """Class decorator: checkpoints that name ``cls`` are rebuilt with it."""
    NETWORKS[cls.__name__] = cls
    return cls


def register_policy(agent: str, make: Callable[..., Any]) -> None:
    """``make(network, config, num_envs, greedy)`` plays the checkpoints whose config says
    ``"agent": agent``; a Q-network needs none (it acts greedily on its Q-values)."""
    POLICIES[agent] = make


def register_trainer(name: str, module: str, config: str, trainer: str) -> None:
    TRAINERS[name] = TrainerKind(module, config, trainer)
