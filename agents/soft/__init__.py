"""The soft-attention agent (Mott et al. 2019, "Towards Interpretable Reinforcement Learning Using
Attention Augmented Agents"): the attention itself (``attention``), the network (``model``), the
policy that plays it (``policy``) and its trainer (``train``, recurrent PPO)."""

from agents.common.registry import register_network, register_policy, register_trainer
from agents.soft.attention import attend, spatial_basis
from agents.soft.model import ConvLSTMCell, SoftAttentionAgent
from agents.soft.policy import SoftPolicy

register_network(SoftAttentionAgent)
register_policy("soft", SoftPolicy.for_checkpoint)
register_trainer("soft", "agents.soft.train", "SoftConfig", "SoftTrainer")

__all__ = ["ConvLSTMCell", "SoftAttentionAgent", "SoftPolicy", "attend", "spatial_basis"]
