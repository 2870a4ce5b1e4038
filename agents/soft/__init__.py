"""The soft-attention agent (Mott et al. 2019, "Towards Interpretable Reinforcement Learning Using
Attention Augmented Agents"): the attention itself (``attention``) and the network (``model``)."""

from agents.common.registry import register_network
from agents.soft.attention import attend, spatial_basis
from agents.soft.model import ConvLSTMCell, SoftAttentionAgent

register_network(SoftAttentionAgent)

__all__ = ["ConvLSTMCell", "SoftAttentionAgent", "attend", "spatial_basis"]
