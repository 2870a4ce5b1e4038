"""Train the hard-attention glimpse agent (Mnih et al. 2014) with REINFORCE on Catch or an Atari game.

    attn train glimpse --game catch        # Catch defaults: 16M steps, 128 envs (~9 min)
    attn train glimpse --game catch --preset foveal   # the glimpse sees a quarter
    attn train glimpse --game pong         # Atari defaults: 210x160 frames, 16 envs
    attn train glimpse --resume runs/catch__glimpse__1__1700000000

The defaults shown by --help are Catch's; with an Atari --game the Atari defaults apply (those in
GlimpseConfig.atari), with --preset foveal those of GlimpseConfig.foveal, unless a flag overrides
them. Logs go to TensorBoard (tensorboard --logdir runs),
with a heat map of where glimpses landed; Ctrl-C saves a checkpoint before it exits.
"""

from __future__ import annotations

import sys

import tyro

from scripts.cli import flags_given, game_named, train

PRESETS = ("default", "foveal")


def main() -> None:
    from agents.glimpse.train import GlimpseConfig

    game = game_named(sys.argv[1:]) or game_named(sys.argv[1:], flag="--env") or "catch"
    preset = game_named(sys.argv[1:], flag="--preset") or "default"
    if preset not in PRESETS:
        sys.exit(f"error: unknown --preset {preset!r}; choose one of {', '.join(PRESETS)}")
    default = GlimpseConfig.for_game(game, preset)
    cfg = tyro.cli(GlimpseConfig, default=default, description=__doc__)
    from agents.glimpse.train import GlimpseTrainer

    train(lambda: GlimpseTrainer(cfg, given=flags_given(sys.argv[1:])))


if __name__ == "__main__":
    main()
