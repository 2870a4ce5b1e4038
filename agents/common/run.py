"""The scaffolding around every trainer's loop, written once: the run directory and its lock, the
TensorBoard writer, the progress bar, Ctrl-C and SIGTERM, and the final checkpoint. Each trainer's
``run()`` is ``with RunSession(self) as session:`` around its own loop, which stays readable from
top to bottom."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Protocol

from agents.common.checkpoint import StopFlag, prepare_run_dir


class Trainer(Protocol):
    """What the command line, the sweeps and :class:`RunSession` need of a trainer."""

    cfg: Any  # a dataclass with resume, total_steps and progress
    run_dir: Path
    global_step: int
    env: Any
    writer: Any
    stop_signal: int | None

    def run(self) -> Path: ...

    def save(self) -> Path: ...


class RunSession:
    """One session of ``trainer``'s training. On entering: the run directory prepared and locked
    (``config.json`` written, a resume taking over its own run), ``trainer.writer`` opened on it,
    the progress bar started at the trainer's step, and Ctrl-C and SIGTERM turned into
    ``stop.requested`` for the loop to check. On leaving: the bar closed, the signals restored
    (``trainer.stop_signal`` records the one that stopped it), then, unless the loop raised, the
    final checkpoint saved (``path``), the lock released after it, the writer and the envs closed.
    A loop that raises leaves its lock, which the next run takes over as stale."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.path: Path | None = None

    def __enter__(self) -> RunSession:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        t, c = self.trainer, self.trainer.cfg
        self._lock = prepare_run_dir(t.run_dir, dataclasses.asdict(c), resuming=bool(c.resume))
        t.writer = SummaryWriter(str(t.run_dir))
        self.start = time.perf_counter()
        self._first_step = t.global_step
        self.bar = tqdm(total=c.total_steps, initial=t.global_step, unit="step",
                        disable=not c.progress, dynamic_ncols=True)  # fmt: skip
        self.stop = StopFlag()
        return self

    def elapsed(self) -> float:
        """Seconds since the session started."""
        return time.perf_counter() - self.start

    def steps_per_second(self) -> float:
        """Environment steps per second over this session (a resume counts from its own start)."""
        return (self.trainer.global_step - self._first_step) / max(1e-9, self.elapsed())

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        t = self.trainer
        self.bar.close()
        self.stop.restore()
        t.stop_signal = self.stop.signum
        if exc_type is None:
            self.path = t.save()
            self._lock.release()  # after the final checkpoint (a crash leaves it to be taken over)
            t.writer.close()
            t.env.close()
