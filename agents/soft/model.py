"""The attention-augmented agent of Mott et al. 2019 (arXiv 1906.02500, Section 2 and Figure 1): a
convolutional vision core with a ConvLSTM, keys and values with a fixed spatial basis joined to
both, queries made from the policy LSTM's previous state, and a policy LSTM that reads the answers,
the queries, the previous reward and the previous action, under the policy and value heads.

Sizes are smaller than the paper's (which trained on many GPUs) so that the agent trains on two
CPU cores; every one of them is a constructor argument that a checkpoint records."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from agents.soft.attention import attend, spatial_basis

State = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Pair = tuple[torch.Tensor, torch.Tensor]  # an LSTM's (h, c)
Step = tuple[dict[str, torch.Tensor], State]  # a step's heads by name and the next state


class ConvLSTMCell(nn.Module):
    """An LSTM cell whose gates are convolutions over the input and the hidden feature maps
    (Shi et al. 2015): the vision core's memory keeps the map's layout."""

    def __init__(self, in_channels: int, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        self.gates = nn.Conv2d(in_channels + channels, 4 * channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: Pair) -> Pair:
        return self._cell(self.gates(torch.cat([x, state[0]], 1)), state[1])

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The gates' part that reads the input alone, with the bias: over a whole sequence at once,
        what :meth:`recur` completes step by step."""
        w = self.gates.weight[:, : self.in_channels]
        return nn.functional.conv2d(x, w, self.gates.bias, padding=self.gates.padding)

    def recur(self, input_gates: torch.Tensor, state: Pair) -> Pair:
        """One step from the input's part of the gates (:meth:`input_gates`): ``forward`` with the
        convolution split in two, equal to it up to the order of the sums."""
        w = self.gates.weight[:, self.in_channels :]
        hidden = nn.functional.conv2d(state[0], w, None, padding=self.gates.padding)
        return self._cell(input_gates + hidden, state[1])

    @staticmethod
    def _cell(gates: torch.Tensor, c: torch.Tensor) -> Pair:
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


TORSOS = ("nature", "small", "patch")


def vision_torso(kind: str, in_channels: int) -> nn.Sequential:
    """``nature``: the first two convolutions of Mnih et al. 2015 (84x84 to 9x9); ``small``: two
    3x3 convolutions for small screens (Catch's 24x24 to 12x12); ``patch``: one 4x4 convolution
    of stride 4 (Catch's 24x24 to 6x6), each cell a patch of the screen, a quarter of the
    positions to attend over and a fraction of the small torso's arithmetic."""
    if kind == "nature":
        return nn.Sequential(nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
                             nn.Conv2d(32, 64, 4, stride=2), nn.ReLU())  # fmt: skip
    if kind == "small":
        return nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())  # fmt: skip
    if kind == "patch":
        return nn.Sequential(nn.Conv2d(in_channels, 32, 4, stride=4), nn.ReLU())
    raise ValueError(f"torso must be one of {', '.join(TORSOS)} (got {kind!r})")


class SoftAttentionAgent(nn.Module):
    """Mott et al. 2019's agent. :meth:`step` plays one step from a recurrent state and returns
    the heads by name, ``policy_logits`` (B, actions), ``value`` (B,) and ``attention`` (B,
    queries, H, W), each map a softmax over the feature map's positions; ``forward`` is that step
    from the initial state, what a saliency method differentiates for a single observation."""

    def __init__(self, n_actions: int, in_channels: int = 1, *, input_shape: tuple[int, int] = (84, 84),
                 torso: str = "", core_channels: int = 32, key_channels: int = 8,
                 value_channels: int = 16, queries: int = 4, frequencies: int = 4,
                 hidden: int = 256, qk_norm: bool = False) -> None:  # fmt: skip
        super().__init__()
        for name, value in (("n_actions", n_actions), ("in_channels", in_channels), ("queries", queries),
                            ("core_channels", core_channels), ("key_channels", key_channels),
                            ("value_channels", value_channels), ("hidden", hidden)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{name} must be >= 1 (got {value})")
        self.n_actions, self.in_channels, self.input_shape = n_actions, in_channels, tuple(input_shape)
        self.torso_kind = torso or ("small" if input_shape[-1] < 64 else "nature")
        self.sizes = dict(core_channels=core_channels, key_channels=key_channels,
                          value_channels=value_channels, queries=queries, frequencies=frequencies,
                          hidden=hidden, qk_norm=qk_norm)  # fmt: skip
        self.vision = vision_torso(self.torso_kind, in_channels)
        with torch.no_grad():
            _, channels, height, width = self.vision(torch.zeros(1, in_channels, *input_shape)).shape
        self.map_shape = (height, width)
        self.core = ConvLSTMCell(channels, core_channels)
        self.keys_values = nn.Conv2d(core_channels, key_channels + value_channels, 1)
        # fixed, not learned: a buffer, saved with the weights and never stepped by the optimizer
        self.register_buffer("basis", spatial_basis(height, width, frequencies))
        basis = self.basis.shape[0]
        self.query_size, self.answer_size = key_channels + basis, value_channels + basis
        self.make_queries = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                          nn.Linear(hidden, queries * self.query_size))  # fmt: skip
        self.policy_core = nn.LSTMCell(queries * (self.query_size + self.answer_size) + 1 + n_actions, hidden)
        # QK-norm (attend's temperature), learned from 10: maps sharp from the first step instead of
        # near uniform over the positions
        self.log_temperature = nn.Parameter(torch.tensor(math.log(10.0))) if qk_norm else None
        self.policy_logits = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)

    def initial_state(self, batch: int) -> State:
        """Zeros: the vision core's (h, c) maps and the policy core's (h, c)."""
        p = next(self.parameters())
        like = {"dtype": p.dtype, "device": p.device}
        maps = torch.zeros(batch, self.sizes["core_channels"], *self.map_shape, **like)
        vec = torch.zeros(batch, self.sizes["hidden"], **like)
        return maps, maps.clone(), vec, vec.clone()

    def step(self, obs: torch.Tensor, state: State, prev_action: torch.Tensor | None = None,
             prev_reward: torch.Tensor | None = None) -> Step:  # fmt: skip
        """One step: the heads and the next state. ``prev_action`` (B,) int and ``prev_reward``
        (B,) float are the last step's; before an episode's first step, action 0 and reward 0 (what
        the trainer and :class:`SoftPolicy` give), which ``None`` stands for."""
        x = self._see(obs)
        b = len(x)
        if prev_action is None:  # an episode's start, as training and play begin it: action 0
            prev_action = torch.zeros(b, dtype=torch.long, device=x.device)
        if prev_reward is None:
            prev_reward = torch.zeros(b, dtype=x.dtype, device=x.device)
        return self._read(self.core(x, state[:2]), state[2:], prev_action, prev_reward)

    def unroll(self, obs: torch.Tensor, state: State, prev_actions: torch.Tensor,
               prev_rewards: torch.Tensor, restarts: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
        """:meth:`step` over a sequence from ``state``: ``obs`` (T, B, C, H, W), ``prev_actions``,
        ``prev_rewards`` and the boolean ``restarts`` (T, B), the state back at zero after step t
        where ``restarts[t]``. Returns the heads stacked (T, B, ...). What does not depend on the
        state (the vision torso and the ConvLSTM's input gates) runs on all T x B frames at once,
        the rest step by step (:meth:`advance`): PPO's replay in far fewer, larger convolutions."""
        steps, b = obs.shape[:2]
        x = self._see(obs.flatten(0, 1))
        # unbind, not gates[t]: each step's slice would take a zero gradient the size of all steps
        gates = self.core.input_gates(x).unflatten(0, (steps, b)).unbind(0)
        out: dict[str, list[torch.Tensor]] = {}
        for t in range(steps):
            heads, state = self.advance(gates[t], state, prev_actions[t], prev_rewards[t], restarts[t])
            for name, value in heads.items():
                out.setdefault(name, []).append(value)
        return {name: torch.stack(values) for name, values in out.items()}

    def advance(self, input_gates: torch.Tensor, state: State, prev_action: torch.Tensor,
                prev_reward: torch.Tensor, restarts: torch.Tensor) -> Step:  # fmt: skip
        """One step of :meth:`unroll` from the ConvLSTM's input gates: the heads, and the next
        state, back at zero where ``restarts``."""
        heads, state = self._read(self.core.recur(input_gates, state[:2]), state[2:], prev_action,
                                  prev_reward)  # fmt: skip
        return heads, restart(state, restarts)

    def _see(self, obs: torch.Tensor) -> torch.Tensor:
        """The vision torso's features of a batch of frames (uint8 pixels or floats in [0, 1])."""
        expected = (self.in_channels, *self.input_shape)
        if obs.dim() != 4 or tuple(obs.shape[1:]) != expected:
            raise ValueError(f"observation must have shape (batch, {', '.join(map(str, expected))}), "
                             f"got {tuple(obs.shape)}")  # fmt: skip
        x = obs.to(self.basis.dtype) / 255.0 if obs.dtype == torch.uint8 else obs
        return self.vision(x)

    def _read(self, core: Pair, policy_state: Pair, prev_action: torch.Tensor,
              prev_reward: torch.Tensor) -> Step:  # fmt: skip
        """From the vision core's new maps: the keys and values, the queries from the policy core's
        previous state, the answers, and the policy core's step under the heads."""
        conv_h = core[0]
        b = len(conv_h)
        k, v = self.keys_values(conv_h).split([self.sizes["key_channels"], self.sizes["value_channels"]], 1)
        basis = self.basis.expand(b, -1, -1, -1)
        queries = self.make_queries(policy_state[0]).view(b, self.sizes["queries"], self.query_size)
        temperature = None if self.log_temperature is None else self.log_temperature.exp()
        maps, answers = attend(torch.cat([k, basis], 1), torch.cat([v, basis], 1), queries, temperature)
        action = nn.functional.one_hot(prev_action.long(), self.n_actions).to(conv_h.dtype)
        reward = prev_reward.to(conv_h.dtype)[:, None]
        inputs = torch.cat([answers.flatten(1), queries.flatten(1), reward, action], 1)
        h, c = self.policy_core(inputs, policy_state)
        heads = {"policy_logits": self.policy_logits(h), "value": self.value(h).squeeze(1), "attention": maps}
        return heads, (*core, h, c)

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.step(obs, self.initial_state(len(obs)))[0]

    def layer_groups(self) -> list[tuple[str, list[nn.Module]]]:
        """The network's layers by depth, input first, for cascading randomisation (Adebayo et al.
        2018): the vision convolutions, the ConvLSTM, the keys and values, the query network (with
        the QK-norm temperature, the model's own parameter), the policy LSTM, the two heads."""
        convs = [m for m in self.vision if isinstance(m, nn.Conv2d)]
        queries = [*self.make_queries.children(), *([self] if self.log_temperature is not None else [])]
        return [*((f"conv{i + 1}", [m]) for i, m in enumerate(convs)), ("conv_lstm", [self.core]),
                ("keys_values", [self.keys_values]),
                ("queries", [m for m in queries if any(True for _ in m.parameters(recurse=False))]),
                ("policy_lstm", [self.policy_core]), ("heads", [self.policy_logits, self.value])]  # fmt: skip

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments: what a checkpoint records to rebuild the network."""
        return {"class": "SoftAttentionAgent", "n_actions": self.n_actions, "in_channels": self.in_channels,
                "input_shape": list(self.input_shape), "torso": self.torso_kind, **self.sizes}  # fmt: skip


def restart(state: tuple[torch.Tensor, ...], fresh: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``state`` with the envs in the boolean ``fresh`` (B,) back at zero, as at an episode's start."""
    return tuple(torch.where(fresh.view(-1, *[1] * (s.dim() - 1)), torch.zeros_like(s), s) for s in state)
