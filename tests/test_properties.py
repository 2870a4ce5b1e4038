"""Property tests (Hypothesis): whatever a user types into a config, validation answers with a
ValueError or accepts; whatever bytes lie in a checkpoint, loading answers with a CheckpointError
or loads. Never another exception, never a traceback for the scripts to show."""

import contextlib
import dataclasses
import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.common.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
from agents.glimpse.train import GlimpseConfig
from agents.qlearning.dqn import DQNConfig
from agents.qlearning.pqn import PQNConfig, PQNTrainer

VALUES = st.one_of(st.integers(-10**9, 10**9), st.floats(allow_nan=True), st.booleans(),
                   st.text(max_size=8), st.none())  # fmt: skip
SKIP = {"game", "env", "device", "resume", "run_dir", "exp_name"}  # names resolved elsewhere


@pytest.mark.parametrize("cls", [DQNConfig, PQNConfig, GlimpseConfig])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_validation_raises_value_error_or_accepts(cls, data):
    names = [f.name for f in dataclasses.fields(cls) if f.name not in SKIP]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    cfg = cls(**{n: data.draw(VALUES) for n in chosen})
    with contextlib.suppress(ValueError):
        cfg.validate()


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("prop") / "run"
    PQNTrainer(PQNConfig.for_game("catch", total_steps=128, num_envs=8, rollout=8, progress=False,
                               saliency_every=0, run_dir=str(run))).run()  # fmt: skip
    return resolve_checkpoint(run)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["model.safetensors", "config.json"]), cut=st.floats(0, 1),
       junk=st.binary(max_size=256), mode=st.sampled_from(["truncate", "random", "append"]))
def test_damaged_checkpoint_files_give_checkpoint_error(good_checkpoint, tmp_path_factory, which,
                                                        cut, junk, mode):  # fmt: skip
    ckpt = tmp_path_factory.mktemp("damaged") / "ckpt"
    shutil.copytree(good_checkpoint, ckpt)
    data = (ckpt / which).read_bytes()
    damaged = {"truncate": data[: int(len(data) * cut)], "random": junk or os.urandom(16),
               "append": data + junk}[mode]  # fmt: skip
    (ckpt / which).write_bytes(damaged)
    try:
        network, config = load_checkpoint(ckpt)
    except CheckpointError:
        return
    assert damaged == data or which == "config.json" and json.loads(damaged) == json.loads(data)


def _float_flags() -> list[tuple[str, list[str], str, list[str]]]:
    """(script, the arguments its required fields need, flag, the tokens of a non-finite value)
    for every float field of every script's flags: the trainers' configs, each script's Args and
    each benchmark subcommand."""
    import importlib
    import pkgutil
    import typing

    import scripts
    from scripts.benchmark import SUBCOMMANDS

    def flags_of(cls):
        hints = typing.get_type_hints(cls)
        required = []
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required += [f"--{f.name.replace('_', '-')}", "x"]  # a path or a name: never read
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            args = typing.get_args(kind)
            if kind is float or (float in args and type(None) in args):
                yield required, f"--{f.name.replace('_', '-')}", []
            elif typing.get_origin(kind) in (tuple, list) and float in args:
                yield required, f"--{f.name.replace('_', '-')}", ["1"]

    cases = []
    for trainer, cls in (("train_dqn", DQNConfig), ("train_pqn", PQNConfig),
                         ("train_glimpse", GlimpseConfig)):  # fmt: skip
        cases += [(trainer, req, flag, lead) for req, flag, lead in flags_of(cls)]
    for info in pkgutil.iter_modules(scripts.__path__):
        module = importlib.import_module(f"scripts.{info.name}")
        if hasattr(module, "Args"):
            cases += [(info.name, req, flag, lead) for req, flag, lead in flags_of(module.Args)]
    for sub, (cls, _) in SUBCOMMANDS.items():
        cases += [("benchmark", [sub, *req], flag, lead) for req, flag, lead in flags_of(cls)]
    return cases


FLOAT_FLAGS = _float_flags()


def test_the_float_flags_are_found():
    """The collection above misses nothing obvious (a wrong type test would silently test none)."""
    found = {(script, flag) for script, _, flag, _ in FLOAT_FLAGS}
    assert {("train_dqn", "--learning-rate"), ("train_glimpse", "--entropy-coef"),
            ("record_saliency", "--fps"), ("attack", "--epsilons"), ("attack", "--pgd-step-size"),
            ("train_pqn", "--time-limit"), ("benchmark", "--seconds")} <= found  # fmt: skip
    assert len(FLOAT_FLAGS) >= 45


@pytest.mark.parametrize("value", ["inf", "nan"])
@pytest.mark.parametrize("script, required, flag, lead", FLOAT_FLAGS,
                         ids=[f"{s}{f}" for s, _, f, _ in FLOAT_FLAGS])  # fmt: skip
def test_every_float_flag_of_every_script_refuses_inf_and_nan(script, required, flag, lead, value,
                                                              monkeypatch, capsys, tmp_path):  # fmt: skip
    """Run each script's main in-process on the non-finite value: it ends with one line naming the
    flag, before any work (nothing is written: the working directory stays empty)."""
    import importlib
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *required, flag, *lead, value])
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(f"scripts.{script}").main()
    message = exit_.value.code if isinstance(exit_.value.code, str) else capsys.readouterr().err
    assert message.strip() == f"error: {flag} must be a finite number (got {value})", message
    assert not list(tmp_path.iterdir())
