"""Q-learning agents: the dueling network (Wang et al. 2016) and its single-stream baseline, the
replay memory that stores each frame once, the DQN trainer with Double-DQN targets, and the PQN
trainer (parallel Q(lambda) without replay)."""
