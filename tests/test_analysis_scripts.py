"""Saliency in TensorBoard, saliency videos and reports end to end, and their bad-input paths."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.dqn import DQNConfig, DQNTrainer
from analysis.tensorboard import SaliencyLogger

ROOT = Path(__file__).resolve().parent.parent


def script(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_saliency_images_and_clip_reach_the_event_file(tmp_path):
    cfg = DQNConfig.catch(
        total_steps=800, learning_starts=200, run_dir=str(tmp_path / "run"), progress=False
    )
    DQNTrainer(cfg, callbacks=[SaliencyLogger(every=400, probe_size=6)]).run()
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()["images"]
    assert {"saliency/value", "saliency/advantage", "saliency/clip"} <= set(tags)
    clip = events.Images("saliency/clip")
    assert len(clip) >= 2  # once when the probe filled, then every 400 steps
    gif = clip[-1].encoded_image_string
    assert gif[:4] == b"GIF8"
    frames = iio.imread(gif, extension=".gif", index=None)
    assert frames.shape[0] == 6 and frames.shape[2] == 2 * 24 * 3  # two heads side by side, 3x
    assert "charts/episodic_return" in events.Tags()["scalars"]


@pytest.fixture(scope="module")
def pong_checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("ckpt") / "pong"
    cfg = DQNConfig(game="pong", total_steps=64, num_envs=2, buffer_size=200, learning_starts=32,
                    save_every=10**9, run_dir=str(run), progress=False, saliency_every=0)  # fmt: skip
    DQNTrainer(cfg).run()
    return run


def test_record_saliency_video_decodes(pong_checkpoint, tmp_path):
    out = tmp_path / "v.mp4"
    r = script("scripts/record_saliency.py", "--checkpoint", str(pong_checkpoint), "--steps", "40",
               "--out", str(out), "--fps", "20", "--height", "210")  # fmt: skip
    assert r.returncode == 0, r.stderr
    frames = iio.imread(out)
    assert frames.shape[0] == 40
    assert frames.shape[2] == 3 * 160  # game, value, advantage side by side at 210 rows
    assert iio.immeta(out)["fps"] == 20
    assert not list(tmp_path.glob("*.partial.mp4"))


def test_record_saliency_random_network_warns(tmp_path):
    r = script(
        "scripts/record_saliency.py",
        "--game",
        "pong",
        "--steps",
        "3",
        "--out",
        str(tmp_path / "r.mp4"),
    )
    assert r.returncode == 0, r.stderr
    assert "randomly initialised" in r.stderr


def test_compare_heads_report(pong_checkpoint, tmp_path):
    r = script(
        "scripts/compare_heads.py",
        "--checkpoint",
        str(pong_checkpoint),
        "--out",
        str(tmp_path / "rep"),
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["heads"] == ["value", "advantage"] and report["frames"] > 100
    assert set(report["regions"]) >= {"value/left_paddle", "advantage/score"}
    assert len(report["stack_shares"]["value"]) == 4
    assert iio.imread(tmp_path / "rep" / "report.png").shape[2] in (3, 4)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--checkpoint", "nope", "--out", "{tmp}/a.mp4"], "error: checkpoint not found: 'nope'"),
        (
            ["--game", "pong", "--steps", "0", "--out", "{tmp}/a.mp4"],
            "error: --steps must be >= 1, got 0",
        ),
        (["--game", "pong", "--out", "{tmp}/file/a.mp4"], "error: cannot write to"),
        (["--game", "pong", "--out", "{tmp}/a.avi"], "error: output must end in .mp4"),
        (
            ["--checkpoint", "{tmp}/bad.zip", "--game", "pong", "--out", "{tmp}/a.mp4"],
            "is not a Stable-Baselines3 model zip",
        ),
        (
            ["--checkpoint", "{tmp}/bad.zip", "--out", "{tmp}/a.mp4"],
            "an SB3 zip does not record its game",
        ),
    ],
)
def test_record_saliency_bad_input_is_one_line(args, message, tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "bad.zip").write_bytes(b"junk")
    r = script("scripts/record_saliency.py", *[a.format(tmp=tmp_path) for a in args], timeout=120)
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not list(tmp_path.glob("*.mp4"))


def test_catch_checkpoint_is_refused_for_videos(tmp_path):
    cfg = DQNConfig.catch(total_steps=200, learning_starts=100, run_dir=str(tmp_path / "c"), progress=False,
                          saliency_every=0)  # fmt: skip
    DQNTrainer(cfg).run()
    r = script(
        "scripts/record_saliency.py",
        "--checkpoint",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "a.mp4"),
    )
    assert r.returncode != 0 and "trained on Catch" in r.stderr
    assert np.all([not p.name.endswith(".mp4") for p in tmp_path.iterdir()])
