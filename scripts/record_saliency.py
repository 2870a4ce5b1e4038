"""Record a saliency video: the game beside the value and the advantage saliency (Wang et al. 2016,
Fig. 2), for our checkpoints, SB3 zips (PPO/A2C: value against policy logits) or a random network.

    attn saliency --checkpoint runs/demo_pong --steps 1000 --out pong.mp4
    attn saliency --checkpoint ppo_pong.zip --game pong --episodes 1 --out ppo.mp4
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

from agents.common.config import PositiveInt, Probability
from scripts.cli import fail, parse_args, signals_end_cleanly


@dataclass
class Args:
    out: str
    """Output .mp4 path (checked before anything is played)."""
    checkpoint: str | None = None
    """Our run/checkpoint directory or an SB3 .zip; none: a randomly initialised network."""
    game: str | None = None
    """Game, needed for SB3 zips and random networks (ours record it)."""
    steps: PositiveInt | None = None
    """Agent steps to record (default 1000 unless --episodes is given)."""
    episodes: PositiveInt | None = None
    """Whole episodes to record instead of --steps."""
    epsilon: Probability = 0.001
    """Exploration while playing (the evaluation protocol's)."""
    seed: int = 0
    """Environment and exploration seed."""
    per_frame_norm: bool = False
    """Normalise each frame's saliency alone (flickers) instead of a running percentile."""
    fps: float = 30.0
    """Frames per second of the video."""
    height: int = 420
    """Height in pixels of each panel (the 210-row screen upscaled)."""
    method: str = "jacobian"
    """Saliency method: jacobian, smoothgrad, integrated_gradients, gradient_x_input or
    perturbation (Greydanus et al. 2018)."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError
    from analysis.playback import load_policy
    from analysis.saliency import check_method
    from analysis.saliency_video import record_saliency
    from analysis.video import check_video_options, check_writable

    steps = args.steps if args.steps is not None or args.episodes is not None else 1000
    try:
        check_video_options(args.fps, args.height)
        check_method(args.method)
        check_writable(args.out)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net, config = load_policy(args.checkpoint, args.game)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        with signals_end_cleanly():
            path = record_saliency(
                net, config, args.out, steps=steps, episodes=args.episodes, epsilon=args.epsilon,
                seed=args.seed, per_frame_norm=args.per_frame_norm, fps=args.fps,
                height=args.height, method=args.method,
            )  # fmt: skip
    except (ValueError, CheckpointError) as e:
        fail(e)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
