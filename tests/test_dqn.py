"""DQN maths, checkpoints (atomic, pickle-free, refusing the wrong thing), resume and learning."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.common.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
from agents.common.evaluate import evaluate_checkpoint
from agents.qlearning.dqn import (
    DQNConfig,
    DQNTrainer,
    greedy_catch_rate,
    linear_schedule,
    td_targets,
)

ROOT = Path(__file__).resolve().parent.parent


def test_td_targets_by_hand():
    online = torch.tensor([[1.0, 5.0], [3.0, 2.0]])
    target = torch.tensor([[10.0, 20.0], [30.0, 40.0]])
    returns = torch.tensor([1.0, 2.0])
    dones = torch.tensor([0.0, 1.0])
    discounts = torch.tensor([0.5, 0.25])
    # double: a* = argmax online = [1, 0] -> target values [20, 30]; second is done
    torch.testing.assert_close(
        td_targets(online, target, returns, dones, discounts), torch.tensor([11.0, 2.0])
    )
    # nature: max of target = [20, 40]
    torch.testing.assert_close(
        td_targets(online, target, returns, torch.zeros(2), discounts, double=False),
        torch.tensor([11.0, 12.0]),
    )


def test_linear_schedule():
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 1000) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 0, 5) == 0.1


def small_catch(tmp_path, **kw):
    base = dict(
        total_steps=2_000,
        learning_starts=200,
        save_every=1_000,
        progress=False,
        run_dir=str(tmp_path / "run"),
    )
    return DQNConfig.for_game("catch", **{**base, **kw})


def test_checkpoint_roundtrip_and_resume_state(tmp_path):
    trainer = DQNTrainer(small_catch(tmp_path, save_replay=True))
    final = trainer.run()
    assert final.name == "step_000000002000"
    assert sorted(p.name for p in final.iterdir()) == [
        "config.json", "model.safetensors", "replay.npz", "trainer.json", "trainer.safetensors",
    ]  # fmt: skip
    assert not list((tmp_path / "run" / "checkpoints").glob("*.tmp"))
    net, config = load_checkpoint(tmp_path / "run")
    assert (
        config["game"] == "catch"
        and config["step"] == 2000
        and config["architecture"]["class"] == "DuelingQNetwork"
    )
    for k, v in trainer.q_network.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v.cpu())
    resumed = DQNTrainer(DQNConfig(resume=str(tmp_path / "run"), total_steps=3_000, progress=False))
    assert resumed.global_step == 2000 and resumed.updates == trainer.updates
    for k, v in trainer.target_network.state_dict().items():
        torch.testing.assert_close(resumed.target_network.state_dict()[k], v)
    opt_a, opt_b = trainer.optimizer.state_dict(), resumed.optimizer.state_dict()
    for pid, st in opt_a["state"].items():
        torch.testing.assert_close(opt_b["state"][pid]["exp_avg_sq"], st["exp_avg_sq"])
    np.testing.assert_array_equal(resumed.replay.frames, trainer.replay.frames)
    assert resumed.rng.bit_generator.state == trainer.rng.bit_generator.state
    assert resumed.cfg.n_step == 4  # the run's own config came back, not the defaults
    resumed.run()
    assert resolve_checkpoint(tmp_path / "run").name == "step_000000003000"


def test_bad_checkpoints_are_refused_in_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope")
    DQNTrainer(small_catch(tmp_path, total_steps=400, learning_starts=100)).run()
    ckpt = resolve_checkpoint(tmp_path / "run")
    model = ckpt / "model.safetensors"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(ckpt)
    model.write_bytes(data)
    config = json.loads((ckpt / "config.json").read_text())
    config["architecture"]["hidden"] = 64
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="weights of another network"):
        load_checkpoint(ckpt)
    config["architecture"]["hidden"] = 128
    config["game"] = "pong"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="was trained on 'pong'"):
        DQNTrainer(DQNConfig(resume=str(tmp_path / "run"), progress=False))
    (tmp_path / "x.pt").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


def test_bad_config_values():
    with pytest.raises(ValueError, match="--num-envs must be >= 1"):
        DQNConfig(num_envs=0).validate()
    with pytest.raises(ValueError, match="unknown game 'pongg'"):
        DQNConfig(game="pongg").validate()
    with pytest.raises(ValueError, match="--device"):
        DQNConfig(device="tpu").validate()


def test_unwritable_run_dir_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = subprocess.run(
        [sys.executable, "scripts/train_dqn.py", "--game", "catch", "--run-dir", str(blocker / "run"),
         "--total-steps", "100", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("error: cannot create run directory")


@pytest.mark.slow
def test_dueling_dqn_learns_catch(tmp_path):
    """The CI learning test: >= 0.8 catch rate over 100 greedy episodes, fixed seed. The Catch
    preset on 48k of its 80k steps, with a gradient step every 4 env steps instead of 2 and
    channels_last (the network's forward and backward pass 1.4 times faster on the 2-core AMD
    EPYC, batch 32): 0.94 caught (0.88 without channels_last, a second trajectory; the whole
    preset catches 1.00), at float32, pinned here (bf16's learning is the parity benchmark's)."""
    torch.manual_seed(0)
    trainer = DQNTrainer(DQNConfig.for_game("catch", run_dir=str(tmp_path / "run"), progress=False, seed=1,
                                         total_steps=48_000, train_freq=4, precision="fp32",
                                         channels_last=True))  # fmt: skip
    start = time.time()
    trainer.run()
    rate = greedy_catch_rate(trainer.q_network.cpu().eval(), episodes=100)
    print(f"catch rate {rate:.2f} after {trainer.global_step} steps in {time.time() - start:.0f}s")
    assert rate >= 0.8
    summary = evaluate_checkpoint(str(tmp_path / "run"), episodes=100, epsilon=0.0, progress=False)
    assert summary["mean"] == pytest.approx(rate, abs=0.15)


@pytest.mark.slow
def test_pong_smoke_train_kill_resume_evaluate(tmp_path):
    run = tmp_path / "pong"
    cmd = [sys.executable, "scripts/train_dqn.py", "--game", "pong", "--num-envs", "4",
           "--buffer-size", "4000", "--learning-starts", "400", "--save-every", "100000",
           "--run-dir", str(run), "--no-progress", "--log-every", "200"]  # fmt: skip
    proc = subprocess.Popen(
        [*cmd, "--total-steps", "1000000"], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(run.glob("events.*")):
        time.sleep(0.5)
    time.sleep(8)  # let it learn a little
    proc.send_signal(signal.SIGINT)  # Ctrl-C: saves and exits cleanly
    assert proc.wait(timeout=120) == 130, proc.stderr.read()  # 128 + SIGINT
    interrupted = resolve_checkpoint(run)
    step = json.loads((interrupted / "trainer.json").read_text())["global_step"]
    assert 400 < step < 1_000_000
    resume = [
        "scripts/train_dqn.py",
        "--resume",
        str(run),
        "--total-steps",
        str(step + 400),
        "--no-progress",
    ]
    out = subprocess.run(
        [sys.executable, *resume], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    resumed = json.loads((resolve_checkpoint(run) / "trainer.json").read_text())
    assert resumed["global_step"] == step + 400
    evaluate = [
        "scripts/evaluate.py",
        "--checkpoint",
        str(run),
        "--episodes",
        "2",
        "--num-envs",
        "2",
        "--no-progress",
    ]
    out = subprocess.run(
        [sys.executable, *evaluate], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "pong:" in out.stdout and "human-normalised" in out.stdout
    assert "evaluating" not in out.stderr  # no progress bar
    assert os.path.exists(run / "config.json")
