"""Train a dueling Double DQN (Wang et al. 2016) on an Atari game or on Catch.

    attn train dqn --game pong --total-steps 2000000
    attn train dqn --game catch           # Catch defaults: 80k steps
    attn train dqn --resume runs/pong__dueling_dqn__1__1700000000

Logs go to TensorBoard (tensorboard --logdir runs), with value and advantage saliency images of a
probe batch every --saliency-every steps; Ctrl-C saves a checkpoint before it exits.
"""

from __future__ import annotations

import sys

import tyro

from scripts.cli import flags_given, game_named, train


def main() -> None:
    from agents.qlearning.dqn import DQNConfig

    default = DQNConfig.catch() if game_named(sys.argv[1:]).lower() == "catch" else DQNConfig()
    cfg = tyro.cli(DQNConfig, default=default, description=__doc__)
    from agents.qlearning.dqn import DQNTrainer
    from analysis.tensorboard import training_callbacks

    callbacks = training_callbacks(cfg)
    train(lambda: DQNTrainer(cfg, callbacks=callbacks, given=flags_given(sys.argv[1:])))


if __name__ == "__main__":
    main()
