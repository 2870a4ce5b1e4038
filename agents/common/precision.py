"""Which arithmetic a trainer's network passes run in (``--precision``), and the bfloat16 copy of
a network that runs them on a CPU.

On a CPU with AMX or AVX-512 BF16, oneDNN runs bfloat16 convolutions and matmuls on the AMX tiles
(``brg_conv_fwd:avx10_1_512_amx`` in its verbose log). Autocast gets there by casting every
weight to bfloat16 at every pass and running LayerNorm in float32 between them, and those casts
cost more than the tiles gave back (docs/benchmarks.md). :class:`Bf16Copy` instead keeps a
bfloat16 copy of the weights beside the float32 ones: the passes run on the copy, its gradients
are copied into the float32 network, the optimizer steps the float32 weights, and the copy is
refreshed from them. Float32 stays where precision matters: the weights the optimizer
updates and its state, LayerNorm's statistics and parameters, the output layers (so the Q-values,
the targets built from them and the loss), and every checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.common.training import check_device, resolve_device

PRECISIONS = ("fp32", "bf16", "auto")


def cpu_supports_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively, AVX-512 BF16 or the AMX tiles (the flags Linux
    lists in /proc/cpuinfo), where oneDNN's bfloat16 convolutions and matmuls beat float32's."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def resolve_precision(precision: str, device: str, auto_bf16: bool = True) -> str:
    """``fp32`` or ``bf16``, what ``--precision`` means on ``device``: ``auto`` is bf16 on a CUDA
    device or a CPU that runs it natively (:func:`cpu_supports_bf16`) and fp32 elsewhere, or fp32
    everywhere for a trainer whose passes bf16 did not make faster (``auto_bf16=False``); bf16
    asked where it cannot run natively is one line, not a slow emulation."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    check_device(device)
    native = resolve_device(device).type == "cuda" or cpu_supports_bf16()
    if precision == "auto":
        return "bf16" if native and auto_bf16 else "fp32"
    if precision == "bf16" and not native:
        raise ValueError("--precision bf16 needs a CPU with AVX-512 BF16 or AMX, or a CUDA device, "
                         "and this CPU has neither; use --precision fp32 (auto picks it here)")  # fmt: skip
    return precision


def with_resolved_precision(cfg: Any, auto_bf16: bool = True) -> Any:
    """``cfg`` with ``auto`` replaced by the precision this machine runs, so that the run's
    config.json records what it trained with and a resume elsewhere keeps it."""
    device = getattr(cfg, "device", "cpu")
    return dataclasses.replace(cfg, precision=resolve_precision(cfg.precision, device, auto_bf16))


def _to_float(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


class Bf16Copy:
    """A bfloat16 copy of ``master`` for its forward and backward passes; ``master`` keeps the
    float32 weights that the optimizer steps and the checkpoints save (see the module's docstring).

    LayerNorms and the modules in ``keep_float`` stay float32 in the copy: LayerNorm takes the
    bfloat16 activations as they are (PyTorch's mixed-type kernel, statistics in float32), the
    others get their inputs cast up. Call :meth:`to_master` after a backward pass, before the
    optimizer's step, and :meth:`refresh` after it (and after loading weights into ``master``)."""

    def __init__(self, master: nn.Module, keep_float: Iterable[nn.Module] = ()) -> None:
        kept = {id(m) for m in keep_float}
        self.master = master
        self.net = copy.deepcopy(master)
        for original, module in zip(master.modules(), self.net.modules(), strict=True):
            if id(original) in kept:
                module.register_forward_pre_hook(_to_float)
            elif not isinstance(module, nn.LayerNorm) and not any(True for _ in module.children()):
                module.to(torch.bfloat16)
        self._params = list(self.net.parameters())
        self._master_params = list(master.parameters())

    @torch.no_grad()
    def refresh(self) -> None:
        """Round the float32 weights into the copy."""
        torch._foreach_copy_(self._params, self._master_params)

    def zero_grad(self) -> None:
        for p in self._params:
            p.grad = None

    @torch.no_grad()
    def to_master(self) -> None:
        """The copy's gradients into the float32 network's (float32 ``.grad`` tensors)."""
        pairs = [(m, p.grad) for m, p in zip(self._master_params, self._params, strict=True)
                 if p.grad is not None]  # fmt: skip
        for m, _ in pairs:
            if m.grad is None:
                m.grad = torch.zeros_like(m)
        torch._foreach_copy_([m.grad for m, _ in pairs], [g for _, g in pairs])


def bf16_copy_for(network: nn.Module, precision: str, device: torch.device,
                  keep_float: Iterable[nn.Module] = ()) -> Bf16Copy | None:  # fmt: skip
    """The :class:`Bf16Copy` that runs ``network``'s passes for ``--precision bf16`` on a CPU, or
    None: float32, or CUDA, where bf16 is autocast (the copy has not been measured on a GPU)."""
    if precision == "bf16" and device.type == "cpu":
        return Bf16Copy(network, keep_float)
    return None


def gradient_step(loss: torch.Tensor, network: nn.Module, optimizer: torch.optim.Optimizer,
                  max_grad_norm: float, bf16_copy: Bf16Copy | None = None) -> None:  # fmt: skip
    """Backward, the gradient-norm clip and the optimizer's step on ``network``'s float32 weights;
    with ``bf16_copy``, ``loss`` came from the copy's pass: its gradients are moved into
    ``network`` first and the copy is refreshed after. Device work only, no host sync (a CUDA
    graph can capture it)."""
    if bf16_copy is None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    else:
        bf16_copy.zero_grad()
        loss.backward()
        bf16_copy.to_master()
    torch.nn.utils.clip_grad_norm_(network.parameters(), max_grad_norm, foreach=True)
    optimizer.step()
    if bf16_copy is not None:
        bf16_copy.refresh()
