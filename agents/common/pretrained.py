"""The agents that ship in ``pretrained/``: trained in a fixed GPU window (PQN's Atari preset) or
over several CPU sessions (the glimpse agent), evaluated with the papers' protocol, and packed one
folder (and one archive) per agent.

A shipped agent is an ordinary checkpoint (``model.safetensors``, float32 or stored at half
precision and loaded as float32, + ``config.json``, so ``load_checkpoint``, ``evaluate.py`` and
every analysis script take it) with two more files:
``eval.json`` (the evaluation, its protocol and command, the SHA-256 of the weights it played,
the machine, the training's wall time and steps, library versions) and ``curve.csv`` (the
training's episodic returns against steps).
An agent whose training goes on in a later session ships as a run directory instead
(:func:`pack_run`): its newest checkpoint with the optimizer's state, the run's config and its
TensorBoard events, so that a copy of it resumes exactly (``--resume``).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from agents.common.checkpoint import (
    CONFIG,
    MODEL,
    CheckpointError,
    process_alive,
    read_json,
    read_tensors,
    resolve_checkpoint,
    versions,
)

PROTOCOL = "up to 30 no-op starts, epsilon 0.001, 108,000-frame cap (Wang et al. 2016, Section 4.1)"

PRETRAINED_BUDGET_MB = 120  # pretrained/ in all: the shipped agents and the zoo
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

EVAL = "eval.json"
CURVE = "curve.csv"
AGENT_FILES = (MODEL, CONFIG, EVAL, CURVE)


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
    """``charts/episodic_return`` (the game score) of a run's TensorBoard events, or of a shipped
    agent's ``curve.csv`` (a folder with no events), so that a run's curve can be drawn beside
    the shipped agent's."""
    run_dir = Path(run_dir)
    if (run_dir / CURVE).is_file() and not any(run_dir.glob("events.out.tfevents.*")):
        with open(run_dir / CURVE, newline="") as f:
            return [(int(row["step"]), float(row["episodic_return"])) for row in csv.DictReader(f)]
    return scalar_curves(run_dir, ["charts/episodic_return"])["charts/episodic_return"]


def machine_name() -> str:
    """The accelerator (or the CPU) a run trained on, in words."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {torch.get_num_threads()} CPU threads"
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def pack_agent(run_dir: str | Path, summary: dict[str, Any], out_dir: str | Path,
               training: dict[str, Any], dtype: str = "float32") -> Path:  # fmt: skip
    """Copy a run's final checkpoint into ``out_dir`` as a shipped agent: the weights (stored as
    ``dtype``: float16 or bfloat16 halve the file and load as float32, and ``summary`` must then
    be the evaluation of :func:`round_weights`' network), its config, ``eval.json`` (``summary``
    of :func:`agents.common.evaluate.evaluate_checkpoint` plus ``training``: command, wall time,
    ...) and ``curve.csv``. ``run_dir`` may name one of a run's checkpoints instead (an earlier
    one that evaluates better): its record then comes from the run's events up to that
    checkpoint's step. ``out_dir`` is written as :func:`write_agent_folder` writes it (never over
    anything but an earlier pack). Returns ``out_dir``."""
    ckpt = resolve_checkpoint(run_dir)
    run = run_of(ckpt)

    def fill(folder: Path) -> None:
        stored = STORAGE_DTYPES[dtype]
        weights = {k: (v.to(stored) if v.is_floating_point() else v).contiguous()
                   for k, v in read_tensors(ckpt / MODEL).items()}  # fmt: skip
        save_file(weights, folder / MODEL)
        config = read_json(ckpt / CONFIG)
        (folder / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
        _write_record(folder, run, summary, {**training, "weights_dtype": dtype}, config["step"])
        check_pack_size(out_dir, _size(folder))

    return write_agent_folder(run, out_dir, fill)


def pack_run(run_dir: str | Path, summary: dict[str, Any], out_dir: str | Path,
             training: dict[str, Any]) -> Path:  # fmt: skip
    """Copy a run into ``out_dir`` as a shipped agent that can train on: the run's config and
    TensorBoard events, its newest checkpoint as it is (weights, optimizer state, step), and
    :func:`pack_agent`'s ``eval.json`` and ``curve.csv``. ``load_checkpoint`` reads it as any run
    directory; a copy of it continues the run with ``--resume`` (older checkpoints are left
    out). Returns ``out_dir``."""
    run, ckpt = _run_and_newest(run_dir)

    def fill(folder: Path) -> None:
        (folder / "checkpoints").mkdir()
        shutil.copytree(ckpt, folder / "checkpoints" / ckpt.name)
        (folder / "checkpoints" / "latest").write_text(ckpt.name)
        shutil.copy2(run / CONFIG, folder / CONFIG)
        for events in sorted(run.glob("events.out.tfevents.*")):
            shutil.copy2(events, folder / events.name)
        _write_record(folder, run, summary, training, read_json(ckpt / CONFIG)["step"])
        check_pack_size(out_dir, _size(folder))

    return write_agent_folder(run, out_dir, fill)


def _run_and_newest(run_dir: str | Path) -> tuple[Path, Path]:
    run, ckpt = Path(run_dir), resolve_checkpoint(run_dir)
    if ckpt.parent != run / "checkpoints":
        raise ValueError(f"{str(run)!r} is not a run directory with checkpoints/: give the run")
    return run, ckpt


def check_pack(run: str | Path, out: str | Path, training_state: bool,
               dtype: str = "float32") -> None:  # fmt: skip
    """Every refusal of a pack, before the evaluation that precedes it: the source (a run or one
    of its complete checkpoints; a run for ``training_state``), the target
    (:func:`check_pack_target`), the game (:func:`check_pack_game`) and the size
    (:func:`check_pack_size`, with the weights' size once stored as ``dtype``)."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
    if training_state and dtype != "float32":
        raise ValueError(f"--dtype {dtype} packs the weights alone; a run shipped with "
                         "--training-state keeps its float32 weights and optimizer state to "
                         "train on")  # fmt: skip
    if re.fullmatch(r"step_\d+\.tmp", Path(run).name):
        raise ValueError(f"--run {str(run)!r} is an unfinished checkpoint (a save that did not "
                         "complete); give the run or one of its complete checkpoints")  # fmt: skip
    ckpt = _run_and_newest(run)[1] if training_state else resolve_checkpoint(run)
    check_pack_target(run_of(ckpt), out)
    check_pack_game(read_json(ckpt / CONFIG)["game"], out)
    if training_state:
        size = _size(ckpt) + sum(_size(p) for p in run_of(ckpt).glob("events.out.tfevents.*"))
    else:
        size = _stored_size(ckpt / MODEL, STORAGE_DTYPES[dtype])
    check_pack_size(out, size)


def check_pack_game(game: str, out: str | Path) -> None:
    """Refuse to write one game's agent where another's belongs: over an earlier pack of another
    game, or, in a ``pretrained/`` folder, under a name that is not the game's (``GAME`` or
    ``GAME_VARIANT``, as ``breakout_glimpse``), which is how the tests and docs find each agent."""
    out_p = Path(out)
    if is_packed_agent(out_p):  # its record names the game (a glimpse run's config says "env")
        held = read_json(out_p / EVAL).get("game")
        if held != game:
            raise ValueError(f"--out {str(out)!r} holds the agent of {held!r}, and this run plays "
                             f"{game!r}: give the folder of {game!r} (packing would replace "
                             f"{held!r}'s agent)")  # fmt: skip
    name, shelf = out_p.resolve().name, out_p.resolve().parent.name
    if shelf == "pretrained" and name != game and not name.startswith(f"{game}_"):
        raise ValueError(f"--out {str(out)!r} is not a folder of {game!r}: in pretrained/ an "
                         f"agent's folder is its game's name ({game!r} or "
                         f"{game + '_VARIANT'!r})")  # fmt: skip


def check_pack_size(out: str | Path, size: int) -> None:
    """Refuse a pack of ``size`` bytes that would take the ``pretrained/`` folder holding ``out``
    over :data:`PRETRAINED_BUDGET_MB` (the agent it replaces is not counted); a folder elsewhere
    has no budget. Checked before the evaluation and again on the written pack."""
    parent = Path(out).resolve().parent
    if parent.name != "pretrained" or not parent.is_dir():
        return
    others = sum(_size(p) for p in parent.iterdir()
                 if p.name != Path(out).resolve().name and not p.name.startswith("."))  # fmt: skip
    total = others + size
    if total > PRETRAINED_BUDGET_MB * 2**20:
        raise ValueError(f"packing {str(out)!r} ({size / 2**20:.1f} MB) would take "
                         f"{str(parent)!r} to {total / 2**20:.1f} MB, over its "
                         f"{PRETRAINED_BUDGET_MB} MB budget; store the weights with --dtype "
                         "float16 or bfloat16, or remove an agent first")  # fmt: skip


def _stored_size(path: Path, dtype: torch.dtype) -> int:
    """Bytes of a tensor file's values once stored as ``dtype``, read off its header (no tensor
    is loaded): the size a pack checks before it evaluates."""
    from math import prod

    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, "pt") as f:
            return sum(prod(f.get_slice(k).get_shape()) * dtype.itemsize
                       for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError) as e:  # as read_tensors says it
        raise CheckpointError(f"damaged or truncated tensor file {str(path)!r}: {e}") from None


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def round_weights(network: torch.nn.Module, dtype: str) -> torch.nn.Module:
    """``network`` with every weight rounded to ``dtype`` and back, in place: the float32 values
    that the weights stored as ``dtype`` load as, so that an evaluation before the pack plays
    exactly what ships."""
    with torch.no_grad():
        for t in network.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(STORAGE_DTYPES[dtype]))
    return network


def run_of(checkpoint: Path) -> Path:
    """The run a checkpoint directory belongs to (``RUN/checkpoints/step_N`` -> ``RUN``), or the
    folder itself (a run, a packed agent)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def is_packed_agent(folder: Path) -> bool:
    """Whether ``folder`` holds a packed agent and nothing else: its ``eval.json``, and only the
    files :func:`pack_agent` or :func:`pack_run` write (weights and config, or the config, the
    events and one checkpoint). A run trained on inside it (a lock, more checkpoints) is not."""
    if not (folder / EVAL).is_file():
        return False
    for entry in folder.iterdir():
        if entry.name == "checkpoints" and entry.is_dir():
            inside = {p.name for p in entry.iterdir()}
            steps = [p for p in entry.iterdir() if p.name.startswith("step_")]
            if inside != {"latest", *(p.name for p in steps)} or len(steps) != 1:
                return False
            if not steps[0].is_dir() or any(not f.is_file() for f in steps[0].iterdir()):
                return False
        elif not entry.is_file() or not (entry.name in AGENT_FILES
                                         or entry.name.startswith("events.out.tfevents.")):  # fmt: skip
            return False
    return True


def check_pack_target(run: str | Path, out: str | Path) -> None:
    """Refuse, in one line and before any work, an ``--out`` whose replacement would lose data: the
    run being packed, a folder that holds it or lies inside it, another run directory, or a folder
    with files that are not a packed agent's. An absent or empty folder, or an earlier pack (of
    any agent), is fine: :func:`write_agent_folder` replaces only those."""
    run_r, out_p = Path(run).resolve(), Path(out)
    out_r = out_p.resolve()
    name = str(out_p)
    if out_r == run_r:
        raise ValueError(f"--out {name!r} is the run being packed; give a new folder")
    if out_r in run_r.parents:
        raise ValueError(f"--out {name!r} holds the run being packed ({str(run)!r}): replacing it "
                         "would delete the run; give a new folder")  # fmt: skip
    if run_r in out_r.parents:
        raise ValueError(f"--out {name!r} is inside the run being packed ({str(run)!r}); give a "
                         "folder outside it")  # fmt: skip
    if not out_p.exists() and not out_p.is_symlink():
        return
    if not out_p.is_dir() or out_p.is_symlink():
        raise ValueError(f"--out {name!r} exists and is not a folder; give a new folder")
    entries = sorted(p.name for p in out_p.iterdir())
    if not entries or is_packed_agent(out_p):
        return
    if (out_p / CONFIG).exists() and ((out_p / "checkpoints").exists() or (out_p / "lock").exists()):
        raise ValueError(f"--out {name!r} is a run directory: packing would overwrite its "
                         f"{CONFIG} and break its --resume; give a new folder")  # fmt: skip
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise ValueError(f"--out {name!r} holds files that are not a packed agent's ({shown}); give a "
                     "new folder, or an earlier pack to replace")  # fmt: skip


def write_agent_folder(run: Path, out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """Write a packed agent as a whole or not at all: :func:`check_pack_target` first, then
    ``fill`` writes into a fresh hidden folder beside ``out_dir`` (``.NAME.packing-PID``), which
    then takes the place of ``out_dir`` in one atomic exchange (renameat2's RENAME_EXCHANGE;
    where the file system lacks it, two renames). A pack that fails or is killed leaves the
    earlier agent as it was; the hidden folder a kill -9 leaves is removed by the next pack."""
    check_pack_target(run, out_dir)
    return _replace_folder(out_dir, fill)


def _replace_folder(out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """``fill`` writes into a hidden sibling of ``out_dir``, which then takes its place atomically
    (see :func:`write_agent_folder`)."""
    out = Path(out_dir).resolve()  # a hidden sibling needs a name: '.' has none
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_packs(out)
    tmp = out.with_name(f".{out.name}.packing-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        if out.exists():
            _exchange(tmp, out)  # tmp now holds the earlier agent
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Path(out_dir)


def check_restore(folder: str | Path, out: str | Path, dtype: str) -> dict[str, Any]:
    """One line, before any evaluation, for a re-store that cannot be: ``out`` another folder than
    ``folder``, a folder that is not a shipped agent's weights (a run, a run shipped with its
    training state, which resumes from float32 weights), an unknown ``dtype``, or the dtype the
    agent is stored as already. Returns the agent's record (``eval.json``)."""
    f = Path(folder)
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(STORAGE_DTYPES)}, got {dtype!r}")
    if Path(out).resolve() != f.resolve():
        raise ValueError("--restore stores a shipped agent again in its own folder: give --out the "
                         "same folder as --run")  # fmt: skip
    if not f.is_dir() or not is_packed_agent(f):
        raise ValueError(f"--restore takes a shipped agent's folder (pretrained/<name>); {str(folder)!r} "
                         "is not one")  # fmt: skip
    if (f / "checkpoints").exists():
        raise ValueError(f"{str(folder)!r} is a run shipped with its training state, which resumes from "
                         "its float32 weights and optimizer state; it is stored as it is")  # fmt: skip
    record = read_json(f / EVAL)
    if record.get("training", {}).get("weights_dtype", "float32") == dtype:
        raise ValueError(f"{str(folder)!r} is stored as {dtype} already")
    return record


def restore_agent(folder: str | Path, summary: dict[str, Any], dtype: str, command: str) -> Path:
    """Store a shipped agent's weights again as ``dtype`` (float16 or bfloat16 halve the file), in
    place and atomically; ``summary`` must be the evaluation of :func:`round_weights`' network.
    Its record keeps the training's (command, time, steps, machine) and adds the dtype and this
    ``command``; its curve is kept."""
    f = Path(folder)
    old = read_json(f / EVAL)

    def fill(tmp: Path) -> None:
        stored = STORAGE_DTYPES[dtype]
        weights = {k: (v.to(stored) if v.is_floating_point() else v).contiguous()
                   for k, v in read_tensors(f / MODEL).items()}  # fmt: skip
        save_file(weights, tmp / MODEL)
        for name in (CONFIG, CURVE):
            if (f / name).exists():
                shutil.copy2(f / name, tmp / name)
        training = {**old.get("training", {}), "weights_dtype": dtype, "stored_again_with": command}
        record = {**summary, "protocol": PROTOCOL, "weights_sha256": weights_digest(tmp),
                  "training": training, "versions": versions()}  # fmt: skip
        (tmp / EVAL).write_text(json.dumps(record, indent=2))

    return _replace_folder(f, fill)


def _exchange(a: Path, b: Path) -> None:
    """Swap two folders atomically (Linux's renameat2 with RENAME_EXCHANGE), or, where that is not
    to be had, by two renames with the old folder kept aside until the new one is in place."""
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return
        if ctypes.get_errno() not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(ctypes.get_errno(), f"cannot replace {str(b)!r}: {os.strerror(ctypes.get_errno())}")
    aside = b.with_name(f".{b.name}.replaced-{os.getpid()}")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)


def _remove_stale_packs(out: Path) -> None:
    """Remove the hidden folders of packs into ``out`` whose process is gone (killed midway); an
    earlier agent set aside by an interrupted two-rename replacement goes back into place."""
    for stale in sorted(out.parent.glob(f".{glob.escape(out.name)}.*-*")):
        kind, _, pid = stale.name.rpartition("-")
        if not pid.isdigit() or process_alive(int(pid)) or not kind.endswith((".packing", ".replaced")):
            continue
        if kind.endswith(".replaced") and not out.exists():
            os.rename(stale, out)
        else:
            shutil.rmtree(stale, ignore_errors=True)


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


def one_episode(folder: str | Path, seed: int = 0, max_frames: int = 108_000) -> tuple[float, dict[str, Any]]:
    """One episode of a shipped agent with a fixed seed, played by the policy its evaluation
    played (greedy, or a glimpse agent's sampled one): (score, its eval.json), so a test can hold
    the agent to what its evaluation promised. ``max_frames`` cuts a long game's episode short."""
    from agents.common.checkpoint import load_checkpoint
    from agents.common.evaluate import evaluate_network

    record = read_json(Path(folder) / EVAL)
    network, config = load_checkpoint(folder)
    result = evaluate_network(network, config, sample=record.get("policy") == "sample", episodes=1,
                              epsilon=0.0, seed=seed, num_envs=1, progress=False,
                              max_frames=max_frames)  # fmt: skip
    return result["mean"], record
