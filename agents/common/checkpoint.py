"""Checkpoints: safetensors for tensors, JSON for everything else; nothing is ever unpickled.

Layout of a run directory::

    runs/<game>__<exp_name>__<seed>__<timestamp>/
        config.json                     the full training config
        events.out.tfevents.*           TensorBoard
        checkpoints/latest              name of the newest complete checkpoint
        checkpoints/step_000100000/
            model.safetensors           the online network's weights
            config.json                 architecture, game, action set, preprocessing, step, versions
            trainer.safetensors         target network, optimizer moments, RNG states (for --resume)
            trainer.json                counters and optimizer hyper-parameters
            replay.npz                  the replay memory (optional; numpy arrays, no pickle)

A checkpoint is written into ``step_N.tmp`` and renamed into place once complete, and ``latest`` is
replaced atomically after that, so a crash or Ctrl-C mid-write never leaves a half checkpoint that a
resume would pick up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

MODEL = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1
# config fields renamed since runs were saved with them: old name -> (new name, value's mapping)
RENAMED: dict[str, tuple[str, Any]] = {
    "bf16": ("precision", lambda on: "bf16" if on else "fp32"),
    "env": ("game", str),  # the glimpse agent's game
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in one line."""


class CheckpointWarning(UserWarning):
    """Something about a run that a user should know, said in one line (the scripts print it as
    ``warning: ...``): a damaged ``latest`` passed over for the newest complete checkpoint."""


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_checkpoint(
    run_dir: Path,
    step: int,
    files: dict[str, dict[str, torch.Tensor] | dict[str, Any] | Path],
    keep: int = 3,
) -> Path:
    """Write ``files`` (name -> tensors for ``.safetensors``, JSON data for ``.json``, or a file
    already written in a temporary place to move in) as checkpoint ``step``; keep the newest ``keep``
    (0: keep all).
    """
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:012d}"
    tmp = root / (final.name + ".tmp")
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, content in files.items():
            if name.endswith(".safetensors"):
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in content.items()}, tmp / name
                )
            elif name.endswith(".json"):
                (tmp / name).write_text(json.dumps(content, indent=2, sort_keys=True))
            else:
                shutil.move(str(content), tmp / name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(root / "latest", final.name)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"cannot write checkpoint to {str(root)!r}: {e.strerror or e}"
        ) from None
    old = [p for _, p in run_checkpoints(run_dir)]
    for p in old[:-keep] if keep > 0 else []:
        if p == final:  # never the checkpoint that `latest` names
            continue
        shutil.rmtree(p, ignore_errors=True)
    return final


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """Refuse, before any work, to start a new run in a directory that already holds one: its
    config and checkpoints would be overwritten and rotated away."""
    if resuming:
        return
    if (run_dir / CONFIG).exists() or (run_dir / "checkpoints").exists():
        raise CheckpointError(
            f"{str(run_dir)!r} already holds a run; continue it with --resume {run_dir} or give a "
            "new --run-dir"
        )


class RunLock:
    """A lock file held for the life of a training, so that a second trainer writing into the same
    run directory is refused at once; a lock left by a process that no longer exists (killed) is
    taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "lock"

    def acquire(self) -> RunLock:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self.refuse_if_held()
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise CheckpointError(f"cannot take the lock {str(self.path)!r}: another process races for it")

    def refuse_if_held(self) -> None:
        """One line if another live process holds the run: a second writer, or a resume of a run
        that is still training (before its first checkpoint as after it)."""
        holder = self._holder()
        if holder is not None and holder != os.getpid() and process_alive(holder):
            raise CheckpointError(
                f"{str(self.path.parent)!r} is being trained by process {holder}; wait for it to "
                "finish or stop it first"
            ) from None

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or -1)
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._holder() == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def process_alive(pid: int) -> bool:
    """Whether a process of this id exists (a lock's or a pack's holder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_run_dir(run_dir: Path, config: dict[str, Any], resuming: bool = False) -> RunLock:
    """Create the run directory, take its lock and write its config; a one-line error if that is
    impossible, if another run lives there (unless ``resuming`` it) or another trainer holds it.
    The caller releases the returned lock when training ends."""
    check_run_dir(run_dir, resuming)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
    except OSError as e:
        raise CheckpointError(
            f"cannot create run directory {str(run_dir)!r}: {e.strerror or e}"
        ) from None
    try:
        atomic_write_text(run_dir / CONFIG, json.dumps(config, indent=2))
    except OSError as e:
        lock.release()
        raise CheckpointError(f"cannot write to run directory {str(run_dir)!r}: {e.strerror or e}") from None
    return lock


def restore_trainer(restore: Any, ckpt: Path) -> None:
    """Run a trainer's ``restore(ckpt)``; a trainer state with a key missing or a value of the wrong
    kind (an edited or damaged ``trainer.json``) becomes one line instead of a traceback."""
    try:
        restore(ckpt)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        detail = f"missing {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
        raise CheckpointError(
            f"cannot resume from {str(ckpt)!r}: its trainer state is damaged ({detail})"
        ) from None


def require_unfinished(run_dir: str, step: int, total_steps: int) -> None:
    """A resumed run that already reached its budget says so, and how to extend it."""
    if step >= total_steps:
        raise CheckpointError(
            f"{run_dir!r} is finished ({step:,} of {total_steps:,} steps); to train on, resume "
            f"with --total-steps larger than {step}"
        )


def versions() -> dict[str, str]:
    """The library versions a checkpoint was written with (recorded, not enforced)."""
    import platform

    import ale_py
    import gymnasium
    import numpy as np

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "ale_py": ale_py.__version__,
        "numpy": np.__version__,
    }


def checkpoint_config(agent: str, architecture: dict[str, Any], game: str, action_set: list[str],
                      env_options: dict[str, Any], step: int,
                      train_config: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """What a checkpoint's ``config.json`` holds: enough to use the network without the training
    code (rebuild it, recreate its env, name its actions)."""
    return {
        "format_version": FORMAT_VERSION,
        "agent": agent,
        "architecture": architecture,
        "game": game,
        "action_set": action_set,
        "env_options": env_options,
        "step": step,
        "versions": versions(),
        "train_config": train_config,
    }


def require_same_network(ckpt: Path, architecture: dict[str, Any], game: str) -> None:
    """Refuse, in one line, to resume a run from a checkpoint of another network or game."""
    config = read_json(ckpt / CONFIG)
    saved = config.get("architecture", {})
    if saved != architecture or config.get("game") != game:
        same_class = saved.get("class") == architecture.get("class")
        raise CheckpointError(
            f"{str(ckpt)!r} was trained on {config.get('game')!r} with {saved.get('class')!r}; "
            f"this run is {game!r} with {architecture.get('class')!r}"
            + (" of another architecture" if same_class and config.get("game") == game else "")
        )


def resume_config(cfg: Any, session: tuple[str, ...], budget: tuple[str, ...],
                  given: Collection[str] = ()) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """For ``--resume RUN`` (``cfg.resume``): the run's newest checkpoint and the config to go on
    with. That is the run's saved config, with

    * the ``session`` fields of ``cfg`` (device, progress bar, threads, time limit: they belong to
      this invocation),
    * the ``budget`` fields where ``cfg`` sets them away from their defaults, or that are in
      ``given`` (the flags on the command line: ``--total-steps 16000000`` extends a run of 8M
      steps even though 16M is the default; without the flag a run keeps its own budget, never a
      preset's);

    any other field set away from its default (or named in ``given``) and from the run's value is
    refused by name: it cannot change in the middle of a run. A saved config with unknown keys or
    values of the wrong type is refused in one line too."""
    run_dir = cfg.resume
    if Path(run_dir).is_dir():
        RunLock(Path(run_dir)).refuse_if_held()
    saved_path = Path(run_dir) / CONFIG
    if Path(run_dir).is_dir() and saved_path.exists() and not complete_checkpoints(Path(run_dir)):
        raise CheckpointError(
            f"{run_dir!r} has no checkpoint to resume from: its training stopped before the first "
            "save; start it again with a new --run-dir"
        )
    ckpt = resolve_checkpoint(run_dir)
    if not saved_path.exists():
        raise CheckpointError(f"{run_dir!r} is not a run directory (no {CONFIG})")
    saved = read_json(saved_path)
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for old, (new, convert) in RENAMED.items():  # a run saved before a field's rename
        if old in saved and old not in fields and new in fields and new not in saved:
            saved[new] = convert(saved.pop(old))
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise CheckpointError(
            f"{str(saved_path)!r} has keys this trainer does not know: {', '.join(unknown)}"
        )
    for name, value in saved.items():
        default = fields[name].default
        expected = type(default) if default is not dataclasses.MISSING else None
        if expected in (int, float, bool, str) and not (
            isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
            or expected is float and isinstance(value, int) and not isinstance(value, bool)
        ):
            raise CheckpointError(
                f"{str(saved_path)!r}: {name} should be {expected.__name__}, got {value!r}"
            )
    out = dict(saved)
    for name in fields:
        value, default = getattr(cfg, name), fields[name].default
        if name in session:
            out[name] = value
        elif name in ("resume", "run_dir"):
            continue
        elif value != saved.get(name, default) and (value != default or name in given):
            if name not in budget:
                flag = "--" + name.replace("_", "-")
                raise CheckpointError(
                    f"{flag} cannot change when resuming (the run has {saved.get(name)!r}); "
                    f"start a new run to change it"
                )
            out[name] = value
    return ckpt, {**out, "resume": run_dir, "run_dir": run_dir}


def run_checkpoints(run: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, directory)`` of every complete checkpoint of a run, oldest first: the
    ``step_N.tmp`` that a write killed midway leaves behind is not one. What keeps, prunes, or
    evaluates a run's checkpoints lists them here."""
    root = Path(run)
    if not root.is_dir():
        raise CheckpointError(f"run directory not found: {str(run)!r}")
    found = _step_dirs(root)
    if not found:
        raise CheckpointError(f"{str(run)!r} has no checkpoints (expected checkpoints/step_*); train "
                              "with --keep-checkpoints 0 to keep every one for this")  # fmt: skip
    return found


def _step_dirs(run: Path) -> list[tuple[int, Path]]:
    found = []
    for p in (run / "checkpoints").glob("step_*"):
        m = re.fullmatch(r"step_(\d+)", p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def _is_checkpoint(p: Path) -> bool:
    return (p / MODEL).is_file() and (p / CONFIG).is_file()


def complete_checkpoints(run: Path) -> list[Path]:
    """A run's ``step_N`` directories that hold their weights and config, oldest first (none for
    a run stopped before its first save), whatever ``latest`` says."""
    return [p for _, p in _step_dirs(Path(run)) if _is_checkpoint(p)]


def newest_checkpoint(run: Path) -> Path:
    """The checkpoint that ``checkpoints/latest`` names or, when ``latest`` is missing, unreadable
    or names no complete checkpoint, the newest complete ``step_N`` beside it, with a
    :class:`CheckpointWarning` that says so: one damaged file never makes a run unusable."""
    root = run / "checkpoints"
    latest = root / "latest"
    try:
        name = latest.read_text().strip()
    except FileNotFoundError:
        problem = "is missing"
    except (OSError, UnicodeDecodeError):
        problem = "cannot be read"
    else:
        if re.fullmatch(r"step_\d+", name) and _is_checkpoint(root / name):
            return root / name
        problem = f"names {name[:40]!r}, which is not a complete checkpoint"
    complete = complete_checkpoints(run)
    if not complete:
        if problem == "is missing":
            raise CheckpointError(f"run directory {str(run)!r} has no complete checkpoint yet")
        raise CheckpointError(f"{str(latest)!r} {problem}, and {str(run)!r} has no complete "
                              "step_N checkpoint to fall back on")  # fmt: skip
    warnings.warn(f"{str(latest)!r} {problem}; using the newest complete checkpoint, "
                  f"{complete[-1].name}", CheckpointWarning, stacklevel=3)  # fmt: skip
    return complete[-1]


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A run directory, a checkpoint directory or a ``model.safetensors`` file -> checkpoint dir."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {str(p)!r}")
    if p.is_file():
        if p.name != MODEL:
            raise CheckpointError(
                f"{str(p)!r} is not a checkpoint: give a run directory, a checkpoint directory "
                f"or its {MODEL}"
            )
        p = p.parent
    if (p / "checkpoints").is_dir():
        p = newest_checkpoint(p)
    if not (p / MODEL).exists() or not (p / CONFIG).exists():
        raise CheckpointError(f"{str(p)!r} is not a checkpoint: it lacks {MODEL} or {CONFIG}")
    return p


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: JSON errors and bytes that are not UTF-8
        raise CheckpointError(f"cannot read {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(path)!r} does not hold a JSON object")
    return data


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"damaged or truncated tensor file {str(path)!r}: {e}") from None


def load_state(network: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Load weights strictly: a checkpoint of another network is refused, not half-loaded."""
    own = network.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        detail = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
            else f"shape of {wrong[0]} is {tuple(tensors[wrong[0]].shape)}, expected "
            f"{tuple(own[wrong[0]].shape)}"
        )
        raise CheckpointError(f"{str(source)!r} holds weights of another network ({detail})")
    network.load_state_dict(tensors)


def load_checkpoint(
    path: str | os.PathLike[str], device: str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Return ``(network, config)`` from a checkpoint; see :func:`resolve_checkpoint` for ``path``."""
    from agents.common.architecture import build_network

    ckpt = resolve_checkpoint(path)
    config = read_json(ckpt / CONFIG)
    if config.get("format_version") != FORMAT_VERSION or "architecture" not in config:
        raise CheckpointError(
            f"{str(ckpt / CONFIG)!r} is not a checkpoint config of this library (format "
            f"{config.get('format_version')!r}, expected {FORMAT_VERSION})"
        )
    for key in ("game", "action_set", "env_options"):
        if key not in config:
            raise CheckpointError(f"{str(ckpt / CONFIG)!r} lacks {key!r}: not a complete checkpoint")
    n_actions = config["architecture"].get("n_actions") if isinstance(config["architecture"], dict) else None
    if n_actions is not None and n_actions != len(config["action_set"]):
        raise CheckpointError(
            f"{str(ckpt)!r} has {n_actions} action outputs but its game {config['game']!r} has "
            f"{len(config['action_set'])} actions: weights and config do not belong together"
        )
    try:
        network = build_network(config["architecture"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"cannot build the network in {str(ckpt / CONFIG)!r}: {e}") from None
    load_state(network, read_tensors(ckpt / MODEL), ckpt / MODEL)
    return network.to(device).eval(), config


class StopFlag:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (then save)."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None  # which signal asked: scripts exit with 128 + it
        self._old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as safetensors-ready tensors (``opt.<param>.<key>``) and its param
    groups as JSON: resumable without pickle."""
    sd = optimizer.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    groups = [{k: v.item() if torch.is_tensor(v) else v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups}  # a capturable optimizer's lr is a tensor: JSON a number


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Load what :func:`optimizer_to_tensors` wrote into ``optimizer``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, v in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    # how the optimizer runs (foreach, fused, capturable with a device lr) is this session's choice
    # (--cuda-graph, another device), not the checkpoint's: only the hyperparameters' values load
    session = [{k: g[k] for k in ("foreach", "fused", "capturable", "lr") if k in g}
               for g in optimizer.param_groups]  # fmt: skip
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    for group, mine in zip(optimizer.param_groups, session, strict=True):
        lr = group["lr"]
        group.update(mine)
        if torch.is_tensor(mine.get("lr")):  # the same tensor, which a captured graph reads
            mine["lr"].fill_(float(lr))
        else:
            group["lr"] = lr
        for p in group["params"]:  # step counts live where the implementation reads them
            st = optimizer.state.get(p, {})
            if torch.is_tensor(st.get("step")):
                on_device = group.get("capturable") or group.get("fused")
                st["step"] = st["step"].to(p.device if on_device else "cpu", torch.float32)
    # safetensors stores tensors contiguous; give each moment its parameter's memory layout again
    # (channels_last weights): fused optimizers walk parameter and state memory in step
    for param, st in optimizer.state.items():
        for key, value in st.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                st[key] = torch.empty_like(param).copy_(value)
