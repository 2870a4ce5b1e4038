"""Train the hard-attention glimpse agent (Mnih et al. 2014) with REINFORCE on Catch or an Atari game.

    attn train glimpse --game catch        # Catch defaults: 16M steps, 128 envs (~9 min)
    attn train glimpse --game catch --preset foveal   # the glimpse sees a quarter
    attn train glimpse --game pong         # Atari defaults: 210x160 frames, 16 envs
    attn train glimpse --resume runs/catch__glimpse__1__1700000000

--help shows the defaults of the game (and --preset) it is given with: Catch's without one, the
Atari preset's with an Atari --game (GlimpseConfig.PRESETS); every flag overrides them. Logs go to
TensorBoard (tensorboard --logdir runs), with a heat map of where glimpses landed; Ctrl-C saves a
checkpoint before it exits.
"""

from __future__ import annotations

from scripts.cli import train_command


def main() -> None:
    train_command("glimpse", __doc__)


if __name__ == "__main__":
    main()
