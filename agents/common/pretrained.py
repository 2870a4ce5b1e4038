"""The agents that ship in ``pretrained/``: trained in a fixed GPU window (PQN's Atari preset) or
over several CPU sessions (the glimpse agent), evaluated with the papers' protocol, and packed one
folder (and one archive) per agent.

A shipped agent is an ordinary checkpoint (``model.safetensors`` in float32 + ``config.json``, so
``load_checkpoint``, ``evaluate.py`` and every analysis script take it) with two more files:
``eval.json`` (the evaluation, its protocol and command, the SHA-256 of the weights it played,
the machine, the training's wall time and steps, library versions) and ``curve.csv`` (the
training's episodic returns against steps).
An agent whose training goes on in a later session ships as a run directory instead
(:func:`pack_run`): its newest checkpoint with the optimizer's state, the run's config and its
TensorBoard events, so that a copy of it resumes exactly (``--resume``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
import shutil
import tarfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from agents.common.checkpoint import (
    CONFIG,
    MODEL,
    read_json,
    read_tensors,
    resolve_checkpoint,
    versions,
)

PROTOCOL = "up to 30 no-op starts, epsilon 0.001, 108,000-frame cap (Wang et al. 2016, Section 4.1)"

EVAL = "eval.json"
CURVE = "curve.csv"


def scalar_curves(run_dir: str | Path, tags: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Scalars of a run's TensorBoard events, read once, as (step, value) pairs per tag; a tag the
    run never logged gets an empty list."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    logged = set(events.Tags()["scalars"])
    return {tag: [(int(e.step), float(e.value)) for e in events.Scalars(tag)] if tag in logged else []
            for tag in tags}  # fmt: skip


def training_wall_time(run_dir: str | Path, until_step: int) -> tuple[float, int]:
    """(seconds, sessions) a run trained up to ``until_step``, read from its TensorBoard events:
    every session writes its own events file (a resume opens a new one), so each file's span from
    its first to its last scalar at or before ``until_step`` is summed and the pauses between
    sessions do not count. The seconds a session spends starting before its first scalar are
    missed: the figure is a lower bound by that much. Runs packed long after they trained get
    their wall time this way; a trainer that timed itself passes its own figure instead."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seconds, sessions = 0.0, 0
    for path in sorted(Path(run_dir).glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0}).Reload()
        times = [e.wall_time for tag in events.Tags()["scalars"] for e in events.Scalars(tag)
                 if e.step <= until_step]  # fmt: skip
        if times:
            seconds, sessions = seconds + max(times) - min(times), sessions + 1
    return seconds, sessions


def weights_digest(checkpoint: str | Path) -> str:
    """SHA-256 of a checkpoint's ``model.safetensors`` (run, checkpoint or agent folder): a record
    names the exact weights its evaluation played, so that a later re-pack or a checkpoint chosen
    by hand cannot pass off one file's score as another's."""
    return hashlib.sha256((resolve_checkpoint(checkpoint) / MODEL).read_bytes()).hexdigest()


def training_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """``charts/episodic_return`` (the game score) of a run's TensorBoard events."""
    return scalar_curves(run_dir, ["charts/episodic_return"])["charts/episodic_return"]


def machine_name() -> str:
    """The accelerator (or the CPU) a run trained on, in words."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {torch.get_num_threads()} CPU threads"
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def pack_agent(run_dir: str | Path, summary: dict[str, Any], out_dir: str | Path,
               training: dict[str, Any]) -> Path:  # fmt: skip
    """Copy a run's final checkpoint into ``out_dir`` as a shipped agent: the weights in float32,
    its config, ``eval.json`` (``summary`` of :func:`agents.common.evaluate.evaluate_checkpoint` plus
    ``training``: command, wall time, ...) and ``curve.csv``. ``run_dir`` may name one of a run's
    checkpoints instead (an earlier one that evaluates better): its record then comes from the
    run's events up to that checkpoint's step. Returns ``out_dir``."""
    ckpt = resolve_checkpoint(run_dir)
    if ckpt.parent.name == "checkpoints":  # RUN/checkpoints/step_N: the events live in RUN
        run_dir = ckpt.parent.parent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.float().contiguous() for k, v in read_tensors(ckpt / MODEL).items()}
    save_file(weights, out / MODEL)
    config = read_json(ckpt / CONFIG)
    (out / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    _write_record(out, run_dir, summary, training, config["step"])
    return out


def pack_run(run_dir: str | Path, summary: dict[str, Any], out_dir: str | Path,
             training: dict[str, Any]) -> Path:  # fmt: skip
    """Copy a run into ``out_dir`` as a shipped agent that can train on: the run's config and
    TensorBoard events, its newest checkpoint as it is (weights, optimizer state, step), and
    :func:`pack_agent`'s ``eval.json`` and ``curve.csv``. ``load_checkpoint`` reads it as any run
    directory; a copy of it continues the run with ``--resume`` (older checkpoints are left
    out). Returns ``out_dir``."""
    run, ckpt = Path(run_dir), resolve_checkpoint(run_dir)
    if ckpt.parent != run / "checkpoints":
        raise ValueError(f"{str(run)!r} is not a run directory with checkpoints/: give the run")
    out = Path(out_dir)
    if out.resolve() == run.resolve() or run.resolve() in out.resolve().parents:
        raise ValueError(f"--out {str(out)!r} is the run {str(run)!r} or inside it: pack elsewhere")
    if out.exists():  # a previous session's copy of the run: replaced whole, never mixed
        shutil.rmtree(out)
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(ckpt, out / "checkpoints" / ckpt.name)
    (out / "checkpoints" / "latest").write_text(ckpt.name)
    shutil.copy2(run / CONFIG, out / CONFIG)
    for events in sorted(run.glob("events.out.tfevents.*")):
        shutil.copy2(events, out / events.name)
    _write_record(out, run, summary, training, read_json(ckpt / CONFIG)["step"])
    return out


def _write_record(out: Path, run_dir: str | Path, summary: dict[str, Any], training: dict[str, Any],
                  steps: int) -> None:  # fmt: skip
    if "wall_seconds" not in training:
        seconds, sessions = training_wall_time(run_dir, steps)
        training = {**training, "wall_seconds": round(seconds, 1), "sessions": sessions}
    record = {**summary, "protocol": PROTOCOL, "weights_sha256": weights_digest(out),
              "training": {**training, "steps": steps, "machine": machine_name()},
              "versions": versions()}  # fmt: skip
    (out / EVAL).write_text(json.dumps(record, indent=2))
    with open(out / CURVE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "episodic_return"])
        writer.writerows((step, score) for step, score in training_curve(run_dir) if step <= steps)


def archive(folder: str | Path) -> Path:
    """``folder`` as one ``.tar.gz`` beside it: one file per game crosses back from a GPU machine."""
    folder = Path(folder)
    target = folder.with_name(folder.name + ".tar.gz")
    with tarfile.open(target, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return target


def unpack(archive_path: str | Path, dest: str | Path) -> Path:
    """Extract a packed agent into ``dest`` (regular files only, no paths outside it)."""
    dest = Path(dest)
    with tarfile.open(archive_path, "r:gz") as tar:
        tar.extractall(dest, filter="data")
        names = {Path(m.name).parts[0] for m in tar.getmembers()}
    if len(names) != 1:
        raise ValueError(f"{archive_path} holds {sorted(names)}, expected one agent folder")
    return dest / names.pop()


def one_episode(folder: str | Path, seed: int = 0) -> tuple[float, dict[str, Any]]:
    """One episode of a shipped agent with a fixed seed, played by the policy its evaluation
    played (greedy, or a glimpse agent's sampled one): (score, its eval.json), so a test can hold
    the agent to what its evaluation promised."""
    from agents.common.checkpoint import load_checkpoint
    from agents.common.evaluate import evaluate_network

    record = read_json(Path(folder) / EVAL)
    network, config = load_checkpoint(folder)
    result = evaluate_network(network, config, sample=record.get("policy") == "sample", episodes=1,
                              epsilon=0.0, seed=seed, num_envs=1, progress=False)  # fmt: skip
    return result["mean"], record
