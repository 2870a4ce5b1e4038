"""The glimpse network: what the retina saw, fused with where it looked (Mnih et al. 2014,
Section 3.1), into the vector the core reads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agents.glimpse.retina import Retina

GLIMPSE_NETS = ("linear", "conv")


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
