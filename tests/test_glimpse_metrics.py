"""The foveal Catch and the gaze hit rate: the metric by hand and against policies whose gaze is
known, the preset's checks, and the screen size carried from training to evaluation."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import call_script

from agents.common.checkpoint import load_checkpoint
from agents.common.evaluate import evaluate_checkpoint
from agents.glimpse import Retina
from agents.glimpse.train import GlimpseConfig, GlimpseTrainer, glimpse_catch_rate
from analysis.glimpse_metrics import GazeTrace, gaze_hit_rate, gaze_over_training, trace_gaze
from envs import CatchVectorEnv

ROOT = Path(__file__).resolve().parents[1]


def test_hits_by_hand():
    # widest patch 4 centred on (10, 10): rows and columns 8..11 (the retina's window)
    trace = GazeTrace(ball_row=np.array([[8], [11], [12], [10]]),
                      ball_col=np.array([[11], [8], [10], [7]]),
                      gaze_row=np.full((4, 1), 10), gaze_col=np.full((4, 1), 10), widest=4)  # fmt: skip
    assert trace.hits()[:, 0].tolist() == [True, True, False, False]
    assert trace.hit_rate() == 0.0  # the second half: steps 2 and 3
    # a finer patch of 2 at (10, 10): rows and columns 9..10
    assert trace.hits(2)[:, 0].tolist() == [False, False, False, False]
    assert GazeTrace(np.array([[9], [10]]), np.array([[10], [11]]), np.full((2, 1), 10),
                     np.full((2, 1), 10), widest=4).hits(2)[:, 0].tolist() == [True, False]  # fmt: skip
    # the same window as the retina's own pixels
    frame = torch.zeros(1, 1, 24, 24)
    frame[0, 0, 8:12, 8:12] = 1.0
    retina = Retina(4, 1)
    loc = torch.tensor([[10 / 23 * 2 - 1, 10 / 23 * 2 - 1]])
    assert retina.centres(loc, 24, 24) == (torch.tensor([10]), torch.tensor([10]))
    assert retina(frame, loc).sum().item() == 16.0


class ScriptedGaze:
    """A stand-in for ``GlimpsePolicy``: looks where ``where(env)`` says, stays put."""

    def __init__(self, env: CatchVectorEnv, where) -> None:
        self.env, self.where = env, where

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        row, col = self.where(self.env)
        size = self.env.size
        # the frame the policy sees shows the ball where the game says it is
        ball = images[np.arange(len(images)), -1, self.env._game.ball_row, self.env._game.ball_col]
        assert (ball == 255).all()
        self.locations = torch.tensor(np.stack([col, row], 1) / (size - 1) * 2 - 1)[None].float()
        return np.ones(len(images), np.int64)  # stay


@pytest.mark.parametrize("where,expected", [
    (lambda env: (env._game.ball_row, env._game.ball_col), 1.0),  # follows the ball
    (lambda env: (np.zeros(env.num_envs), np.zeros(env.num_envs)), 0.0),  # the top-left corner
])  # fmt: skip
def test_scripted_gaze_on_the_foveal_screen(where, expected):
    env = CatchVectorEnv(50, size=48, seed=3)
    trace = trace_gaze(ScriptedGaze(env, where), env, Retina(6, 2))
    assert trace.ball_row.shape == (47, 50) and trace.widest == 12
    assert trace.ball_row[:, 0].tolist() == list(range(47))  # one row down per step
    assert trace.hit_rate() == expected


def test_the_centre_sees_the_ball_only_while_it_passes():
    """A gaze fixed on the centre of 48x48 with a 12-pixel window covers rows 18-29: in the second
    half (rows 23-46) at most the 7 rows 23-29 can be hits."""
    env = CatchVectorEnv(200, size=48, seed=0)
    centre = lambda e: (np.full(e.num_envs, 23.5), np.full(e.num_envs, 23.5))  # noqa: E731
    trace = trace_gaze(ScriptedGaze(env, centre), env, Retina(6, 2))
    hits = trace.hits()[23:]
    assert not hits[7:].any() and 0 < trace.hit_rate() <= 7 / 24
    cols = trace.ball_col[23:30]
    np.testing.assert_array_equal(hits[:7], (cols >= 18) & (cols <= 29))


@pytest.mark.parametrize("overrides,message", [
    ({"patch_size": 8, "num_scales": 3, "catch_size": 48},
     r"widest patch \(32x32\) covers 44% .*larger --catch-size"),
    ({"catch_size": 20}, r"widest patch \(12x12\) covers 36% of the 20x20 screen"),
    ({"num_scales": 3}, r"covers 100% of the 24x24 screen"),
    ({"game": "pong"}, r"--preset is for --game catch only \(got 'foveal' with --game pong\)"),
    ({"patch_size": 64}, "retina patch 64x64 is larger than the 24x24 frame"),
    ({"catch_size": 3}, "--catch-size must be >= 4"),
])  # fmt: skip
def test_foveal_preset_refuses_a_retina_that_sees_too_much(overrides, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(GlimpseConfig.for_game("catch", "foveal"), **overrides).validate()
    foveal = GlimpseConfig.for_game("catch", "foveal")
    assert (foveal.preset, foveal.catch_size, foveal.widest_patch()) == ("foveal", 24, 12)
    foveal.validate()  # exactly a quarter (12x12 of 24x24) is allowed
    GlimpseConfig.for_game("catch", "foveal", num_scales=3, catch_size=48).validate()  # and 24x24 of 48x48


def test_foveal_preset_trains_and_evaluates_on_its_own_screen(tmp_path):
    cfg = GlimpseConfig.for_game("catch", "foveal", total_steps=47 * 8 * 2 + 1, num_envs=8, hidden=32,
                                 catch_size=48, run_dir=str(tmp_path / "run"), progress=False,
                                 heatmap_every=0, save_every=48 * 8, keep_checkpoints=0,
                                 catch_turn_prob=0.1, catch_paddle_width=3)  # fmt: skip
    cfg.validate()
    GlimpseTrainer(cfg).run()
    model, config = load_checkpoint(tmp_path / "run")
    assert config["env_options"] == {"stack_num": 1, "size": 48, "turn_prob": 0.1, "paddle_width": 3}
    assert model.retina.sizes == [6, 12]
    # evaluation and playback rebuild the game the agent trained on, turns included
    from agents.common.evaluate import make_eval_env
    from analysis.playback import playback_env

    for game in (make_eval_env(config, 2, seed=0)._game, playback_env(config, seed=0)._game):
        assert (game.turn_prob, game.paddle_width) == (0.1, 3)
    summary = evaluate_checkpoint(str(tmp_path / "run"), episodes=16, progress=False)
    assert summary["mean_length"] == 47  # a 48-row fall
    rate, trace = gaze_hit_rate(model, config, episodes=16)
    assert 0.0 <= rate <= 1.0 and trace.ball_row.shape == (47, 16)
    done = subprocess.run([sys.executable, "scripts/evaluate.py", "--checkpoint", str(tmp_path / "run"),
                           "--episodes", "16"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "gaze hit rate: " in done.stdout
    # the figure over training: every checkpoint, its catch rate that of glimpse_catch_rate
    curve = gaze_over_training(tmp_path / "run", episodes=16)
    assert curve.steps == [384, 768] and curve.size == 48
    assert curve.caught[-1] == glimpse_catch_rate(model, episodes=16, size=48, turn_prob=0.1,
                                                  paddle_width=3)  # fmt: skip
    assert curve.hits[-1] == rate and curve.final.caught.shape == (16,)
    out = tmp_path / "gaze.png"
    done = subprocess.run([sys.executable, "scripts/gaze_figure.py", "--run", str(tmp_path / "run"),
                           "--out", str(out), "--episodes", "16"], cwd=ROOT, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000 and done.stdout.count("gaze hit rate") == 2


def test_bad_foveal_and_catch_flags_are_one_line(tmp_path):
    for args, message in [
        (["--catch-turn-prob", "1.5"], "--catch-turn-prob must be in [0, 1] (got 1.5)"),
        (["--game", "pong", "--catch-turn-prob", "0.1"], "is for --game catch only (got 0.1 with"),
        (["--catch-paddle-width", "13"],
         "--catch-paddle-width must be in [1, --catch-size // 2 = 12] (got 13)"),
        (["--env", "pong", "--catch-paddle-width", "3"], "got 3 with --game pong"),
        (["--preset", "foveal", "--num-scales", "4"], "--preset foveal needs a retina that sees at most"),
    ]:  # fmt: skip
        done = call_script("scripts/train_glimpse.py", *args, "--run-dir", str(tmp_path / "r"))
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_gaze_hit_rate_needs_a_catch_glimpse_agent(tmp_path):
    with pytest.raises(ValueError, match="needs a glimpse agent trained on Catch"):
        gaze_hit_rate(None, {"game": "pong", "agent": "glimpse"})
    for args, message in [
        (["--run", str(tmp_path / "none"), "--out", "x.png"], "run directory not found"),
        (["--run", str(tmp_path), "--out", "x.png", "--episodes", "0"], "--episodes must be >= 1 (got 0)"),
    ]:  # fmt: skip
        done = subprocess.run([sys.executable, "scripts/gaze_figure.py", *args], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
