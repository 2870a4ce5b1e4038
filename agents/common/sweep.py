"""Sweeps: many runs of one trainer over games, seeds and config values, scheduled by Ray Tune.

Ray Tune places the trials on the cores and GPUs of one machine or of a cluster, stops weak ones
early (ASHA, Li et al. 2020) and restores an interrupted sweep; everything else is ours. Each trial
is an ordinary run directory, ``SWEEP/runs/<game>__<trainer>__<variant>__<seed>/``, written by the
same trainer as ``train_*.py`` (TensorBoard events, ``config.json``, checkpoints), so
``tensorboard --logdir SWEEP`` shows every trial and ``evaluate.py`` takes any of them. Tune's own
state lives in ``SWEEP/tune/`` and the sweep's definition in ``SWEEP/sweep.json``.

A trial that starts in a run directory holding a checkpoint resumes from it: that is how a
restored sweep continues its unfinished trials (Tune restarts them; the run directory supplies the
progress). A finished run is not trained again.

Ray is an optional dependency (``pip install -e .[scale]``); nothing here imports it until a sweep
runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import logging
import math
import os
import shutil
import socket
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.common.checkpoint import CheckpointError, atomic_write_text, read_json
from agents.common.registry import TRAINERS, TrainerKind

SWEEP_FILE = "sweep.json"
TRIAL_FILE = "trial.json"
TUNE_DIR = "tune"
METRIC = "episodic_return"
# fields a sweep sets itself, each from its own flag
RESERVED = {"seed": "--seeds", "game": "--games", "run_dir": "--sweep-dir",
            "resume": "--resume", "progress": "(always off in trials)"}  # fmt: skip


def check_trainer(name: str) -> TrainerKind:
    if name not in TRAINERS:
        raise ValueError(f"unknown trainer {name!r}; choose one of {', '.join(sorted(TRAINERS))}")
    return TRAINERS[name]


def _parse_value(name: str, text: str, kind: Any) -> Any:
    """``text`` as a value of the config field's type; one line if it is not one."""
    text = text.strip()
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        if text not in map(str, choices):
            raise ValueError(f"--param {name}: {text!r} is not one of {', '.join(map(str, choices))}")
        return next(c for c in choices if str(c) == text)
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"--param {name}: {text!r} is not true or false")
        return text.lower() == "true"
    if kind is int:
        try:
            number = float(text.replace("_", ""))  # 1e6 and 1_000_000 are integers too
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"--param {name}: {text!r} is not an integer")
        return int(number)
    if kind is float:
        try:
            number = float(text.replace("_", ""))
        except ValueError:
            raise ValueError(f"--param {name}: {text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"--param {name}: {text!r} is not a finite number")
        return number
    return text


def parse_param(text: str, trainer: str) -> tuple[str, list[Any]]:
    """``"learning_rate=1e-4,2.5e-4"`` -> ``("learning_rate", [1e-4, 2.5e-4])``, each value of the
    field's type; an unknown field, a field the sweep sets itself or a value that does not parse is
    one line naming what is accepted."""
    if "=" not in text:
        raise ValueError(f"--param must look like NAME=VALUE[,VALUE...], got {text!r}")
    name, _, values = text.partition("=")
    name = name.strip().replace("-", "_")
    hints = check_field(name, trainer)
    parts = values.split(",")
    if not values.strip() or any(not v.strip() for v in parts):
        raise ValueError(f"--param {name}: give at least one value, separated by commas, got {values!r}")
    return name, [_parse_value(name, v, hints[name]) for v in parts]


def check_field(name: str, trainer: str) -> dict[str, Any]:
    """The trainer config's type hints, once ``name`` is known to be a field a sweep may set."""
    hints = typing.get_type_hints(check_trainer(trainer).config_class())
    if name in RESERVED:
        raise ValueError(f"--param {name}: the sweep sets it; use {RESERVED[name]}")
    if name not in hints:
        close = difflib.get_close_matches(name, list(hints), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown config field {name!r} for the {trainer} trainer; {hint}the "
                         f"fields are the flags of python scripts/train_{trainer}.py --help")  # fmt: skip
    return hints


@dataclass
class SweepSpec:
    """What a sweep runs; saved as ``SWEEP/sweep.json`` so that ``--resume`` needs nothing else.
    ``scripts/sweep.py`` takes each field as a flag of the same name."""

    trainer: str = "dqn"
    """Trainer of every trial: dqn, pqn or glimpse."""
    games: list[str] = field(default_factory=lambda: ["catch"])
    """Games (catch or any Atari game); each starts from its train_*.py preset."""
    seeds: list[int] = field(default_factory=lambda: [1])
    """Seeds; every configuration runs on each."""
    params: dict[str, list[Any]] = field(default_factory=dict)
    """Config field -> the values the sweep gives it (from --param)."""
    samples: int = 0
    """0: a grid over every combination of --param values; N: N random combinations (each value
    drawn uniformly from its list), each run on every game and seed."""
    search_seed: int = 0
    """Seed of the random combinations (--samples)."""
    asha: bool = False
    """Stop weak trials early with ASHA (Li et al. 2020), ranking trials by episodic return."""
    grace_period: int = 0
    """ASHA: environment steps every trial runs before it may be stopped (0: a tenth of the budget)."""
    reduction_factor: int = 3
    """ASHA: 1 in this many trials goes on at each rung."""
    cpus_per_trial: float = 1.0
    """CPUs Ray reserves for each trial (fractions allowed); also its torch threads."""
    gpus_per_trial: float = 0.0
    """GPUs Ray reserves for each trial; fractions share one GPU between trials."""
    report_every: int = 0
    """Environment steps between a trial's reports to Tune (0: a hundredth of its budget)."""

    def variants(self) -> list[dict[str, Any]]:
        """The param combinations the sweep runs (the same ones on every game and seed)."""
        names = sorted(self.params)
        if not self.samples:
            return [dict(zip(names, values, strict=True))
                    for values in itertools.product(*(self.params[n] for n in names))]  # fmt: skip
        rng = np.random.default_rng(self.search_seed)
        return [{n: self.params[n][rng.integers(len(self.params[n]))] for n in names}
                for _ in range(self.samples)]  # fmt: skip

    def configs(self) -> list[tuple[str, int, int, Any]]:
        """(game, variant index, seed, validated trainer config) of every trial, before anything
        starts: a value out of range is one line now rather than a failed trial later."""
        kind = check_trainer(self.trainer)
        for name in self.params:
            check_field(name, self.trainer)
        out = []
        for game, (i, variant), seed in itertools.product(self.games, enumerate(self.variants()),
                                                          self.seeds):  # fmt: skip
            cfg = kind.preset(game, seed=seed, progress=False, **variant)
            try:
                cfg.validate()
            except ValueError as e:
                raise ValueError(f"{game} with {variant_label(variant)}: {e}") from None
            out.append((game, i, seed, cfg))
        return out

    def validate(self) -> None:
        check_trainer(self.trainer)
        if not self.games or not self.seeds:
            raise ValueError("a sweep needs at least one game (--games) and one seed (--seeds)")
        for name, value in (("--samples", self.samples), ("--report-every", self.report_every),
                            ("--grace-period", self.grace_period)):  # fmt: skip
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.samples and not self.params:
            raise ValueError("--samples draws values of --param fields; give at least one --param")
        if self.reduction_factor < 2:
            raise ValueError(f"--reduction-factor must be >= 2, got {self.reduction_factor}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0, got "
                             f"{self.cpus_per_trial} and {self.gpus_per_trial}")  # fmt: skip
        if self.asha and len(self.games) > 1:
            raise ValueError("--asha ranks trials by their returns, which differ in scale from game "
                             f"to game; sweep one game at a time (got {', '.join(self.games)})")  # fmt: skip
        self.configs()

    def budget(self) -> int:
        return max(cfg.total_steps for *_, cfg in self.configs())

    def save(self, sweep_dir: Path) -> None:
        atomic_write_text(sweep_dir / SWEEP_FILE, json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, sweep_dir: Path) -> SweepSpec:
        path = Path(sweep_dir) / SWEEP_FILE
        if not Path(sweep_dir).is_dir() or not path.exists():
            raise ValueError(f"{str(sweep_dir)!r} is not a sweep directory (no {SWEEP_FILE}); give "
                             "the --sweep-dir of an earlier sweep")  # fmt: skip
        try:
            return cls(**read_json(path))
        except (TypeError, CheckpointError) as e:
            raise ValueError(f"{str(path)!r} is damaged: {e}") from None


def variant_label(variant: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(variant.items())) or "defaults"


def trial_name(spec: SweepSpec, game: str, index: int, seed: int) -> str:
    """The trial's run directory name: readable in TensorBoard's run list (the variant's number
    and the values that vary between variants), and the same each time the sweep runs, so that a
    restored trial finds its checkpoints."""
    variant = spec.variants()[index]
    varying = {k: v for k, v in variant.items() if len(set(map(str, spec.params[k]))) > 1}
    label = f"v{index}" + (f"_{variant_label(varying)}" if varying else "")
    return f"{game}__{spec.trainer}__{label.replace('/', '_')}__{seed}"


# ---- one trial, in a Ray worker ---------------------------------------------------------------
class TuneReporter:
    """A trainer callback: the rolling mean of recent episodes' returns (unclipped game scores) to
    Tune every ``every`` environment steps, once an episode has ended."""

    def __init__(self, every: int) -> None:
        self.every, self.next = max(1, every), max(1, every)

    def __call__(self, trainer: Any, step: int) -> None:
        if step >= self.next and trainer.tracker.episodes:
            self.next = (step // self.every + 1) * self.every
            report(trainer)


def report(trainer: Any) -> None:
    from ray import tune

    tune.report({METRIC: trainer.tracker.recent_mean(), "episodes": trainer.tracker.episodes,
                 "step": trainer.global_step})  # fmt: skip


def run_trial(config: dict[str, Any], spec: dict[str, Any], sweep_dir: str,
              callbacks: Callable[[Any], list[Any]] | None = None) -> None:  # fmt: skip
    """Tune's trainable: train one run directory to its budget, resuming it if it holds a
    checkpoint; ``config`` holds the trial's game, seed and variant number; ``callbacks`` makes
    the trainer's extra callbacks from its config (the script's analysis, such as saliency)."""
    import torch

    from agents.common.checkpoint import complete_checkpoints, resolve_checkpoint

    sweep = SweepSpec(**spec)
    kind = TRAINERS[sweep.trainer]
    game, seed, index = config["game"], config["seed"], config["variant"]
    variant = sweep.variants()[index]
    run_dir = Path(sweep_dir) / "runs" / trial_name(sweep, game, index, seed)
    torch.set_num_threads(max(1, int(sweep.cpus_per_trial)))
    cfg = kind.preset(game, seed=seed, progress=False, run_dir=str(run_dir), **variant)
    if run_dir.is_dir() and complete_checkpoints(run_dir):  # even with a damaged latest
        done = read_json(resolve_checkpoint(run_dir) / "trainer.json")["global_step"]
        saved = read_json(run_dir / "config.json")["total_steps"]
        cfg = kind.config_class()(resume=str(run_dir), progress=False)
        if done >= saved:  # finished before the sweep was stopped: nothing left to train
            return
    elif run_dir.exists():  # started, never checkpointed: nothing to keep
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / TRIAL_FILE, json.dumps(
        {"trainer": sweep.trainer, "game": game, "seed": seed, "variant": index, "params": variant}))
    trainer = kind.build(cfg, [])
    cfg = trainer.cfg  # on a resume, the run's own config
    if callbacks is not None:
        trainer.callbacks.extend(callbacks(cfg))
    trainer.callbacks.append(TuneReporter(sweep.report_every or max(1, cfg.total_steps // 100)))
    trainer.run()
    if trainer.tracker.episodes:
        report(trainer)


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """What Tune varies: the game, the variant's number and the seed (Tune's table shows them)."""
    from ray import tune

    return {
        "game": tune.grid_search(spec.games),
        "variant": tune.grid_search(list(range(len(spec.variants())))),
        "seed": tune.grid_search(spec.seeds),
    }


# ---- the driver --------------------------------------------------------------------------------
def check_address(address: str, timeout: float = 3.0) -> None:
    """Refuse, within ``timeout`` seconds, a cluster address nothing answers at (``ray.init``
    would wait a minute or more before failing)."""
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address must be HOST:PORT (the head's, as `ray start --head` prints "
                         f"it) or ray://HOST:PORT, got {address!r}")  # fmt: skip
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"no Ray cluster answers at {address} ({e.strerror or e}); start one with "
                         "`ray start --head` or leave out --address for a local one") from None  # fmt: skip


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise ValueError("sweeps need Ray Tune: pip install -e '.[scale]'") from None


@dataclass
class SweepOutcome:
    errors: list[str]
    """One line per failed trial: its Tune folder and the error's last line."""
    interrupted: bool
    """Trials were left unfinished (Ctrl-C): ``--resume`` continues them."""


def run_sweep(spec: SweepSpec, sweep_dir: Path, *, resume: bool = False, address: str = "",
              num_cpus: int | None = None,
              callbacks: Callable[[Any], list[Any]] | None = None) -> SweepOutcome:  # fmt: skip
    """Start (or, with ``resume``, continue) the sweep in ``sweep_dir`` on a local Ray instance
    or the cluster at ``address``; returns when every trial has ended or the sweep was stopped.
    ``callbacks`` (a module-level function, so that Ray's workers can import it) makes each
    trial's extra trainer callbacks from its config."""
    require_ray()
    if address:
        check_address(address)
    import ray
    from ray import tune
    from ray.tune import ExperimentAnalysis
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    # Tune's TensorBoard copy of the reports would double every trial in TensorBoard (the run
    # directories hold the full logs); its small CSV and JSON copies stay
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # a trial that has not reported yet has no metrics file: not worth a warning at every restore
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    sweep_dir = sweep_dir.resolve()
    if not resume:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        spec.save(sweep_dir)
    ray.init(address=address or None, num_cpus=None if address else num_cpus,
             include_dashboard=False, configure_logging=True, logging_level="warning")  # fmt: skip
    try:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, spec=dataclasses.asdict(spec), sweep_dir=str(sweep_dir),
                                 callbacks=callbacks),
            {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial},
        )
        state = sweep_dir / TUNE_DIR
        if resume and tune.Tuner.can_restore(str(state)):
            tuner = tune.Tuner.restore(str(state), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)  # fmt: skip
        else:  # a new sweep, or one stopped before Tune first saved its state
            tuner = tune.Tuner(
                trainable,
                param_space=param_space(spec),
                tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler(spec),
                                            trial_dirname_creator=lambda t: t.trial_id),  # fmt: skip
                run_config=tune.RunConfig(storage_path=str(sweep_dir), name=TUNE_DIR, verbose=1,
                                          callbacks=[CSVLoggerCallback(), JsonLoggerCallback()]),
            )
        results = tuner.fit()
        errors = [f"{r.path}: {(str(r.error).strip().splitlines() or ['?'])[-1]}"
                  for r in results if r.error is not None]  # fmt: skip
        # the statuses Tune saved, which a --resume acts on (after Ctrl-C, the trials it stopped
        # are saved as pending, whatever the returned results say of them)
        saved = [t.status for t in ExperimentAnalysis(str(state)).trials]
        ended = sum(status in ("TERMINATED", "ERROR") for status in saved)
        return SweepOutcome(errors, interrupted=ended < len(saved))
    finally:
        ray.shutdown()


def scheduler(spec: SweepSpec) -> Any:
    if not spec.asha:
        return None
    from ray.tune.schedulers import ASHAScheduler

    budget = spec.budget()
    return ASHAScheduler(time_attr="step", max_t=budget, grace_period=spec.grace_period or budget // 10,
                         reduction_factor=spec.reduction_factor)  # fmt: skip
