"""Learning curves of runs side by side: ``charts/episodic_return`` (the game score) against
environment steps, smoothed by a trailing mean, a panel per game. Runs given the same label are
seeds of one curve, drawn as their mean with a 95% band.

    attn plot --runs runs/a runs/b --labels ppo reinforce --out curves.png
    attn plot --runs runs/a runs/b --out curves.png --table   # and the table

--table also prints each run's mean return over its first window of --window steps, its best
window and its last one, as a Markdown table (raw returns, not the figure's smoothed curve).
--every-window prints every window instead, a table per run, with the mean of each --tags scalar:

    attn plot --runs runs/a --every-window --window 200000 --since 7000000 \
        --tags charts/episodic_return charts/learning_rate     # no --out: no figure
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Annotated

from agents.common.config import NonNegativeInt, Range
from scripts.cli import fail, not_applicable, parse_args


@dataclass
class Args:
    runs: list[str]
    """Run directories (any trainer's: DQN, PQN, glimpse), or shipped agents' folders (pretrained/pong:
    the curve.csv of its training), to draw a run beside the agent it should match."""
    out: str = ""
    """Output figure (.png); empty draws none (then --table or --every-window is needed)."""
    labels: list[str] = field(default_factory=list)
    """One label per run (default: the run directory's name); a repeated label averages seeds."""
    smooth: Annotated[float, Range(gt=0, le=1)] = 0.05
    """Trailing-mean window, as a fraction of each curve's points."""
    table: bool = False
    """Also print the first, best and last window's mean return of each run (Markdown)."""
    every_window: bool = False
    """Print every window of --window steps of each run (from --since), with each --tags mean."""
    tags: list[str] = field(default_factory=lambda: ["charts/episodic_return"])
    """Scalars that --every-window averages over each window (any tag the run logged)."""
    since: NonNegativeInt = 0
    """First step of --every-window's first window."""
    window: int = 200_000
    """Steps per window of --table and --every-window."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from analysis.sweeps import every_window_table, load_runs, plot_curves, window_table
    from analysis.video import check_output_file

    try:
        if not (args.out or args.table or args.every_window):
            raise ValueError("nothing to do: give --out FIGURE.png, --table or --every-window")
        not_applicable(sys.argv[1:], {
            **({} if args.every_window else {"tags": "applies to --every-window only",
                                             "since": "applies to --every-window only"}),
            **({} if args.out else {"labels": "names the figure's curves: give --out too",
                                    "smooth": "smooths the figure's curves: give --out too"}),
            **({} if args.table or args.every_window else {
                "window": "applies to --table and --every-window only"}),
        })  # fmt: skip
        out = check_output_file(args.out, ".png") if args.out else None
        trials = load_runs(args.runs, args.labels, args.smooth) if out is not None else []
        tables = [window_table(args.runs, args.window)] if args.table else []
        if args.every_window:
            tables += [f"{run}\n\n{every_window_table(run, args.window, args.tags, args.since)}"
                       for run in args.runs]  # fmt: skip
        if out is not None:
            plot_curves(trials, out)
    except ValueError as e:
        fail(e)
    if tables:
        print("\n\n".join(tables))
    if out is not None:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
