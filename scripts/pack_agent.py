"""Evaluate a run with the papers' protocol and pack it as a shipped agent (pretrained/).

    attn pack --run runs/breakout_glimpse --out pretrained/breakout_glimpse \
        --sample --training-state

The folder gets eval.json (the 30 episodes, the protocol, the machine, library versions, and the
training's wall time summed over its sessions, read from the run's TensorBoard events) and
curve.csv (the training's episodic returns). Without --training-state it holds the final weights
(float32, or --dtype float16 at half the size) and their config, as scripts/train_pretrained.py
packs its GPU agents; with it, the run itself (its newest checkpoint with the optimizer's state,
its config and TensorBoard events), so that a run that needs more sessions than one ships what
it has learnt and goes on later:
`cp -r pretrained/NAME runs/NAME && attn train glimpse --resume runs/NAME`.

A shipped agent stored as float32 is stored again at half precision, evaluated again, in place:
`attn pack --run pretrained/pong --out pretrained/pong --dtype float16 --restore`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.common.config import PositiveInt
from scripts.cli import command_line, fail, parse_args, signals_end_cleanly


@dataclass
class Args:
    run: str
    """Run directory to pack (its newest checkpoint), or one of its checkpoints
    (RUN/checkpoints/step_N, without --training-state): the record then covers the run up to it."""
    out: str
    """Folder of the shipped agent: a new or empty folder, or an earlier pack, which is replaced
    whole once the new one is complete. Anything else (the run, a folder holding it, another
    run, a folder with other files) is refused before the evaluation."""
    episodes: PositiveInt = 30
    """Evaluation episodes (the papers' 30), the envs playing equal shares."""
    num_envs: PositiveInt = 8
    """Parallel environments of the evaluation."""
    seed: int = 0
    """Seed of the evaluation's environments and sampling."""
    sample: bool = False
    """Glimpse agents: score the sampled policy, as in training (evaluate.py --sample)."""
    training_state: bool = False
    """Ship the run with its optimizer state so that it can resume (see above)."""
    dtype: str = "float32"
    """How the weights are stored: float32, or float16 or bfloat16 at half the size (what the zoo
    uses to fit pretrained/'s 120 MB). The evaluation plays the rounded weights, which load as
    float32 in every script. Not with --training-state."""
    restore: bool = False
    """Store the shipped agent --run (pretrained/<name>, with --out the same folder) again at
    --dtype, in place: its weights rounded and evaluated again (--episodes, --num-envs, --seed;
    the policy its eval.json names), its training record and curve kept."""
    progress: bool = True
    """Progress bar of the evaluation."""


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import CheckpointError, load_checkpoint
    from agents.common.evaluate import evaluate_network
    from agents.common.pretrained import (
        check_pack,
        check_restore,
        pack_agent,
        pack_run,
        restore_agent,
        round_weights,
    )

    try:
        if args.restore:
            if args.training_state:
                raise ValueError("--restore stores a shipped agent's weights again; --training-state "
                                 "packs a run")  # fmt: skip
            record = check_restore(args.run, args.out, args.dtype)
        else:
            check_pack(args.run, args.out, args.training_state, args.dtype)
        network, config = load_checkpoint(args.run)
        round_weights(network, args.dtype)
        sample = record.get("policy") == "sample" if args.restore else args.sample
        with signals_end_cleanly():  # Ctrl-C while it evaluates: one line, the folder untouched
            summary = evaluate_network(network, config, sample=sample, episodes=args.episodes,
                                       num_envs=args.num_envs, seed=args.seed,
                                       progress=args.progress)  # fmt: skip
        training = {"command": command_line(), "seed": config["train_config"].get("seed")}
        if args.restore:
            folder = restore_agent(args.run, summary, args.dtype, command_line())
        elif args.training_state:
            folder = pack_run(args.run, summary, args.out, training)
        else:
            folder = pack_agent(args.run, summary, args.out, training, args.dtype)
    except (CheckpointError, ValueError, OSError) as e:
        fail(e)
    print(f"{summary['game']}: {summary['mean']:.2f} +- {summary['std']:.2f} over "
          f"{summary['episodes']} episodes ({summary['policy']} policy) after {config['step']:,} "
          f"steps -> {folder}")  # fmt: skip


if __name__ == "__main__":
    main()
