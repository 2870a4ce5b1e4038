"""Train the dueling network with PQN (Gallici et al. 2024): parallel Q(lambda), no replay memory,
no target network, LayerNorm. The fast way to a trained Atari agent on one GPU.

    attn train pqn --game pong                         # Atari defaults: 128 envs, 10M steps
    attn train pqn --game pong --time-limit 300        # stop cleanly after 5 minutes
    attn train pqn --game catch          # Catch defaults: 200k steps (~2 min on 2 cores)
    attn train pqn --resume runs/pong__pqn__1__1700000000

The defaults shown by --help are Atari's; with --game catch the Catch defaults apply (those in
PQNConfig.catch) unless a flag overrides them. Logs go to TensorBoard (tensorboard --logdir runs),
with value and advantage saliency images of a probe batch; Ctrl-C saves a checkpoint before it exits.
"""

from __future__ import annotations

import sys

import tyro

from scripts.cli import flags_given, game_named, train


def main() -> None:
    from agents.qlearning.pqn import PQNConfig

    default = PQNConfig.catch() if game_named(sys.argv[1:]).lower() == "catch" else PQNConfig()
    cfg = tyro.cli(PQNConfig, default=default, description=__doc__)
    from agents.qlearning.pqn import PQNTrainer
    from analysis.tensorboard import training_callbacks

    callbacks = training_callbacks(cfg)
    train(lambda: PQNTrainer(cfg, callbacks=callbacks, given=flags_given(sys.argv[1:])))


if __name__ == "__main__":
    main()
