"""Benchmarks, each side by side with its peer in one run. Results go to --out as JSON (one file
per section); --write-docs also renders them into the docs page that holds each section.

attn bench envs      # env steps/s: ours vs SB3's pipeline vs raw ALE
attn bench pqn       # PQN with learning at each precision, beside the DQN trainer
attn bench glimpse   # glimpse agent: cost vs resolution, Catch curve, Pong budget
attn bench soft      # soft-attention agent on Breakout: eager against --compile
attn bench sb3       # SB3 PPO rollouts: on our VecEnv vs SB3's Atari pipeline
attn bench pqn --write-docs                  # measure and render into docs/
attn bench docs benchmarks/pqn_gpu.json      # render a saved result (another machine's)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from scripts.bench.report import Report, Table


@dataclass
class Output:
    """Where every subcommand's results go."""

    out: str = "benchmarks"
    """Folder for the results: one JSON file per section (<section>.json), with the tables and the
    measurements they were made from."""
    write_docs: bool = False
    """Also render the results into the page of --docs that holds each section (its
    <!-- section:begin --> marker), or at the end of benchmarks.md."""
    docs: str = "docs"
    """The documentation folder that --write-docs writes into (the repository's docs/)."""


@dataclass
class Envs(Output):
    """Agent steps/s with random actions: our vector and single env, SB3's pipeline, raw ALE."""

    games: list[str] = field(default_factory=lambda: ["pong", "breakout", "enduro"])
    """Games to measure."""
    vector_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    """num_envs values for our vector env."""
    seconds: float = 2.0
    """Length of one timed window."""
    repeats: int = 3
    """Timed windows per setup; the median is reported."""


def run_envs(cfg: Envs) -> list[Report]:
    import dataclasses

    from scripts.bench.envs import benchmark_envs, ratio_rows

    results = benchmark_envs(cfg.games, cfg.vector_sizes, cfg.seconds, cfg.repeats)
    table = Table(["game", "setup", "steps/s", "vs SB3 x1", "of emulation ceiling"], ratio_rows(results))
    return [Report("envs", [table], [dataclasses.asdict(m) for m in results])]


@dataclass
class Dqn(Output):
    """Training steps/s and peak RSS of our trainer against SB3's DQN on Pong; replay memory."""

    game: str = "pong"
    """Game to train on."""
    steps: int = 4_000
    """Timed environment steps after learning starts."""
    learning_starts: int = 4_000
    """Steps before learning starts (not timed)."""
    buffer_size: int = 100_000
    """Replay capacity for both trainers (RL Zoo's Atari setting)."""
    replay_capacity: int = 100_000
    """Capacity at which bytes per transition are measured."""
    replay_fill: int = 20_000
    """Transitions written when measuring resident memory per transition."""
    device: str = "cpu"
    """Device for our trainer (SB3 always runs on the CPU here)."""


def run_dqn(cfg: Dqn) -> list[Report]:
    from scripts.bench.qlearning import replay_memory, run_ours, run_sb3
    from scripts.bench.timing import in_fresh_process

    common = (cfg.game, cfg.steps, cfg.learning_starts, cfg.buffer_size)
    sb3 = in_fresh_process(run_sb3, *common)
    setups = [
        ("ours, dueling, 1 env", 1, {"overlap": False}),
        ("ours, dueling, 8 envs, --precision fp32", 8, {"precision": "fp32"}),
        ("ours, dueling, 8 envs, --precision bf16", 8, {"precision": "bf16"}),
        ("ours, single stream 512 (SB3's size), 8 envs", 8, {"network": "single", "hidden": 512}),
    ]
    rows = [
        ["SB3 DQN, CnnPolicy, 1 env", f"{sb3['sps']:.0f}", "1.00x", f"{sb3['peak_rss_mb']:,.0f}"]
    ]
    runs = {"SB3": sb3}
    for name, num_envs, options in setups:
        r = runs[name] = in_fresh_process(run_ours, *common, num_envs, options, cfg.device)
        rows.append(
            [name, f"{r['sps']:.0f}", f"{r['sps'] / sb3['sps']:.2f}x", f"{r['peak_rss_mb']:,.0f}"]
        )
    train = Table(["trainer", "steps/s after learning starts", "vs SB3", "peak RSS (MB)"], rows)
    mem = in_fresh_process(replay_memory, cfg.replay_capacity, cfg.replay_fill)
    mem_rows = [
        [name, f"{mem[key + '_bytes_per_transition']:,.0f}", f"{mem[key + '_rss_per_transition']:,.0f}",
         f"{mem[key + '_bytes_per_transition'] * 1e6 / 1e9:,.1f}", mem[key + "_large"],
         f"{mem['ours_bytes_per_transition'] / mem[key + '_bytes_per_transition']:.3f}"]
        for name, key in (("SB3 ReplayBuffer", "sb3"), ("SB3, optimize_memory_usage", "sb3_optimized"),
                          ("ours, FrameReplayBuffer", "ours"))
    ]  # fmt: skip
    memory = Table(
        ["replay memory", "allocated bytes/transition", "resident bytes/transition (measured)",
         "GB at 1M", "1M capacity here", "ours / this"], mem_rows,
    )  # fmt: skip
    return [Report("dqn", [train, memory], {"training": runs, "replay": mem})]


@dataclass
class DqnGpu(Output):
    """Our DQN trainer with --device cuda at several env counts, float32 and bf16 autocast."""

    game: str = "pong"
    """Game to train on."""
    steps: int = 4_000
    """Timed environment steps after learning starts."""
    learning_starts: int = 2_000
    """Steps before learning starts (not timed)."""
    buffer_size: int = 100_000
    """Replay capacity."""
    num_envs: list[int] = field(default_factory=lambda: [8, 16])
    """Env counts to measure."""


def run_dqn_gpu(cfg: DqnGpu) -> list[Report]:
    import torch

    from scripts.bench.qlearning import run_ours
    from scripts.bench.timing import in_fresh_process

    if not torch.cuda.is_available():
        raise SystemExit("error: dqn-gpu needs a CUDA device; torch sees none")
    rows, runs = [], []
    for n in cfg.num_envs:
        for device, options in (("cuda", {"precision": "fp32"}), ("cuda", {"precision": "bf16"})):
            r = in_fresh_process(
                run_ours,
                cfg.game,
                cfg.steps,
                cfg.learning_starts,
                cfg.buffer_size,
                n,
                options,
                device,
            )
            runs.append({"num_envs": n, **options, **r})
            label = device + (", bf16 autocast" if options["precision"] == "bf16" else "")
            rows.append([str(n), label, f"{r['sps']:.0f}", f"{r['peak_rss_mb']:,.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    table = Table(["envs", "device", "steps/s after learning starts", "peak RSS (MB)"], rows)
    return [Report("dqn_gpu", [f"GPU: {torch.cuda.get_device_name(0)}", table], runs)]


@dataclass
class Saliency(Output):
    """Saliency maps/s: batched Jacobian vs a per-frame loop vs captum; every attribution method;
    the sanity and fidelity checks (frames/s); videos."""

    batch: int = 64
    """Observations per batch."""
    repeats: int = 5
    """Timed repeats per method (median reported)."""
    video_frames: int = 1000
    """Frames in the end-to-end video measurement."""


def run_saliency(cfg: Saliency) -> list[Report]:
    from scripts.bench.analysis import benchmark_saliency

    rows = benchmark_saliency(cfg.batch, cfg.repeats, cfg.video_frames)
    loop = dict(rows)["Jacobian, per-frame loop"]
    table = Table(["method", "maps (frames) per second", "vs per-frame loop"],
                  [[name, f"{rate:,.1f}", f"{rate / loop:.1f}x"] for name, rate in rows])  # fmt: skip
    return [Report("saliency", [table], dict(rows))]


@dataclass
class Attack(Output):
    """Adversarial attacks: attacked frames/s for FGSM, PGD-10 and noise, CNN (ours and ART's) and
    glimpse agent."""

    batch: int = 32
    """Frames attacked per call (the envs of one evaluation step)."""
    repeats: int = 5
    """Timed repeats per attack (median reported)."""


def run_attack(cfg: Attack) -> list[Report]:
    from scripts.bench.analysis import benchmark_attacks

    rows = benchmark_attacks(cfg.batch, cfg.repeats)
    speed = dict(rows)

    def against_art(name: str) -> str:  # ours over ART's, the same attack in the same run
        peer = name.replace("(ours)", "(ART)")
        return f"{speed[name] / speed[peer]:.2f}x" if "(ours)" in name else ""

    table = Table(["attack (epsilon 4)", "frames per second", "ours / ART"],
                  [[name, f"{r:,.1f}", against_art(name)] for name, r in rows])  # fmt: skip
    return [Report("attack", [table], dict(rows))]


@dataclass
class Glimpse(Output):
    """Glimpse agent: forward cost vs resolution against the dueling CNN; Catch learning curve;
    Pong steps/s and return after a fixed budget beside a random policy."""

    batch: int = 32
    """Frames per forward in the cost measurement."""
    repeats: int = 30
    """Timed windows per model and resolution (interleaved; median reported)."""
    catch_steps: list[int] = field(default_factory=lambda: [8_000_000, 16_000_000])
    """Budgets of the Catch learning curves, one run each: the default run's, and a longer one (the
    learning rate decays to zero at the budget's end)."""
    catch_target: float = 0.0
    """Stop the Catch curve once the catch rate reaches this (0: run the whole budget)."""
    eval_every: int = 500_000
    """Steps between the learning curve's evaluations (200 greedy episodes each)."""
    pong_steps: int = 100_000
    """Budget of the Pong run (0: skip)."""
    precision_steps: int = 65_536
    """Length of each run of the precision comparison on Pong (fp32 against bf16)."""
    precision_repeats: int = 3
    """Runs per precision in that comparison, alternated (the median is reported)."""
    parts: list[Literal["cost", "catch", "pong", "precision"]] = field(
        default_factory=lambda: ["cost", "catch", "pong", "precision"]
    )
    """Which measurements to run."""


def run_glimpse(cfg: Glimpse) -> list[Report]:
    from scripts.bench import glimpse as gb

    reports = []
    if "cost" in cfg.parts:
        rows = gb.forward_cost(batch=cfg.batch, repeats=cfg.repeats)
        base = {r["model"]: r["ms_per_step"] for r in rows if r["resolution"] == "84x84"}
        table = Table(
            ["model", "input", "pixels", "ms per agent step (batch)", "vs its 84x84", "parameters"],
            [[r["model"], r["resolution"], f"{r['pixels']:,}", f"{r['ms_per_step']:.3f}",
              f"{r['ms_per_step'] / base[r['model']]:.2f}x", f"{r['params']:,}"]
             for r in rows],
        )  # fmt: skip
        reports.append(Report("glimpse_cost", [f"Batch {cfg.batch}, one grayscale frame per sample.", table],
                              rows))  # fmt: skip
    if "catch" in cfg.parts:
        curves = {budget: gb.learning_curve(budget, cfg.eval_every, target=cfg.catch_target)
                  for budget in cfg.catch_steps}  # fmt: skip
        rows = [[f"{budget:,}", f"{p['steps']:,}", f"{p['episodes']:,}", f"{p['seconds']:.0f}",
                 f"{p['catch_rate']:.2f}"] for budget, curve in curves.items() for p in curve]  # fmt: skip
        table = Table(["budget", "steps", "episodes", "training seconds", "greedy catch rate (200 episodes)"],
                      rows)  # fmt: skip
        reports.append(Report("glimpse_catch", [table], {str(b): c for b, c in curves.items()}))
    if "pong" in cfg.parts and cfg.pong_steps:
        r = gb.pong_budget(cfg.pong_steps)
        table = Table(
            ["policy", "steps/s (training)", f"return after {cfg.pong_steps:,} steps"],
            [["glimpse agent", f"{r['steps_per_second']:,.0f}",
              f"{r['return']:.1f} +- {r['return_std']:.1f}"],
             ["uniformly random", "", f"{r['random_return']:.1f} +- {r['random_std']:.1f}"]],
        )  # fmt: skip
        reports.append(Report("glimpse_pong", [table], r))
    if "precision" in cfg.parts:
        r = gb.pong_precision(cfg.precision_steps, cfg.precision_repeats)
        table = Table(
            ["--precision", "training steps/s on Pong", "vs fp32", "peak RSS (MB)"],
            [[p, f"{v['sps']:,.0f}", f"{v['sps'] / r['fp32']['sps']:.2f}x", f"{v['rss_mb']:,.0f}"]
             for p, v in r.items()],
        )  # fmt: skip
        text = f"{cfg.precision_steps:,} steps a run, median of {cfg.precision_repeats}."
        reports.append(Report("glimpse_precision", [text, table], r))
    return reports


@dataclass
class Pqn(Output):
    """PQN on Pong at each precision against the DQN trainer at its defaults, steps/s with
    learning, the setups alternated and each median of its repeats."""

    game: str = "pong"
    """Game to train on."""
    steps: int = 16_384
    """Timed PQN environment steps per run (after one warm-up rollout)."""
    repeats: int = 3
    """Runs per PQN setup, alternated (the median is reported)."""
    dqn_steps: int = 4_000
    """Timed DQN environment steps after learning starts."""
    dqn_learning_starts: int = 4_000
    """DQN steps before learning starts (not timed)."""


def pqn_row(name: str, r: dict[str, float], reference: float | None) -> list[str]:
    ratio = f"{r['sps'] / reference:.2f}x" if reference else "1.00x"
    shares = " / ".join(f"{r[k + '_share']:.0%}" for k in ("env", "act", "learn"))
    return [name, f"{r['sps']:,.0f}", ratio, shares, f"{r['peak_rss_mb']:,.0f}"]


PQN_HEADER = ["trainer", "env steps/s with learning", "vs DQN", "env / act / learn",
              "peak RSS (MB)"]  # fmt: skip


PQN_SETUPS = (("PQN, --precision fp32", {"precision": "fp32"}),
              ("PQN, --precision fp32 --compile", {"precision": "fp32", "compile": True}),
              ("PQN, --precision bf16", {"precision": "bf16"}),
              ("PQN, --precision bf16 --compile", {"precision": "bf16", "compile": True}),
              ("PQN, --precision bf16, 2 env groups", {"precision": "bf16", "env_groups": 2}))  # fmt: skip


def run_pqn(cfg: Pqn) -> list[Report]:
    import statistics

    from scripts.bench.qlearning import run_ours
    from scripts.bench.qlearning import run_pqn as pqn
    from scripts.bench.timing import in_fresh_process, median_run

    dqn = in_fresh_process(run_ours, cfg.game, cfg.dqn_steps, cfg.dqn_learning_starts, 100_000, 8,
                           {}, "cpu")  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in PQN_SETUPS}
    for _ in range(cfg.repeats):
        for name, options in PQN_SETUPS:
            runs[name].append(in_fresh_process(pqn, cfg.game, cfg.steps, 128, options, "cpu"))
            print(name, f"{runs[name][-1]['sps']:,.0f} steps/s", flush=True)
    rows = [["DQN, defaults (8 envs, batch 32 every 4 steps)", f"{dqn['sps']:,.0f}", "1.00x", "", "",
             "", "", f"{dqn['peak_rss_mb']:,.0f}"]]  # fmt: skip
    fp32 = statistics.median(r["sps"] for r in runs[PQN_SETUPS[0][0]])
    for name, rs in runs.items():
        median = median_run(rs)
        row = pqn_row(name, {**median, "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}, dqn["sps"])
        ceiling = f"{median['sps'] / median['env_share']:,.0f}" if median["env_share"] > 0.02 else ""
        warmup = statistics.median(r["warmup_s"] for r in rs)
        rows.append([*row[:3], f"{median['sps'] / fp32:.2f}x", row[3], ceiling, f"{warmup:.1f}",
                     row[4]])  # fmt: skip
    table = Table(["trainer", "env steps/s with learning", "vs DQN", "vs PQN fp32", "env / act / learn",
                   "emulators alone: steps/s", "first rollout and update (s)", "peak RSS (MB)"],
                  rows)  # fmt: skip
    return [Report("pqn", [table], {"dqn": dqn, **runs})]


@dataclass
class Soft(Output):
    """Soft-attention agent: training steps/s of its Atari preset, eager against --compile, the
    setups alternated in fresh processes and each the median of its repeats."""

    game: str = "breakout"
    """Game to train on (the soft agent's Atari preset)."""
    steps: int = 8_192
    """Timed environment steps per run (after the first rollout and update)."""
    repeats: int = 3
    """Runs per setup, alternated (the median is reported)."""


SOFT_SETUPS = (("eager", {}), ("--compile", {"compile": True}))


def run_soft(cfg: Soft) -> list[Report]:
    import statistics

    from agents.soft.train import SoftConfig
    from scripts.bench.soft import run_soft as soft
    from scripts.bench.timing import in_fresh_process, median_run

    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in SOFT_SETUPS}
    for _ in range(cfg.repeats):
        for name, options in SOFT_SETUPS:
            runs[name].append(in_fresh_process(soft, cfg.game, cfg.steps, options))
            print(name, f"{runs[name][-1]['sps']:,.0f} steps/s", flush=True)
    sps = {name: median_run(rs)["sps"] for name, rs in runs.items()}
    rows = [[f"soft agent, {name}", f"{sps[name]:,.0f}", f"{sps[name] / sps['eager']:.2f}x",
             f"{statistics.median(r['warmup_s'] for r in rs):.1f}",
             f"{max(r['peak_rss_mb'] for r in rs):,.0f}"] for name, rs in runs.items()]  # fmt: skip
    table = Table(["trainer", "env steps/s with learning", "vs eager", "first rollout and update (s)",
                   "peak RSS (MB)"], rows)  # fmt: skip
    c = SoftConfig.for_game(cfg.game)
    text = (f"{cfg.game}, the soft agent's preset ({c.num_envs} envs, rollouts of {c.rollout}, "
            f"{c.epochs} epochs of {c.minibatches} minibatches); {cfg.steps:,} timed steps a run after "
            f"the first rollout and update, median of {cfg.repeats}, the setups alternated.")  # fmt: skip
    return [Report("soft", [text, table], runs)]


@dataclass
class PqnGpu(Output):
    """PQN with --device cuda on Pong at several env counts, eager, with --cuda-graph and with
    --env-groups 2, with where the time goes: emulators, acting and learning, and within acting
    the observations' copy to the GPU, measured apart after each run."""

    game: str = "pong"
    """Game to train on."""
    steps: int = 200_000
    """Timed environment steps per setup (after one warm-up rollout)."""
    num_envs: list[int] = field(default_factory=lambda: [128, 64])
    """Env counts to measure, in order (a GPU window may end before the last). The results file
    (--out) is written after each setup: scripts/gpu_window.sh reads it to train with the faster
    update."""


PQN_GPU_SETUPS = (("float32", {"precision": "fp32"}),
                  ("float32, CUDA graphs", {"precision": "fp32", "cuda_graph": True}),
                  ("float32, CUDA graphs, 2 env groups",
                   {"precision": "fp32", "cuda_graph": True, "env_groups": 2}),
                  ("float32, 2 env groups", {"precision": "fp32", "env_groups": 2}),
                  ("bf16 autocast, CUDA graphs", {"precision": "bf16", "cuda_graph": True}))  # fmt: skip
"""In the order a GPU window should measure them: scripts/gpu_window.sh trains with the fastest of
the float32 setups (bf16 changes the numbers, not only the speed)."""


def run_pqn_gpu(cfg: PqnGpu) -> list[Report]:
    import torch

    from scripts.bench.qlearning import run_pqn as pqn
    from scripts.bench.timing import in_fresh_process

    if not torch.cuda.is_available():
        raise SystemExit("error: pqn-gpu needs a CUDA device; torch sees none")
    header = [h for h in PQN_HEADER if h != "vs DQN"] + ["observations to GPU per step (share)"]
    report = Report("pqn_gpu", [f"GPU: {torch.cuda.get_device_name(0)}", Table(header, [])], {})
    for n in cfg.num_envs:
        for label, options in PQN_GPU_SETUPS:
            try:  # one setup failing (a capture on a new machine, say) leaves the others to run
                r = in_fresh_process(pqn, cfg.game, cfg.steps, n, options, "cuda")
            except Exception as e:  # noqa: BLE001 -- reported in the table and the JSON
                report.data[f"{n} envs, {label}"] = {"error": f"{type(e).__name__}: {e}"}
                row = [f"PQN, {n} envs, {label}", f"failed: {type(e).__name__}", "", "", ""]
            else:
                report.data[f"{n} envs, {label}"] = r
                row = pqn_row(f"PQN, {n} envs, {label}", r, None)
                del row[2]  # no DQN in this run to compare with
                row.append(f"{r['transfer_ms']:.2f} ms ({r['transfer_share']:.0%})")
            report.blocks[1].rows.append(row)
            report.save(cfg.out)  # a window that ends early keeps the setups measured so far
            print(" | ".join(row), flush=True)
    return [report]


@dataclass
class Sb3(Output):
    """SB3 PPO's rollout collection (policy forward, env, rollout buffer) on our SB3 VecEnv against
    SB3's own Atari pipeline, alternated in one run."""

    game: str = "pong"
    """Game to play."""
    num_envs: int = 8
    """Parallel envs of both setups."""
    n_steps: int = 2048
    """Steps per env of one rollout (PPO's default)."""
    repeats: int = 3
    """Rollouts per setup; medians are reported."""
    device: str = "cpu"
    """Device of PPO's policy: cpu, cuda or auto. On two cores the forward pass, the same for both
    envs, caps the ratio (docs/benchmarks.md); a GPU takes it off the loop. A CUDA run writes its
    own section, sb3_gpu, beside the CPU one."""


def run_sb3(cfg: Sb3) -> list[Report]:
    import torch

    from agents.common.training import check_device, resolve_device
    from scripts.bench.envs import benchmark_sb3_rollouts

    try:
        check_device(cfg.device)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    device = resolve_device(cfg.device)
    results = benchmark_sb3_rollouts(cfg.game, cfg.num_envs, cfg.n_steps, cfg.repeats, str(device))
    reference = results[next(k for k in results if k.startswith("SB3"))]["rate"]
    rows = [[cfg.game, name, f"{r['rate']:,.0f}", f"{r['rate'] / reference:.2f}x",
             f"{r['env_share']:.0%}"] for name, r in results.items()]  # fmt: skip
    table = Table(["game", "env", "PPO rollout steps/s", "vs SB3", "time in env.step"], rows)
    if device.type == "cuda":
        return [Report("sb3_gpu", [f"GPU: {torch.cuda.get_device_name(device)}", table], results)]
    return [Report("sb3", [table], results)]


@dataclass
class Learner(Output):
    """Where PQN's learner spends an update on Pong, by operator, float32 beside bf16 (eager and
    --compile): the profile, the FLOPs and the rate achieved against a large matmul's on the same
    cores."""

    game: str = "pong"
    """Game whose rollout is learnt from."""
    repeats: int = 3
    """Timed updates per precision (the median is reported)."""


# name (its precision's first), --precision, further PQNConfig options
LEARNER_SETUPS = (("float32", "fp32", {}), ("bf16", "bf16", {}),
                  ("bf16 --compile", "bf16", {"compile": True}))  # fmt: skip


def run_learner(cfg: Learner) -> list[Report]:
    from functools import partial

    import torch

    from scripts.bench.qlearning import learner_profile, matmul_peak_gflops
    from scripts.bench.timing import in_fresh_process

    runs = {name: in_fresh_process(partial(learner_profile, **options), cfg.game, precision, cfg.repeats)
            for name, precision, options in LEARNER_SETUPS}  # fmt: skip
    peaks = {"float32": in_fresh_process(matmul_peak_gflops, torch.float32),
             "bf16": in_fresh_process(matmul_peak_gflops, torch.bfloat16)}  # fmt: skip
    return [Report("learner", learner_tables(runs, peaks), {"runs": runs, "matmul_peak_gflops": peaks})]


def learner_tables(runs: dict[str, dict[str, Any]], peaks: dict[str, float]) -> list[Table]:
    """The learner's profile by category, each setup's time and share beside the others' (a
    category a setup has none of is 0 there), and its rate against its precision's matmul peak."""
    waiting = "Python and waiting (wall minus operators)"
    names = sorted({k for r in runs.values() for k in r["categories"]},
                   key=lambda k: -next(iter(runs.values()))["categories"].get(k, 0.0))  # fmt: skip
    rows = []
    for k in [*names, waiting]:
        cells = [k]
        for r in runs.values():
            categories = r["categories"]
            ms = r["profiled_ms"] - sum(categories.values()) if k == waiting else categories.get(k, 0.0)
            cells += [f"{ms:,.0f}", f"{ms / r['profiled_ms']:.0%}"]
        rows.append(cells)
    walls = [c for r in runs.values() for c in (f"**{r['profiled_ms']:,.0f}**", "100%")]
    rows.append(["**the profiled update (wall)**", *walls])
    table = Table(["where the time goes (ms in one profiled update)",
                   *(c for name in runs for c in (name, "share"))], rows)  # fmt: skip
    summary = Table(
        ["precision", "ms per update", "GFLOP per update", "achieved GFLOP/s", "matmul peak GFLOP/s",
         "of peak", "learner alone: env steps/s", "peak RSS (MB)"],
        [[name, f"{r['ms_per_update']:,.0f}", f"{r['flops'] / 1e9:,.1f}", f"{r['gflops']:,.0f}",
          f"{peaks[name.split()[0]]:,.0f}", f"{r['gflops'] / peaks[name.split()[0]]:.1%}",
          f"{r['transitions'] / r['ms_per_update'] * 1000:,.0f}", f"{r['peak_rss_mb']:,.0f}"]
         for name, r in runs.items()],
    )  # fmt: skip
    return [table, summary]


@dataclass
class Scaling(Output):
    """Env steps/s of one actor process against what one DQN or PQN learner alone consumes: what
    distributed acting (Ape-X style) could gain on this machine (docs/scaling.md)."""

    game: str = "pong"
    """Game to play."""
    seconds: float = 10.0
    """Length of each timed part."""
    device: str = "cpu"
    """Device of the networks (cuda on a GPU machine)."""


def run_scaling(cfg: Scaling) -> list[Report]:
    from scripts.bench.qlearning import ingest_rates

    r = ingest_rates(cfg.game, cfg.seconds, cfg.device)
    actor = r["actor_steps_per_s"]
    rows = [
        ["actor: 8 envs + batched acting, 1 torch thread", f"{actor:,.0f}", "1.00"],
        [f"DQN learner: {r['dqn_updates_per_s']:,.1f} updates/s of 32 (8 samples per env step)",
         f"{r['dqn_learner_steps_per_s']:,.0f}", f"{r['dqn_learner_steps_per_s'] / actor:.2f}"],
        ["PQN learner: 2 epochs x 32 minibatches per 128 x 32 rollout (2 samples per env step)",
         f"{r['pqn_learner_steps_per_s']:,.0f}", f"{r['pqn_learner_steps_per_s'] / actor:.2f}"],
    ]  # fmt: skip
    table = Table([f"part ({cfg.game}, {cfg.device})", "env steps/s", "actor processes it keeps busy"], rows)
    return [Report("scaling", [table], r)]


@dataclass
class Parity(Output):
    """Whether bf16 learns as fast per step as float32: the PQN and DQN Catch presets, each seed at
    both precisions, their greedy catch rates (200 episodes) side by side."""

    seeds: int = 3
    """Seeds per trainer and precision (1, 2, ...)."""
    algos: tuple[Literal["pqn", "dqn"], ...] = ("pqn", "dqn")
    """Trainers to compare (pqn, dqn)."""


def run_parity(cfg: Parity) -> list[Report]:
    from scripts.bench.qlearning import catch_parity_run
    from scripts.bench.timing import in_fresh_process

    rows, results, data = [], {}, {}
    for algo in cfg.algos:
        for precision in ("fp32", "bf16"):
            runs = data[f"{algo} {precision}"] = [in_fresh_process(catch_parity_run, algo, seed, precision)
                                                  for seed in range(1, cfg.seeds + 1)]  # fmt: skip
            rates = [r["catch_rate"] for r in runs]
            results[algo, precision] = sum(rates) / len(rates)
            rows.append([algo.upper(), precision, " / ".join(f"{r:.3f}" for r in rates),
                         f"{results[algo, precision]:.3f}", f"{max(r['peak_rss_mb'] for r in runs):,.0f}"])
            print(" | ".join(rows[-1]), flush=True)
    table = Table(["trainer", "precision", "catch rate per seed", "mean", "peak RSS (MB)"], rows)
    gaps = [f"{algo.upper()}: {results[algo, 'bf16'] - results[algo, 'fp32']:+.3f}" for algo in cfg.algos]
    text = f"bf16 minus float32, mean catch rate: {'; '.join(gaps)}."
    return [Report("precision-parity-" + "-".join(cfg.algos), [table, text], data)]


@dataclass
class Docs:
    """Render saved results (the JSON files a subcommand wrote) into the docs: a run measured on
    another machine, a GPU window's say, reaches the docs this way."""

    results: tyro.conf.Positional[list[str]]
    """The results' JSON files."""
    docs: str = "docs"
    """The documentation folder to write into (the repository's docs/)."""


def run_docs(cfg: Docs) -> None:
    for path in cfg.results:
        page = Report.load(path).write_docs(cfg.docs)
        print(f"wrote {path} into {page}")


SUBCOMMANDS = {"envs": (Envs, run_envs), "dqn": (Dqn, run_dqn), "dqn-gpu": (DqnGpu, run_dqn_gpu),
               "pqn": (Pqn, run_pqn), "pqn-gpu": (PqnGpu, run_pqn_gpu), "soft": (Soft, run_soft),
               "saliency": (Saliency, run_saliency), "glimpse": (Glimpse, run_glimpse),
               "attack": (Attack, run_attack), "sb3": (Sb3, run_sb3),
               "scaling": (Scaling, run_scaling), "learner": (Learner, run_learner),
               "parity": (Parity, run_parity), "docs": (Docs, run_docs)}  # fmt: skip
"""Each subcommand's flags and the function that runs it."""


def main() -> None:
    cfg = tyro.extras.subcommand_cli_from_dict(
        {name: Annotated[cls, tyro.conf.arg(help=cls.__doc__)] for name, (cls, _) in SUBCOMMANDS.items()},
        description=__doc__,
    )
    from agents.common.config import check_config

    try:  # every flag's kind, finiteness and limit, as for the other scripts (scripts.cli.parse_args)
        check_config(cfg)
        if isinstance(cfg, Docs):
            return run_docs(cfg)
        if cfg.write_docs and not Path(cfg.docs).is_dir():  # before the measuring, not after it
            raise ValueError(f"--docs {cfg.docs!r} is not a folder: --write-docs writes into the "
                             "repository's docs/ (run from the checkout, or give --docs)")  # fmt: skip
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    for report in dict(SUBCOMMANDS.values())[type(cfg)](cfg):
        print(report.markdown(), f"results: {report.save(cfg.out)}", sep="\n\n")
        if cfg.write_docs:
            print(f"wrote the '{report.section}' section of {report.write_docs(cfg.docs)}")


if __name__ == "__main__":
    main()
