"""Q-learning agents: the dueling network (Wang et al. 2016) and its single-stream baseline, the
replay memory that stores each frame once, the DQN trainer with Double-DQN targets, and the PQN
trainer (parallel Q(lambda) without replay)."""

from agents.common.registry import register_network, register_trainer
from agents.qlearning.networks import DuelingQNetwork, SingleStreamQNetwork

register_network(DuelingQNetwork)
register_network(SingleStreamQNetwork)
register_trainer("dqn", "agents.qlearning.dqn", "DQNConfig", "DQNTrainer")
register_trainer("pqn", "agents.qlearning.pqn", "PQNConfig", "PQNTrainer")
