"""Evaluate a checkpoint with the papers' protocol (no-op starts, epsilon 0.001, 108k-frame cap).

attn evaluate --checkpoint runs/pong__dueling_dqn__1__1700000000 --episodes 30
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agents.common.config import NonNegativeInt, PositiveInt, Probability
from scripts.cli import fail, parse_args


@dataclass
class Args:
    checkpoint: str
    """Run directory, checkpoint directory or model.safetensors file."""
    episodes: PositiveInt = 30
    """Episodes to play (each of the parallel envs plays an equal share)."""
    epsilon: Probability = 0.001
    """Exploration during evaluation (Wang et al. 2016)."""
    noop_max: NonNegativeInt = 30
    """Up to this many no-ops at each start (Atari)."""
    num_envs: PositiveInt = 8
    """Parallel environments."""
    seed: int = 0
    """Seed for the environments and the exploration."""
    sample: bool = False
    """Glimpse agents: sample actions and glimpse locations from the policies, as in training (the
    scores policy-gradient papers report) instead of the greedy action and the mean location."""
    device: str = "cpu"
    """Device for the network: 'cpu', 'cuda' or 'auto' (cuda if available)."""
    json_out: str = ""
    """Also write the result as JSON to this path."""
    progress: bool = True
    """Show progress bars."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError, load_checkpoint
    from agents.common.evaluate import evaluate_network
    from agents.common.training import check_device, resolve_device
    from analysis.video import check_output_file

    try:
        check_device(args.device)
        if args.json_out:
            check_output_file(args.json_out, ".json")
        device = str(resolve_device(args.device))
        network, config = load_checkpoint(args.checkpoint, device=device)
        summary = evaluate_network(
            network, config, episodes=args.episodes, epsilon=args.epsilon, noop_max=args.noop_max,
            num_envs=args.num_envs, seed=args.seed, device=device, sample=args.sample,
            progress=args.progress,
        )  # fmt: skip
        if config.get("agent") == "glimpse" and config.get("game") == "catch":
            from analysis.glimpse_metrics import gaze_hit_rate

            summary["gaze_hit_rate"], trace = gaze_hit_rate(network, config, args.episodes, args.seed)
            summary["gaze_hit_rate_by_patch"] = {size: trace.hit_rate(size) for size in network.retina.sizes}
    except (CheckpointError, ValueError) as e:
        fail(e)
    hns = summary["human_normalized"]
    hns_text = f", human-normalised {hns:.1%}" if hns is not None else ""
    print(
        f"{summary['game']}: {summary['mean']:.2f} +- {summary['std']:.2f} over "
        f"{summary['episodes']} episodes{hns_text} ({summary['policy']} policy)"
    )
    if "gaze_hit_rate" in summary:
        rates = ", ".join(f"{rate:.2f} in the {size}-pixel patch"
                          for size, rate in reversed(summary["gaze_hit_rate_by_patch"].items()))  # fmt: skip
        print(f"gaze hit rate: {rates} (the ball inside the glimpse's patch, second half of each "
              "greedy episode)")  # fmt: skip
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
