"""Train the dueling network with PQN (Gallici et al. 2024): parallel Q(lambda), no replay memory,
no target network, LayerNorm. The fast way to a trained Atari agent on one GPU.

    attn train pqn --game pong                         # Atari defaults: 128 envs, 10M steps
    attn train pqn --game pong --time-limit 300        # stop cleanly after 5 minutes
    attn train pqn --game catch          # Catch defaults: 200k steps (~2 min on 2 cores)
    attn train pqn --resume runs/pong__pqn__1__1700000000

--help shows the defaults of the game it is given with: Atari's, or with --game catch the Catch
preset's (PQNConfig.PRESETS); every flag overrides them. Logs go to TensorBoard (tensorboard
--logdir runs), with value and advantage saliency images of a probe batch; Ctrl-C saves a
checkpoint before it exits.
"""

from __future__ import annotations

from scripts.cli import train_command


def main() -> None:
    train_command("pqn", __doc__)


if __name__ == "__main__":
    main()
