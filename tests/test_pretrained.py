"""The shipped agents keep their promise, and the command that makes them works end to end."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.common.checkpoint import load_checkpoint
from agents.common.pretrained import (
    one_episode,
    training_curve,
    training_wall_time,
    unpack,
    weights_digest,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent for p in (ROOT / "pretrained").glob("*/eval.json"))
FLOORS = {"pong": 15.0}  # one greedy episode of the shipped Pong agent scores at least this
# long games' episodes cut at this many frames, and what the agent must score by then. Their
# 30-episode evaluation is of whole games, and a greedy Breakout agent that stops serving plays on
# to the 108,000-frame cap (110 s here); the shipped one scores 394 in its first 8,000 frames (4 s alone),
# held to the zoo's target of 300. Enduro's games run 100,000 frames on average: in its first 20,000
# (about 13 s) the shipped agent passes 428 cars, held to 300 (the young agent's whole-game mean)
CAPS = {"breakout": (8_000, 300.0), "enduro": (20_000, 300.0)}


def margin(record: dict) -> float:
    """How far one greedy episode may fall below the 30-episode mean: three standard deviations of
    that evaluation, and never less than 3 points."""
    return max(3.0 * record["std"], 3.0)


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_agent_scores_what_its_evaluation_says(folder):
    if folder.name in CAPS:
        frames, floor = CAPS[folder.name]
        score, _ = one_episode(folder, max_frames=frames)
        assert score >= floor, (score, floor)
        return
    score, record = one_episode(folder)
    assert score >= record["mean"] - margin(record), (score, record["mean"])
    assert score >= FLOORS.get(folder.name, float("-inf"))


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_agent_s_record_names_its_weights(folder):
    """The evaluation in eval.json was played by the weights beside it, byte for byte."""
    record = json.loads((folder / "eval.json").read_text())
    assert record["weights_sha256"] == weights_digest(folder)


def test_training_wall_time_sums_the_sessions_and_skips_the_pauses(tmp_path):
    """Two sessions (a run resumed 1,000 s later writes a second events file): 100 s from the
    first file's scalars, and 30 s from the second's up to the packed step; the 500 s its scalars
    logged past that step and the pause between the sessions do not count."""
    from torch.utils.tensorboard import SummaryWriter

    for session in ([(0, 1000.0), (10, 1040.0), (20, 1100.0)],
                    [(20, 2100.0), (30, 2130.0), (40, 2630.0)]):  # fmt: skip
        writer = SummaryWriter(str(tmp_path))
        for step, wall in session:
            writer.add_scalar("charts/SPS", 1.0, step, walltime=wall)
            writer.add_scalar("losses/td_loss", 1.0, step, walltime=wall + 5.0)
        writer.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert training_wall_time(tmp_path, until_step=30) == pytest.approx((105.0 + 35.0, 2))
    assert training_wall_time(tmp_path, until_step=0) == pytest.approx((5.0, 1))
    assert training_wall_time(tmp_path / "nothing", until_step=30) == (0.0, 0)


def test_train_pretrained_rehearsal_packs_a_loadable_agent(tmp_path):
    """Three rollouts of 32 steps, a checkpoint after each: the final one is packed, the two the
    trainer kept before it are evaluated too (eval.json's training.earlier_checkpoints)."""
    r = subprocess.run(
        [sys.executable, "scripts/train_pretrained.py", "--games", "pong:600", "--num-envs", "4",
         "--rollout", "8", "--total-steps", "96", "--save-every", "32", "--eval-episodes", "1",
         "--device", "cpu", "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "pong: " in r.stdout and "pong.tar.gz" in r.stdout
    folder = unpack(tmp_path / "out" / "pong.tar.gz", tmp_path / "unpacked")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "curve.csv", "eval.json", "model.safetensors"]  # fmt: skip
    net, config = load_checkpoint(folder)
    assert config["agent"] == "pqn" and config["architecture"]["layer_norm"] is True
    record = json.loads((folder / "eval.json").read_text())
    assert record["episodes"] == 1 and record["training"]["stopped_by"] == "budget"
    assert record["training"]["steps"] == config["step"] == 96
    assert "train_pretrained.py --games pong:600" in record["training"]["command"]
    assert record["weights_sha256"] == weights_digest(folder)
    earlier = record["training"]["earlier_checkpoints"]
    assert [row["step"] for row in earlier] == [32, 64]
    ckpts = tmp_path / "runs" / "pong" / "checkpoints"
    assert [row["weights_sha256"] for row in earlier] == [
        weights_digest(ckpts / row["checkpoint"]) for row in earlier]  # fmt: skip
    assert len({row["weights_sha256"] for row in earlier}) == 2  # two checkpoints, two digests
    assert all(len(row["scores"]) == 1 and row["mean"] == row["scores"][0] for row in earlier)
    assert "pong, earlier checkpoint at 64 steps: " in r.stdout
    assert f"({tmp_path / 'runs' / 'pong'}/checkpoints/step_000000000064)" in r.stdout
    rows = list(csv.reader((folder / "curve.csv").read_text().splitlines()))
    assert rows[0] == ["step", "episodic_return"]
    score, _ = one_episode(folder)  # the check the shipped agents pass runs on this one too
    assert -21 <= score <= 21


def test_run_checkpoints_skip_what_a_killed_write_left(tmp_path):
    """A checkpoint write killed midway leaves checkpoints/step_N.tmp: train_pretrained.py must not
    evaluate it as an earlier checkpoint, and the trainers must not count it among those kept."""
    from agents.common.checkpoint import run_checkpoints, write_checkpoint

    weights = {"w": torch.zeros(2)}
    for step in (32, 64, 96, 128):
        write_checkpoint(tmp_path, step, {"model.safetensors": weights}, keep=3)
    stale = tmp_path / "checkpoints" / "step_000000000160.tmp"
    stale.mkdir()
    assert [step for step, _ in run_checkpoints(tmp_path)] == [64, 96, 128]
    write_checkpoint(tmp_path, 192, {"model.safetensors": weights}, keep=3)
    assert [p.name for _, p in run_checkpoints(tmp_path)] == [
        "step_000000000096", "step_000000000128", "step_000000000192"]  # fmt: skip


def test_bad_games_spec_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "scripts/train_pretrained.py", "--games", "pong:abc",
                        "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode != 0 and "GAME:SECONDS" in r.stderr and r.stderr.count("\n") == 1


def test_gpu_window_script_rehearses_on_cpu(tmp_path):
    """The one command of a GPU window, with tiny budgets on CPU: the archive reaches OUT, and a
    game given 0 seconds (Enduro, by default) is skipped."""
    import os
    import tarfile

    env = {**os.environ, "OUT": str(tmp_path / "out"), "PONG": "0.5", "ENDURO": "0",
           "PYTHON": sys.executable, "WORK": str(tmp_path / "runs" / "pretrained"), "TOTAL": "100000",
           "EXTRA": "--num-envs 4 --rollout 8 --eval-episodes 1 --device cpu"}  # fmt: skip
    r = subprocess.run(["bash", "scripts/gpu_window.sh"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "pong.tar.gz", "runs.tar.gz"]
    log = (out / "log.txt").read_text()
    assert "failed" not in log and "== done" in log and "step/s" not in log  # no progress bars
    assert "== enduro skipped (0 seconds)" in log
    folder = unpack(out / "pong.tar.gz", tmp_path / "unpacked")
    net, config = load_checkpoint(folder)
    assert config["game"] == "pong"
    assert json.loads((folder / "eval.json").read_text())["training"]["stopped_by"] == "time limit"
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert any("pong/events.out.tfevents" in n for n in names)
    assert not any("checkpoint" in n for n in names)


def test_gpu_window_picks_among_the_benchmark_s_float32_setups():
    """gpu_window.sh maps the benchmark's setup labels to training flags: every float32 setup of
    benchmark.py pqn-gpu is there, with the flags of its options."""
    import re

    from scripts.benchmark import PQN_GPU_SETUPS

    script = (ROOT / "scripts" / "gpu_window.sh").read_text()
    mapping = dict(re.findall(r'"(float32[^"]*)": "([^"]*)"', script))
    float32 = {label: options for label, options in PQN_GPU_SETUPS if options.get("precision") != "bf16"}
    assert set(mapping) == set(float32)
    for label, options in float32.items():
        flags = (["--cuda-graph"] if options.get("cuda_graph") else []) + (
            ["--env-groups", str(options["env_groups"])] if "env_groups" in options else [])
        assert mapping[label].split() == flags, label


def test_pack_agent_ships_a_glimpse_run_that_loads_plays_and_trains_on(tmp_path):
    """A run that needs more sessions than one ships with its optimizer state: the packed folder
    is a run directory that load_checkpoint and one_episode take, and a copy of it resumes at its
    step; the flat pack (train_pretrained.py's) has the weights only."""
    import shutil

    run, out = tmp_path / "run", tmp_path / "shipped"
    train = ["--no-progress", "--num-envs", "4", "--heatmap-every", "0", "--log-every", "64"]
    done = subprocess.run([sys.executable, "scripts/train_glimpse.py", "--env", "breakout",
                           "--frame-stack", "2", "--fire-after-life-loss", "--total-steps", "256",
                           "--run-dir", str(run), *train], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr

    def pack(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "scripts/pack_agent.py", "--run", str(run),
                               "--episodes", "1", "--num-envs", "1", "--no-progress", *flags],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip

    done = pack("--out", str(out), "--sample", "--training-state")
    assert done.returncode == 0, done.stderr
    assert "breakout: " in done.stdout and "(sample policy) after 256 steps" in done.stdout
    step = (out / "checkpoints" / "latest").read_text()
    assert sorted(p.name for p in (out / "checkpoints" / step).iterdir()) == [
        "config.json", "model.safetensors", "trainer.json", "trainer.safetensors"]  # fmt: skip
    assert len(list(out.glob("events.out.tfevents.*"))) == 1
    record = json.loads((out / "eval.json").read_text())
    assert record["policy"] == "sample" and record["training"]["steps"] == 256
    assert record["training"]["seed"] == 1 and "--training-state" in record["training"]["command"]
    assert record["training"]["sessions"] == 1 and record["training"]["wall_seconds"] >= 0
    assert list(csv.reader((out / "curve.csv").read_text().splitlines()))[0] == ["step", "episodic_return"]
    score, _ = one_episode(out)
    assert 0 <= score <= 864
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    done = subprocess.run([sys.executable, "scripts/train_glimpse.py", "--resume", str(resumed),
                           "--total-steps", "384", "--no-progress"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(resumed)[1]["step"] == 384 and load_checkpoint(out)[1]["step"] == 256
    done = pack("--out", str(tmp_path / "flat"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == [
        "config.json", "curve.csv", "eval.json", "model.safetensors"]  # fmt: skip
    assert json.loads((tmp_path / "flat" / "eval.json").read_text())["policy"] == "greedy"
    done = pack("--out", str(run / "inside"), "--training-state")
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and "is inside the run" in done.stderr
    done = subprocess.run([sys.executable, "scripts/pack_agent.py", "--run", str(tmp_path / "none"),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    missing = str(tmp_path / "none")
    assert done.returncode != 0 and done.stderr == f"error: checkpoint not found: {missing!r}\n"


def test_pack_agent_ships_an_earlier_checkpoint_with_the_run_s_record_up_to_it(tmp_path):
    """--run RUN/checkpoints/step_N packs that checkpoint (the one a short run should ship when its
    final one evaluates worse): its step, and the curve and wall time of RUN's events up to N."""
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "scripts/train_pqn.py", "--game", "catch", "--num-envs", "8",
                           "--rollout", "16", "--total-steps", "1536", "--save-every", "512",
                           "--log-every", "128", "--saliency-every", "0", "--run-dir", str(run),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ckpt = run / "checkpoints" / "step_000000001024"
    out = tmp_path / "shipped"
    done = subprocess.run([sys.executable, "scripts/pack_agent.py", "--run", str(ckpt), "--out",
                           str(out), "--episodes", "2", "--num-envs", "2", "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(out)[1]["step"] == 1024
    record = json.loads((out / "eval.json").read_text())
    assert record["training"]["steps"] == 1024 and record["training"]["sessions"] == 1
    # the packed file is the checkpoint's, byte for byte (float32 already), not the final one's
    assert record["weights_sha256"] == weights_digest(out) == weights_digest(ckpt) != weights_digest(run)
    rows = list(csv.reader((out / "curve.csv").read_text().splitlines()))[1:]
    full = [step for step, _ in training_curve(run)]
    assert rows and max(int(step) for step, _ in rows) <= 1024 < max(full)
    assert len(rows) == sum(step <= 1024 for step in full)
