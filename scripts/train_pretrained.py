"""Train, evaluate and pack the agents that ship in pretrained/, in one command that fits a GPU window.

    attn shipped --games pong:180 enduro:240 --out /tmp/out

For each GAME:SECONDS it trains the dueling network with PQN's Atari preset until the time limit
(scripts/train_pqn.py --time-limit), evaluates the final checkpoint with the papers' protocol (30
episodes) and the two before it (--eval-earlier), and packs the agent (model.safetensors in
float32, config.json, eval.json, curve.csv) into OUT/GAME/ and OUT/GAME.tar.gz: one file per game
to bring back. Unpack into pretrained/ with `tar -xzf OUT/GAME.tar.gz -C pretrained`. Rehearse on
CPU with tiny budgets first, e.g. --games pong:2 --num-envs 4 --rollout 8 --eval-episodes 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from scripts.cli import command_line, fail, parse_args


@dataclass
class Args:
    out: str
    """Folder for the packed agents (OUT/GAME/ and OUT/GAME.tar.gz)."""
    games: list[str] = field(default_factory=lambda: ["pong:180", "enduro:240"])
    """GAME:SECONDS of training for each agent, in order. The default fits one 10-minute command
    on a GPU machine with both evaluations (Enduro's episodes run up to 27,000 steps)."""
    work_dir: str = "runs/pretrained"
    """Where the training runs live (run directories, TensorBoard events, checkpoints)."""
    total_steps: int = 10_000_000
    """Step budget of each run (the preset's; the schedules of epsilon and the learning rate
    follow it, and the time limit usually stops the run first)."""
    num_envs: int = 128
    """Parallel environments (the preset's)."""
    rollout: int = 32
    """Steps per env between updates (the preset's)."""
    eval_episodes: int = 30
    """Evaluation episodes, all played in parallel (the papers' 30)."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu' or 'cuda'."""
    seed: int = 1
    """Training seed."""
    save_every: int = 500_000
    """Steps between checkpoints: half the preset's 1M, so that the two kept before the final one
    (the trainer keeps three) are recent enough to ship instead."""
    eval_earlier: bool = True
    """Also evaluate the run's earlier kept checkpoints with the same protocol, into eval.json's
    training.earlier_checkpoints. A short run's final checkpoint can evaluate far below the one
    before it (docs/benchmarks.md, "PQN learns Pong on two cores"); the agent packed is still the
    final one, and these numbers say whether another should ship."""
    cuda_graph: bool = False
    """Replay each minibatch update and acting pass as captured CUDA graphs (train_pqn.py --cuda-graph)."""
    env_groups: int = 1
    """Act on one group of envs while the others are emulated (train_pqn.py --env-groups)."""
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    """Arithmetic of the network passes (train_pqn.py --precision): auto is bf16 on CUDA and on CPUs
    with AVX-512 BF16 or AMX, fp32 elsewhere."""
    progress: bool = True
    """Progress bars (--no-progress for logs that a machine reads back)."""


def parse_games(specs: list[str]) -> list[tuple[str, float]]:
    """``["pong:210"]`` -> ``[("pong", 210.0)]``; one line naming the bad entry otherwise."""
    out = []
    for spec in specs:
        game, _, seconds = spec.partition(":")
        try:
            limit = float(seconds)
        except ValueError:
            limit = -1.0
        if not game or limit <= 0:
            raise ValueError(f"--games entries are GAME:SECONDS with SECONDS > 0, got {spec!r}")
        out.append((game, limit))
    return out


def main() -> None:
    args = parse_args(Args, __doc__)
    from agents.common.checkpoint import (
        CONFIG,
        CheckpointError,
        read_json,
        resolve_checkpoint,
        run_checkpoints,
    )
    from agents.common.evaluate import evaluate_checkpoint
    from agents.common.pretrained import archive, check_pack_target, pack_agent, weights_digest
    from agents.qlearning.pqn import PQNConfig, PQNTrainer
    from envs import resolve_game

    try:
        games = parse_games(args.games)
        configs = [
            PQNConfig(game=game, time_limit=limit, total_steps=args.total_steps, seed=args.seed,
                      num_envs=args.num_envs, rollout=args.rollout, device=args.device,
                      run_dir=str(Path(args.work_dir) / game), saliency_every=0,
                      save_every=args.save_every,
                      progress=args.progress, cuda_graph=args.cuda_graph,
                      env_groups=args.env_groups, precision=args.precision)  # fmt: skip
            for game, limit in games
        ]
        for cfg in configs:  # every game's flags and folders are checked before the first trains
            cfg.validate()
            name = "catch" if cfg.game.lower() == "catch" else resolve_game(cfg.game)
            check_pack_target(cfg.run_dir, Path(args.out) / name)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        for cfg in configs:
            start = time.perf_counter()
            trainer = PQNTrainer(cfg)
            trainer.run()
            wall = time.perf_counter() - start
            final = resolve_checkpoint(cfg.run_dir)
            earlier = [p for _, p in run_checkpoints(cfg.run_dir) if p != final]
            summaries = {}
            for ckpt in [final, *earlier] if args.eval_earlier else [final]:
                summaries[ckpt] = evaluate_checkpoint(str(ckpt), episodes=args.eval_episodes,
                                                      num_envs=args.eval_episodes,
                                                      device=str(trainer.device),
                                                      progress=args.progress)  # fmt: skip
            summary = summaries.pop(final)
            training = {"command": command_line(),
                        "wall_seconds": round(wall, 1), "time_limit": cfg.time_limit,
                        "stopped_by": trainer.stopped_by or "budget", "seed": cfg.seed}  # fmt: skip
            if args.eval_earlier:
                training["earlier_checkpoints"] = [
                    {"step": read_json(c / CONFIG)["step"], "checkpoint": c.name,
                     "weights_sha256": weights_digest(c), "mean": s["mean"], "std": s["std"],
                     "scores": s["scores"]} for c, s in summaries.items()]  # fmt: skip
                for row in training["earlier_checkpoints"]:
                    print(f"{trainer.game}, earlier checkpoint at {row['step']:,} steps: "
                          f"{row['mean']:.1f} +- {row['std']:.1f} ({cfg.run_dir}/checkpoints/"
                          f"{row['checkpoint']})", flush=True)  # fmt: skip
            folder = pack_agent(cfg.run_dir, summary, Path(args.out) / trainer.game, training)
            print(f"{trainer.game}: {summary['mean']:.1f} +- {summary['std']:.1f} over "
                  f"{summary['episodes']} episodes after {trainer.global_step:,} steps in "
                  f"{wall / 60:.1f} min -> {archive(folder)}", flush=True)  # fmt: skip
    except (ValueError, CheckpointError, OSError) as e:
        fail(e)


if __name__ == "__main__":
    main()
