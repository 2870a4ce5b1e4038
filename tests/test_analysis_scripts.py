"""Saliency in TensorBoard, saliency videos and reports end to end, and their bad-input paths."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import call_script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.qlearning.dqn import DQNConfig, DQNTrainer
from analysis.tensorboard import SaliencyLogger

ROOT = Path(__file__).resolve().parent.parent


def script(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_saliency_images_and_clip_reach_the_event_file(tmp_path):
    cfg = DQNConfig.for_game(
        "catch", total_steps=800, learning_starts=200, run_dir=str(tmp_path / "run"), progress=False
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
    assert "saliency video" in r.stderr  # the progress bar, which --no-progress leaves out (below)
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
    """120 steps of Pong (a whole episode, the default, is Catch's test below: Pong's last
    thousands of frames)."""
    r = script("scripts/compare_heads.py", "--checkpoint", str(pong_checkpoint), "--steps", "120",
               "--out", str(tmp_path / "rep"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["heads"] == ["value", "advantage"] and report["frames"] == 120
    assert set(report["regions"]) >= {"value/left_paddle", "advantage/score"}
    assert len(report["stack_shares"]["value"]) == 4
    assert iio.imread(tmp_path / "rep" / "report.png").shape[2] in (3, 4)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--checkpoint", "nope", "--out", "{tmp}/a.mp4"], "error: checkpoint not found: 'nope'"),
        (
            ["--game", "pong", "--steps", "0", "--out", "{tmp}/a.mp4"],
            "error: --steps must be >= 1 (got 0)",
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
        (
            ["--game", "pong", "--sequential-jacobian", "{tmp}/s.png", "--out", "{tmp}/a.mp4"],
            "--sequential-jacobian is for soft-attention checkpoints",
        ),
    ],
)
def test_record_saliency_bad_input_is_one_line(args, message, tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "bad.zip").write_bytes(b"junk")
    r = call_script("scripts/record_saliency.py", *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not list(tmp_path.glob("*.mp4"))


def test_catch_agents_get_videos_and_reports_at_their_own_size(catch_run, tmp_path):
    r = script("scripts/record_saliency.py", "--checkpoint", str(catch_run), "--steps", "12",
               "--height", "96", "--out", str(tmp_path / "c.mp4"), "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "saliency video" not in r.stderr
    video = iio.imread(tmp_path / "c.mp4")
    assert video.shape[0] == 12 and video.shape[2] == 3 * 96  # 24x24 screens, 4x
    r = script("scripts/compare_heads.py", "--checkpoint", str(catch_run), "--episodes", "2",
               "--probe-frames", "4", "--clip", "5", "--out", str(tmp_path / "rep"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["frames"] == 46 and report["regions"] == {}  # two whole episodes of 23 steps
    # Catch's objects come from its state: each head's map shared out over the ball and the paddle
    classes = report["objects"]["jacobian"]["heads"]["value"]["classes"]
    assert set(classes) == {"ball", "paddle"} and all(c["frames_on_screen"] == 46 for c in classes.values())
    assert 0 < classes["ball"]["mass_share"]["mean"] + classes["paddle"]["mass_share"]["mean"] <= 1
    assert 0 <= report["mean_maps"]["centre_a"][0] < 24  # on the 24x24 screen, not 210x160
    scores = report["quantus"]["jacobian"]  # Quantus's scores of both heads' maps on the probe frames
    assert set(scores) == {"value", "advantage"}
    assert all(0 <= s["sparseness"]["mean"] <= 1 for s in scores.values())
    assert "The field's scores (Quantus)" in (tmp_path / "rep" / "report.html").read_text()
    r = script("scripts/compare_heads.py", "--checkpoint", str(catch_run), "--episodes", "1",
               "--probe-frames", "2", "--clip", "3", "--objects", "ball",
               "--out", str(tmp_path / "ball"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    only = json.loads((tmp_path / "ball" / "report.json").read_text())["objects"]["jacobian"]
    assert only["classes"] == ["ball"] and list(only["heads"]["advantage"]["classes"]) == ["ball"]


def test_compare_heads_methods_checks_and_html(pong_checkpoint, tmp_path):
    out = tmp_path / "rep"
    r = script("scripts/compare_heads.py", "--checkpoint", str(pong_checkpoint), "--steps", "40",
               "--method", "jacobian", "gradient_x_input", "--probe-frames", "4", "--clip", "10",
               "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "jacobian" and list(report["methods"]) == ["jacobian", "gradient_x_input"]
    agreement = report["method_agreement"]["value"]["jacobian vs gradient_x_input"]
    assert -1 <= agreement["ci_low"] <= agreement["mean"] <= agreement["ci_high"] <= 1
    stages = report["sanity"]["jacobian"]["stages"]
    assert [s["randomised_down_to"] for s in stages] == ["output", "hidden", "conv3", "conv2", "conv1"]
    assert set(report["sanity"]["gradient_x_input"]["survives_full_randomisation"]) == {"value", "advantage"}
    curves = report["fidelity"]["jacobian"]["advantage"]
    assert set(curves) == {"deletion", "insertion"} and curves["deletion"]["auc_salient"] >= 0
    assert report["probe_frames"] == [0, 13, 26, 39]
    # where each head looks among Pong's objects, per method (analysis.objects)
    objects = report["objects"]["gradient_x_input"]
    assert objects["classes"] == ["ball", "player", "enemy", "score"]
    assert set(objects["heads"]) == {"value", "advantage"} and "value - advantage" in objects["differences"]
    score = objects["heads"]["value"]["classes"]["score"]
    assert score["frames_on_screen"] == 40 and 0 <= score["mass_share"]["mean"] <= 1
    page = (out / "report.html").read_text()
    # self-contained: every figure and the explorer's 10 screens inline, its maps as data, nothing
    # fetched (tests/test_explorer.py drives it in a browser)
    assert page.count("data:image/png;base64,") == 4 + 10 and 'id="explorer-data"' in page
    assert 'src="http' not in page and 'src="file' not in page
    clip = iio.imread(out / "clip.webm", index=None)
    assert clip.shape[:3] == (10, 210, 3 * 160)


def test_record_saliency_by_another_method(pong_checkpoint, tmp_path):
    out = tmp_path / "ig.mp4"
    r = script("scripts/record_saliency.py", "--checkpoint", str(pong_checkpoint), "--steps", "6",
               "--method", "integrated_gradients", "--height", "210", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert iio.imread(out).shape[0] == 6


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("catch") / "run"
    cfg = DQNConfig.for_game("catch", total_steps=900, learning_starts=100, save_every=300,
                             keep_checkpoints=0, saliency_every=0, run_dir=str(run),
                             progress=False)  # fmt: skip
    DQNTrainer(cfg).run()
    return run


def test_saliency_over_training_figure_and_tensorboard(catch_run, tmp_path):
    from analysis.over_training import saliency_over_training

    result = saliency_over_training(catch_run, probe=3, probe_steps=30)
    assert result.steps == [304, 608, 904] and result.heads == ("value", "advantage")  # 8 envs a step
    assert result.maps["value"].shape == (3, 3, 24, 24)
    assert result.agreement["spearman"].shape == (3, 3)
    # the last column is the final network's own map of the probe frames
    from agents.common.checkpoint import load_checkpoint
    from analysis.saliency import attribute

    net, _ = load_checkpoint(catch_run)
    np.testing.assert_allclose(result.maps["advantage"][-1],
                               attribute(net, result.obs, "advantage").combined, rtol=1e-5)  # fmt: skip
    out = tmp_path / "over.png"
    r = script("scripts/saliency_over_training.py", "--run", str(catch_run), "--out", str(out),
               "--probe-frames", "2", "--probe-steps", "20")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "3 checkpoints" in r.stdout and iio.imread(out).shape[2] in (3, 4)
    events = EventAccumulator(str(catch_run / "saliency_over_training"),
                              size_guidance={"images": 0}).Reload()  # fmt: skip
    assert "saliency_over_training/spearman" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("saliency_over_training/spearman")] == [304, 608, 904]
    images = set(events.Tags()["images"])
    assert {"saliency_over_training/value", "saliency_over_training/advantage"} <= images


@pytest.mark.parametrize(
    "command,message",
    [
        (["scripts/compare_heads.py", "--checkpoint", "{run}", "--method", "grad", "--out", "{tmp}/r"],
         "error: unknown saliency method 'grad'; accepted: jacobian, smoothgrad"),
        (["scripts/record_saliency.py", "--game", "pong", "--method", "deeplift", "--out", "{tmp}/a.mp4"],
         "error: unknown saliency method 'deeplift'"),
        (["scripts/saliency_over_training.py", "--run", "{run}", "--method", "x", "--out", "{tmp}/o.png"],
         "error: unknown saliency method 'x'"),
        (["scripts/saliency_over_training.py", "--run", "{tmp}/empty", "--out", "{tmp}/o.png"],
         "has no checkpoints (expected checkpoints/step_*); train with --keep-checkpoints 0"),
        (["scripts/saliency_over_training.py", "--run", "{tmp}/none", "--out", "{tmp}/o.png"],
         "error: run directory not found"),
        (["scripts/saliency_over_training.py", "--run", "{run}", "--out", "{tmp}/o.jpg"],
         "error: output must end in .png"),
        (["scripts/compare_heads.py", "--checkpoint", "{run}", "--objects", "ball", "cars", "--out",
          "{tmp}/r"],
         "error: catch has no object class 'cars'; its classes: ball, paddle"),
        (["scripts/compare_heads.py", "--checkpoint", "{glimpse}", "--out", "{tmp}/r"],
         "is a 'glimpse' checkpoint; saliency of value and advantage heads needs a DQN or PQN"),
        (["scripts/saliency_over_training.py", "--run", "{glimpse}", "--out", "{tmp}/o.png"],
         "is a 'glimpse' checkpoint"),
    ],
)
def test_saliency_checks_bad_input_is_one_line(command, message, catch_run, glimpse_run, tmp_path):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, run=catch_run, glimpse=glimpse_run) for a in command]
    r = call_script(*args)
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob("o.*"))
    assert not list(tmp_path.glob("*.mp4"))


@pytest.fixture(scope="module")
def glimpse_run(tmp_path_factory):
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer

    run = tmp_path_factory.mktemp("glimpse") / "run"
    GlimpseTrainer(GlimpseConfig(total_steps=8 * 24, num_envs=8, progress=False, run_dir=str(run))).run()
    return run
