"""Nothing lost: a run directory cannot be clobbered by a new run or a second writer, a resume
keeps the run's own budget, a finished run says so, and exit codes tell how a training ended."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.common.checkpoint import CheckpointError, RunLock, resolve_checkpoint
from agents.glimpse.train import GlimpseConfig, GlimpseTrainer
from agents.qlearning.dqn import DQNConfig, DQNTrainer
from agents.qlearning.pqn import PQNConfig, PQNTrainer

ROOT = Path(__file__).resolve().parent.parent

TRAINERS = {
    "dqn": lambda run, **kw: DQNTrainer(DQNConfig.catch(**{
        "total_steps": 400, "learning_starts": 100, "save_every": 200, "progress": False,
        "saliency_every": 0, "run_dir": str(run), **kw})),
    "pqn": lambda run, **kw: PQNTrainer(PQNConfig.catch(**{
        "total_steps": 256, "num_envs": 8, "rollout": 8, "save_every": 128, "progress": False,
        "saliency_every": 0, "run_dir": str(run), **kw})),
    "glimpse": lambda run, **kw: GlimpseTrainer(GlimpseConfig(**{
        "total_steps": 8 * 24 * 2, "num_envs": 8, "save_every": 8 * 24, "progress": False,
        "run_dir": str(run), **kw})),
}  # fmt: skip
RESUME = {"dqn": DQNConfig, "pqn": PQNConfig, "glimpse": GlimpseConfig}


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

    from agents.common.checkpoint import load_checkpoint

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
        (lambda: GlimpseConfig(max_grad_norm=-1), "max_grad_norm must be > 0"),
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
    from agents.common.checkpoint import load_checkpoint

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
         "--height must be >= 1"),
        (["scripts/record_saliency.py", "--game", "pong", "--out", "{tmp}/v.mp4", "--fps", "-5"],
         "--fps must be > 0"),
        (["scripts/record_saliency.py", "--game", "pong", "--out", "/proc/x.mp4"],
         "cannot write to '/proc'"),
        (["scripts/record_glimpses.py", "--checkpoint", "{tmp}/none", "--out", "{tmp}/g.mp4",
          "--trail", "-1"], "--trail must be >= 0"),
        (["scripts/record_glimpses.py", "--checkpoint", "{tmp}/none", "--out", "{tmp}/g.mp4",
          "--fps", "0"], "--fps must be > 0"),
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
