"""Q-networks: the dueling architecture of Wang et al. 2016 and its single-stream baseline.

Every network's ``forward`` takes the uint8 observation as the environment gives it (scaling to
[0, 1] happens inside, so analysis differentiates with respect to the real input) and returns its
heads by name in a dict, so that ``analysis`` can differentiate any head without knowing the class.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

TORSOS = ("nature", "small")


class ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm of a convolution's output over its channels at each pixel, with a scale and a bias
    per channel: what flax's ``nn.LayerNorm()`` does on PQN's NHWC activations (purejaxql,
    ``pqn_atari.py``), which PyTorch's ``nn.LayerNorm`` on NCHW would not (it needs the last axes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def make_torso(kind: str, in_channels: int, layer_norm: bool = False) -> nn.Sequential:
    """``nature``: the Nature-DQN convolutions (Mnih et al. 2015; Wang et al. 2016, Section 4.2):
    32 8x8/4, 64 4x4/2, 64 3x3/1, ReLU. ``small``: two 3x3 convolutions for small screens (Catch).
    ``layer_norm`` puts a LayerNorm before each ReLU, as PQN's network has (Gallici et al. 2024):
    it is what keeps Q-learning stable there without a target network or a replay memory."""
    if kind == "nature":
        convs = [(in_channels, 32, 8, 4, 0), (32, 64, 4, 2, 0), (64, 64, 3, 1, 0)]
    elif kind == "small":
        convs = [(in_channels, 16, 3, 2, 1), (16, 32, 3, 2, 1)]
    else:
        raise ValueError(f"unknown torso {kind!r}; accepted: {', '.join(TORSOS)}")
    layers: list[nn.Module] = []
    for c_in, c_out, k, stride, pad in convs:
        layers.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad))
        if layer_norm:
            layers.append(ChannelLayerNorm(c_out))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers, nn.Flatten())


def hidden_layer(n_in: int, n_out: int, layer_norm: bool) -> list[nn.Module]:
    """Linear, optional LayerNorm (PQN's), ReLU."""
    return [nn.Linear(n_in, n_out), *([nn.LayerNorm(n_out)] if layer_norm else []), nn.ReLU()]


def _flat_size(torso: nn.Module, in_channels: int, height: int, width: int) -> int:
    with torch.no_grad():
        try:
            return int(torso(torch.zeros(1, in_channels, height, width)).shape[1])
        except RuntimeError:
            raise ValueError(
                f"input {in_channels}x{height}x{width} is too small for this torso"
            ) from None


class QNetwork(nn.Module):
    """Shared pieces: input checks and scaling, the architecture record saved with checkpoints."""

    def __init__(self, n_actions: int, in_channels: int, input_shape: tuple[int, int], torso: str,
                 layer_norm: bool = False):  # fmt: skip
        super().__init__()
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        self.n_actions, self.in_channels = n_actions, in_channels
        self.input_shape = tuple(input_shape)
        self.layer_norm = bool(layer_norm)
        self.torso = make_torso(torso, in_channels, self.layer_norm)
        self.flat = _flat_size(self.torso, in_channels, *self.input_shape)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        expected = (self.in_channels, *self.input_shape)
        if obs.dim() != 4 or tuple(obs.shape[1:]) != expected:
            raise ValueError(
                f"observation must have shape (batch, {', '.join(map(str, expected))}), "
                f"got {tuple(obs.shape)}"
            )
        dtype = self.torso[0].weight.dtype  # bfloat16 for a network cast to it
        x = obs.to(dtype) / 255.0 if obs.dtype == torch.uint8 else obs
        if not x.is_floating_point():
            raise ValueError(f"observation must be uint8 or float, got {obs.dtype}")
        return self.torso(x)

    def architecture(self) -> dict[str, Any]:
        raise NotImplementedError

    def layer_groups(self) -> list[tuple[str, list[nn.Module]]]:
        """The network's layers by depth, input first: each convolution (with its LayerNorm), then
        the streams' hidden layers together, then their output layers together. Parallel streams
        share a depth, which is what cascading randomisation (Adebayo et al. 2018) walks down."""
        groups: list[tuple[str, list[nn.Module]]] = []
        for m in self.torso:
            if isinstance(m, nn.Conv2d):
                groups.append((f"conv{len(groups) + 1}", [m]))
            elif isinstance(m, nn.LayerNorm):
                groups[-1][1].append(m)
        streams = [m for m in self.children() if isinstance(m, nn.Sequential) and m is not self.torso]
        hidden = [m for s in streams for m in s[:-1] if any(True for _ in m.parameters())]
        return [*groups, ("hidden", hidden), ("output", [s[-1] for s in streams])]

    def _common_architecture(self) -> dict[str, Any]:
        # layer_norm only when on: checkpoints written before the option keep their exact record
        return {
            "n_actions": self.n_actions,
            "in_channels": self.in_channels,
            "input_shape": list(self.input_shape),
            **({"layer_norm": True} if self.layer_norm else {}),
        }


class DuelingQNetwork(QNetwork):
    """Wang et al. 2016: a value stream and an advantage stream over one convolutional torso.

    ``Q = V + (A - mean_a A)`` (the paper's Eq. 9, used in all its experiments); ``aggregation="max"``
    gives Eq. 8. The gradient entering the torso from the two streams is rescaled by 1/sqrt(2)
    (Section 4.2), so the torso learns at the pace of a single-stream network.
    """

    def __init__(
        self,
        n_actions: int,
        in_channels: int = 4,
        *,
        input_shape: tuple[int, int] = (84, 84),
        hidden: int = 512,
        torso: str = "nature",
        aggregation: str = "mean",
        layer_norm: bool = False,
    ) -> None:
        super().__init__(n_actions, in_channels, input_shape, torso, layer_norm)
        if aggregation not in ("mean", "max"):
            raise ValueError(f"aggregation must be 'mean' or 'max', got {aggregation!r}")
        self.hidden, self.torso_kind, self.aggregation = hidden, torso, aggregation
        self.value_stream = nn.Sequential(
            *hidden_layer(self.flat, hidden, self.layer_norm), nn.Linear(hidden, 1)
        )
        self.advantage_stream = nn.Sequential(
            *hidden_layer(self.flat, hidden, self.layer_norm), nn.Linear(hidden, n_actions)
        )

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        h = ScaleGrad.apply(self.features(obs), 1 / math.sqrt(2))
        value = self.value_stream(h)
        advantage = self.advantage_stream(h)
        baseline = (
            advantage.mean(1, keepdim=True)
            if self.aggregation == "mean"
            else advantage.amax(1, keepdim=True)
        )
        q = value + advantage - baseline
        return {"q": q, "value": value.squeeze(1), "advantage": advantage}

    def architecture(self) -> dict[str, Any]:
        return {
            "class": "DuelingQNetwork",
            **self._common_architecture(),
            "hidden": self.hidden,
            "torso": self.torso_kind,
            "aggregation": self.aggregation,
        }


class SingleStreamQNetwork(QNetwork):
    """The paper's "Single" baseline: one stream; 1024 hidden units match the dueling network's
    parameter count (Wang et al. 2016, Section 4.2); 512 is the Nature DQN (and SB3's CnnPolicy)."""

    def __init__(
        self,
        n_actions: int,
        in_channels: int = 4,
        *,
        input_shape: tuple[int, int] = (84, 84),
        hidden: int = 1024,
        torso: str = "nature",
        layer_norm: bool = False,
    ) -> None:
        super().__init__(n_actions, in_channels, input_shape, torso, layer_norm)
        self.hidden, self.torso_kind = hidden, torso
        self.head = nn.Sequential(
            *hidden_layer(self.flat, hidden, self.layer_norm), nn.Linear(hidden, n_actions)
        )

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"q": self.head(self.features(obs))}

    def architecture(self) -> dict[str, Any]:
        return {
            "class": "SingleStreamQNetwork",
            **self._common_architecture(),
            "hidden": self.hidden,
            "torso": self.torso_kind,
        }


def build_q_network(cfg: Any, n_actions: int, obs_shape: tuple[int, ...]) -> QNetwork:
    """The dueling network (or the single-stream baseline) that ``cfg`` asks for; the small torso
    for screens under 64 pixels wide (Catch), the Nature torso otherwise."""
    torso = "small" if obs_shape[-1] < 64 else "nature"
    common = dict(in_channels=obs_shape[0], input_shape=tuple(obs_shape[1:]), torso=torso,
                  layer_norm=cfg.layer_norm)  # fmt: skip
    if cfg.network == "dueling":
        return DuelingQNetwork(
            n_actions, hidden=cfg.hidden or 512, aggregation=cfg.aggregation, **common
        )
    return SingleStreamQNetwork(n_actions, hidden=cfg.hidden or 1024, **common)
