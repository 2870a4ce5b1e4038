"""Where a Catch glimpse agent looks: the ball's and the gaze's paths in a few greedy episodes of
the run's final checkpoint, and the catch and gaze hit rates at every checkpoint (the gaze hit rate
counts the steps of each episode's second half with the ball inside the widest patch).

Runs keep their 3 newest checkpoints; train with --keep-checkpoints 0 to keep them all:

    attn train glimpse --game catch --preset foveal --keep-checkpoints 0 --run-dir runs/f
    attn gaze-figure --run runs/f --out docs/figures/foveal_gaze.png
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.common.config import PositiveInt
from scripts.cli import fail, parse_args, signals_end_cleanly


@dataclass
class Args:
    run: str
    """Run directory of a glimpse agent trained on Catch (its checkpoints/step_* are the points)."""
    out: str
    """Output figure (.png)."""
    episodes: PositiveInt = 200
    """Greedy episodes each checkpoint plays (the same ones for every checkpoint)."""
    shown: PositiveInt = 3
    """Episodes of the final checkpoint whose paths are drawn."""
    seed: int = 10_000
    """Seed of the episodes."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError
    from analysis.glimpse_metrics import gaze_over_training, plot_gaze
    from analysis.video import check_output_file

    try:
        check_output_file(args.out, ".png")
        with signals_end_cleanly():
            curve = gaze_over_training(args.run, args.episodes, args.seed)
            path = plot_gaze(curve, args.out, args.shown)
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)
    for step, caught, hits in zip(curve.steps, curve.caught, curve.hits, strict=True):
        print(f"step {step:>12,}: caught {caught:.2f}, gaze hit rate {hits:.2f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
