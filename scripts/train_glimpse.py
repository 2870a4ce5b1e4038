"""Train the hard-attention glimpse agent (Mnih et al. 2014) with REINFORCE on Catch or an Atari game.

    python scripts/train_glimpse.py --env catch        # Catch defaults: 8M steps, 128 envs (~5 min)
    python scripts/train_glimpse.py --env pong         # Atari defaults: 210x160 frames, 16 envs
    python scripts/train_glimpse.py --resume runs/catch__glimpse__1__1700000000

The defaults shown by --help are Catch's; with an Atari --env the Atari defaults apply (those in
GlimpseConfig.atari) unless a flag overrides them. Logs go to TensorBoard (tensorboard --logdir runs),
with a heat map of where glimpses landed; Ctrl-C saves a checkpoint before it exits.
"""

from __future__ import annotations

import sys

import tyro


def env_named(argv: list[str]) -> str:
    """The --env value on the command line ('catch' when absent)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--env="):
            return arg.split("=", 1)[1]
        if arg == "--env" and i + 1 < len(argv):
            return argv[i + 1]
    return "catch"


def main() -> None:
    from agents.glimpse_train import GlimpseConfig

    env = env_named(sys.argv[1:])
    default = GlimpseConfig() if env.lower() == "catch" else GlimpseConfig.atari(env=env)
    cfg = tyro.cli(GlimpseConfig, default=default, description=__doc__)
    from agents.checkpoint import CheckpointError
    from agents.glimpse_train import GlimpseTrainer

    try:
        trainer = GlimpseTrainer(cfg)
        print(f"run directory: {trainer.run_dir}")
        path = trainer.run()
    except (ValueError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    print(f"final checkpoint: {path}")


if __name__ == "__main__":
    main()
