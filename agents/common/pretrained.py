"""The agents that ship in ``pretrained/``: trained with PQN's Atari preset in a fixed GPU window,
evaluated with the papers' protocol, and packed one folder (and one archive) per game.

A shipped agent is an ordinary checkpoint (``model.safetensors`` in float32 + ``config.json``, so
``load_checkpoint``, ``evaluate.py`` and every analysis script take it) with two more files:
``eval.json`` (the evaluation, its protocol and command, the machine, the training's wall time and
steps, library versions) and ``curve.csv`` (the training's episodic returns against steps).
"""

from __future__ import annotations

import csv
import json
import platform
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

EVAL = "eval.json"
CURVE = "curve.csv"


def training_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """``charts/episodic_return`` of a run's TensorBoard events as (step, return) pairs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0}).Reload()
    if "charts/episodic_return" not in events.Tags()["scalars"]:
        return []
    return [(int(e.step), float(e.value)) for e in events.Scalars("charts/episodic_return")]


def machine_name() -> str:
    """The accelerator (or the CPU) a run trained on, in words."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {torch.get_num_threads()} CPU threads"
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def pack_agent(run_dir: str | Path, summary: dict[str, Any], out_dir: str | Path,
               training: dict[str, Any]) -> Path:  # fmt: skip
    """Copy a run's final checkpoint into ``out_dir`` as a shipped agent: the weights in float32,
    its config, ``eval.json`` (``summary`` of :func:`agents.common.evaluate.evaluate_checkpoint` plus
    ``training``: command, wall time, ...) and ``curve.csv``. Returns ``out_dir``."""
    ckpt = resolve_checkpoint(run_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.float().contiguous() for k, v in read_tensors(ckpt / MODEL).items()}
    save_file(weights, out / MODEL)
    config = read_json(ckpt / CONFIG)
    (out / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    record = {**summary, "protocol": "up to 30 no-op starts, epsilon 0.001, 108,000-frame cap "
              "(Wang et al. 2016, Section 4.1)", "training": {**training, "steps": config["step"],
              "machine": machine_name()}, "versions": versions()}  # fmt: skip
    (out / EVAL).write_text(json.dumps(record, indent=2))
    with open(out / CURVE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "episodic_return"])
        writer.writerows(training_curve(run_dir))
    return out


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


def greedy_episode(folder: str | Path, seed: int = 0) -> tuple[float, dict[str, Any]]:
    """One greedy episode of a shipped agent with a fixed seed: (score, its eval.json), so a test
    can hold the agent to what its evaluation promised."""
    from agents.common.checkpoint import load_checkpoint
    from agents.common.evaluate import evaluate, greedy_q_policy

    network, config = load_checkpoint(folder)
    result = evaluate(greedy_q_policy(network), config, episodes=1, epsilon=0.0, seed=seed,
                      num_envs=1, progress=False)  # fmt: skip
    return result.mean, read_json(Path(folder) / EVAL)
