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
