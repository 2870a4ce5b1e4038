"""Sweeps on Ray Tune: parsing and validation of what a sweep runs, the results tables by hand,
one-line refusals, and a real two-trial sweep on a local Ray instance, killed and resumed."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agents.common.sweep import SweepSpec, check_address, parse_param, trial_name
from analysis.sweeps import (
    every_window,
    load_runs,
    load_trials,
    smooth,
    summary_rows,
    window_returns,
    window_table,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]


def test_params_parse_to_the_fields_types():
    assert parse_param("learning_rate=1e-4,2.5e-4", "dqn") == ("learning_rate", [1e-4, 2.5e-4])
    assert parse_param("total_steps=2e5,1_000", "pqn") == ("total_steps", [200_000, 1000])
    assert parse_param("double=true,False", "dqn") == ("double", [True, False])
    assert parse_param("network=single", "dqn") == ("network", ["single"])
    assert parse_param("core=lstm", "glimpse") == ("core", ["lstm"])


@pytest.mark.parametrize("text,trainer,message", [
    ("lr=1e-4", "dqn", "unknown config field 'lr' for the dqn trainer"),
    ("learning_rat=1e-4", "dqn", "did you mean 'learning_rate'"),
    ("seed=1,2", "dqn", "the sweep sets it; use --seeds"),
    ("game=pong", "glimpse", "the sweep sets it; use --games"),
    ("total_steps=1.5", "dqn", "'1.5' is not an integer"),
    ("learning_rate=fast", "pqn", "'fast' is not a number"),
    ("double=yes", "dqn", "'yes' is not true or false"),
    ("network=triple", "dqn", "'triple' is not one of dueling, single"),
    ("learning_rate", "dqn", "must look like NAME=VALUE"),
    ("learning_rate=1e-4,", "dqn", "give at least one value"),
    ("learning_rate=1e-4", "a2c", "unknown trainer 'a2c'; choose one of dqn, glimpse, pqn"),
])  # fmt: skip
def test_bad_params_are_one_line(text, trainer, message):
    with pytest.raises(ValueError, match=message):
        parse_param(text, trainer)


def test_grid_random_search_and_trial_names():
    spec = SweepSpec("dqn", ["catch"], [1, 2], {"learning_rate": [1e-4, 2e-4], "gamma": [0.9, 0.99],
                                                 "total_steps": [1000]})  # fmt: skip
    grid = spec.variants()
    assert len(grid) == 4 and len({json.dumps(v, sort_keys=True) for v in grid}) == 4
    assert len(spec.configs()) == 8  # every variant on every seed
    # names carry what varies, not what is common, and stay the same from run to run
    assert trial_name(spec, "catch", 1, 2) == "catch__dqn__v1_gamma=0.9,learning_rate=0.0002__2"
    drawn = SweepSpec("dqn", ["catch"], [1], spec.params, samples=5, search_seed=3).variants()
    assert len(drawn) == 5 and drawn == SweepSpec("dqn", ["catch"], [1], spec.params, samples=5,
                                                   search_seed=3).variants()  # fmt: skip
    assert all(v["learning_rate"] in (1e-4, 2e-4) and v["total_steps"] == 1000 for v in drawn)
    # each trial starts from its game's preset, the swept values on top
    (_, _, _, cfg), *_ = SweepSpec("pqn", ["catch"], [4], {"q_lambda": [0.5]}).configs()
    assert cfg.seed == 4 and cfg.q_lambda == 0.5 and cfg.num_envs == 32 and not cfg.progress
    # a swept glimpse preset brings its own defaults, as train_glimpse.py --preset does
    (_, _, _, fov), (_, _, _, plain) = SweepSpec("glimpse", ["catch"], [1],
                                                 {"preset": ["foveal", "default"]}).configs()  # fmt: skip
    assert (fov.catch_size, fov.num_scales, fov.rollout) == (24, 2, 48)
    assert (plain.catch_size, plain.num_scales, plain.rollout) == (24, 3, 24)


@pytest.mark.parametrize("spec,message", [
    (SweepSpec("dqn", ["catch"], [1], {"learning_rate": [-1.0]}),
     "catch with learning_rate=-1.0: --learning-rate must be > 0"),
    (SweepSpec("dqn", ["catch", "pong"], [1], asha=True), "sweep one game at a time"),
    (SweepSpec("dqn", ["catch"], [1], samples=3), "give at least one --param"),
    (SweepSpec("dqn", ["catch"], []), "at least one game"),
    (SweepSpec("dqn", ["catch"], [1], cpus_per_trial=0), "--cpus-per-trial must be > 0"),
    (SweepSpec("dqn", ["pongg"], [1]), "unknown game 'pongg'"),
    (SweepSpec("pqn", ["catch"], [1], {"lambda": [0.5]}), "did you mean 'q_lambda'"),
])  # fmt: skip
def test_bad_sweeps_are_refused_before_anything_starts(spec, message):
    with pytest.raises(ValueError, match=message):
        spec.validate()


def test_reports_and_early_stopping_are_wired(monkeypatch):
    import agents.common.sweep as sweep

    class Tracker:
        episodes = 0

    class Trainer:
        tracker, global_step = Tracker(), 0

    steps = []
    monkeypatch.setattr(sweep, "report", lambda trainer: steps.append(trainer.global_step))
    reporter, trainer = sweep.TuneReporter(every=100), Trainer()
    for step in range(0, 1000, 32):
        trainer.global_step = step
        trainer.tracker.episodes = int(step >= 300)  # nothing to report before an episode ends
        reporter(trainer, step)
    assert steps == [320, 416, 512, 608, 704, 800, 928]  # the first step past each multiple of 100

    asha = sweep.scheduler(SweepSpec("pqn", ["catch"], [1], {"total_steps": [10_000, 40_000]},
                                     asha=True, reduction_factor=4))  # fmt: skip
    assert (asha._time_attr, asha._max_t, asha._reduction_factor) == ("step", 40_000, 4)
    # rungs at a tenth of the largest budget, then 4 times that
    assert [milestone for milestone, _ in asha._brackets[0]._rungs] == [16_000, 4_000]
    assert sweep.scheduler(SweepSpec("pqn", ["catch"], [1])) is None


def test_an_address_nothing_answers_is_refused_within_seconds():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ValueError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10  # ray.init would retry for a minute or more
    with pytest.raises(ValueError, match="must be HOST:PORT"):
        check_address("head-node")


def write_trial(sweep: Path, name: str, seed: int, params: dict, returns: list[float]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = sweep / "runs" / name
    run.mkdir(parents=True)
    (run / "trial.json").write_text(json.dumps({"trainer": "dqn", "game": "catch", "seed": seed,
                                                "variant": 0, "params": params}))  # fmt: skip
    with SummaryWriter(str(run)) as w:
        for i, r in enumerate(returns):
            w.add_scalar("charts/episodic_return", r, (i + 1) * 100)


def test_results_by_hand(tmp_path):
    assert np.allclose(smooth(np.array([1.0, 3.0, 5.0, 7.0]), 0.5), [1, 2, 4, 6])
    ten = [0, 0, 0, 0, 0, 0, 0, 0, 1, 0.0]  # smoothed over 1 point: final 0, best 1
    write_trial(tmp_path, "a__1", 1, {"gamma": 0.9}, ten)
    write_trial(tmp_path, "a__2", 2, {"gamma": 0.9}, [0.5] * 10)
    write_trial(tmp_path, "b__1", 1, {"gamma": 0.99}, [1.0] * 10)
    trials = load_trials(tmp_path)
    assert [t.name for t in trials] == ["a__1", "a__2", "b__1"]
    assert (trials[0].final, trials[0].best, trials[0].last_step) == (0.0, 1.0, 1000)
    rows = {r["params"]: r for r in summary_rows(trials)}
    a = rows["gamma=0.9"]
    half = 1.96 * np.std([0.0, 0.5], ddof=1) / np.sqrt(2)
    assert a["seeds"] == 2 and a["final_mean"] == pytest.approx(0.25)
    assert a["final_ci_high"] == pytest.approx(0.25 + half)
    assert a["best_mean"] == pytest.approx(0.75)
    assert rows["gamma=0.99"]["final_ci_low"] == rows["gamma=0.99"]["final_ci_high"] == 1.0
    csv_path, md_path, png = write_results(tmp_path)
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert [(r["trial"], r["final_return"], r["best_return"]) for r in table] == [
        ("a__1", "0", "1"), ("a__2", "0.5", "0.5"), ("b__1", "1", "1")]  # fmt: skip
    assert "| catch | dqn | gamma=0.9 | 2 | 0.25 [" in md_path.read_text()
    assert png.stat().st_size > 0


def test_plot_runs_labels_runs_and_averages_repeated_labels(tmp_path):
    """Plain run directories (no sweep): a label per run; two runs under one label are one curve's
    seeds (the summary averages them); bad input fails in one line through the script."""
    for name, seed, returns in (("p1", 1, [1.0] * 10), ("p2", 2, [3.0] * 10), ("r1", 1, [0.0] * 10)):
        write_trial(tmp_path, name, seed, {}, returns)
        (tmp_path / "runs" / name / "config.json").write_text(json.dumps({"env": "breakout", "seed": seed}))
    runs = [str(tmp_path / "runs" / n) for n in ("p1", "p2", "r1")]
    trials = load_runs(runs, ["ppo", "ppo", "reinforce"])
    rows = {r["params"]: r for r in summary_rows(trials)}
    assert rows["ppo"]["seeds"] == 2 and rows["ppo"]["final_mean"] == pytest.approx(2.0)
    assert rows["reinforce"]["game"] == "breakout" and load_runs(runs[:1], [])[0].label == "p1"
    out = tmp_path / "curves.png"
    done = subprocess.run([sys.executable, "scripts/plot_runs.py", "--runs", *runs, "--labels", "ppo",
                           "ppo", "reinforce", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 0
    for argv, message in (
        (["--runs", *runs, "--labels", "a", "--out", str(out)], "--labels needs one label per run: 3"),
        (["--runs", str(tmp_path), "--out", str(out)], "is not a run directory (no config.json)"),
        (["--runs", *runs, "--out", str(tmp_path / "c.jpg")], "output must end in .png"),
        (["--runs", *runs, "--out", str(out), "--table", "--window", "0"], "--window must be >= 1 step"),
    ):
        done = subprocess.run([sys.executable, "scripts/plot_runs.py", *argv], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
        assert message in done.stderr


def test_window_table_by_hand(tmp_path):
    """Games end at steps 100, 200, ..., 1000: windows of 300 steps hold steps 100-200, 300-500,
    600-800 and 900-1000; the table gives the first, best and last of their raw means."""
    write_trial(tmp_path, "w1", 1, {}, [1.0, 3.0, 10.0, 0.0, 2.0, 4.0, 6.0, 8.0, 5.0, 7.0])
    run = str(tmp_path / "runs" / "w1")
    (tmp_path / "runs" / "w1" / "config.json").write_text(json.dumps({"env": "breakout", "seed": 1}))
    # windows: [1, 3] -> 2, [10, 0, 2] -> 4, [4, 6, 8] -> 6, [5, 7] -> 6
    assert window_returns(run, 300) == {"steps": 1000, "first": 2.0, "best": 6.0, "last": 6.0}
    assert window_returns(run, 10_000) == {"steps": 1000, "first": 4.6, "best": 4.6, "last": 4.6}
    assert window_table([run], 300).splitlines()[2] == "| `w1` | 0.00M | 2.00 | 6.00 | 6.00 |"
    done = subprocess.run([sys.executable, "scripts/plot_runs.py", "--runs", run, "--out",
                           str(tmp_path / "c.png"), "--table", "--window", "300"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| run | steps | first 0.3k | best 0.3k | last 0.3k |" in done.stdout
    with pytest.raises(ValueError, match="has no charts/episodic_return at or after step 0"):
        window_returns(tmp_path, 300)


def test_every_window_by_hand(tmp_path):
    """Returns at steps 100..1000 and a second tag at 200, 400, ..., 1000: windows of 300 from step
    200 hold 200-400, 500-700 and 800-1000; a tag with no point in a window is NaN; the script
    prints the table without a figure and refuses a tag the run never logged in one line."""
    write_trial(tmp_path, "w1", 1, {}, [1.0, 3.0, 10.0, 0.0, 2.0, 4.0, 6.0, 8.0, 5.0, 7.0])
    run = tmp_path / "runs" / "w1"
    (run / "config.json").write_text(json.dumps({"env": "breakout", "seed": 1}))
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run)) as w:
        for step in (200, 400, 1000):
            w.add_scalar("charts/learning_rate", step / 1000, step)
    rows = every_window(run, 300, ["charts/episodic_return", "charts/learning_rate"], since=200)
    # returns: [3, 10, 0] -> 13/3, [2, 4, 6] -> 4, [8, 5, 7] -> 20/3; rates: [0.2, 0.4], -, [1.0]
    assert [r["step"] for r in rows] == [200, 500, 800]
    assert [r["charts/episodic_return"] for r in rows] == pytest.approx([13 / 3, 4.0, 20 / 3])
    rates = [r["charts/learning_rate"] for r in rows]
    assert rates[0] == pytest.approx(0.3) and np.isnan(rates[1]) and rates[2] == pytest.approx(1.0)
    done = subprocess.run([sys.executable, "scripts/plot_runs.py", "--runs", str(run), "--every-window",
                           "--window", "300", "--since", "200", "--tags", "charts/episodic_return",
                           "charts/learning_rate"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| 200 | 4.33 | 0.3 |" in done.stdout and "| 500 | 4.00 |  |" in done.stdout
    assert "wrote" not in done.stdout
    for argv, message in ((["--tags", "losses/nope"], "has no losses/nope at or after step 0"),
                          ([], None)):  # fmt: skip
        done = subprocess.run([sys.executable, "scripts/plot_runs.py", "--runs", str(run),
                               *(["--every-window", *argv] if message else [])], cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
        assert (message or "nothing to do: give --out") in done.stderr


# Ray's start and the trials share the cores with another test file under `make test` (one xdist
# worker per core): the waits are generous, and end as soon as what they wait for is there.
PATIENCE = 600


def sweep_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/sweep.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=PATIENCE, **kwargs)  # fmt: skip


def test_cli_refusals_are_one_line(tmp_path):
    """Through the script (two of them: each start costs seconds); the others are the same
    functions, tested above."""
    (tmp_path / "not_a_sweep").mkdir()
    cases = [
        (["--resume", str(tmp_path / "not_a_sweep")], "is not a sweep directory (no sweep.json)"),
        (["--param", "lr=1", "--address", "127.0.0.1:9", "--sweep-dir", str(tmp_path / "s")],
         "unknown config field 'lr'"),
        (["--address", "127.0.0.1:9", "--sweep-dir", str(tmp_path / "s")], "no Ray cluster answers"),
    ]  # fmt: skip
    for args, message in cases:
        done = sweep_cli(*args)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "s").exists()  # nothing was started


@pytest.mark.slow
def test_a_real_sweep_survives_a_killed_driver(tmp_path):
    """Two PQN trials on Catch, one at a time on a 1-CPU local Ray instance (one torch thread: under
    `make test` another test file has the other core, and two threads on one core crawl: 516 s
    instead of 49). The driver is killed once the second trial has its first checkpoint; --resume
    leaves the finished trial alone and continues the other from its checkpoint."""
    sweep = tmp_path / "sweep"
    args = ["--trainer", "pqn", "--games", "catch", "--seeds", "1", "2", "--param",
            "total_steps=4096", "--param", "save_every=1024", "--cpus-per-trial", "1",
            "--num-cpus", "1"]  # fmt: skip
    driver = subprocess.Popen([sys.executable, "scripts/sweep.py", *args, "--sweep-dir", str(sweep)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    first, second = sweep / "runs" / "catch__pqn__v0__1", sweep / "runs" / "catch__pqn__v0__2"
    try:
        deadline = time.monotonic() + PATIENCE
        while not (second / "checkpoints" / "latest").exists():
            assert driver.poll() is None and time.monotonic() < deadline, "no checkpoint came"
            time.sleep(0.2)
        driver.kill()  # the driver alone, as a crash or `kill -9` would
        driver.wait()
    finally:  # then what Ray leaves behind it (its agents outlive a killed driver)
        time.sleep(1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    finished = sorted(p.name for p in (first / "checkpoints").glob("step_*"))
    assert finished[-1] == "step_000000004096"
    assert not (second / "checkpoints" / "step_000000004096").exists()
    first_events = sorted(first.glob("events.out.tfevents.*"))

    done = sweep_cli("--resume", str(sweep), "--num-cpus", "1", start_new_session=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # the finished trial was not trained again; the other went on from its checkpoint
    assert sorted(first.glob("events.out.tfevents.*")) == first_events
    assert sorted(p.name for p in (first / "checkpoints").glob("step_*")) == finished
    assert len(list(second.glob("events.out.tfevents.*"))) == 2
    assert (second / "checkpoints" / "step_000000004096").exists()
    with open(sweep / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["seed"] for r in rows) == ["1", "2"]
    assert all(int(r["steps"]) > 3_500 and -1 <= float(r["final_return"]) <= 1 for r in rows)
    assert (sweep / "results.md").exists() and (sweep / "curves.png").stat().st_size > 0
    # the script's analysis reached the trials through Ray: saliency images, as train_pqn.py logs them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = EventAccumulator(str(first), size_guidance={"images": 0}).Reload().Tags()["images"]
    assert any(tag.startswith("saliency/") for tag in images), images


def test_a_shipped_agents_curve_is_read_from_its_curve_csv():
    """pretrained/pong has no TensorBoard events: its training curve is its curve.csv, so a run can
    be drawn and tabled beside it (``attn plot --runs pretrained/pong RUN``)."""
    import csv as csv_module

    with open(ROOT / "pretrained" / "pong" / "curve.csv", newline="") as f:
        rows = [(int(r["step"]), float(r["episodic_return"])) for r in csv_module.DictReader(f)]
    (trial,) = load_runs([str(ROOT / "pretrained" / "pong")], [])
    assert trial.game == "pong" and list(trial.steps) == [s for s, _ in rows]
    w = window_returns(ROOT / "pretrained" / "pong", 400_000)
    last = [v for s, v in rows if s >= rows[-1][0] // 400_000 * 400_000]
    assert w["steps"] == rows[-1][0] and w["last"] == pytest.approx(sum(last) / len(last))
    assert w["first"] < -19 < 18 < w["best"]  # the agent learnt Pong from a random policy's -21
