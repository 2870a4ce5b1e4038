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
    PQNTrainer(PQNConfig.catch(total_steps=128, num_envs=8, rollout=8, progress=False,
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
