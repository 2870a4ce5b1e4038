"""Train the soft-attention agent (Mott et al. 2019: queries over a ConvLSTM's keys and values with
a fixed spatial basis) with recurrent PPO on Catch or an Atari game.

    attn train soft --game catch          # Catch defaults: 64 envs, episodes of 24 steps
    attn train soft --game breakout --fire-after-life-loss   # the Atari preset: 16 envs, 84x84 frames
    attn train soft --resume runs/catch__soft__1__1700000000

--help shows the defaults of the game it is given with: Catch's without one, the Atari preset's
with an Atari --game (SoftConfig.PRESETS); every flag overrides them. Logs go to TensorBoard
(tensorboard --logdir runs), with images of the attention maps; Ctrl-C saves a checkpoint before it
exits.
"""

from __future__ import annotations

from scripts.cli import train_command


def main() -> None:
    train_command("soft", __doc__)


if __name__ == "__main__":
    main()
