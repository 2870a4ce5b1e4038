"""Compare where two heads look over whole episodes: value against advantage (dueling DQN) or critic
against actor (SB3 PPO/A2C), by one or more saliency methods, with the randomisation sanity check
and deletion/insertion fidelity of every method. Writes report.html (open it in a browser) beside
report.json, report.png, sanity_<method>.png, fidelity.png and clip.webm into --out.

    attn report --checkpoint runs/demo_pong --episodes 1 --out reports/pong
    attn report --checkpoint runs/demo_pong --steps 500 \
        --method jacobian integrated_gradients smoothgrad --out reports/pong_methods
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

from agents.common.config import NonNegativeInt, PositiveInt, Range
from scripts.cli import fail, not_applicable, parse_args, signals_end_cleanly


@dataclass
class Args:
    checkpoint: str
    """Our run/checkpoint directory or an SB3 .zip."""
    out: str
    """Folder for report.html and the files it shows."""
    episodes: PositiveInt = 1
    """Episodes to play."""
    steps: PositiveInt | None = None
    """Play this many steps (frames) instead of --episodes whole episodes."""
    game: str | None = None
    """Game (needed for SB3 zips)."""
    seed: int = 0
    """Environment seed (and the seed of the randomisation check and the random-pixel control)."""
    method: tuple[str, ...] = ("jacobian",)
    """Saliency methods, the first one the report's main one: jacobian, smoothgrad,
    integrated_gradients, gradient_x_input, perturbation, lrp (layer-wise relevance, DQN and PQN
    networks)."""
    probe_frames: Annotated[int, Range(ge=2)] = 16
    """Frames, spread over the playback, for the sanity and fidelity checks."""
    clip: NonNegativeInt = 120
    """Steps at the start of the playback shown as a clip in report.html (0: none)."""
    progress: bool = True
    """Show progress bars (playing, saliency)."""
    objects: tuple[str, ...] = ()
    """Object classes to measure each head's maps against (default: all of the game's, on games
    whose objects the suite reads: analysis.objects.CLASSES), e.g. --objects car_near car_far."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError
    from analysis.objects import check_classes
    from analysis.playback import load_policy
    from analysis.report import REPORT_FILES, build_report, collect, regions_for, write_report
    from analysis.saliency import check_method, lrp_heads
    from analysis.video import check_output_dir

    try:
        if args.steps is not None:
            not_applicable(sys.argv[1:], {"episodes": "and --steps exclude each other: give one"})
        if not args.method:
            raise ValueError("--method needs at least one method")
        for m in args.method:
            check_method(m)
        check_output_dir(args.out, writes=REPORT_FILES)
        net, config = load_policy(args.checkpoint, args.game)
        if "lrp" in args.method:  # refused here, before playing; fail() removes the folder made
            lrp_heads(net)
        if args.objects:
            check_classes(config["game"], args.objects)
        with signals_end_cleanly():
            episodes = None if args.steps else args.episodes
            collected = collect(net, config, episodes, seed=args.seed, steps=args.steps,
                                methods=list(dict.fromkeys(args.method)), clip=args.clip,
                                classes=args.objects, progress=args.progress)  # fmt: skip
            report = build_report(net, collected, regions_for(config["game"]),
                                  probe=args.probe_frames, seed=args.seed)  # fmt: skip
            heads = collected.heads
            title = f"{config['game']}: {heads[0]} vs {heads[1]}"
            paths = write_report(report, args.out, title=title)
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)
    s = report["per_frame_summary"]
    print(f"{report['frames']} frames; Pearson {s['pearson']['mean']:.3f}, top-5% IoU "
          f"{s['top5_iou']['mean']:.3f}, centre distance {s['centre_distance']['mean']:.1f} px")  # fmt: skip
    for region, d in report["region_differences"].items():
        print(f"share {region}: {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] "
              "(95% CI, batch means)")
    for m, objects in report.get("objects", {}).items():  # where the heads look among the objects
        for h, per in objects["heads"].items():
            shown = ", ".join(f"{c} {r['enrichment']['mean']:.1f}x" for c, r in per["classes"].items()
                              if r["enrichment"])  # fmt: skip
            print(f"{m} {h}: mass over each object's share of the screen: {shown}")
    if control := report.get("action_control"):  # does the per-action map say which action?
        sim = control["similarity"]
        print(f"{control['method']} {control['head']}: the chosen action's map against a random other "
              f"action's: Spearman {sim['spearman']['mean']:.3f} [{sim['spearman']['ci_low']:.3f}, "
              f"{sim['spearman']['ci_high']:.3f}], top-5% IoU {sim['top5_iou']['mean']:.3f}")  # fmt: skip
    for m, survives in ((m, r["survives_full_randomisation"]) for m, r in report["sanity"].items()):
        for h, flag in survives.items():
            if flag:
                print(f"warning: {m} {h} maps survive full randomisation: they show the input, "
                      "not the network (Adebayo et al. 2018)", file=sys.stderr)  # fmt: skip
    print("wrote", *map(str, paths))


if __name__ == "__main__":
    main()
