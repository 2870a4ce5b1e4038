"""Nothing lost: a run directory cannot be clobbered by a new run or a second writer, a resume
keeps the run's own budget, a finished run says so, and exit codes tell how a training ended."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import call_script

from agents.common.checkpoint import (
    CheckpointError,
    RunLock,
    load_checkpoint,
    read_tensors,
    resolve_checkpoint,
)
from agents.common.run import Every
from agents.glimpse.train import GlimpseConfig, GlimpseTrainer
from agents.qlearning.dqn import DQNConfig, DQNTrainer
from agents.qlearning.pqn import PQNConfig, PQNTrainer
from agents.soft.train import SoftConfig, SoftTrainer

ROOT = Path(__file__).resolve().parent.parent

TRAINERS = {
    "dqn": lambda run, **kw: DQNTrainer(DQNConfig.for_game("catch", **{
        "total_steps": 400, "learning_starts": 100, "save_every": 200, "progress": False,
        "saliency_every": 0, "run_dir": str(run), **kw})),
    "pqn": lambda run, **kw: PQNTrainer(PQNConfig.for_game("catch", **{
        "total_steps": 256, "num_envs": 8, "rollout": 8, "save_every": 128, "progress": False,
        "saliency_every": 0, "run_dir": str(run), **kw})),
    "glimpse": lambda run, **kw: GlimpseTrainer(GlimpseConfig(**{
        "total_steps": 8 * 24 * 2, "num_envs": 8, "save_every": 8 * 24, "progress": False,
        "run_dir": str(run), **kw})),
    "soft": lambda run, **kw: SoftTrainer(SoftConfig(**{
        "total_steps": 4 * 24 * 2, "num_envs": 4, "save_every": 4 * 24, "progress": False, "hidden": 16,
        "epochs": 1, "run_dir": str(run), **kw})),
}  # fmt: skip
RESUME = {"dqn": DQNConfig, "pqn": PQNConfig, "glimpse": GlimpseConfig, "soft": SoftConfig}


@pytest.mark.parametrize("kind", TRAINERS)
def test_a_new_run_never_overwrites_an_old_one(kind, tmp_path):
    run = tmp_path / "run"
    TRAINERS[kind](run).run()
    before = {p.name for p in (run / "checkpoints").iterdir()}
    config = (run / "config.json").read_text()
    with pytest.raises(CheckpointError, match="already holds a run; continue it with --resume"):
        TRAINERS[kind](run, total_steps=10_000)
    assert {p.name for p in (run / "checkpoints").iterdir()} == before
    assert (run / "config.json").read_text() == config


@pytest.mark.parametrize("kind", TRAINERS)
def test_resume_keeps_the_runs_budget_and_a_finished_run_says_so(kind, tmp_path):
    run = tmp_path / "run"
    first = TRAINERS[kind](run)
    first.run()
    with pytest.raises(CheckpointError, match="is finished .* resume with --total-steps larger"):
        # no --total-steps: the run's own budget (reached), never a preset's (10M, 16M)
        type(first)(RESUME[kind](resume=str(run), progress=False))
    longer = type(first)(RESUME[kind](resume=str(run), progress=False,
                                      total_steps=2 * first.cfg.total_steps))  # fmt: skip
    assert longer.cfg.total_steps == 2 * first.cfg.total_steps
    longer.run()
    assert resolve_checkpoint(run).name == f"step_{2 * first.cfg.total_steps:012d}"


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "lock").write_text(str(sleeper.pid))
        with pytest.raises(CheckpointError, match=f"being trained by process {sleeper.pid}"):
            TRAINERS["pqn"](run).run()
        assert not (run / "checkpoints").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone (killed): its lock is stale and a training takes it over
    TRAINERS["pqn"](run).run()
    assert resolve_checkpoint(run).name == "step_000000000256"
    assert not (run / "lock").exists()  # released at the end
    held = RunLock(run).acquire()
    assert (run / "lock").read_text() == str(os.getpid())
    held.release()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_and_exits_with_128_plus_its_number(sig, code, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "scripts/train_pqn.py", "--game", "catch", "--total-steps", "100000000",
         "--save-every", "100000000", "--saliency-every", "0", "--no-progress",
         "--run-dir", str(run)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not list(run.glob("events.*")):
        time.sleep(0.2)
    time.sleep(2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"interrupted by {sig.name}" in out and "--resume" in out
    assert resolve_checkpoint(run).name.startswith("step_")
    assert not (run / "lock").exists()


def test_an_action_outside_the_game_fails_at_once_instead_of_hanging():
    """It used to hang ALE's C++ threads for ever (deaf to Ctrl-C): run it with a timeout."""
    code = """
import numpy as np, envs
env = envs.make_vector_env('pong', 2, seed=0)
env.reset()
for bad in (np.array([0, 9]), np.array([0.5, 1.0]), np.array([-1, 0])):
    try:
        env.step(bad)
    except ValueError as e:
        print(e)
print(env.step(np.array([0, 1]))[0].shape)  # still usable
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    lines = r.stdout.splitlines()
    assert lines[0] == "actions must be 2 integers in [0, 5], got [0, 9]"
    assert lines[1].startswith("actions must be 2 integers") and lines[2].endswith("got [-1, 0]")
    assert lines[3] == "(2, 4, 84, 84)"


def test_a_checkpoint_whose_actions_do_not_match_its_game_is_refused(tmp_path):
    import json

    TRAINERS["pqn"](tmp_path / "run").run()
    ckpt = resolve_checkpoint(tmp_path / "run")
    config = json.loads((ckpt / "config.json").read_text())
    config["action_set"] = ["NOOP", "FIRE", "RIGHT", "LEFT"]  # as if Catch weights claimed Breakout's
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="has 3 action outputs but its game 'catch' has 4"):
        load_checkpoint(ckpt)
    del config["game"]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="lacks 'game'"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DQNConfig(max_grad_norm=-1), "--max-grad-norm must be > 0"),
        (lambda: DQNConfig(start_e=5), "--start-e must be in [0, 1]"),
        (lambda: DQNConfig(exploration_fraction=-1), "--exploration-fraction must be in [0, 1]"),
        (lambda: GlimpseConfig(max_grad_norm=-1), "--max-grad-norm must be > 0"),
        (lambda: PQNConfig(max_grad_norm=-1), "--max-grad-norm must be > 0"),
    ],
)
def test_values_that_would_train_backwards_are_refused(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make().validate()


@pytest.mark.parametrize(
    "flags, message",
    [(["--epsilon", "2"], "--epsilon must be in [0, 1]"),
     (["--num-envs", "0"], "--num-envs must be >= 1"),
     (["--device", "gpu"], "--device must be auto, cpu or cuda")],
)  # fmt: skip
def test_evaluate_refuses_bad_values_in_one_line(flags, message, tmp_path):
    TRAINERS["pqn"](tmp_path / "run").run()
    r = subprocess.run([sys.executable, "scripts/evaluate.py", "--checkpoint", str(tmp_path / "run"),
                        *flags], cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0 and r.stderr.startswith(f"error: {message}")
    assert r.stderr.count("\n") == 1


def test_resume_refuses_a_flag_that_cannot_change_and_a_damaged_state(tmp_path):
    import json

    run = tmp_path / "run"
    TRAINERS["pqn"](run).run()
    with pytest.raises(CheckpointError, match=r"--num-envs cannot change when resuming \(the run has 8\)"):
        PQNTrainer(PQNConfig(resume=str(run), num_envs=64, total_steps=512, progress=False))
    with pytest.raises(CheckpointError, match="--learning-rate cannot change"):
        PQNTrainer(PQNConfig(resume=str(run), learning_rate=0.1, total_steps=512, progress=False))
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "num_envs": "8"}))
    with pytest.raises(CheckpointError, match="num_envs should be int, got '8'"):
        PQNTrainer(PQNConfig(resume=str(run), total_steps=512, progress=False))
    (run / "config.json").write_text(json.dumps({**saved, "warp_drive": True}))
    with pytest.raises(CheckpointError, match="does not know: warp_drive"):
        PQNTrainer(PQNConfig(resume=str(run), total_steps=512, progress=False))
    (run / "config.json").write_text(json.dumps(saved))
    state_file = resolve_checkpoint(run) / "trainer.json"
    state = json.loads(state_file.read_text())
    del state["updates"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="trainer state is damaged \\(missing 'updates'\\)"):
        PQNTrainer(PQNConfig(resume=str(run), total_steps=512, progress=False))


def test_kill_9_between_the_files_and_the_rename_leaves_the_last_checkpoint(tmp_path):
    """A process killed while writing a checkpoint (files written, not yet renamed into place)
    leaves the previous checkpoint loadable and named by ``latest``; the next write cleans up."""
    run = tmp_path / "run"
    TRAINERS["pqn"](run).run()  # checkpoints at 128 and 256
    code = f"""
import os, signal
import agents.common.checkpoint as ck
from agents.qlearning.pqn import PQNConfig, PQNTrainer
real_replace = os.replace
def replace(src, dst):
    if str(src).endswith('.tmp') and os.path.isdir(src):
        os.kill(os.getpid(), signal.SIGKILL)  # files written, rename pending
    real_replace(src, dst)
ck.os.replace = replace
PQNTrainer(PQNConfig(resume={str(run)!r}, total_steps=512, progress=False)).run()
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL
    assert list((run / "checkpoints").glob("*.tmp"))  # the half-written checkpoint is there ...

    net, config = load_checkpoint(run)  # ... and ignored: latest still names the last whole one
    assert config["step"] == 256
    # the killed process's lock is stale: a resume takes it over and finishes
    PQNTrainer(PQNConfig(resume=str(run), total_steps=512, progress=False)).run()
    assert resolve_checkpoint(run).name == "step_000000000512"
    assert not list((run / "checkpoints").glob("*.tmp"))


def _sb3_zip(tmp_path, n_actions=6):
    import gymnasium as gym
    import numpy as np
    import stable_baselines3 as sb3

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        action_space = gym.spaces.Discrete(n_actions)

        def reset(self, *, seed=None, options=None):
            return np.zeros((4, 84, 84), np.uint8), {}

        def step(self, action):
            return np.zeros((4, 84, 84), np.uint8), 0.0, True, False, {}

    path = tmp_path / f"m{n_actions}.zip"
    sb3.PPO("CnnPolicy", Frames(), n_steps=8, seed=0, device="cpu").save(path)
    return path


def _rewrite_zip(src, dst, **replace):
    import zipfile

    with zipfile.ZipFile(src) as z_in, zipfile.ZipFile(dst, "w") as z_out:
        for name in z_in.namelist():
            z_out.writestr(name, replace.get(name.replace(".", "_"), z_in.read(name)))
    return dst


def test_damaged_or_mismatched_sb3_models_are_one_line(tmp_path):
    import json
    import zipfile

    from analysis.playback import load_policy
    from analysis.sb3 import load_sb3

    good = _sb3_zip(tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        load_sb3(tmp_path)
    data = json.loads(zipfile.ZipFile(good).read("data"))
    no_space = {k: v for k, v in data.items() if k != "observation_space"}
    with pytest.raises(ValueError, match="does not record its observation and action spaces"):
        load_sb3(_rewrite_zip(good, tmp_path / "a.zip", data=json.dumps(no_space)))
    with pytest.raises(ValueError, match="unsupported SB3 policy"):
        load_sb3(_rewrite_zip(good, tmp_path / "b.zip",
                              data=json.dumps({**data, "policy_class": "CnnPolicy"})))  # fmt: skip
    with pytest.raises(ValueError, match="not a plain state dict") as info:
        load_sb3(_rewrite_zip(good, tmp_path / "c.zip", policy_pth=b"\x80\x04garbage"))
    assert "weights_only" not in str(info.value)  # never the advice to load unsafely
    with pytest.raises(ValueError, match="has 4 actions but 'pong' has 6"):
        load_policy(str(_sb3_zip(tmp_path, n_actions=4)), "pong")


@pytest.mark.parametrize(
    "args, message",
    [
        (["scripts/record_saliency.py", "--game", "pong", "--out", "{tmp}/v.mp4", "--height", "0"],
         "--height must be in [1, 2160] pixels"),
        (["scripts/record_saliency.py", "--game", "pong", "--out", "{tmp}/v.mp4", "--fps", "-5"],
         "--fps must be in [0.01, 1,000]"),
        (["scripts/record_saliency.py", "--game", "pong", "--out", "/proc/x.mp4"],
         "cannot write to '/proc'"),
        (["scripts/record_glimpses.py", "--checkpoint", "{tmp}/none", "--out", "{tmp}/g.mp4",
          "--trail", "-1"], "--trail must be >= 0"),
        (["scripts/record_glimpses.py", "--checkpoint", "{tmp}/none", "--out", "{tmp}/g.mp4",
          "--fps", "0"], "--fps must be in [0.01, 1,000]"),
        (["scripts/record_glimpses.py", "--checkpoint", "{tmp}/none", "--out", "{tmp}/g.mp4",
          "--jacobian", "/proc/j.png"], "cannot write to '/proc'"),
        (["scripts/compare_heads.py", "--checkpoint", "{tmp}/none", "--out", "/proc/report"],
         "cannot write to '/proc/report'"),
    ],
)  # fmt: skip
def test_output_and_video_options_are_checked_before_any_work(args, message, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert r.stderr.strip().startswith("error:") and r.stderr.count("\n") == 1, r.stderr
    assert not list(tmp_path.glob("*.mp4"))


def test_evaluate_json_out_is_checked_before_playing(tmp_path):
    TRAINERS["pqn"](tmp_path / "run").run()
    r = subprocess.run([sys.executable, "scripts/evaluate.py", "--checkpoint", str(tmp_path / "run"),
                        "--json-out", "/proc/e.json"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode != 0 and r.stderr.startswith("error: cannot write to '/proc'")
    assert "evaluating" not in r.stderr  # refused before the first episode


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_video_leaves_no_partial_file(sig, code, tmp_path):
    out = tmp_path / "v.mp4"
    proc = subprocess.Popen([sys.executable, "scripts/record_saliency.py", "--game", "pong",
                             "--steps", "100000", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "v.partial.mp4").exists():
        time.sleep(0.2)
    assert (tmp_path / "v.partial.mp4").exists()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert f"interrupted by {sig.name}" in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("*.mp4"))


# ---- the bad-input probe: its cases, numbered as in docs/reliability.md --------------------------

def _run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _one_line(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode != 0, done.stdout
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what "untouched" is checked against."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("probe") / "run"
    TRAINERS["pqn"](run).run()
    return run


@pytest.fixture
def run_copy(catch_run, tmp_path) -> Path:
    import shutil

    shutil.copytree(catch_run, tmp_path / "run")
    return tmp_path / "run"


def _pack(run: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    return call_script("scripts/pack_agent.py", "--run", str(run), "--out", str(out), "--episodes", "1",
                       "--num-envs", "1", "--no-progress", *flags)  # fmt: skip


@pytest.mark.parametrize("flags", [(), ("--training-state",)], ids=["agent", "training-state"])
def test_probe_01_pack_out_another_run_is_refused_and_the_run_still_resumes(flags, run_copy, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_copy, other)
    before = _tree(other)
    _one_line(_pack(run_copy, other, *flags), f"--out {str(other)!r} is a run directory")
    assert _tree(other) == before
    resumed = PQNTrainer(PQNConfig(resume=str(other), total_steps=320, progress=False))
    assert resumed.global_step == 256


@pytest.mark.parametrize("flags", [(), ("--training-state",)], ids=["agent", "training-state"])
def test_probe_02_pack_out_the_run_being_packed_is_refused(flags, run_copy):
    before = _tree(run_copy)
    _one_line(_pack(run_copy, run_copy, *flags), "is the run being packed")
    assert _tree(run_copy) == before


@pytest.mark.parametrize("flags", [(), ("--training-state",)], ids=["agent", "training-state"])
def test_probe_03_pack_out_a_folder_that_holds_the_run_is_refused(flags, run_copy, tmp_path):
    before = _tree(tmp_path)
    _one_line(_pack(run_copy, tmp_path, *flags), "holds the run being packed")
    _one_line(_pack(run_copy / "checkpoints", tmp_path / "x", *flags), "is not a checkpoint")
    _one_line(_pack(run_copy, run_copy / "checkpoints" / "x", *flags), "is inside the run")
    assert _tree(tmp_path) == before and not (tmp_path / "x").exists()


@pytest.mark.parametrize("flags", [(), ("--training-state",)], ids=["agent", "training-state"])
def test_probe_04_pack_out_a_users_folder_is_refused_and_nothing_is_touched(flags, run_copy, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    (mine / "sub" / "eval.json").write_text("{}")
    _one_line(_pack(run_copy, mine, *flags), "holds files that are not a packed agent's (notes.txt, sub)")
    assert _tree(mine) == {"notes.txt": b"mine", "sub/eval.json": b"{}"}
    (mine / "eval.json").write_text("{}")  # an eval.json beside other files is no packed agent
    _one_line(_pack(run_copy, mine, *flags), "holds files that are not a packed agent's")
    (tmp_path / "file").write_text("x")
    _one_line(_pack(run_copy, tmp_path / "file", *flags), "exists and is not a folder")


def test_probe_05_an_earlier_pack_is_replaced_whole_and_an_empty_folder_taken(run_copy, tmp_path):
    from agents.common.pretrained import is_packed_agent

    out = tmp_path / "agent"
    out.mkdir()  # an empty folder is taken
    done = _pack(run_copy, out)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "curve.csv", "eval.json",
                                                      "model.safetensors"]  # fmt: skip
    done = _pack(run_copy, out, "--training-state")  # the flat pack is replaced by the run's
    assert done.returncode == 0, done.stderr
    assert not (out / "model.safetensors").exists() and (out / "checkpoints" / "latest").exists()
    assert is_packed_agent(out) and load_checkpoint(out)[1]["step"] == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent", "run"]  # no hidden folder left


@pytest.mark.parametrize("folder", sorted(p.name for p in (ROOT / "pretrained").iterdir() if p.is_dir()))
def test_probe_05_the_shipped_agents_are_packed_agents_that_a_pack_may_replace(folder):
    from agents.common.pretrained import is_packed_agent

    assert is_packed_agent(ROOT / "pretrained" / folder)


@pytest.mark.parametrize("when", ["writing", "swapping"])
def test_probe_06_a_pack_killed_with_sigkill_leaves_the_earlier_agent_intact(when, run_copy, tmp_path):
    """kill -9 while the new agent's files are written, or just before it takes the old one's place:
    the old agent is byte for byte what it was, and the next pack removes the killed one's hidden
    folder and replaces the agent."""
    out = tmp_path / "agent"
    assert _pack(run_copy, out).returncode == 0
    before = _tree(out)
    code = f"""
import os, signal
import agents.common.pretrained as p
def kill(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if {when!r} == "writing":
    p.save_file = kill
else:
    p._exchange = kill
p.pack_agent({str(run_copy)!r}, {{"game": "catch", "mean": 1.0}}, {str(out)!r}, {{"command": "t"}})
"""
    done = _run("-c", code)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _tree(out) == before
    assert [p.name for p in tmp_path.glob(".agent.packing-*")]  # what the kill left ...
    done = _pack(run_copy, out, "--training-state")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.glob(".agent.*"))  # ... is cleaned up by the next pack
    assert (out / "checkpoints").is_dir() and not (out / "model.safetensors").exists()


def test_probe_06_a_failed_pack_leaves_the_earlier_agent_and_no_folder(run_copy, tmp_path, monkeypatch):
    import agents.common.pretrained as pretrained

    out = tmp_path / "agent"
    pretrained.pack_agent(run_copy, {"mean": 1.0}, out, {"command": "t"})
    before = _tree(out)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pretrained, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        pretrained.pack_agent(run_copy, {"mean": 2.0}, out, {"command": "t"})
    assert _tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["agent", "run"]


def test_probe_06_folders_swap_atomically(tmp_path):
    from agents.common.pretrained import _exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "new").write_text("")
    (tmp_path / "b" / "old").write_text("")
    _exchange(tmp_path / "a", tmp_path / "b")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["new"]
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["old"]


@pytest.mark.parametrize("kind, flag, value", [
    ("dqn", "--learning-rate", "inf"), ("pqn", "--learning-rate", "inf"),
    ("glimpse", "--learning-rate", "inf"), ("glimpse", "--entropy-coef", "nan"),
    ("dqn", "--gamma", "nan"), ("pqn", "--max-grad-norm", "inf")])  # fmt: skip
def test_probe_07_non_finite_values_are_refused_before_any_work(kind, flag, value, tmp_path):
    game = ["--game", "catch"]
    done = call_script(f"scripts/train_{kind}.py", *game, flag, value, "--run-dir", str(tmp_path / "run"))
    _one_line(done, f"{flag} must be a finite number (got {value})")
    assert not (tmp_path / "run").exists()


def test_probe_08_dqn_hidden_below_zero_is_one_line(tmp_path):
    _one_line(call_script("scripts/train_dqn.py", "--game", "catch", "--hidden", "-1", "--run-dir",
                         str(tmp_path / "run")), "--hidden must be >= 0 (got -1)")  # fmt: skip
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, flag", [
    (["scripts/train_dqn.py", "--game", "pong", "--num-envs", "100000000"], "--num-envs"),
    (["scripts/train_pqn.py", "--game", "pong", "--num-envs", "100000000"], "--num-envs"),
    (["scripts/train_dqn.py", "--game", "pong", "--buffer-size", "100000000000"], "--buffer-size"),
    (["scripts/train_pqn.py", "--game", "pong", "--rollout", "10000000"], "--rollout"),
    (["scripts/train_glimpse.py", "--env", "pong", "--num-envs", "100000000"], "--num-envs"),
])  # fmt: skip
def test_probe_09_sizes_are_checked_against_the_memory_before_anything_is_allocated(args, flag, tmp_path):
    done = call_script(*args, "--run-dir", str(tmp_path / "run"))
    _one_line(done, "of memory")
    assert "available; lower" in done.stderr and flag in done.stderr.split("lower")[1]
    assert not (tmp_path / "run").exists()


def test_probe_09_the_estimates_count_what_the_arrays_hold(monkeypatch):
    """Hand-computed: PQN's Atari rollout is 32 x 128 transitions of 4 x 84 x 84 bytes plus an
    action and six floats; DQN's replay 1M slots of one 84 x 84 frame and 8 bytes. The presets fit
    a 24 GiB machine; on one with 4 GiB free the DQN's replay is what to lower."""
    import agents.common.resources as resources
    from agents.common.resources import ENV_BYTES

    pqn = PQNConfig().memory_needed()
    assert pqn["the rollout"][0] == 32 * 128 * (4 * 84 * 84 + 8 + 24)
    assert pqn["the envs"][0] == 128 * ENV_BYTES
    dqn = DQNConfig().memory_needed()
    assert dqn["the replay memory"][0] == 1_000_000 * (84 * 84 + 8)
    assert DQNConfig(prioritized=True).memory_needed()["the replay memory"][0] == 1_000_000 * (84 * 84 + 24)
    monkeypatch.setattr(resources, "available_memory", lambda: 24 * 2**30)
    PQNConfig().validate()
    DQNConfig().validate()
    monkeypatch.setattr(resources, "available_memory", lambda: 4 * 2**30)
    refused = r"\(the replay memory: 6\.6 GiB\) and this machine has 4\.0 GiB available; lower --buffer-size"
    with pytest.raises(ValueError, match=refused):
        DQNConfig().validate()
    PQNConfig().validate()  # PQN's 0.4 GiB still fits


def test_probe_09_an_evaluation_checks_its_envs_memory_first():
    from agents.common.evaluate import evaluate

    with pytest.raises(ValueError, match="lower --num-envs"):
        evaluate(lambda obs: None, {"game": "pong", "env_options": {}}, episodes=10**8,
                 num_envs=10**8)  # fmt: skip


@pytest.mark.parametrize("script", ["record_saliency", "record_glimpses"])
@pytest.mark.parametrize("fps, message", [("inf", "--fps must be a finite number (got inf)"),
                                          ("1e12", "--fps must be in [0.01, 1,000]"),
                                          ("1e-6", "--fps must be in [0.01, 1,000]")])  # fmt: skip
def test_probe_10_11_frame_rates_ffmpeg_cannot_write_are_one_line(script, fps, message, tmp_path):
    source = ["--game", "pong"] if script == "record_saliency" else ["--checkpoint", str(tmp_path)]
    done = call_script(f"scripts/{script}.py", *source, "--out", str(tmp_path / "v" / "v.mp4"), "--fps", fps)
    _one_line(done, message)
    assert not (tmp_path / "v").exists()


def test_probe_12_game_given_with_our_checkpoint_is_refused_by_name(catch_run, tmp_path):
    expected = "--game applies to SB3 zips and random networks only; this checkpoint is a 'catch' pqn"
    done = call_script("scripts/record_saliency.py", "--checkpoint", str(catch_run), "--game", "pong",
                      "--steps", "5", "--out", str(tmp_path / "out" / "v.mp4"))  # fmt: skip
    _one_line(done, expected)
    done = call_script("scripts/compare_heads.py", "--checkpoint", str(catch_run), "--game", "pong",
                      "--steps", "5", "--out", str(tmp_path / "out"))  # fmt: skip
    _one_line(done, expected)
    done = call_script("scripts/attack.py", "--checkpoint", str(catch_run), "--game", "pong",
                      "--out", str(tmp_path / "out"))  # fmt: skip
    _one_line(done, "--game applies to SB3 zips only")
    assert not (tmp_path / "out").exists()


def test_probe_13_resume_of_a_run_still_before_its_first_checkpoint(tmp_path):
    """The trainer still running: its lock names a live process, and the resume says so, as it does
    once checkpoints exist. The trainer gone: the run has nothing to resume from, said plainly."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(PQNConfig.for_game("catch"))))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / "lock").write_text(str(sleeper.pid))
        with pytest.raises(CheckpointError, match=f"is being trained by process {sleeper.pid}; wait"):
            PQNTrainer(PQNConfig(resume=str(run), progress=False))
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.raises(CheckpointError, match="has no checkpoint to resume from: its training stopped "
                                              "before the first save"):  # fmt: skip
        PQNTrainer(PQNConfig(resume=str(run), progress=False))


@pytest.mark.parametrize("flags, message", [
    (["--tags", "charts/sps", "--table"], "--tags applies to --every-window only"),
    (["--since", "5", "--table"], "--since applies to --every-window only"),
    (["--labels", "a", "--table"], "--labels names the figure's curves: give --out too"),
    (["--smooth", "0.2", "--every-window"], "--smooth smooths the figure's curves: give --out too"),
    (["--window", "10", "--out", "{tmp}/c.png"], "--window applies to --table and --every-window"),
])  # fmt: skip
def test_probe_14_plot_runs_refuses_flags_that_would_do_nothing(flags, message, catch_run, tmp_path):
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    _one_line(call_script("scripts/plot_runs.py", "--runs", str(catch_run), *flags), message)
    assert not list(tmp_path.iterdir())


def test_probe_14_compare_heads_refuses_episodes_beside_steps(catch_run, tmp_path):
    done = call_script("scripts/compare_heads.py", "--checkpoint", str(catch_run), "--steps", "5",
                      "--episodes", "2", "--out", str(tmp_path / "r"))  # fmt: skip
    _one_line(done, "--episodes and --steps exclude each other: give one")
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def glimpse_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("glimpse") / "run"
    TRAINERS["glimpse"](run).run()
    return run


def test_probe_15_an_unknown_jacobian_head_is_refused_before_the_video(glimpse_run, tmp_path):
    done = call_script("scripts/record_glimpses.py", "--checkpoint", str(glimpse_run), "--steps", "5",
                      "--out", str(tmp_path / "v" / "g.mp4"), "--jacobian", str(tmp_path / "v" / "j.png"),
                      "--jacobian-head", "nosuch")  # fmt: skip
    _one_line(done, "--jacobian-head 'nosuch' is not a head of this agent; it has: action_logits")
    assert not (tmp_path / "v").exists()
    done = call_script("scripts/record_glimpses.py", "--checkpoint", str(glimpse_run), "--steps", "5",
                      "--out", str(tmp_path / "v" / "g.mp4"), "--jacobian-head", "baseline")  # fmt: skip
    _one_line(done, "--jacobian-head applies to --jacobian only")


def test_probe_16_a_refused_command_leaves_no_folder_behind(catch_run, tmp_path):
    out = tmp_path / "a" / "b"
    done = call_script("scripts/attack.py", "--checkpoint", str(catch_run), str(tmp_path / "none"),
                      "--out", str(out))  # fmt: skip
    _one_line(done, "checkpoint not found")
    done = call_script("scripts/compare_heads.py", "--checkpoint", str(tmp_path / "none"), "--out", str(out))
    _one_line(done, "checkpoint not found")
    done = call_script("scripts/evaluate.py", "--checkpoint", str(tmp_path / "none"), "--json-out",
                      str(out / "e.json"))  # fmt: skip
    _one_line(done, "checkpoint not found")
    assert not list(tmp_path.iterdir())


def test_probe_16_a_report_never_overwrites_a_file_it_did_not_write(catch_run, tmp_path):
    (tmp_path / "fidelity.png").write_text("a user's figure")
    done = call_script("scripts/compare_heads.py", "--checkpoint", str(catch_run), "--out", str(tmp_path))
    _one_line(done, "holds fidelity.png, which this command did not write and would overwrite")
    (tmp_path / "robustness.png").write_text("a user's figure")
    done = call_script("scripts/attack.py", "--checkpoint", str(catch_run), "--out", str(tmp_path))
    _one_line(done, "holds robustness.png, which this command did not write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fidelity.png", "robustness.png"]


@pytest.mark.parametrize("damage", ["garbage", "missing step", "empty", "deleted"])
def test_probe_17_a_damaged_latest_falls_back_to_the_newest_complete_checkpoint(damage, run_copy):
    from agents.common.checkpoint import CheckpointWarning, load_checkpoint

    latest = run_copy / "checkpoints" / "latest"
    if damage == "deleted":
        latest.unlink()
    else:
        latest.write_bytes({"garbage": b"\xff\xfe\x00junk", "missing step": b"step_000000000999",
                            "empty": b""}[damage])  # fmt: skip
    with pytest.warns(CheckpointWarning, match="using the newest complete checkpoint, step_000000000256"):
        assert load_checkpoint(run_copy)[1]["step"] == 256
    with pytest.warns(CheckpointWarning):
        trainer = PQNTrainer(PQNConfig(resume=str(run_copy), total_steps=320, progress=False))
    assert trainer.global_step == 256
    trainer.run()
    assert latest.read_text() == "step_000000000320"  # the next checkpoint mends it


def test_probe_17_the_fallback_is_said_in_one_line_and_without_checkpoints_refused(run_copy):
    import shutil

    (run_copy / "checkpoints" / "latest").write_text("nonsense")
    done = _run("scripts/evaluate.py", "--checkpoint", str(run_copy), "--episodes", "1",
                "--num-envs", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {str(run_copy / 'checkpoints' / 'latest')!r} names 'nonsense', "
                        "which is not a complete checkpoint; using the newest complete checkpoint, "
                        "step_000000000256"]  # fmt: skip
    for step in (run_copy / "checkpoints").glob("step_*"):
        shutil.rmtree(step)
    _one_line(_run("scripts/evaluate.py", "--checkpoint", str(run_copy)),
              "has no complete step_N checkpoint to fall back on")


def test_probe_18_a_pack_of_another_game_an_unfinished_checkpoint_or_over_budget_is_refused(
        run_copy, tmp_path):  # fmt: skip
    """Each refusal is one line before the evaluation, and nothing is written."""
    import shutil

    shelf = tmp_path / "pretrained"
    (shelf / "pong").mkdir(parents=True)
    _one_line(_pack(run_copy, shelf / "pong"), "is not a folder of 'catch': in pretrained/ an "
              "agent's folder is its game's name ('catch' or 'catch_VARIANT')")  # fmt: skip
    enduro = tmp_path / "agent"
    assert _pack(run_copy, enduro).returncode == 0
    record = json.loads((enduro / "eval.json").read_text())
    (enduro / "eval.json").write_text(json.dumps({**record, "game": "enduro"}))
    before = _tree(enduro)
    _one_line(_pack(run_copy, enduro), "holds the agent of 'enduro', and this run plays 'catch'")
    assert _tree(enduro) == before
    newest = run_copy / "checkpoints" / (run_copy / "checkpoints" / "latest").read_text()
    unfinished = newest.with_name(newest.name + ".tmp")
    shutil.copytree(newest, unfinished)
    _one_line(_pack(unfinished, tmp_path / "x"), "is an unfinished checkpoint")
    with open(shelf / "pong" / "model.safetensors", "wb") as f:  # sparse: no disk, 119.9 MB
        f.truncate(int(119.9 * 2**20))
    for flags in [(), ("--training-state",)]:
        _one_line(_pack(run_copy, shelf / "catch", *flags), "over its 120 MB budget")
    _one_line(_pack(run_copy, tmp_path / "y", "--training-state", "--dtype", "float16"),
              "a run shipped with --training-state keeps its float32 weights")  # fmt: skip
    _one_line(_pack(run_copy, tmp_path / "y", "--dtype", "int8"), "--dtype must be one of float32")
    assert sorted(p.name for p in shelf.iterdir()) == ["pong"]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_run_shipped_with_its_training_state_is_packed_over_by_the_same_game_only(run_copy, tmp_path):
    """A pack made with --training-state holds the run's config, which names the game "env" in the
    glimpse and soft runs: the game an earlier pack holds is read from its record, so the finished
    run is packed over it as weights alone, and another game's run is still refused."""
    from agents.common.pretrained import check_pack_game

    shipped = tmp_path / "pretrained" / "catch"
    assert _pack(run_copy, shipped, "--training-state").returncode == 0
    config = json.loads((shipped / "config.json").read_text())
    (shipped / "config.json").write_text(json.dumps({**{k: v for k, v in config.items() if k != "game"},
                                                     "env": "catch"}))  # fmt: skip
    with pytest.raises(ValueError, match="holds the agent of 'catch', and this run plays 'pong'"):
        check_pack_game("pong", shipped)
    assert _pack(run_copy, shipped).returncode == 0
    assert not (shipped / "checkpoints").exists() and (shipped / "model.safetensors").is_file()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_pack_at_half_precision_ships_the_weights_its_evaluation_played(dtype, run_copy, tmp_path):
    """The file holds the weights at half the size; they load as float32, equal to the run's
    weights rounded (what the evaluation before the pack played), and the record names them. The
    size checked before the evaluation is read off the file's header, and a truncated file is
    one line there."""
    from agents.common.pretrained import _stored_size, round_weights, weights_digest

    out = tmp_path / "agent"
    assert _pack(run_copy, out, "--dtype", dtype).returncode == 0
    stored = read_tensors(out / "model.safetensors")
    assert {t.dtype for t in stored.values()} == {getattr(torch, dtype)}
    full = resolve_checkpoint(run_copy) / "model.safetensors"
    assert (out / "model.safetensors").stat().st_size < 0.55 * full.stat().st_size
    # the size checked before the evaluation: the stored values, read off the run's header
    estimate = _stored_size(full, getattr(torch, dtype))
    assert 0 < (out / "model.safetensors").stat().st_size - estimate < 4096  # the header
    loaded, _ = load_checkpoint(out)
    original, _ = load_checkpoint(run_copy)
    rounded = round_weights(load_checkpoint(run_copy)[0], dtype)
    for name, w in loaded.state_dict().items():
        assert w.dtype == torch.float32 and torch.equal(w, rounded.state_dict()[name])
    assert any(not torch.equal(w, original.state_dict()[k]) for k, w in loaded.state_dict().items())
    record = json.loads((out / "eval.json").read_text())
    assert record["weights_sha256"] == weights_digest(out)
    assert record["training"]["weights_dtype"] == dtype
    full.write_bytes(full.read_bytes()[:100])  # truncated
    _one_line(_pack(run_copy, tmp_path / "other", "--dtype", dtype), "damaged or truncated tensor file")


def test_a_shipped_agent_is_stored_again_at_half_precision_in_place(run_copy, tmp_path):
    """A float32 agent stored again as float16: the weights its new evaluation played, its training
    record and curve kept; then every refusal is one line and touches nothing."""
    from agents.common.pretrained import is_packed_agent, round_weights, weights_digest

    agent = tmp_path / "catch"
    assert _pack(run_copy, agent).returncode == 0
    before = json.loads((agent / "eval.json").read_text())
    curve = (agent / "curve.csv").read_bytes()
    rounded = round_weights(load_checkpoint(agent)[0], "float16")
    assert _pack(agent, agent, "--dtype", "float16", "--restore").returncode == 0
    assert {t.dtype for t in read_tensors(agent / "model.safetensors").values()} == {torch.float16}
    for name, w in load_checkpoint(agent)[0].state_dict().items():
        assert w.dtype == torch.float32 and torch.equal(w, rounded.state_dict()[name])
    record = json.loads((agent / "eval.json").read_text())
    assert record["weights_sha256"] == weights_digest(agent) != before["weights_sha256"]
    assert record["training"] == {**before["training"], "weights_dtype": "float16",
                                  "stored_again_with": record["training"]["stored_again_with"]}  # fmt: skip
    assert "--restore" in record["training"]["stored_again_with"] and record["episodes"] == 1
    assert (agent / "curve.csv").read_bytes() == curve and is_packed_agent(agent)
    kept = _tree(agent)
    _one_line(_pack(agent, agent, "--dtype", "float16", "--restore"), "is stored as float16 already")
    _one_line(_pack(agent, tmp_path / "elsewhere", "--dtype", "bfloat16", "--restore"),
              "give --out the same folder as --run")  # fmt: skip
    _one_line(_pack(run_copy, run_copy, "--dtype", "float16", "--restore"), "is not one")
    shipped_run = tmp_path / "state"
    assert _pack(run_copy, shipped_run, "--training-state").returncode == 0
    _one_line(_pack(shipped_run, shipped_run, "--dtype", "float16", "--restore"),
              "a run shipped with its training state")  # fmt: skip
    assert _tree(agent) == kept and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("kind", TRAINERS)
def test_every_trainer_stops_at_its_time_limit_with_a_checkpoint_that_resumes(kind, tmp_path):
    """--time-limit, declared once for all trainers: the loop ends at its first chance, saves, and
    the run resumes from there to its budget."""
    trainer = TRAINERS[kind](tmp_path / "run", time_limit=1e-6)
    path = trainer.run()
    assert trainer.stopped_by == "time limit" and trainer.global_step < trainer.cfg.total_steps
    assert resolve_checkpoint(tmp_path / "run") == path
    again = TRAINERS[kind](tmp_path / "other", resume=str(tmp_path / "run"))
    again.run()
    assert again.stopped_by == "" and again.global_step >= again.cfg.total_steps


def test_periodic_events_fire_once_per_period_from_the_first_step():
    every = Every(100, 50)  # a run resumed at step 50
    fired = [step for step in range(0, 500, 30) if every(step)]
    assert fired == [150, 270, 390]  # 100 past the last firing, at the first step that passes it
    assert not any(Every(0, 0)(step) for step in range(0, 10**6, 1000))
