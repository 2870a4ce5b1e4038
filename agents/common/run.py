"""The scaffolding around every trainer's loop, written once: the run directory and its lock, the
TensorBoard writer, the progress bar, Ctrl-C, SIGTERM and the time limit, periodic events, and the
checkpoints (what every trainer saves and restores, beside its own state). Each trainer's ``run()``
is :func:`run_loop` around its own loop, which stays readable from top to bottom."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from agents.common.checkpoint import (
    CONFIG,
    MODEL,
    StopFlag,
    check_run_dir,
    checkpoint_config,
    load_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prepare_run_dir,
    read_json,
    read_tensors,
    require_same_network,
    require_unfinished,
    restore_trainer,
    write_checkpoint,
)

TRAINER_TENSORS, TRAINER_STATE = "trainer.safetensors", "trainer.json"

Callback = Callable[[Any, int], None]
"""Called as ``callback(trainer, global_step)`` by a trainer as it trains: how the training script
wires analysis (saliency images in TensorBoard, say) in, so that no trainer imports ``analysis``."""


class Trainer(Protocol):
    """What the command line, the sweeps, :class:`RunSession` and the checkpoints need of a
    trainer."""

    cfg: Any  # a TrainConfig (agents.common.config)
    run_dir: Path
    game: str
    global_step: int
    updates: int
    env: Any
    writer: Any
    optimizer: torch.optim.Optimizer
    tracker: Any  # agents.common.training.EpisodeTracker
    stop_signal: int | None
    stopped_by: str  # "signal", "time limit" or "" (the budget spent)
    action_names: list[str]
    callbacks: list[Callback]

    def run(self) -> Path: ...

    def save(self) -> Path: ...


def open_run(trainer: Trainer, resume_from: Path | None, restore: Callable[[Path], None]) -> None:
    """The end of a trainer's set-up: a new run refuses a directory that holds one; a resumed one
    restores its checkpoint (``restore``; a damaged trainer state is one line) and refuses to go
    on once its budget is spent."""
    check_run_dir(trainer.run_dir, resuming=resume_from is not None)
    if resume_from is not None:
        restore_trainer(restore, resume_from)
        require_unfinished(trainer.cfg.resume, trainer.global_step, trainer.cfg.total_steps)


def save_training(trainer: Trainer, agent: str, network: torch.nn.Module, env_options: dict[str, Any],
                  tensors: dict[str, torch.Tensor] | None = None, state: dict[str, Any] | None = None,
                  files: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A checkpoint of ``trainer`` at its step, written atomically: ``network``'s weights and what
    using them needs without the training code (``checkpoint_config``: the ``agent``'s kind, the
    architecture, the game and its ``env_options``, the action names), and what a resume needs,
    the optimizer, torch's generator, the step, update and episode counts, and the trainer's own
    ``tensors`` and (JSON-ready) ``state``; ``files``, anything more (a replay memory)."""
    opt_tensors, opt_meta = optimizer_to_tensors(trainer.optimizer)
    counts = {"global_step": trainer.global_step, "updates": trainer.updates,
              "episodes": trainer.tracker.episodes, "optimizer": opt_meta}  # fmt: skip
    config = checkpoint_config(agent, network.architecture(), trainer.game, trainer.action_names,
                               env_options, trainer.global_step, dataclasses.asdict(trainer.cfg))  # fmt: skip
    written = {MODEL: network.state_dict(), CONFIG: config,
               TRAINER_TENSORS: {**opt_tensors, "rng.torch": torch.get_rng_state(), **(tensors or {})},
               TRAINER_STATE: {**counts, **(state or {})}, **(files or {})}  # fmt: skip
    return write_checkpoint(trainer.run_dir, trainer.global_step, written, trainer.cfg.keep_checkpoints)


def load_training(trainer: Trainer, network: torch.nn.Module,
                  ckpt: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:  # fmt: skip
    """What :func:`save_training` wrote, back into ``trainer``: the network (refused in one line
    if it is another network or game), the optimizer, torch's generator and the counts. Returns
    the trainer's tensors and state for it to take back its own."""
    require_same_network(ckpt, network.architecture(), trainer.game)
    load_state(network, read_tensors(ckpt / MODEL), ckpt / MODEL)
    tensors, state = read_tensors(ckpt / TRAINER_TENSORS), read_json(ckpt / TRAINER_STATE)
    optimizer_from_tensors(trainer.optimizer, tensors, state["optimizer"])
    torch.set_rng_state(tensors["rng.torch"])
    trainer.global_step, trainer.updates = state["global_step"], state["updates"]
    trainer.tracker.episodes = state["episodes"]
    return tensors, state


class Every:
    """A periodic event of a training loop, in environment steps: true once each time the step has
    gone ``every`` steps past the step it was last true at (or the loop's first step), never when
    ``every`` is 0. Logging, checkpoints and images take their turns by it."""

    def __init__(self, every: int, step: int) -> None:
        self.every, self.next = every, step + every

    def __call__(self, step: int) -> bool:
        if self.every <= 0 or step < self.next:
            return False
        self.next = step + self.every
        return True


def end_of_update(trainer: Trainer, save: Every) -> None:
    """What closes each update: the trainer's callbacks (a sweep's report, a test's probe) told the
    step reached, then a checkpoint when one is due by ``save``."""
    for callback in trainer.callbacks:
        callback(trainer, trainer.global_step)
    if save(trainer.global_step):
        trainer.save()


def run_loop(trainer: Trainer, loop: Callable[[RunSession], None]) -> Path:
    """A trainer's ``run()``: its ``loop`` inside a :class:`RunSession`; returns the final
    checkpoint's directory."""
    with RunSession(trainer) as session:
        loop(session)
    return session.path


class RunSession:
    """One session of ``trainer``'s training. On entering: the run directory prepared and locked
    (``config.json`` written, a resume taking over its own run), ``trainer.writer`` opened on it,
    the progress bar started at the trainer's step, and Ctrl-C and SIGTERM turned into a request
    that :meth:`should_stop` tells the loop of, as it does the time limit. On leaving: the bar
    closed, the signals restored (``trainer.stop_signal`` records the one that stopped it), then,
    unless the loop raised, the final checkpoint saved (``path``), the lock released after it, the
    writer and the envs closed. A loop that raises leaves its lock, which the next run takes over
    as stale."""

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

    def should_stop(self) -> bool:
        """Whether the loop ends here, before its budget is spent: a signal asked it to (Ctrl-C,
        SIGTERM), or the config's ``time_limit`` has passed. ``trainer.stopped_by`` says which."""
        t = self.trainer
        if self.stop.requested:
            t.stopped_by = "signal"
        elif t.cfg.time_limit and self.elapsed() >= t.cfg.time_limit:
            t.stopped_by = "time limit"
        return bool(t.stopped_by)

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
