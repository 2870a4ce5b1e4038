"""Record where a glimpse agent looks: each scale's box on the full-resolution frame, the trail of
recent glimpse locations, and the patches as the agent saw them (Mnih et al. 2014's retina).

    attn glimpses --checkpoint runs/catch__glimpse__1__1700000000 --out glimpses.mp4
    attn glimpses --checkpoint RUN --episodes 1 --out pong.mp4 --jacobian seq.png

DQN checkpoints and SB3 zips have no glimpses: draw their saliency with scripts/record_saliency.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from agents.common.config import NonNegativeInt, PositiveInt
from scripts.cli import fail, not_applicable, parse_args, signals_end_cleanly


@dataclass
class Args:
    checkpoint: str
    """Run directory, checkpoint directory or model.safetensors of a glimpse agent."""
    out: str = "glimpses.mp4"
    """Output .mp4 path (checked before anything is played)."""
    steps: PositiveInt | None = None
    """Agent steps to record (default 200 unless --episodes is given)."""
    episodes: PositiveInt | None = None
    """Whole episodes to record instead of --steps."""
    seed: int = 0
    """Environment (and, with --sample, sampling) seed."""
    sample: bool = False
    """Sample actions and locations from the policies instead of taking the most likely."""
    trail: NonNegativeInt = 8
    """Recent glimpse locations drawn as a trail."""
    fps: float = 10.0
    """Frames per second of the video."""
    height: int = 420
    """Height in pixels of the screen panel (the frame upscaled by a whole factor)."""
    jacobian: str = ""
    """Also write the sequential Jacobian of the first episode to this .png."""
    jacobian_head: str = "action_logits"
    """Head differentiated for --jacobian: action_logits (the chosen action's logit), baseline or
    location_mean (a baseline read off a detached state has no sensitivity at all)."""
    progress: bool = True
    """Show progress bars."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError
    from analysis.glimpse_video import (
        check_jacobian_head,
        episode_jacobian,
        load_glimpse_agent,
        record_glimpses,
    )
    from analysis.video import check_output_file, check_video_options, check_writable

    steps = args.steps if args.steps is not None or args.episodes is not None else 200
    try:
        check_video_options(args.fps, args.height, panels=2)
        if not args.jacobian:
            not_applicable(sys.argv[1:], {"jacobian_head": "applies to --jacobian only"})
        check_writable(args.out)
        if args.jacobian:
            check_output_file(args.jacobian, ".png")
        model, config = load_glimpse_agent(args.checkpoint)
        if args.jacobian:
            check_jacobian_head(model, args.jacobian_head)
        with signals_end_cleanly():
            path, played = record_glimpses(
                model, config, args.out, steps=steps, episodes=args.episodes, seed=args.seed,
                fps=args.fps, height=args.height, trail=args.trail, greedy=not args.sample,
                progress=args.progress,
            )  # fmt: skip
        print(f"wrote {path}")
        if args.jacobian:
            jac = episode_jacobian(model, played, args.jacobian_head)
            jac.plot(args.jacobian)
            spans = jac.memory_span()
            print(f"wrote {args.jacobian}: memory span median {float(np.median(spans)):g} steps, "
                  f"max {int(spans.max())} over {len(spans)} steps")  # fmt: skip
    except (ValueError, CheckpointError) as e:
        fail(e)


if __name__ == "__main__":
    main()
