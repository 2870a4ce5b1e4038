"""Train a dueling Double DQN (Wang et al. 2016) on an Atari game or on Catch.

    attn train dqn --game pong --total-steps 2000000
    attn train dqn --game catch           # Catch defaults: 80k steps
    attn train dqn --resume runs/pong__dueling_dqn__1__1700000000

Logs go to TensorBoard (tensorboard --logdir runs), with value and advantage saliency images of a
probe batch every --saliency-every steps; Ctrl-C saves a checkpoint before it exits.
"""

from __future__ import annotations

from scripts.cli import train_command


def main() -> None:
    train_command("dqn", __doc__)


if __name__ == "__main__":
    main()
