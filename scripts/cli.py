"""What the command-line scripts share: parsing with the checks every flag gets, the preset a
--game picks, how a training reports its end, one-line errors and warnings, and signals that end a
script in one line, with nothing partial left behind."""

from __future__ import annotations

import contextlib
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from agents.common.config import TrainConfig
    from agents.common.run import Trainer

T = TypeVar("T")
C = TypeVar("C", bound="TrainConfig")

_show_warning = warnings.showwarning
_said: set[str] = set()


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:  # fmt: skip
    """The library's warnings for users (a damaged ``latest`` passed over, say) as one line,
    ``warning: ...``; any other warning as Python shows it."""
    from agents.common.checkpoint import CheckpointWarning

    if issubclass(category, CheckpointWarning):
        if str(message) not in _said:  # the same run resolved several times: said once
            _said.add(str(message))
            print(f"warning: {message}", file=sys.stderr)
    else:
        _show_warning(message, category, filename, lineno, file, line)


warnings.showwarning = _one_line_warning


def parse_args(cls: type[T], description: str | None) -> T:
    """``tyro.cli(cls)``, then the checks every script's flags get before any work, the same as the
    trainers' configs (``check_config``: the kind of every value, every float finite, and the
    limits the fields declare): one line and exit code 2 otherwise."""
    import tyro

    from agents.common.config import check_config

    args = tyro.cli(cls, description=description)
    try:
        check_config(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return args


def parse_config(cls: type[C], description: str | None, argv: list[str] | None = None) -> C:
    """A trainer's config from the command line, starting from the defaults of the game (and
    preset) it names: ``cls.for_game``, the presets being data on the config (``PRESETS``). tyro
    reads the command line twice: once for the game and preset, then with their defaults, so that
    every flag overrides the preset and ``--help`` shows the defaults that apply. A resume starts
    from the class defaults: a run keeps its own budget, never a preset's."""
    import tyro

    argv = sys.argv[1:] if argv is None else argv
    named = tyro.cli(cls, args=[a for a in argv if a not in ("-h", "--help")], description=description)
    preset = getattr(named, "preset", "")
    default = cls() if named.resume else cls.for_game(named.game, preset)
    return tyro.cli(cls, default=default, args=argv, description=description)


def fail(error: BaseException) -> NoReturn:
    """End a script on a refused input: one line, exit code 1, and no folder left behind that its
    output checks created (``analysis.video.remove_created_dirs``)."""
    from analysis.video import remove_created_dirs

    remove_created_dirs()
    sys.exit(f"error: {error}")


def not_applicable(argv: list[str], flags: dict[str, str]) -> None:
    """Refuse by name a flag given on the command line that does nothing here (``flags``: field
    name -> why it does not apply), instead of ignoring it."""
    given = flags_given(argv)
    for name, why in flags.items():
        if name in given:
            raise ValueError(f"--{name.replace('_', '-')} {why}")


def flags_given(argv: list[str]) -> frozenset[str]:
    """The config fields named on the command line (``--total-steps 5`` and ``--total-steps=5``
    give ``total_steps``, ``--no-progress`` gives ``progress``): a resumed run takes its budget
    from these even where a value equals the default."""
    names = (arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--"))
    return frozenset(n.removeprefix("no-").replace("-", "_") for n in names)


def train_command(kind: str, description: str | None) -> None:
    """``attn train KIND``: the config from the command line, starting from its game's preset
    (:func:`parse_config`), what analysis logs while it trains (saliency images), and the run."""
    from agents.common.registry import TRAINERS
    from analysis.tensorboard import training_callbacks

    trainer = TRAINERS[kind]
    cfg = parse_config(trainer.config_class(), description)
    callbacks = training_callbacks(cfg)
    train(lambda: trainer.build(cfg, callbacks, given=flags_given(sys.argv[1:])))


def train(make_trainer: Callable[[], Trainer]) -> None:
    """Build a trainer, say where its run lives, train, and report the end; a bad flag, a bad
    checkpoint or a refused run directory is one line (the trainers raise them before any work)."""
    from agents.common.checkpoint import CheckpointError

    try:
        trainer = make_trainer()
        print(f"run directory: {trainer.run_dir}")
        if hasattr(trainer.cfg, "precision"):
            print(f"precision: {trainer.cfg.precision}"
                  + (" (bfloat16 passes; float32 weights, optimizer and checkpoints)"
                     if trainer.cfg.precision == "bf16" else ""))  # fmt: skip
        if getattr(trainer.cfg, "compile", False):
            print("compile: on (torch.compile; the first rollout and update wait for it)")
        if trainer.cfg.resume:  # what this resume honours from the command line, said once
            print(f"resuming at step {trainer.global_step:,} of {trainer.cfg.total_steps:,} "
                  f"(saving every {trainer.cfg.save_every:,})")  # fmt: skip
        path = trainer.run()
    except (ValueError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    report_end(trainer, path)


def report_end(trainer: Trainer, path: Path) -> None:
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


def command_line() -> str:
    """The command that runs this script, as a user would type it again (``attn pack --run ...``:
    the subcommand's name is one word of the command, not a quoted string)."""
    import shlex

    return " ".join([Path(sys.argv[0]).name, *map(shlex.quote, sys.argv[1:])])


@contextlib.contextmanager
def signals_end_cleanly(kept: str = "no partial output was kept") -> Iterator[None]:
    """For scripts that write files: SIGTERM raises like Ctrl-C does, so that the writers' context
    managers remove their partial files; either ends the script with one line, saying what was
    ``kept``, and exit code 128 + the signal's number (130, 143) instead of a traceback."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        from analysis.video import remove_created_dirs

        remove_created_dirs()
        sig = received[0] if received else signal.SIGINT
        print(f"interrupted by {signal.Signals(sig).name}; {kept}", file=sys.stderr)
        sys.exit(128 + sig)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
