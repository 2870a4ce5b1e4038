"""Compare where two heads look over whole episodes: value against advantage (dueling DQN) or critic
against actor (SB3 PPO/A2C). Writes report.json and report.png into --out.

    python scripts/compare_heads.py --checkpoint runs/demo_pong --episodes 1 --out reports/pong
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import tyro

from scripts.cli import signals_end_cleanly


@dataclass
class Args:
    checkpoint: str
    """Our run/checkpoint directory or an SB3 .zip."""
    out: str
    """Folder for report.json and report.png."""
    episodes: int = 1
    """Episodes to play."""
    steps: int | None = None
    """Play this many steps (frames) instead of --episodes whole episodes."""
    game: str | None = None
    """Game (needed for SB3 zips)."""
    seed: int = 0
    """Environment seed."""


def main() -> None:
    args = tyro.cli(Args, description=__doc__)
    from agents.checkpoint import CheckpointError
    from analysis.playback import load_policy
    from analysis.report import collect, head_report, regions_for, write_report
    from analysis.video import check_output_dir

    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        check_output_dir(args.out)
        net, config = load_policy(args.checkpoint, args.game)
        with signals_end_cleanly():
            episodes = None if args.steps else args.episodes
            heads, maps = collect(net, config, episodes, seed=args.seed, steps=args.steps)
            report = head_report(heads, maps, regions_for(config["game"]))
            title = f"{config['game']}: {heads[0]} vs {heads[1]}"
            paths = write_report(report, args.out, title=title)
    except (ValueError, CheckpointError, OSError) as e:
        sys.exit(f"error: {e}")
    s = report["per_frame_summary"]
    print(f"{report['frames']} frames; Pearson {s['pearson']['mean']:.3f}, top-5% IoU "
          f"{s['top5_iou']['mean']:.3f}, centre distance {s['centre_distance']['mean']:.1f} px")  # fmt: skip
    print("wrote", *paths)


if __name__ == "__main__":
    main()
