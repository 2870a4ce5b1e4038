"""A training step, and the acting pass, captured once as CUDA graphs and replayed, for small
networks on a fast GPU.

PQN's minibatch update on an H200 took 4.9 ms where its arithmetic needs about 0.1 ms: the host
launching a few hundred small kernels one by one (docs/benchmarks.md, "PQN with --device cuda").
A CUDA graph launches them all at once. It replays fixed memory, so the step reads its inputs from
tensors that never move (the rollout buffers, an index tensor that is copied into) and the
optimizer keeps its step count and learning rate on the device (``capturable=True``, a tensor
``lr``). This follows PyTorch's whole-network capture recipe (torch.cuda.graphs, "CUDA Graphs" in
the CUDA semantics notes): warm-up steps on a side stream, then one captured step.

The warm-up steps are real optimizer steps. They are undone in place (the weights, the moments and
the step counts keep their addresses, which the graph records), so capturing changes no result.

Acting was launch-bound too: 2.2 ms for one forward pass over 128 observations. With env groups
(``envs.groups``) it is what the emulators wait for, so :class:`GraphedForward` replays it as well.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch


def warm_up(fn: Callable[[torch.Tensor], Any], arg: torch.Tensor, steps: int, capture: bool) -> None:
    """``steps`` calls before a capture, on a side stream when capturing (the recipe's warm-up)."""
    stream = torch.cuda.Stream() if capture else None
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream) if stream is not None else nullcontext():
        for _ in range(steps):
            fn(arg)
    if stream is not None:
        torch.cuda.current_stream().wait_stream(stream)


def captured(fn: Callable[[torch.Tensor], Any], arg: torch.Tensor,
             capture: bool) -> tuple[torch.cuda.CUDAGraph | None, Any]:  # fmt: skip
    """``fn(arg)`` captured as a graph, with what the captured call returned (its outputs, which
    each replay overwrites); ``(None, None)`` without capture."""
    if not capture:
        return None, None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(arg)
    return graph, out


class GraphedStep:
    """``step(idx)``: run ``fn(idx)`` (forward, backward, optimizer step: one training step that
    reads its data through the index tensor ``idx``) as a replayed CUDA graph.

    ``capture=False`` keeps everything but the graph itself: the warm-up and its undoing run, and
    each call runs ``fn`` eagerly. That is how the CPU tests check that capturing leaves training
    unchanged; the graph needs CUDA.
    """

    def __init__(
        self, fn: Callable[[torch.Tensor], None], idx: torch.Tensor, optimizer: torch.optim.Optimizer,
        warmup: int = 3, capture: bool = True,
    ) -> None:  # fmt: skip
        self.fn = fn
        self.idx = idx.clone()  # the graph reads its indices here; calls copy into it
        params = [p for group in optimizer.param_groups for p in group["params"]]
        saved_params = [p.detach().clone() for p in params]
        saved_state = {p: {k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)}
                       for p in params if p in optimizer.state}  # fmt: skip
        warm_up(fn, self.idx, warmup, capture)  # creates the optimizer state and the workspaces
        with torch.no_grad():  # undo the warm-up in place: the graph records these addresses
            for p, saved in zip(params, saved_params, strict=True):
                p.copy_(saved)
            for p in params:
                for k, v in optimizer.state[p].items():
                    if torch.is_tensor(v) and p in saved_state:
                        v.copy_(saved_state[p][k])
                    elif torch.is_tensor(v):  # state made by the warm-up: a fresh one is zeros
                        v.zero_()
        optimizer.zero_grad(set_to_none=True)  # backward allocates the gradients inside the graph
        self.graph, _ = captured(fn, self.idx, capture)

    def __call__(self, idx: torch.Tensor) -> None:
        self.idx.copy_(idx)
        if self.graph is not None:
            self.graph.replay()
        else:
            self.fn(self.idx)



class GraphedForward:
    """``forward(x)`` for inputs of one shape (the observations of one env group) replayed as a
    CUDA graph: ``x`` is copied into a tensor the graph reads, and the result is the graph's own
    output tensor, overwritten by the next call, so it must be used before that. ``fn`` must not
    record gradients (call it under ``torch.no_grad()``). The weights are read where they are, so
    each replay sees the latest update. ``capture=False`` runs ``fn`` eagerly on the same copied
    input (the CPU tests)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor,
                 warmup: int = 3, capture: bool = True) -> None:  # fmt: skip
        self.fn = fn
        self.input = example.clone()
        warm_up(fn, self.input, warmup, capture)
        self.graph, self.output = captured(fn, self.input, capture)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.input.copy_(x)
        if self.graph is None:
            return self.fn(self.input)
        self.graph.replay()
        return self.output
