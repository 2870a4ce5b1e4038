"""Attack agents' observations at every step of play and measure what is left of their score:
FGSM, PGD or random noise of the same L-infinity budget, epsilon in pixel levels of the uint8 frame.
Writes robustness.json and robustness.png into --out. Several checkpoints (seeds, agents) and
attacks are compared on one plot, each kind of agent with its 95% interval over seeds.

    attn attack --checkpoint RUN --attack fgsm --epsilons 0 1 2 4 8 --out reports/attack
    attn attack --checkpoint runs/dqn_s1 runs/dqn_s2 runs/glimpse_s1 runs/glimpse_s2 \\
        --attack fgsm pgd noise --transfer-from runs/dqn_s1 --episodes 200 --out reports/catch_attacks
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.common.config import PositiveFloat, PositiveInt
from scripts.cli import fail, parse_args, signals_end_cleanly


@dataclass
class Args:
    checkpoint: tuple[str, ...]
    """Our DQN, PQN, glimpse or soft-attention run/checkpoint directories, or SB3 zips (with
    --game); one or more."""
    out: str
    """Folder for robustness.json and robustness.png."""
    attack: tuple[str, ...] = ("fgsm",)
    """Attacks: fgsm, pgd (Madry et al.), noise (random +-epsilon per pixel: the control)."""
    epsilons: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    """L-infinity budgets in pixel levels (0-255) of the uint8 frame."""
    episodes: PositiveInt = 100
    """Evaluation episodes per checkpoint, attack and epsilon."""
    transfer_from: str | None = None
    """Also attack the glimpse and soft-attention checkpoints with FGSM/PGD crafted on this CNN
    agent (transfer)."""
    pgd_steps: PositiveInt = 10
    """PGD iterations."""
    pgd_step_size: PositiveFloat | None = None
    """PGD step in pixel levels (default 2.5 * epsilon / steps, Madry et al.)."""
    game: str | None = None
    """Game (needed for SB3 zips)."""
    seed: int = 0
    """Seed of the environments and of the noise."""
    num_envs: PositiveInt = 8
    """Parallel environments per evaluation."""
    sample: bool = False
    """Glimpse and soft-attention agents play the sampled policy they are scored with (evaluate.py
    --sample), seeded from --seed; CNN agents act greedily whatever it says."""
    progress: bool = True
    """Show progress bars."""


def main() -> None:
    args = parse_args(Args, __doc__)
    import json
    from pathlib import Path

    from agents.common.checkpoint import CheckpointError
    from analysis.adversarial import (
        check_attack,
        load_agent,
        plot_robustness,
        recurrent,
        robustness,
        summarise,
        transfer_source,
    )
    from analysis.video import check_output_dir

    try:
        for attack in args.attack:
            check_attack(attack, args.epsilons)
        zips = [c for c in (*args.checkpoint, args.transfer_from or "") if c.endswith(".zip")]
        if args.game is not None and not zips:
            raise ValueError("--game applies to SB3 zips only; our checkpoints record their game")
        if args.transfer_from is not None:
            if set(args.attack) == {"noise"}:
                raise ValueError("--transfer-from crafts FGSM or PGD on another agent; noise needs "
                                 "no source")  # fmt: skip
            transfer_source(args.transfer_from, args.game)
        # every agent loads before any is attacked
        stateful = {ckpt: recurrent(load_agent(ckpt, args.game)[2]) for ckpt in args.checkpoint}
        if args.sample and not any(stateful.values()):
            raise ValueError("--sample is for the glimpse and soft-attention agents, whose policies are "
                             "distributions; none of --checkpoint is one")  # fmt: skip
        epsilons = sorted(set(args.epsilons))
        out = check_output_dir(args.out, writes=("robustness.json", "robustness.png"))
        runs = []
        common = dict(episodes=args.episodes, game=args.game, steps=args.pgd_steps,
                      step_size=args.pgd_step_size, seed=args.seed, num_envs=args.num_envs,
                      progress=args.progress)  # fmt: skip
        with signals_end_cleanly():
            for ckpt in args.checkpoint:
                sample = args.sample and stateful[ckpt]
                for attack in args.attack:
                    runs.append(robustness(ckpt, attack, epsilons, sample=sample, **common))
                    if args.transfer_from and attack != "noise" and stateful[ckpt]:
                        runs.append(robustness(ckpt, attack, epsilons, sample=sample,
                                               transfer_from=args.transfer_from, **common))  # fmt: skip
            summary = summarise(runs)
            report = {"epsilons": epsilons, "summary": summary, "runs": runs}
            (out / "robustness.json").write_text(json.dumps(report, indent=2))
            plot_robustness(summary, out / "robustness.png", f"{runs[0]['game']}: robustness")
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)
    for attack, groups in summary.items():
        for label, rows in groups.items():
            key = "catch_rate" if "catch_rate" in rows[0] else "mean_return"
            cells = ", ".join(f"eps {r['epsilon']:g}: {r[key]['mean']:.2f}" for r in rows)
            print(f"{attack} on {label}: {key.replace('_', ' ')} {cells}")
    print(f"wrote {Path(args.out) / 'robustness.json'} {Path(args.out) / 'robustness.png'}")


if __name__ == "__main__":
    main()
