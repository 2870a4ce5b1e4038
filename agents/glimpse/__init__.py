"""The hard-attention glimpse agent (Mnih et al. 2014, "Recurrent Models of Visual Attention"), one
module per component the paper names: the retina, the glimpse network, the model (core, location,
action and baseline heads), its losses, the policy that plays it, and its trainer (``train``)."""

from agents.common.registry import register_network, register_policy, register_trainer
from agents.glimpse.glimpse_network import GLIMPSE_NETS, GlimpseNetwork
from agents.glimpse.losses import factored_clipped_loss, reinforce_loss
from agents.glimpse.model import (
    CORES,
    LOCATION_POLICIES,
    RecurrentAttentionModel,
    ReLURNNCell,
    orthogonal_init,
)
from agents.glimpse.policy import GlimpsePolicy
from agents.glimpse.retina import POOLS, Retina

register_network(RecurrentAttentionModel)
register_policy("glimpse", GlimpsePolicy.for_checkpoint)
register_trainer("glimpse", "agents.glimpse.train", "GlimpseConfig", "GlimpseTrainer")

__all__ = [
    "CORES", "GLIMPSE_NETS", "LOCATION_POLICIES", "POOLS", "GlimpseNetwork", "GlimpsePolicy",
    "ReLURNNCell", "RecurrentAttentionModel", "Retina", "factored_clipped_loss", "orthogonal_init",
    "reinforce_loss",
]  # fmt: skip
