"""Record a saliency video: the game beside the value and the advantage saliency (Wang et al. 2016,
Fig. 2), for our checkpoints, SB3 zips (PPO/A2C: value against policy logits) or a random network.
A soft-attention checkpoint gets its attention maps, one per query, beside its value's Jacobian.

    attn saliency --checkpoint runs/demo_pong --steps 1000 --out pong.mp4
    attn saliency --checkpoint ppo_pong.zip --game pong --episodes 1 --out ppo.mp4
    attn saliency --checkpoint runs/catch__soft__1__1700000000 --episodes 3 --out soft.mp4
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
    """Exploration while playing (the evaluation protocol's; a soft-attention agent plays its
    greedy policy)."""
    seed: int = 0
    """Environment and exploration seed."""
    per_frame_norm: bool = False
    """Normalise each frame's saliency alone (flickers) instead of a running percentile."""
    fps: float = 30.0
    """Frames per second of the video."""
    height: int = 420
    """Height in pixels of each panel (the 210-row screen upscaled)."""
    sequential_jacobian: str | None = None
    """Soft-attention checkpoints: also plot the value's sequential Jacobian over the first episode
    (Graves 2012: how much each step's value moves with every earlier observation) into this .png."""
    checks: str | None = None
    """Soft-attention checkpoints: also run the saliency checks on the attention maps themselves
    (deletion of the attended pixels against random ones, cascading randomisation; the value's
    Jacobian beside them) over up to 256 moments of the recording, into this .json."""
    method: str = "jacobian"
    """Saliency method: jacobian, smoothgrad, integrated_gradients, gradient_x_input, perturbation
    (Greydanus et al. 2018) or lrp (DQN and PQN networks); a soft-attention agent's video shows the
    Jacobian."""
    progress: bool = True
    """Show progress bars."""


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
        if args.checkpoint and soft_checkpoint(args.checkpoint):
            record_soft(args, steps)
            return
        if args.sequential_jacobian:
            raise ValueError("--sequential-jacobian is for soft-attention checkpoints (a glimpse "
                             "agent's: attn glimpses --jacobian)")  # fmt: skip
        if args.checks:
            raise ValueError("--checks is for soft-attention checkpoints (a Q-network's checks: "
                             "attn report)")  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            net, config = load_policy(args.checkpoint, args.game)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        with signals_end_cleanly():
            path = record_saliency(
                net, config, args.out, steps=steps, episodes=args.episodes, epsilon=args.epsilon,
                seed=args.seed, per_frame_norm=args.per_frame_norm, fps=args.fps,
                height=args.height, method=args.method, progress=args.progress,
            )  # fmt: skip
    except (ValueError, CheckpointError) as e:
        fail(e)
    print(f"wrote {path}")


def record_soft(args: Args, steps: int | None) -> None:
    """A soft-attention agent's video: its attention maps beside its value's Jacobian, and how
    much they agree."""
    from agents.common.checkpoint import load_checkpoint
    from analysis.attention_video import record_attention

    if args.game is not None or args.method != "jacobian":
        raise ValueError("a soft-attention checkpoint records its game, and its video draws its "
                         "attention maps beside its value's Jacobian: leave out --game and "
                         "--method")  # fmt: skip
    with signals_end_cleanly():
        path, summary = record_attention(
            *load_checkpoint(args.checkpoint), args.out, steps=steps, episodes=args.episodes,
            seed=args.seed, fps=args.fps, height=args.height, per_frame_norm=args.per_frame_norm,
            sequential=args.sequential_jacobian, checks=args.checks, progress=args.progress,
        )  # fmt: skip
    print(f"attention against the value's Jacobian (Spearman over the feature cells): median "
          f"{summary['agreement_median']:.2f}, quartiles {summary['agreement_q25']:.2f} to "
          f"{summary['agreement_q75']:.2f}, over {summary['steps']} steps")  # fmt: skip
    for cls, kinds in summary.get("objects", {}).items():
        shares = (f"{k} {kinds[k]['mean']:.3f} [{kinds[k]['ci_low']:.3f}, {kinds[k]['ci_high']:.3f}]"
                  for k in ("attention", "jacobian"))  # fmt: skip
        print(f"  share on the {cls}: {', '.join(shares)}")
        near, chance = kinds["peak_near"], kinds["peak_near_chance"]
        print(f"  attention peaks within one cell of the {cls}: {near['mean']:.2f} [{near['ci_low']:.2f}, "
              f"{near['ci_high']:.2f}] of the maps (a cell at random: {chance['mean']:.2f})")  # fmt: skip
    if args.sequential_jacobian:
        print(f"the value's memory span over the first episode: median {summary['memory_span_median']:.0f} "
              f"steps back (sequential Jacobian in {args.sequential_jacobian})")  # fmt: skip
    if args.checks:
        print_checks(summary["checks"], args.checks)
    print(f"wrote {path}")


def print_checks(checks: dict, path: str) -> None:
    """The attention checks in a few lines: each deletion curve's ratio to random pixels, each
    map's similarity to the trained agent's once every layer is random."""
    for name, curve in checks["deletion"].items():
        ranked_by, head = name.split("/")
        print(f"deleting the pixels the {ranked_by} ranks first moves the {head} "
              f"{curve['ratio']:.2f}x as much as random pixels")  # fmt: skip
    for kind, result in checks["randomisation"].items():
        last = result["stages"][-1]["similarity"]
        rho = next(iter(last.values()))["spearman"]
        verdict = "SURVIVES" if any(result["survives_full_randomisation"].values()) else "passes"
        print(f"{kind} maps once every layer is random: Spearman {rho['mean']:.2f} [{rho['ci_low']:.2f}, "
              f"{rho['ci_high']:.2f}] with the trained agent's ({verdict})")  # fmt: skip
    print(f"checks over {checks['moments']} moments in {path}")


def soft_checkpoint(checkpoint: str) -> bool:
    """Whether ``checkpoint`` is one of ours holding a soft-attention agent (an SB3 zip is not)."""
    from agents.common.checkpoint import read_json, resolve_checkpoint

    if checkpoint.endswith(".zip"):
        return False
    return read_json(resolve_checkpoint(checkpoint) / "config.json").get("agent") == "soft"


if __name__ == "__main__":
    main()
