"""The agents: Q-learning (``agents.qlearning``: the dueling network, DQN and PQN), the glimpse
agent (``agents.glimpse``), the soft-attention agent's network (``agents.soft``), and what they
share (``agents.common``). Importing the package
registers each agent's networks, policy and trainer (``agents.common.registry``), which
``agents.common`` reads without importing a concrete agent."""

from agents import glimpse, qlearning, soft  # noqa: F401  (each registers its parts)
