"""Run many trainings at once with Ray Tune: a trainer over games, seeds and config values, on this
machine or a Ray cluster. Each trial is an ordinary run directory under SWEEP/runs/ (TensorBoard,
config.json, checkpoints); at the end SWEEP/results.csv, results.md and curves.png compare them.

    attn sweep --trainer dqn --games catch --seeds 1 2 3 \\
        --param learning_rate=1e-4,2.5e-4 --sweep-dir sweeps/catch_lr
    attn sweep --resume sweeps/catch_lr          # after Ctrl-C or a killed driver
    tensorboard --logdir sweeps/catch_lr                      # every trial, live

Across machines: `ray start --head` on one, `ray start --address HEAD:6379` on the others (all
sharing the file system that holds SWEEP), then add `--address HEAD:6379` here.
Needs the [scale] extra: pip install -e '.[scale]'.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from typing import Annotated, Any

import tyro

from agents.common.config import NonNegativeInt
from agents.common.sweep import SWEEP_FILE, SweepSpec
from scripts.cli import fail, parse_args


@dataclass
class Args(SweepSpec):
    params: tyro.conf.Suppress[dict[str, list[Any]]] = field(default_factory=dict)
    sweep_dir: str = ""
    """Folder of the sweep (required for a new one): trials in runs/, Tune's state in tune/."""
    param: Annotated[tuple[str, ...], tyro.conf.UseAppendAction] = ()
    """A config field and its values, NAME=V1,V2 (repeat the flag for more fields); any field of the
    trainer's --help, e.g. learning_rate=1e-4,2.5e-4 or total_steps=200000."""
    num_cpus: NonNegativeInt = 0
    """CPUs of the local Ray instance (0: all of this machine's); ignored with --address."""
    address: str = ""
    """Join the Ray cluster whose head is at HOST:PORT (empty: start a local instance)."""
    resume: str = ""
    """Continue the sweep in this folder: finished trials stay, unfinished ones resume from their
    last checkpoint. The sweep's own settings are reused; --address and --num-cpus still apply."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from pathlib import Path

    from agents.common.checkpoint import CheckpointError
    from agents.common.sweep import parse_param, run_sweep
    from analysis.sweeps import write_results
    from analysis.tensorboard import training_callbacks

    try:
        if args.resume:
            sweep_dir = Path(args.resume)
            spec = SweepSpec.load(sweep_dir)
        else:
            if not args.sweep_dir:
                raise ValueError("give --sweep-dir for a new sweep (or --resume SWEEP)")
            sweep_dir = Path(args.sweep_dir)
            if (sweep_dir / SWEEP_FILE).exists():
                raise ValueError(f"{str(sweep_dir)!r} already holds a sweep; continue it with "
                                 f"--resume {sweep_dir} or give a new --sweep-dir")  # fmt: skip
            spec = SweepSpec(**{f.name: getattr(args, f.name) for f in fields(SweepSpec)})
            spec.params = dict(parse_param(p, args.trainer) for p in args.param)
        spec.validate()
        print(f"sweep directory: {sweep_dir} ({len(spec.configs())} trials)")
        # Ctrl-C is Tune's: it stops the trials, saves the sweep's state and returns
        outcome = run_sweep(spec, sweep_dir, resume=bool(args.resume), address=args.address,
                            num_cpus=args.num_cpus or None, callbacks=training_callbacks)  # fmt: skip
    except (ValueError, CheckpointError) as e:
        fail(e)
    for line in outcome.errors:
        print(f"trial failed: {line}", file=sys.stderr)
    try:
        written = write_results(sweep_dir)
        print("results: " + ", ".join(map(str, written)))
    except ValueError as e:
        print(f"no results yet: {e}")
    if outcome.interrupted:
        print(f"sweep stopped before every trial ended; continue with --resume {sweep_dir}")
        sys.exit(130)
    if outcome.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
