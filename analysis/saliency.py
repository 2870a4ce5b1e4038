"""Saliency: where a network's output is sensitive to its input pixels.

* :func:`jacobian_saliency` -- ``|d head / d input|`` (Simonyan et al. 2013), one backward pass for a
  whole batch. Any head the network's ``forward`` returns by name can be differentiated; for a vector
  head the default output is the paper's choice, the component of ``argmax`` of that head (Wang et
  al. 2016, Fig. 2: the advantage of ``argmax_a A(s, a)``).
* :func:`perturbation_saliency` -- Greydanus et al. 2018: blur a Gaussian patch of the input and
  measure how much the head moves, ``1/2 ||f(I) - f(I')||^2``.
* :func:`attribute` -- any of :data:`METHODS` by name: the two above, and SmoothGrad (Smilkov et al.
  2017), Integrated Gradients (Sundararajan et al. 2017) and gradient x input (Shrikumar et al.
  2016) through captum, each batched (one call per batch, not per frame).
* ``lrp`` -- layer-wise relevance propagation (Bach et al. 2015), epsilon rule, through captum's
  :class:`captum.attr.LRP`, on each stream of our Q networks (:class:`LRPStream`).
* :func:`to_frame` -- carry an 84x84 map back onto the 210x160 game screen.

Gradients are taken with respect to the network's float input, i.e. the uint8 observation divided by
255, the scale our networks and SB3's use internally. Networks must be free of cross-sample
interactions (no batch norm in training mode) for the batched backward pass to equal per-sample ones.
"""

from __future__ import annotations

import copy
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
from torch import nn

ActionSpec = int | torch.Tensor | np.ndarray | Literal["argmax", "all"] | None
Method = Literal["jacobian", "smoothgrad", "integrated_gradients", "gradient_x_input", "perturbation", "lrp"]
METHODS: tuple[str, ...] = typing.get_args(Method)


@dataclass
class SaliencyMaps:
    """Saliency of one head for a batch.

    ``per_frame``: (B, stack, H, W) -- one map per stacked frame (None for the perturbation method,
    which blurs all stacked frames at once); ``combined``: (B, H, W) -- their sum (the whole
    observation's sensitivity); ``actions``: which component of a vector head was differentiated,
    per sample (None for a scalar head, or a perturbation map, which scores the whole head vector).
    With ``action="all"`` every array gains an action axis after the batch axis.
    """

    head: str
    per_frame: np.ndarray | None
    combined: np.ndarray
    actions: np.ndarray | None
    method: str = "jacobian"


def heads_of(model: nn.Module, obs: torch.Tensor) -> Mapping[str, torch.Tensor]:
    out = model(obs)
    if not isinstance(out, Mapping):
        raise TypeError(
            f"{type(model).__name__}.forward must return its heads by name (a dict), got "
            f"{type(out).__name__}; wrap SB3 models with analysis.sb3.load_sb3"
        )
    return out


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; accepted: {', '.join(METHODS)}")
    return method


def _check_obs(obs: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(obs, np.ndarray):
        obs = torch.from_numpy(obs)
    if not isinstance(obs, torch.Tensor):
        raise TypeError(f"observation must be a tensor or numpy array, got {type(obs).__name__}")
    if obs.dim() != 4:
        raise ValueError(
            f"observation must be a batch (B, stack, H, W), got shape {tuple(obs.shape)}"
        )
    if obs.dtype == torch.uint8:
        return obs.float() / 255.0
    if not obs.is_floating_point():
        raise ValueError(f"observation must be uint8 (0-255) or float (0-1), got {obs.dtype}")
    return obs.float()


def _select(
    head: torch.Tensor, name: str, action: ActionSpec
) -> tuple[torch.Tensor, np.ndarray | None]:
    """The scalar per sample to differentiate, and the action chosen for it."""
    if head.dim() == 1:
        if not (action is None or (isinstance(action, str) and action == "argmax")):
            raise ValueError(f"head {name!r} is a scalar per sample: it takes no action")
        return head, None
    if head.dim() != 2:
        raise ValueError(f"head {name!r} has shape {tuple(head.shape)}; expected (B,) or (B, A)")
    if action is None or (isinstance(action, str) and action == "argmax"):
        idx = head.detach().argmax(1)
    elif isinstance(action, int):
        idx = torch.full((head.shape[0],), action, dtype=torch.long)
    else:
        idx = torch.as_tensor(np.asarray(action), dtype=torch.long).reshape(-1)
        if idx.shape[0] != head.shape[0]:
            raise ValueError(f"got {idx.shape[0]} actions for a batch of {head.shape[0]}")
    if (idx < 0).any() or (idx >= head.shape[1]).any():
        raise ValueError(f"actions must be in [0, {head.shape[1] - 1}] for head {name!r}")
    return head.gather(1, idx[:, None].to(head.device)).squeeze(1), idx.cpu().numpy()


def jacobian_saliency(
    model: nn.Module,
    obs: torch.Tensor | np.ndarray,
    head: str = "value",
    action: ActionSpec = None,
) -> SaliencyMaps:
    """``|d head / d input|`` for a batch in one backward pass (``action="all"``: one per action)."""
    device = next(model.parameters()).device
    # channels_last input: the same numbers (to float rounding), ~20% faster through CPU convolutions
    x = (
        _check_obs(obs)
        .to(device)
        .contiguous(memory_format=torch.channels_last)
        .requires_grad_(True)
    )
    with torch.enable_grad():
        heads = heads_of(model, x)
        if head not in heads:
            raise ValueError(f"unknown head {head!r}; this network has: {', '.join(heads)}")
        out = heads[head]
        if isinstance(action, str) and action == "all":
            if out.dim() != 2:
                raise ValueError(f"action='all' needs a vector head; {head!r} is a scalar")
            grads = [
                torch.autograd.grad(out[:, a].sum(), x, retain_graph=a < out.shape[1] - 1)[0]
                for a in range(out.shape[1])
            ]
            g = torch.stack(grads, 1).abs()
            actions = np.tile(np.arange(out.shape[1]), (out.shape[0], 1))
        else:
            target, actions = _select(out, head, action)
            (g,) = torch.autograd.grad(target.sum(), x)
            g = g.abs()
    per_frame = g.detach().contiguous().cpu().numpy()
    return SaliencyMaps(head, per_frame, per_frame.sum(-3), actions, "jacobian")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@torch.no_grad()
def perturbation_saliency(
    model: nn.Module,
    obs: torch.Tensor | np.ndarray,
    head: str = "value",
    stride: int = 5,
    mask_sigma: float = 5.0,
    blur_sigma: float = 3.0,
    chunk: int = 256,
) -> np.ndarray:
    """Greydanus et al. 2018: for a grid of points (every ``stride`` pixels), blend a blurred copy of
    every stacked frame in with a Gaussian mask of ``mask_sigma`` around the point and score
    ``1/2 ||f(I) - f(I')||^2`` on ``head``; returns (B, H, W) maps upsampled from the grid.

    Forward passes are batched, ``chunk`` perturbed observations at a time.
    """
    device = next(model.parameters()).device
    x = _check_obs(obs).to(device)
    b, s, h, w = x.shape
    base = heads_of(model, x)
    if head not in base:
        raise ValueError(f"unknown head {head!r}; this network has: {', '.join(base)}")
    ref = base[head].reshape(b, -1)
    blurred = _gaussian_blur(x, blur_sigma)
    ys, xs = np.arange(0, h, stride), np.arange(0, w, stride)
    yy, xx = torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )
    masks = torch.stack(
        [torch.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * mask_sigma**2)) for i in ys for j in xs]
    )  # (P, H, W)
    scores = torch.empty(b, len(masks), device=device)
    per = max(1, chunk // b)
    for start in range(0, len(masks), per):
        m = masks[start : start + per][:, None, None]  # (p, 1, 1, H, W)
        perturbed = x[None] * (1 - m) + blurred[None] * m  # (p, B, S, H, W)
        out = heads_of(model, perturbed.reshape(-1, s, h, w))[head].reshape(len(m), b, -1)
        scores[:, start : start + len(m)] = (0.5 * ((out - ref[None]) ** 2).sum(-1)).T
    grid = scores.reshape(b, len(ys), len(xs)).cpu().numpy()
    return np.stack([cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR) for g in grid])


def lrp_heads(net: nn.Module) -> tuple[str, ...]:
    """The heads LRP has rules for on ``net``; one line for a network it has none for (it needs
    every layer's rule: the glimpse and soft-attention agents' recurrent cores and SB3's
    policies have none here)."""
    from agents.qlearning.networks import DuelingQNetwork, SingleStreamQNetwork

    if isinstance(net, DuelingQNetwork):
        return ("value", "advantage", "q")
    if isinstance(net, SingleStreamQNetwork):
        return ("q",)
    raise ValueError(f"the lrp method runs on this suite's DQN and PQN networks, not on a "
                     f"{type(net).__name__}")  # fmt: skip


class LRPStream(nn.Module):
    """One head of our Q networks as a plain stack of layers, for LRP: the torso (its LayerNorms
    pass relevance through unchanged, captum's identity rule, as LRP treats a normalisation
    whose statistics are held fixed; Ali et al. 2022), then the head's stream. The dueling ``q``
    head makes Wang et al.'s aggregation explicit, ``Q(a) = V + A(a) - mean_b A(b)``, as one linear
    layer over both streams' hidden units, so that the epsilon rule applies to it as to any layer.
    Copies of the network's layers: LRP's hooks never touch the network itself. The gradient
    scaling of the dueling torso (training only) is left out; it would scale every map alike."""

    def __init__(self, net: nn.Module, head: str) -> None:
        from captum.attr._utils.lrp_rules import IdentityRule

        from agents.qlearning.networks import SingleStreamQNetwork

        super().__init__()
        heads = lrp_heads(net)
        if head not in heads:
            raise ValueError(f"unknown head {head!r} for lrp; this network has: {', '.join(heads)}")
        self.torso = copy.deepcopy(nn.Sequential(*[m for m in net.torso if not isinstance(m, nn.Flatten)]))
        if isinstance(net, SingleStreamQNetwork):
            self.hidden, self.out = copy.deepcopy(net.head[:-1]), copy.deepcopy(net.head[-1])
        elif head != "q":
            stream = net.value_stream if head == "value" else net.advantage_stream
            self.hidden, self.out = copy.deepcopy(stream[:-1]), copy.deepcopy(stream[-1])
        else:
            if net.aggregation != "mean":
                raise ValueError("lrp of the q head needs the mean aggregation (Wang et al.'s Eq. 9)")
            self.hidden = copy.deepcopy(net.value_stream[:-1])
            self.other = copy.deepcopy(net.advantage_stream[:-1])
            v, a = net.value_stream[-1], net.advantage_stream[-1]
            self.out = nn.Linear(v.in_features + a.in_features, a.out_features)
            with torch.no_grad():
                centred = a.weight - a.weight.mean(0, keepdim=True)
                self.out.weight.copy_(torch.cat([v.weight.expand(a.out_features, -1), centred], 1))
                self.out.bias.copy_(v.bias + a.bias - a.bias.mean())
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                m.rule = IdentityRule()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.torso(x).flatten(1)
        hidden = self.hidden(h)
        if hasattr(self, "other"):
            hidden = torch.cat([hidden, self.other(h)], 1)
        return self.out(hidden)


def lrp_saliency(model: nn.Module, x: torch.Tensor, head: str, actions: np.ndarray | None) -> torch.Tensor:
    """LRP relevance (epsilon rule) of ``head`` on the float input ``x`` (B, stack, H, W); for a
    vector head, of each sample's component ``actions``."""
    from captum.attr import LRP

    stream = LRPStream(model, head).to(x.device).eval()
    target = 0 if actions is None else torch.as_tensor(actions, device=x.device)
    return LRP(stream).attribute(x.detach().clone().requires_grad_(True), target=target)


def attribute(
    model: nn.Module,
    obs: torch.Tensor | np.ndarray,
    head: str = "value",
    method: str = "jacobian",
    action: ActionSpec = None,
    *,
    samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
) -> SaliencyMaps:
    """Saliency of ``head`` by ``method`` for a batch; maps are absolute values, so that every method
    answers "how much does this pixel matter" on the same footing.

    * ``smoothgrad``: the mean absolute gradient over ``samples`` copies of the input with Gaussian
      noise of standard deviation ``noise`` (in [0, 1] pixel units; Smilkov et al. suggest 10-20% of
      the input range), seeded by ``seed``.
    * ``integrated_gradients``: ``samples`` Riemann steps from a black frame (the absence of any
      object on an Atari screen) to the observation; the attributions sum to the head's change.
    * ``gradient_x_input``: the gradient times the pixel; zero on black pixels, by construction.
    * ``lrp``: layer-wise relevance, epsilon rule (:class:`LRPStream`): our Q networks only.

    The captum methods differentiate the same float input as :func:`jacobian_saliency`; ``action``
    picks the component of a vector head as there (default: its argmax per sample).
    """
    check_method(method)
    if method == "jacobian":
        return jacobian_saliency(model, obs, head, action)
    if method == "perturbation":
        return SaliencyMaps(head, None, perturbation_saliency(model, obs, head), None, method)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    from captum.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

    device = next(model.parameters()).device
    x = _check_obs(obs).to(device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        heads = heads_of(model, x)
    if head not in heads:
        raise ValueError(f"unknown head {head!r}; this network has: {', '.join(heads)}")
    if isinstance(action, str) and action == "all":
        raise ValueError(f"action='all' is for the jacobian method, not {method!r}")
    _, actions = _select(heads[head], head, action)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return heads_of(model, inp)[head]

    target = None if actions is None else torch.as_tensor(actions, device=device)
    devices = [] if device.type == "cpu" else [device]
    with torch.enable_grad(), torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # captum tells that it made the noisy copies require gradients: that is what is wanted
        warnings.filterwarnings("ignore", "Input Tensor 0 did not already require gradients")
        torch.manual_seed(seed)
        if method == "smoothgrad":
            g = NoiseTunnel(Saliency(forward)).attribute(
                x, nt_type="smoothgrad", nt_samples=samples, stdevs=noise, target=target,
                nt_samples_batch_size=max(1, 512 // len(x)), abs=True,
            )  # fmt: skip
        elif method == "integrated_gradients":
            g = IntegratedGradients(forward).attribute(
                x, baselines=0.0, target=target, n_steps=samples,
                internal_batch_size=max(len(x), 512),
            )  # fmt: skip
        elif method == "lrp":
            g = lrp_saliency(model, x, head, actions)
        else:
            g = InputXGradient(forward).attribute(x.requires_grad_(True), target=target)
    per_frame = g.detach().abs().contiguous().cpu().numpy()
    return SaliencyMaps(head, per_frame, per_frame.sum(-3), actions, method)


def to_frame(maps: np.ndarray, frame_shape: tuple[int, int] = (210, 160)) -> np.ndarray:
    """Map (..., 84, 84) saliency onto the (..., 210, 160) game screen.

    The preprocessing's INTER_AREA resize makes observation pixel (r, c) the average of the screen
    pixels whose centres fall in its cell; each screen pixel takes the value of that cell, so a
    pixel's saliency lands where that pixel is on the screen.
    """
    h, w = maps.shape[-2:]
    fh, fw = frame_shape
    rows = np.minimum(((np.arange(fh) + 0.5) * h / fh).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(fw) + 0.5) * w / fw).astype(np.int64), w - 1)
    return maps[..., rows[:, None], cols[None, :]]
