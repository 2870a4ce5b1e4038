"""Learning curves of runs side by side: ``charts/episodic_return`` (the game score) against
environment steps, smoothed by a trailing mean, a panel per game. Runs given the same label are
seeds of one curve, drawn as their mean with a 95% band.

    python scripts/plot_runs.py --runs runs/a runs/b --labels ppo reinforce --out curves.png
    python scripts/plot_runs.py --runs runs/a runs/b --out curves.png --table   # and the table

--table also prints each run's mean return over its first window of --window steps, its best
window and its last one, as a Markdown table (raw returns, not the figure's smoothed curve).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import tyro


@dataclass
class Args:
    runs: list[str]
    """Run directories (any trainer's: DQN, PQN, glimpse)."""
    out: str
    """Output figure (.png)."""
    labels: list[str] = field(default_factory=list)
    """One label per run (default: the run directory's name); a repeated label averages seeds."""
    smooth: float = 0.05
    """Trailing-mean window, as a fraction of each curve's points."""
    table: bool = False
    """Also print the first, best and last window's mean return of each run (Markdown)."""
    window: int = 200_000
    """Steps per window of --table."""


def main() -> None:
    args = tyro.cli(Args, description=__doc__)
    from analysis.sweeps import load_runs, plot_curves, window_table
    from analysis.video import check_output_file

    try:
        if not 0.0 < args.smooth <= 1.0:
            raise ValueError(f"--smooth must be in (0, 1], got {args.smooth}")
        out = check_output_file(args.out, ".png")
        trials = load_runs(args.runs, args.labels, args.smooth)
        table = window_table(args.runs, args.window) if args.table else ""
        plot_curves(trials, out)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if table:
        print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
