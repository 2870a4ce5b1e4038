"""Rebuilding a network from the architecture record a checkpoint keeps beside its weights: the
registered classes (``agents.common.registry``), by name, so that loading reads JSON and never
executes code from a file."""

from __future__ import annotations

from typing import Any

from torch import nn

from agents.common.registry import NETWORKS


def build_network(architecture: dict[str, Any]) -> nn.Module:
    """Rebuild a network from its ``architecture()`` record (as saved in a checkpoint)."""
    arch = dict(architecture)
    cls = NETWORKS.get(arch.pop("class", None))
    if cls is None:
        raise ValueError(
            f"unknown network class {architecture.get('class')!r}; known: {', '.join(NETWORKS)}"
        )
    if "input_shape" in arch:  # JSON has no tuples
        arch["input_shape"] = tuple(arch["input_shape"])
    return cls(**arch)
