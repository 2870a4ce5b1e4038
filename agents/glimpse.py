"""The foveated retina of the Recurrent Attention Model (Mnih, Heess, Graves, Kavukcuoglu 2014).

A glimpse at location ``l`` is ``num_scales`` square patches centred on ``l``: the first
``patch_size`` pixels wide, each next one ``scale_factor`` times wider, every one reduced to
``patch_size`` x ``patch_size`` by average pooling -- high resolution at the centre of gaze, coarse
context around it, as in the paper's Section 3.1. Max pooling is the option for screens whose
objects are smaller than a coarse cell (Breakout's 2x4-pixel ball): averaged over a 16x16 cell the
ball keeps 1/32 of its contrast, pooled by its maximum it keeps all of it, so the periphery still
says *where* something is and the fovea can be sent there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("avg", "max")
GLIMPSE_NETS = ("linear", "conv")


class Retina(nn.Module):
    """``retina(images, locations)`` -> (B, num_scales, C, patch_size, patch_size).

    ``images``: (B, C, H, W) float, or uint8 (read as /255: pass raw frames, only the patches'
    pixels are converted). ``locations``: (B, 2) as (x, y) in [-1, 1], x the column and y
    the row, (0, 0) the centre and (-1, -1) the top-left pixel; (1, 1) is the bottom-right pixel.
    Locations outside [-1, 1] are clamped onto the border (a policy's Gaussian sample can leave the
    square; clamping keeps its log-probability well defined and the glimpse on the screen). Pixels
    beyond the border read as zeros. Batched: no Python loop over the batch.
    """

    def __init__(self, patch_size: int, num_scales: int, scale_factor: int = 2, pool: str = "avg") -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown retina pooling {pool!r}; accepted: {', '.join(POOLS)}")
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be an integer >= 1, got {patch_size!r}")
        if isinstance(num_scales, bool) or not isinstance(num_scales, int) or num_scales < 1:
            raise ValueError(f"num_scales must be an integer >= 1, got {num_scales!r}")
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
            raise ValueError(f"scale_factor must be an integer >= 1, got {scale_factor!r}")
        self.patch_size, self.num_scales, self.scale_factor = patch_size, num_scales, scale_factor
        self.pool = F.avg_pool2d if pool == "avg" else F.max_pool2d
        self.sizes = [patch_size * scale_factor**k for k in range(num_scales)]

    def check_frame(self, height: int, width: int) -> None:
        """Refuse a retina whose smallest patch is larger than the frame (every scale would be)."""
        if self.patch_size > max(height, width):
            raise ValueError(
                f"retina patch {self.patch_size}x{self.patch_size} is larger than the {height}x{width} "
                f"frame at every scale; use --patch-size <= {max(height, width)}"
            )

    def centres(
        self, locations: torch.Tensor, height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel (row, column) of each location's centre."""
        loc = locations.clamp(-1.0, 1.0)
        col = torch.round((loc[:, 0] + 1) / 2 * (width - 1)).long()
        row = torch.round((loc[:, 1] + 1) / 2 * (height - 1)).long()
        return row, col

    def forward(self, images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
        if locations.shape != (images.shape[0], 2):
            raise ValueError(f"locations must be (B, 2), got {tuple(locations.shape)}")
        b, c, h, w = images.shape
        self.check_frame(h, w)
        row, col = self.centres(locations, h, w)
        # gather only the patches' pixels (clamped indices, zeroed outside the frame): the cost
        # does not grow with the frame's size, and uint8 frames are converted pixel by pixel.
        # Bounds and masks are per row and per column, broadcast to the patch.
        flat = images.reshape(b, c, h * w)
        scale = 1 / 255 if images.dtype == torch.uint8 else 1.0
        patches = []
        for size in self.sizes:
            offsets = torch.arange(size, device=images.device) - size // 2
            rows, cols = row[:, None] + offsets, col[:, None] + offsets  # (B, size) each
            row_in = ((rows >= 0) & (rows < h)).float()
            col_in = ((cols >= 0) & (cols < w)).float() * scale
            index = (rows.clamp(0, h - 1) * w)[:, :, None] + cols.clamp(0, w - 1)[:, None, :]
            patch = torch.gather(flat, 2, index.reshape(b, 1, size * size).expand(b, c, -1))
            patch = patch.reshape(b, c, size, size).float()
            patch = patch * (row_in[:, None, :, None] * col_in[:, None, None, :])
            if size != self.patch_size:
                patch = self.pool(patch, size // self.patch_size)
            patches.append(patch)
        return torch.stack(patches, 1)


class GlimpseNetwork(nn.Module):
    """Mnih et al. 2014, Section 3.1: ``h_g = ReLU(Linear(rho))``, ``h_l = ReLU(Linear(l))``,
    ``g = ReLU(Linear(h_g) + Linear(h_l))`` -- what was seen, fused with where (128, 128, 256).

    ``what="conv"`` reads the patches with two convolutions before the linear layer, as the deep
    recurrent attention model does (Ba, Mnih, Kavukcuoglu 2015, Section 3: convolutional layers in
    the glimpse network's image pathway). The scales are stacked as channels: every patch is
    centred on the same point, so a cell of one lies over the matching cells of the others, and a
    filter compares the fovea with its surround. One linear layer must learn every position of an
    object in a patch separately; a filter shares them."""

    def __init__(
        self,
        retina: Retina,
        channels: int,
        hidden_g: int = 128,
        hidden_l: int = 128,
        out: int = 256,
        normalize: bool = False,
        what: str = "linear",
    ):
        super().__init__()
        if what not in GLIMPSE_NETS:
            raise ValueError(f"unknown glimpse network {what!r}; accepted: {', '.join(GLIMPSE_NETS)}")
        self.retina = retina
        size = retina.num_scales * channels * retina.patch_size**2
        # Average pooling dims a one-pixel object 4**k times at scale k (1/16 at the third scale on
        # Catch): standardising the glimpse vector lets such faint inputs drive the first layer.
        self.norm = nn.LayerNorm(size, elementwise_affine=False) if normalize else nn.Identity()
        if what == "linear":
            self.what = nn.Linear(size, hidden_g)
        else:
            p = retina.patch_size
            convs = nn.Sequential(
                nn.Unflatten(1, (retina.num_scales * channels, p, p)),
                nn.Conv2d(retina.num_scales * channels, 32, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(),
            )  # fmt: skip
            flat = convs(torch.zeros(1, size)).shape[1]
            self.what = nn.Sequential(*convs, nn.Linear(flat, hidden_g))
        self.where = nn.Linear(2, hidden_l)
        self.what_out = nn.Linear(hidden_g, out)
        self.where_out = nn.Linear(hidden_l, out)

    def forward(self, images: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        return self.encode(self.retina(images, locations), locations)

    def encode(self, patches: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """The glimpse vector g from the retina's patches (B, scales, C, p, p) and their location."""
        rho = self.norm(patches.flatten(1))
        h_g = F.relu(self.what(rho))
        h_l = F.relu(self.where(locations))
        return F.relu(self.what_out(h_g) + self.where_out(h_l))


class ReLURNNCell(nn.Module):
    """The paper's core for classification: ``h_t = ReLU(Linear(g_t) + Linear(h_{t-1}))``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.i2h = nn.Linear(input_size, hidden_size)
        self.h2h = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.i2h(x) + self.h2h(h))


CORES = ("lstm", "gru", "rnn")
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
        cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": ReLURNNCell}[core]
        self.core = cell(hidden + (n_actions if action_input else 0), hidden)
        self.core_kind, self.hidden = core, hidden
        self.location_policy, self.location_std, self.tiles = location_policy, location_std, tiles
        self.detach_baseline, self.detach_location = detach_baseline, detach_location
        self.action_head = nn.Linear(hidden, n_actions)
        out = 2 if location_policy == "gaussian" else tiles * tiles
        self.location_head = nn.Linear(hidden, out)
        self.baseline_head = nn.Linear(hidden, 1)

    def architecture(self) -> dict[str, Any]:
        """The constructor's arguments, as saved in a checkpoint (see agents.networks)."""
        return {"class": "RecurrentAttentionModel", **self.config}

    def initial_state(
        self, batch: int, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, ...]:
        h = torch.zeros(batch, self.hidden, device=device)
        state = (h, h.clone()) if self.core_kind == "lstm" else (h,)
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
        if self.core_kind == "lstm":
            h, c = self.core(g, state)
            return h, (h, c, *kept)
        h = self.core(g, state[0])
        return h, (h, *kept)

    def heads_of(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads read off core outputs ``h`` (..., hidden)."""
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


def reinforce_loss(
    logp: torch.Tensor,
    returns: torch.Tensor,
    baseline: torch.Tensor,
    mask: torch.Tensor | None = None,
    advantage: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE with a learned baseline (Williams 1992; Mnih et al. 2014, Section 3.2).

    ``-mean (R_t - b_t) log pi(u_t)`` with the advantage detached (the baseline only reduces
    variance; it is not differentiated through the policy term), and the baseline's squared error
    ``mean (b_t - R_t)^2``. ``logp`` sums the log-probabilities of everything sampled at t (action and
    location). ``mask`` zeroes steps that are not decisions (an env's auto-reset step).
    ``advantage`` replaces ``R_t - b_t`` in the policy term (bootstrapped or standardised ones).
    """
    mask = torch.ones_like(returns) if mask is None else mask
    n = mask.sum().clamp_min(1)
    advantage = (returns - baseline if advantage is None else advantage).detach()
    policy_loss = -(advantage * logp * mask).sum() / n
    baseline_loss = (((baseline - returns) ** 2) * mask).sum() / n
    return policy_loss, baseline_loss


def clipped_policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor, mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7) of one part of what is sampled at a
    step (the action, or the locations), masked like :func:`reinforce_loss`; returns (loss,
    fraction of decisions clipped, approximate KL ``mean((r - 1) - log r)``). At ``logp`` equal to
    ``old_logp`` its gradient is REINFORCE's; later epochs reuse a rollout without stepping far
    from the policy that collected it."""
    n = mask.sum().clamp_min(1)
    log_ratio = logp - old_logp.detach()
    ratio = log_ratio.exp()
    advantage = advantage.detach()
    surrogate = torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage)
    with torch.no_grad():
        clipped = (((ratio - 1).abs() > clip).float() * mask).sum() / n
        kl = (((ratio - 1) - log_ratio) * mask).sum() / n
    return -(surrogate * mask).sum() / n, clipped, kl


def factored_clipped_loss(
    logp: dict[str, torch.Tensor], old_logp: dict[str, torch.Tensor], advantage: torch.Tensor,
    mask: torch.Tensor, clip: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:  # fmt: skip
    """PPO's loss for a policy that factorises into parts sampled apart (the action, the
    locations): the sum of each part's clipped surrogate, every one with its own probability
    ratio. Returns (loss, fraction clipped by part, approximate KL by part).

    One joint ratio (the product of the parts') would let any part clip the others: the Gaussian
    location's log-density moves ~1/std times faster than the action's, so a step that shifts the
    gaze a little takes the action's gradient away with it (on Breakout, 25-45% of decisions were
    clipped jointly, about 10% by the action alone). Apart, each part is kept near the policy that
    collected the rollout by its own clip."""
    loss = advantage.new_zeros(())
    clipped: dict[str, torch.Tensor] = {}
    kl: dict[str, torch.Tensor] = {}
    for part, lp in logp.items():
        part_loss, clipped[part], kl[part] = clipped_policy_loss(lp, old_logp[part], advantage, mask, clip)
        loss = loss + part_loss
    return loss, clipped, kl


class GlimpsePolicy:
    """The agent playing a batch of envs, one call per step: ``policy(images) -> actions``.

    Keeps the core state and the next glimpse location of every env between calls; ``reset(mask)``
    starts the masked envs afresh (after their reset step). ``greedy`` takes the most likely action
    and the location policy's mean (or most likely tile); otherwise both are sampled. After each
    call ``locations`` holds the (glimpses_per_step, B, 2) locations looked at, ``patches`` the
    (glimpses_per_step, B, scales, C, p, p) patches seen there and ``heads`` the last glimpse's
    heads, for videos and analysis.
    """

    def __init__(self, model: RecurrentAttentionModel, num_envs: int, glimpses_per_step: int = 1,
                 greedy: bool = True) -> None:  # fmt: skip
        self.model, self.glimpses_per_step, self.greedy = model, glimpses_per_step, greedy
        device = next(model.parameters()).device
        self.state = model.initial_state(num_envs, device)
        self.loc = torch.zeros(num_envs, 2, device=device)
        self.locations = torch.zeros(glimpses_per_step, num_envs, 2)
        self.patches = torch.zeros(0)
        self.heads: dict[str, torch.Tensor] = {}

    def reset(self, mask: np.ndarray | torch.Tensor | None = None) -> None:
        """Start the envs in ``mask`` (all when None) afresh."""
        everyone = torch.ones(len(self.loc), dtype=torch.bool)
        self.state, self.loc = self.model.restart(
            everyone if mask is None else torch.as_tensor(mask), self.state, self.loc
        )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        looked, seen = [], []
        for _ in range(self.glimpses_per_step):
            looked.append(self.loc.cpu())
            seen.append(self.model.retina(images, self.loc))
            self.heads, self.state = self.model.step_patches(seen[-1], self.loc, self.state)
            if self.greedy:
                self.loc = self.model.greedy_location(self.heads)
            else:
                self.loc = self.model.sample_location(self.heads)[0]
        self.locations, self.patches = torch.stack(looked), torch.stack(seen).cpu()
        logits = self.heads["action_logits"]
        dist = torch.distributions.Categorical(logits=logits)
        action = logits.argmax(1) if self.greedy else dist.sample()
        self.state = self.model.record_action(self.state, action)
        return action.cpu().numpy()
