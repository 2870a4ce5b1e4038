"""Train a dueling Double DQN (Wang et al. 2016) on an Atari game or on Catch.

    python scripts/train_dqn.py --game pong --total-steps 2000000
    python scripts/train_dqn.py --game catch           # Catch defaults: 80k steps
    python scripts/train_dqn.py --resume runs/pong__dueling_dqn__1__1700000000

Logs go to TensorBoard (tensorboard --logdir runs), with value and advantage saliency images of a
probe batch every --saliency-every steps; Ctrl-C saves a checkpoint before it exits.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import tyro


def game_named(argv: list[str], flag: str = "--game") -> str:
    """The value of ``flag`` on the command line (empty when absent): it picks the preset whose
    defaults ``--help`` shows and the other flags override."""
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def report_end(trainer: Any, path: Path) -> None:
    """Say how a training ended. A run stopped by a signal exits with 128 + its number (130 after
    Ctrl-C, 143 after SIGTERM), its checkpoint saved, so that a shell or a scheduler can tell it
    from a finished one."""
    steps = f"{trainer.global_step:,} steps"
    if trainer.stop_signal is not None:
        name = signal.Signals(trainer.stop_signal).name
        print(f"interrupted by {name}; checkpoint: {path} ({steps}); continue with --resume "
              f"{trainer.run_dir}")  # fmt: skip
        sys.exit(128 + trainer.stop_signal)
    if getattr(trainer, "stopped_by", "") == "time limit":
        print(f"stopped at the time limit; checkpoint: {path} ({steps})")
    else:
        print(f"final checkpoint: {path} ({steps})")


def main() -> None:
    from agents.dqn import DQNConfig

    default = DQNConfig.catch() if game_named(sys.argv[1:]).lower() == "catch" else DQNConfig()
    cfg = tyro.cli(DQNConfig, default=default, description=__doc__)
    from agents.checkpoint import CheckpointError
    from agents.dqn import DQNTrainer
    from analysis.tensorboard import SaliencyLogger

    try:
        callbacks = [SaliencyLogger(cfg.saliency_every)] if cfg.saliency_every else []
        trainer = DQNTrainer(cfg, callbacks=callbacks)
        print(f"run directory: {trainer.run_dir}")
        path = trainer.run()
    except (ValueError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    report_end(trainer, path)


if __name__ == "__main__":
    main()
