"""Nothing lost: a run directory cannot be clobbered by a new run or a second writer, a resume
keeps the run's own budget, a finished run says so, and exit codes tell how a training ended."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.checkpoint import CheckpointError, RunLock, resolve_checkpoint
from agents.dqn import DQNConfig, DQNTrainer
from agents.glimpse_train import GlimpseConfig, GlimpseTrainer
from agents.pqn import PQNConfig, PQNTrainer

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
        # no --total-steps: the run's own budget (reached), never the preset's 10M or 8M
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
    import numpy as np

    import envs

    env = envs.make_vector_env("pong", 2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match=r"actions must be 2 integers in \[0, 5\], got \[0, 9\]"):
        env.step(np.array([0, 9]))
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        env.step(np.array([0.5, 1.0]))
    assert env.step(np.array([0, 1]))[0].shape == (2, 4, 84, 84)  # still usable
    env.close()


def test_a_checkpoint_whose_actions_do_not_match_its_game_is_refused(tmp_path):
    import json

    from agents.checkpoint import load_checkpoint

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
