"""The Recurrent Attention Model (Mnih et al. 2014): glimpse network, recurrent core, and the
location, action and baseline heads read off the core's state."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.glimpse.glimpse_network import GlimpseNetwork
from agents.glimpse.retina import Retina


class ReLURNNCell(nn.Module):
    """The paper's core for classification: ``h_t = ReLU(Linear(g_t) + Linear(h_{t-1}))``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size)
        self.h2h = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.i2h(x) + self.h2h(h))


class LayerNormLSTMCell(nn.Module):
    """An LSTM cell with layer normalisation (Ba, Kiros, Hinton 2016, Section 3.1): the input's and
    the recurrent contributions to the gates are normalised apart, and the cell state is normalised
    before its tanh. Over Atari's episodes of hundreds of steps a plain LSTM's cell state can grow
    without bound (forget gates near 1 add up inputs near +-1): measured on Breakout after 1M
    steps of PPO (``scripts/core_state.py``), ``|c|`` averaged 10.6, ``tanh(c)`` was +-1 whatever
    the input, and the core's output varied by 0.002 across states, so the policy could not depend
    on what the agent saw. Normalised,
    ``tanh`` reads the cell's pattern, not its size."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, 4 * hidden_size, bias=False)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)
        self.norm_ih, self.norm_hh = nn.LayerNorm(4 * hidden_size), nn.LayerNorm(4 * hidden_size)
        self.norm_c = nn.LayerNorm(hidden_size)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, g, o = (self.norm_ih(self.ih(x)) + self.norm_hh(self.hh(h))).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(self.norm_c(c)), c


CORES = ("lstm", "gru", "rnn", "lnlstm")
CELL_STATE_CORES = ("lstm", "lnlstm")  # state (h, c)
LOCATION_POLICIES = ("gaussian", "tiles")


class RecurrentAttentionModel(nn.Module):
    """Glimpse network, recurrent core, and the heads read off the core's state.

    ``forward(images, locations, state)`` takes one glimpse per sample at ``locations`` and returns
    ``(heads, state)`` with heads by name, like the DQN's: ``action_logits``, ``location_mean``
    (Gaussian policy) or ``location_logits`` (tiles), and ``baseline``.

    With ``action_input`` the core also reads the previous action, one-hot: it rides in the state's
    last element, which :meth:`record_action` sets after each decision and :meth:`restart` zeroes,
    so every caller that carries the state (policies, the trainer, replays) carries it too.

    The Gaussian location policy has a fixed standard deviation, ``location_std`` (the paper gives
    no number; public implementations use 0.05 to 0.22, and 0.15 here lets a glimpse land anywhere
    on a 24x24 screen within a few steps while staying precise enough to centre the fovea).

    What is detached, on purpose (the pitfalls of public reimplementations):

    * the *sampled* location is not differentiated through (:meth:`sample_location` returns a
      detached sample): the location policy learns only from REINFORCE's score-function term;
    * ``detach_location`` (default on): the location head reads a detached core state. The score of
      a Gaussian with standard deviation 0.15 is ~1/0.15 = 6.7 times larger than the action's, so
      without the detach its noise dominates the core's gradient (and the clipped gradient norm)
      and the action policy does not learn -- measured on Catch: chance level after 50k episodes;
    * ``detach_baseline`` (default on): the baseline reads a detached core state, so that fitting
      the return does not shape the representation the policies use -- the paper's reading, right
      for Monte-Carlo returns. Off, the squared error also trains the core (an actor-critic's
      shared torso): the regression is a dense learning signal, and bootstrapped advantages
      (``gae_lambda`` < 1 in the trainer) need a baseline that reads the state well.
    """

    def __init__(
        self,
        n_actions: int,
        channels: int = 1,
        patch_size: int = 6,
        num_scales: int = 3,
        scale_factor: int = 2,
        hidden: int = 256,
        core: str = "lstm",
        location_policy: str = "gaussian",
        location_std: float = 0.15,
        tiles: int = 4,
        detach_baseline: bool = True,
        detach_location: bool = True,
        normalize_glimpse: bool = False,
        action_input: bool = False,
        retina_pool: str = "avg",
        glimpse_net: str = "linear",
    ) -> None:
        super().__init__()
        if core not in CORES:
            raise ValueError(f"unknown core {core!r}; accepted: {', '.join(CORES)}")
        if location_policy not in LOCATION_POLICIES:
            raise ValueError(
                f"unknown location policy {location_policy!r}; accepted: {', '.join(LOCATION_POLICIES)}"
            )
        if not location_std > 0:
            raise ValueError(f"location_std must be > 0, got {location_std!r}")
        if isinstance(tiles, bool) or not isinstance(tiles, int) or tiles < 2:
            raise ValueError(f"tiles must be an integer >= 2, got {tiles!r}")
        self.config = {
            "n_actions": n_actions, "channels": channels, "patch_size": patch_size,
            "num_scales": num_scales, "scale_factor": scale_factor, "hidden": hidden, "core": core,
            "location_policy": location_policy, "location_std": location_std, "tiles": tiles,
            "detach_baseline": detach_baseline, "detach_location": detach_location,
            "normalize_glimpse": normalize_glimpse,
        }  # fmt: skip
        if action_input:  # written only when on: checkpoints from before it stay loadable as they were
            self.config["action_input"] = True
        if retina_pool != "avg":  # likewise
            self.config["retina_pool"] = retina_pool
        if glimpse_net != "linear":  # likewise
            self.config["glimpse_net"] = glimpse_net
        self.action_input, self.n_actions = action_input, n_actions
        self.retina = Retina(patch_size, num_scales, scale_factor, retina_pool)
        self.glimpse = GlimpseNetwork(
            self.retina, channels, out=hidden, normalize=normalize_glimpse, what=glimpse_net
        )
        cells = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": ReLURNNCell, "lnlstm": LayerNormLSTMCell}
        cell = cells[core]
        self.core = cell(hidden + (n_actions if action_input else 0), hidden)
        self.core_kind, self.hidden = core, hidden
        self.location_policy, self.location_std, self.tiles = location_policy, location_std, tiles
        self.detach_baseline, self.detach_location = detach_baseline, detach_location
        self.action_head = nn.Linear(hidden, n_actions)
        out = 2 if location_policy == "gaussian" else tiles * tiles
        self.location_head = nn.Linear(hidden, out)
        self.baseline_head = nn.Linear(hidden, 1)

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments, as saved in a checkpoint (see agents.common.architecture)."""
        return {"class": "RecurrentAttentionModel", **self.config}

    def initial_state(
        self, batch: int, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, ...]:
        h = torch.zeros(batch, self.hidden, device=device)
        state = (h, h.clone()) if self.core_kind in CELL_STATE_CORES else (h,)
        if self.action_input:  # the previous action, one-hot; none before the first
            state = (*state, torch.zeros(batch, self.n_actions, device=device))
        return state

    def record_action(
        self, state: tuple[torch.Tensor, ...], action: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The state after ``action`` (B,) was taken: with ``action_input`` the core's next input
        includes it, so the agent knows what it did (where its paddle went) without looking."""
        if not self.action_input:
            return state
        one_hot = torch.nn.functional.one_hot(action.to(state[-1].device), self.n_actions)
        return (*state[:-1], one_hot.to(state[-1].dtype))

    def restart(
        self, mask: torch.Tensor, state: tuple[torch.Tensor, ...], locations: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(state, locations) with the envs in the boolean ``mask`` (B,) started afresh: a zero
        core state and a glimpse at the centre, as at the start of every episode."""
        fresh = mask.to(locations.device, torch.bool)[:, None]
        state = tuple(torch.where(fresh, torch.zeros_like(s), s) for s in state)
        return state, torch.where(fresh, torch.zeros_like(locations), locations)

    def forward(
        self, images: torch.Tensor, locations: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        return self.step_patches(self.retina(images, locations), locations, state)

    def step_patches(
        self, patches: torch.Tensor, locations: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        """One step from glimpse patches already taken: what the sequential Jacobian
        differentiates (the glimpse input x_t is the patches)."""
        h, state = self.core_step(self.glimpse.encode(patches, locations), state)
        return self.heads_of(h), state

    def core_step(
        self, g: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The core's update from a glimpse vector ``g``: (its output h, the next state). The one
        sequential part of a step: the glimpse network and the heads can run over many at once."""
        kept: tuple[torch.Tensor, ...] = ()
        if self.action_input:
            g, kept, state = torch.cat([g, state[-1]], 1), state[-1:], state[:-1]
        if self.core_kind in CELL_STATE_CORES:
            h, c = self.core(g, state)
            return h, (h, c, *kept)
        h = self.core(g, state[0])
        return h, (h, *kept)

    def core_sequence(
        self, vectors: torch.Tensor, state: tuple[torch.Tensor, ...], restart: torch.Tensor,
        actions: torch.Tensor | None = None, glimpses_per_step: int = 1,
    ) -> torch.Tensor:  # fmt: skip
        """The core's outputs (T*g, B, hidden) over glimpse vectors (T*g, B, D), g =
        ``glimpses_per_step`` per step, from ``state``. After step t's last glimpse the core records
        ``actions[t]`` (:meth:`record_action`, needed with the action input) and the envs in
        ``restart[t]`` (T, B) start afresh (:meth:`restart`).

        What a PPO epoch replays. An LSTM or GRU core without the action input runs each stretch
        between restarts as one fused call, torch's multi-step kernel with the cell's own weights
        (what ``nn.LSTM``/``nn.GRU`` call): the outputs of :meth:`core_step` step by step to float
        rounding (3e-7 at most in the test), and the forward and backward pass 2.2 times faster on
        a rollout of 32 steps of 8 envs (14.9 against 32.8 ms, one thread). Other cores go step by
        step."""
        g = glimpses_per_step
        if self.action_input and actions is None:
            raise ValueError("core_sequence: a core with the action input needs the actions")

        def after_step(t: int, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            if actions is not None:
                state = self.record_action(state, actions[t])
            if restart[t].any():
                nowhere = torch.zeros(len(state[0]), 2, device=state[0].device)
                state = self.restart(restart[t], state, nowhere)[0]
            return state

        if self.core_kind not in ("lstm", "gru") or self.action_input:
            outputs = []
            for k in range(len(vectors)):
                h, state = self.core_step(vectors[k], state)
                outputs.append(h)
                if (k + 1) % g == 0:
                    state = after_step(k // g, state)
            return torch.stack(outputs)
        c = self.core
        weights = [c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh]
        ends = sorted({(int(t) + 1) * g for t in torch.nonzero(restart.any(1)).flatten()} | {len(vectors)})
        pieces, start = [], 0
        for end in ends:
            if self.core_kind == "gru":
                out, h = torch._VF.gru(vectors[start:end], state[0][None], weights, True, 1, 0.0,
                                       self.training, False, False)  # fmt: skip
                state = (h[0],)
            else:
                out, h, cell = torch._VF.lstm(vectors[start:end], (state[0][None], state[1][None]),
                                              weights, True, 1, 0.0, self.training, False, False)  # fmt: skip
                state = (h[0], cell[0])
            pieces.append(out)
            state = after_step(end // g - 1, state)
            start = end
        return torch.cat(pieces)

    def heads_of(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads read off core outputs ``h`` (..., hidden), in float32 even under bf16
        autocast: the policies' log-probabilities and the baseline's targets need its precision."""
        with torch.autocast(h.device.type, enabled=False):
            h = h.float()
            heads = {
                "action_logits": self.action_head(h),
                "baseline": self.baseline_head(h.detach() if self.detach_baseline else h).squeeze(-1),
            }
            loc = self.location_head(h.detach() if self.detach_location else h)
        if self.location_policy == "gaussian":
            heads["location_mean"] = torch.tanh(loc)
        else:
            heads["location_logits"] = loc
        return heads

    def location_distribution(
        self, heads: dict[str, torch.Tensor]
    ) -> torch.distributions.Distribution:
        if self.location_policy == "gaussian":
            std = torch.full_like(heads["location_mean"], self.location_std)
            return torch.distributions.Independent(
                torch.distributions.Normal(heads["location_mean"], std), 1
            )
        return torch.distributions.Categorical(logits=heads["location_logits"])

    def sample_location(
        self, heads: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(location in [-1, 1]^2 for the retina, detached; log-probability; entropy)."""
        dist = self.location_distribution(heads)
        sample = dist.sample()  # no reparameterisation: the sample carries no gradient
        logp, entropy = dist.log_prob(sample), dist.entropy()
        if self.location_policy == "tiles":
            sample = self.tile_centres(sample)
        return sample.detach(), logp, entropy

    def tile_centres(self, index: torch.Tensor) -> torch.Tensor:
        """Tile index (row-major) -> the tile's centre as (x, y) in [-1, 1]."""
        row, col = index // self.tiles, index % self.tiles
        return torch.stack(
            [(2 * col + 1) / self.tiles - 1, (2 * row + 1) / self.tiles - 1], 1
        ).float()

    def location_log_prob(
        self, heads: dict[str, torch.Tensor], locations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probability, entropy) of the location policy at ``locations`` as
        :meth:`sample_location` returned them (a tile's centre stands for its tile): what a
        PPO epoch re-evaluates after the policy has moved."""
        dist = self.location_distribution(heads)
        if self.location_policy == "tiles":
            col, row = (((locations + 1) * self.tiles / 2 - 0.5).round().long()).unbind(1)
            locations = row * self.tiles + col
        return dist.log_prob(locations), dist.entropy()

    def greedy_location(self, heads: dict[str, torch.Tensor]) -> torch.Tensor:
        """The location policy's mean (Gaussian) or most likely tile: for evaluation and videos."""
        if self.location_policy == "gaussian":
            return heads["location_mean"].detach()
        return self.tile_centres(heads["location_logits"].argmax(1))


def orthogonal_init(model: RecurrentAttentionModel) -> RecurrentAttentionModel:
    """Re-initialise ``model`` as PPO's reference implementations do (Engstrom et al. 2020;
    Huang et al. 2022, "The 37 implementation details of PPO", details 2 and 5 of the Atari list):
    orthogonal weights with gain sqrt(2) in the ReLU layers, 1 in the recurrent core, 0.01 in the
    action and location heads (so that the first policy is uniform and the first gaze central,
    whatever the input) and 1 in the baseline head; every bias zero. PyTorch's default (uniform,
    scaled by the fan-in) gives the heads logits that already depend on the input by chance."""
    gains = {model.action_head: 0.01, model.location_head: 0.01, model.baseline_head: 1.0}
    gains.update({module: 1.0 for module in model.core.modules()})
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(module.weight, gains.get(module, 2**0.5))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LSTMCell, nn.GRUCell)):
            nn.init.orthogonal_(module.weight_ih, 1.0)
            nn.init.orthogonal_(module.weight_hh, 1.0)
            nn.init.zeros_(module.bias_ih)
            nn.init.zeros_(module.bias_hh)
    return model
