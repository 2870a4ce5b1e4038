"""Saliency over training: the same probe frames' value and advantage maps at each checkpoint of a
run (checkpoints as columns), with the two heads' agreement against training steps, as one figure;
also logged to TensorBoard under RUN/saliency_over_training.

Runs keep their 3 newest checkpoints; train with --keep-checkpoints 0 to keep them all:

    attn train dqn --game catch --keep-checkpoints 0 --save-every 8000 --run-dir runs/c
    attn saliency-over-training --run runs/c --out docs/figures/catch_over_training.png
"""

from __future__ import annotations

from dataclasses import dataclass

from scripts.cli import fail, parse_args, signals_end_cleanly


@dataclass
class Args:
    run: str
    """Run directory (its checkpoints/step_* are the columns)."""
    out: str
    """Output figure (.png)."""
    method: str = "jacobian"
    """Saliency method: jacobian, smoothgrad, integrated_gradients, gradient_x_input, perturbation
    or lrp."""
    probe_frames: int = 4
    """Probe frames (rows), spread over --probe-steps steps of the final network's play."""
    probe_steps: int = 200
    """Steps the final network plays to pick the probe frames from."""
    seed: int = 0
    """Environment seed of that play."""
    tensorboard: bool = True
    """Also log to TensorBoard under RUN/saliency_over_training."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from pathlib import Path

    from agents.common.checkpoint import CheckpointError
    from analysis.over_training import log_over_training, plot_over_training, saliency_over_training
    from analysis.saliency import check_method
    from analysis.video import check_output_file

    try:
        check_method(args.method)
        check_output_file(args.out, ".png")
        with signals_end_cleanly():
            result = saliency_over_training(args.run, args.probe_frames, args.probe_steps,
                                            args.method, args.seed)  # fmt: skip
            path = plot_over_training(result, args.out)
            if args.tensorboard:
                log_over_training(result, Path(args.run) / "saliency_over_training")
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)
    first, last = (float(result.agreement["spearman"][i].mean()) for i in (0, -1))
    print(f"{len(result.steps)} checkpoints; {result.heads[0]} vs {result.heads[1]} Spearman "
          f"{first:.3f} at step {result.steps[0]:,} -> {last:.3f} at step {result.steps[-1]:,}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
