"""What the command-line scripts share: the preset a --game picks, how a training reports its end,
and signals that end a script in one line, with nothing partial left behind."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def game_named(argv: list[str], flag: str = "--game") -> str:
    """The value of ``flag`` on the command line (empty when absent): it picks the preset whose
    defaults ``--help`` shows and the other flags override."""
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def flags_given(argv: list[str]) -> frozenset[str]:
    """The config fields named on the command line (``--total-steps 5`` and ``--total-steps=5``
    give ``total_steps``, ``--no-progress`` gives ``progress``): a resumed run takes its budget
    from these even where a value equals the default."""
    names = (arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--"))
    return frozenset(n.removeprefix("no-").replace("-", "_") for n in names)


def train(make_trainer: Callable[[], Any]) -> None:
    """Build a trainer, say where its run lives, train, and report the end; a bad flag, a bad
    checkpoint or a refused run directory is one line (the trainers raise them before any work)."""
    from agents.common.checkpoint import CheckpointError

    try:
        trainer = make_trainer()
        print(f"run directory: {trainer.run_dir}")
        if trainer.cfg.resume:  # what this resume honours from the command line, said once
            print(f"resuming at step {trainer.global_step:,} of {trainer.cfg.total_steps:,} "
                  f"(saving every {trainer.cfg.save_every:,})")  # fmt: skip
        path = trainer.run()
    except (ValueError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    report_end(trainer, path)


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


@contextlib.contextmanager
def signals_end_cleanly() -> Iterator[None]:
    """For scripts that write files: SIGTERM raises like Ctrl-C does, so that the writers' context
    managers remove their partial files; either ends the script with one line and exit code
    128 + the signal's number (130, 143) instead of a traceback."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        sig = received[0] if received else signal.SIGINT
        print(f"interrupted by {signal.Signals(sig).name}; no partial output was kept",
              file=sys.stderr)  # fmt: skip
        sys.exit(128 + sig)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
