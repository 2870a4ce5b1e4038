"""The glimpse trainer: advantages by hand, rollouts through the env, logs, checkpoints, resume,
evaluation and the glimpse video -- and that it learns Catch."""

import collections
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.common.checkpoint import CheckpointError, load_checkpoint, read_json, resolve_checkpoint
from agents.common.evaluate import evaluate_checkpoint, make_eval_env
from agents.common.ppo import advantages, explained_variance
from agents.glimpse import RecurrentAttentionModel
from agents.glimpse.train import GlimpseConfig, GlimpseTrainer, glimpse_catch_rate


def tiny(tmp_path, name="run", **kw) -> GlimpseConfig:
    return GlimpseConfig(**{"total_steps": 4 * 24 * 8, "num_envs": 8, "hidden": 32,
                            "run_dir": str(tmp_path / name), "progress": False,
                            "heatmap_every": 300, "log_every": 100, **kw})  # fmt: skip


def test_advantages_by_hand():
    # one env, rewards 0, 0, 1 then a new episode cut after one step; baseline b; bootstrap 0.5
    r = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
    b = torch.tensor([[0.2], [0.4], [0.6], [0.3]])
    done = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
    boot = torch.tensor([0.5])
    adv, target = advantages(r, b, done, boot, gamma=0.9, lam=1.0)
    # Monte-Carlo: returns 0.81, 0.9, 1 for the first episode; the cut one bootstraps 0.9 * 0.5
    returns = torch.tensor([[0.81], [0.9], [1.0], [0.45]])
    assert torch.allclose(target, returns) and torch.allclose(adv, returns - b)
    adv0, target0 = advantages(r, b, done, boot, gamma=0.9, lam=0.0)
    td = torch.tensor([[0.9 * 0.4 - 0.2], [0.9 * 0.6 - 0.4], [1.0 - 0.6], [0.9 * 0.5 - 0.3]])
    assert torch.allclose(adv0, td) and torch.allclose(target0, td + b)
    adv5, _ = advantages(r, b, done, boot, gamma=1.0, lam=0.5)
    d = torch.tensor([0.2, 0.2, 0.4])  # TD errors of the first episode with gamma 1
    assert adv5[0].item() == pytest.approx(d[0] + 0.5 * d[1] + 0.25 * d[2])
    assert adv5[3].item() == pytest.approx(0.5 - 0.3)  # nothing leaks across the episode end


def test_explained_variance_by_hand():
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0])  # variance 5/3
    assert explained_variance(targets, targets) == 1.0
    assert explained_variance(torch.full((4,), 2.5), targets) == pytest.approx(0.0)
    # errors (0, 0, 0, 2): variance 1, so 1 - 1 / (5/3) = 0.4
    assert explained_variance(torch.tensor([1.0, 2.0, 3.0, 2.0]), targets) == pytest.approx(0.4)
    assert explained_variance(-targets, targets) == pytest.approx(1 - 4 * 5 / 3 / (5 / 3))
    assert math.isnan(explained_variance(torch.zeros(3), torch.ones(3)))


def test_trainer_updates_logs_and_checkpoints(tmp_path):
    trainer = GlimpseTrainer(tiny(tmp_path))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    final = trainer.run()
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert {"action_head.weight", "baseline_head.weight", "location_head.weight"} <= set(changed)
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"losses/policy_loss", "losses/baseline_loss", "losses/explained_variance",
            "charts/action_entropy", "charts/location_std", "charts/episodic_return",
            "charts/SPS"} <= scalars  # fmt: skip
    assert all(math.isfinite(e.value) for e in events.Scalars("losses/policy_loss"))
    returns = [e.value for e in events.Scalars("charts/episodic_return")]
    # the 8 envs end their 23-step episodes together: one point per end, the mean of 8 returns +-1
    assert len(returns) == 4 and trainer.tracker.episodes == 8 * 4
    assert all(v * 8 == round(v * 8) and -1.0 <= v <= 1.0 for v in returns)
    lengths = [e.value for e in events.Scalars("charts/episodic_length")]
    assert lengths == [23.0] * 4
    assert "glimpses/heatmap" in events.Tags()["images"]
    heat = trainer.heatmap()
    assert heat.shape[0] >= 240 and heat.dtype == np.uint8
    assert resolve_checkpoint(tmp_path / "run") == final
    model, config = load_checkpoint(final)
    assert config["agent"] == "glimpse" and config["action_set"] == ["LEFT", "STAY", "RIGHT"]
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in model.state_dict().items())
    assert 0.0 <= glimpse_catch_rate(model, episodes=10) <= 1.0
    from analysis.playback import load_policy

    with pytest.raises(ValueError, match="is a 'glimpse' checkpoint; saliency"):
        load_policy(str(tmp_path / "run"), None)


def test_heatmap_counts_where_glimpses_land(tmp_path):
    trainer = GlimpseTrainer(tiny(tmp_path))
    trainer._count_glimpses(torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, 1.0]]))
    assert trainer.heat[0, 0] == 1 and trainer.heat[23, 23] == 2 and trainer.heat.sum() == 3
    image = trainer.heatmap()
    assert image[-1, -1].sum() > image[0, 0].sum() > image[12 * 10, 12 * 10].sum()
    frame = np.zeros((24, 24), np.uint8)
    frame[12, 12] = 255  # a lit pixel nobody looked at shows as grey under the heat map
    over = trainer.heatmap(frame)
    assert over[12 * 10, 12 * 10].tolist() == [127, 127, 127] and over[5, 5].sum() > 0


def test_resume_continues_where_the_run_stopped(tmp_path):
    first = GlimpseTrainer(tiny(tmp_path, total_steps=2 * 24 * 8))
    first.run()
    resumed = GlimpseTrainer(GlimpseConfig(resume=str(tmp_path / "run"), total_steps=4 * 24 * 8,
                                           progress=False))  # fmt: skip
    assert resumed.global_step == 2 * 24 * 8 and resumed.updates == first.updates
    assert resumed.cfg.hidden == 32  # the run's own config, not the defaults
    for k, v in first.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v)
    moments = [s["exp_avg"] for s in resumed.optimizer.state.values()]
    assert moments and any(m.abs().sum() > 0 for m in moments)
    final = resumed.run()
    assert read_json(final / "trainer.json")["global_step"] == 4 * 24 * 8


def test_a_budget_flag_on_the_command_line_counts_even_at_its_default(tmp_path):
    from scripts.cli import flags_given

    GlimpseTrainer(tiny(tmp_path, total_steps=24 * 8, log_every=100)).run()
    run = str(tmp_path / "run")
    # log_every 10_000 is the default: from the API it is indistinguishable from "not given" ...
    kept = GlimpseTrainer(GlimpseConfig(resume=run, total_steps=2 * 24 * 8, progress=False))
    assert kept.cfg.log_every == 100
    # ... but a flag on the command line says it was chosen (``--resume R --total-steps 16000000``
    # extends a run of 8M steps to the default 16M)
    given = flags_given(["--resume", run, "--log-every=10000", "--no-progress"])
    assert given == {"resume", "log_every", "progress"}
    chosen = GlimpseTrainer(GlimpseConfig(resume=run, total_steps=2 * 24 * 8, progress=False),
                            given=given)  # fmt: skip
    assert chosen.cfg.log_every == 10_000
    # a named field that is not a budget still cannot change in the middle of a run
    with pytest.raises(CheckpointError, match="--hidden cannot change when resuming"):
        GlimpseTrainer(GlimpseConfig(resume=run, hidden=128, progress=False), given={"hidden"})


def test_annealed_learning_rate_is_a_function_of_the_step(tmp_path):
    update = 24 * 8  # steps per update (8 envs x 24)
    first = GlimpseTrainer(tiny(tmp_path, total_steps=4 * update, anneal_lr=True,
                                learning_rate=1e-3, location_lr_scale=0.1))  # fmt: skip
    seen, update_fn = [], first.update

    def spy(*args):
        out = update_fn(*args)
        seen.append([g["lr"] for g in first.optimizer.param_groups])
        return out

    first.update = spy
    first.run()
    # update k runs at global_step k * update of 4 * update: 1 - k/4 of each group's rate left
    expected = [[1e-3 * f, 1e-4 * f] for f in (0.75, 0.5, 0.25, 0.0)]
    assert np.allclose(seen, expected)
    # resuming with a longer budget stretches the schedule: steps 5..8 of 8 leave 3/8 .. 0
    GlimpseTrainer(GlimpseConfig(resume=str(tmp_path / "run"), total_steps=8 * update,
                                 progress=False)).run()  # fmt: skip
    logged = sorted(EventAccumulator(str(tmp_path / "run")).Reload().Scalars("charts/learning_rate"),
                    key=lambda e: e.step)  # fmt: skip
    assert [e.value for e in logged] == pytest.approx(
        [1e-3 * k / 8 for k in (6, 4, 2, 0, 3, 2, 1, 0)]
    )


def test_anneal_lr_turned_on_at_a_resume_decays_from_that_step(tmp_path):
    update = 24 * 8
    GlimpseTrainer(tiny(tmp_path, total_steps=2 * update, learning_rate=1e-3, anneal_lr=False)).run()
    run = str(tmp_path / "run")
    # two more updates' worth of steps at a falling rate: steps 3..6 of a decay from step 2 to 6
    GlimpseTrainer(GlimpseConfig(resume=run, total_steps=6 * update, anneal_lr=True, progress=False),
                   given={"total_steps", "anneal_lr"}).run()  # fmt: skip
    assert read_json(tmp_path / "run" / "config.json")["anneal_from"] == 2 * update
    # extending it again stretches the decay from the same start: steps 7..10 of 2..10
    GlimpseTrainer(GlimpseConfig(resume=run, total_steps=10 * update, progress=False),
                   given={"total_steps"}).run()  # fmt: skip
    # by step: the three sessions' event files may be read in any order (names that share their
    # second and process sort by a counter as text, ".10" before ".9")
    logged = sorted(EventAccumulator(run).Reload().Scalars("charts/learning_rate"), key=lambda e: e.step)
    assert [e.value for e in logged] == pytest.approx(
        [1e-3, 1e-3, 0.75e-3, 0.5e-3, 0.25e-3, 0.0, 3e-3 / 8, 2e-3 / 8, 1e-3 / 8, 0.0]
    )
    # a fresh run may hold the rate until a given step: constant to step 2, then 1/2 left at 3
    GlimpseTrainer(tiny(tmp_path, "held", total_steps=4 * update, learning_rate=1e-3,
                        anneal_from=2 * update)).run()  # fmt: skip
    logged = EventAccumulator(str(tmp_path / "held")).Reload().Scalars("charts/learning_rate")
    assert [e.value for e in logged] == pytest.approx([1e-3, 1e-3, 0.5e-3, 0.0])
    for bad in ({"anneal_from": 5, "anneal_lr": False},
                {"anneal_from": 4 * update, "total_steps": 4 * update}):
        with pytest.raises(ValueError, match="--anneal-from starts the decay of --anneal-lr"):
            tiny(tmp_path, "bad", **bad).validate()


def test_resume_of_another_run_or_a_missing_one_is_refused(tmp_path):
    GlimpseTrainer(tiny(tmp_path, total_steps=24 * 8)).run()
    config = read_json(tmp_path / "run" / "config.json")
    config["hidden"] = 64  # the run's config no longer matches its checkpoint
    (tmp_path / "run" / "config.json").write_text(__import__("json").dumps(config))
    with pytest.raises(
        CheckpointError, match="with 'RecurrentAttentionModel' of another architecture"
    ):
        GlimpseTrainer(GlimpseConfig(resume=str(tmp_path / "run"), progress=False))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        GlimpseTrainer(GlimpseConfig(resume=str(tmp_path / "nope"), progress=False))


def test_action_input_trains_resumes_and_evaluates(tmp_path):
    from agents.common.checkpoint import load_checkpoint
    from agents.common.evaluate import evaluate_checkpoint

    GlimpseTrainer(tiny(tmp_path, total_steps=2 * 24 * 8, action_input=True)).run()
    resumed = GlimpseTrainer(GlimpseConfig(resume=str(tmp_path / "run"), total_steps=4 * 24 * 8,
                                           progress=False))  # fmt: skip
    assert resumed.model.action_input and resumed.model.core.input_size == 32 + 3
    resumed.run()
    model, _ = load_checkpoint(tmp_path / "run")
    assert model.action_input
    summary = evaluate_checkpoint(str(tmp_path / "run"), episodes=4, progress=False)
    assert summary["mean_length"] == 23 and summary["policy"] == "greedy"


def test_evaluation_can_sample_the_glimpse_policies(tmp_path):
    """``--sample`` plays the stochastic policies, reproducibly from the seed; a Q-network refuses it."""
    import agents.common.evaluate as ev

    GlimpseTrainer(tiny(tmp_path, total_steps=24 * 8)).run()
    model, config = load_checkpoint(tmp_path / "run")
    with torch.no_grad():  # untrained logits are nearly flat: make them exactly so
        model.action_head.weight.zero_()
        model.action_head.bias.zero_()
    greedy = ev.evaluate_network(model, config, episodes=32, progress=False)
    first = ev.evaluate_network(model, config, episodes=32, progress=False, sample=True, seed=3)
    again = ev.evaluate_network(model, config, episodes=32, progress=False, sample=True, seed=3)
    assert (greedy["policy"], first["policy"]) == ("greedy", "sample") and first == again
    # flat logits: greedy always takes action 0, so its 32 episodes with the same balls (seed 0)
    # give the scores of a paddle pinned left; sampled, the paddle wanders
    pinned = ev.evaluate_network(model, config, episodes=32, progress=False, seed=3)
    assert first["scores"] != pinned["scores"]
    with pytest.raises(ValueError, match="--sample is for the glimpse and soft-attention agents"):
        ev.evaluate_network(torch.nn.Linear(1, 1), {"agent": "dqn"}, sample=True)


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path):
    first = GlimpseTrainer(tiny(tmp_path, "plain", total_steps=24 * 8))
    first.run()
    # a curriculum: the same network on a ball that turns, with a fresh optimizer and step count
    second = GlimpseTrainer(tiny(tmp_path, "turns", init_from=str(tmp_path / "plain"),
                                 catch_turn_prob=0.1, catch_paddle_width=3))  # fmt: skip
    assert second.global_step == 0 and not second.optimizer.state
    for k, v in first.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], v)
    second.run()
    assert read_json(tmp_path / "turns" / "config.json")["init_from"] == str(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="of another architecture"):
        GlimpseTrainer(tiny(tmp_path, "wider", init_from=str(tmp_path / "plain"), hidden=64))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        GlimpseTrainer(tiny(tmp_path, "lost", init_from=str(tmp_path / "nope")))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"patch_size": 30}, "larger than the 24x24 frame"),
        ({"num_scales": 0}, r"--num-scales must be >= 1 \(got 0\)"),
        ({"gae_lambda": 1.5}, r"--gae-lambda must be in \[0, 1\] \(got 1\.5\)"),
        ({"location_lr_scale": 0.0}, r"--location-lr-scale must be > 0 \(got 0\.0\)"),
        ({"heatmap_every": -1}, r"--heatmap-every must be >= 0 \(got -1\)"),
        ({"game": "pongg"}, "unknown game 'pongg'"),
        ({"epochs": 0}, r"--epochs must be >= 1 \(got 0\)"),
        ({"epochs": 2, "minibatches": 9}, r"at most --num-envs \(8\) \(got 9\)"),
        ({"clip_coef": 0.0}, r"--clip-coef must be > 0 \(got 0\.0\)"),
        ({"life_loss_info": True}, "--life-loss-info is for Atari games"),
        ({"retina_pool": "min"}, r"--retina-pool must be one of avg, max \(got 'min'\)"),
        ({"glimpse_net": "mlp"}, r"--glimpse-net must be one of linear, conv \(got 'mlp'\)"),
        ({"fire_after_life_loss": True}, "--fire-after-life-loss needs --life-loss-info"),
        ({"frame_stack": 2}, "--frame-stack is for Atari games"),
        ({"frame_stack": 0}, r"--frame-stack must be >= 1 \(got 0\)"),
    ],
)
def test_bad_config_is_refused_before_training(tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        GlimpseTrainer(tiny(tmp_path, **kw))


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600)


def test_scripts_train_evaluate_and_record_glimpses(tmp_path):
    run = tmp_path / "run"
    done = run_script("scripts/train_glimpse.py", "--total-steps", "768", "--num-envs", "8",
                      "--hidden", "32", "--run-dir", str(run), "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = evaluate_checkpoint(str(run), episodes=12, num_envs=4, progress=False)
    assert summary["game"] == "catch" and summary["episodes"] == 12
    assert set(summary["scores"]) <= {0.0, 1.0} and summary["mean_length"] == 23
    out, png = tmp_path / "g.mp4", tmp_path / "seq.png"
    done = run_script("scripts/record_glimpses.py", "--checkpoint", str(run), "--out", str(out),
                      "--episodes", "2", "--jacobian", str(png), "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "recording" not in done.stderr  # no progress bar
    import imageio.v3 as iio

    frames = iio.imread(out)
    assert len(frames) == 2 * 23 and png.stat().st_size > 10_000
    assert "memory span" in done.stdout


def test_record_glimpses_refuses_a_dqn_checkpoint_naming_the_script_that_fits(tmp_path):
    from agents.qlearning.dqn import DQNConfig, DQNTrainer

    DQNTrainer(DQNConfig.for_game("catch", total_steps=64, learning_starts=32, num_envs=2, progress=False,
                               run_dir=str(tmp_path / "dqn"))).run()  # fmt: skip
    done = run_script("scripts/record_glimpses.py", "--checkpoint", str(tmp_path / "dqn"),
                      "--out", str(tmp_path / "x.mp4"))  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {str(tmp_path / 'dqn')!r} is a 'dqn' checkpoint, not a glimpse agent; draw its "
        "value and advantage saliency with scripts/record_saliency.py"
    )
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
def test_pong_pipeline_trains_resumes_evaluates_and_records(tmp_path):
    """The whole Atari pipeline on full-resolution Pong frames, in seconds."""
    run = tmp_path / "pong"
    common = ["--no-progress", "--heatmap-every", "128", "--log-every", "64"]
    done = run_script("scripts/train_glimpse.py", "--env", "pong", "--total-steps", "256",
                      "--num-envs", "4", "--run-dir", str(run), *common)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_script("scripts/train_glimpse.py", "--resume", str(run), "--total-steps", "512",
                      *common)  # fmt: skip
    assert done.returncode == 0, done.stderr
    model, config = load_checkpoint(run)
    assert config["step"] == 512 and config["game"] == "pong" and len(config["action_set"]) == 6
    assert config["env_options"]["img_height"] == 210 and config["env_options"]["stack_num"] == 1
    assert config["train_config"]["rollout"] == 32 and model.retina.sizes == [16, 64, 256]
    assert config["train_config"]["epochs"] == 4 and config["architecture"]["retina_pool"] == "max"
    events = EventAccumulator(str(run)).Reload()
    assert "glimpses/heatmap" in events.Tags()["images"]
    summary = evaluate_checkpoint(str(run), episodes=1, num_envs=1, progress=False)
    assert summary["game"] == "pong" and -21 <= summary["mean"] <= 21
    out = tmp_path / "pong.mp4"
    done = run_script("scripts/record_glimpses.py", "--checkpoint", str(run), "--out", str(out),
                      "--steps", "20")  # fmt: skip
    assert done.returncode == 0, done.stderr
    import imageio.v3 as iio

    assert len(iio.imread(out)) == 20


@pytest.mark.slow
def test_glimpse_agent_learns_catch(tmp_path):
    """Catch's recipe (patch 6 with 3 scales, 128 envs, Adam 4e-3 decaying to zero) on 3M of the
    default 16M steps (about 3.5 minutes on one core), seed 1: at least 0.25 of 100 greedy
    episodes, three times what an agent that ignores the screen catches (the untrained agent
    0.04-0.08, a still paddle about 2/24). Seed 1 catches 0.68 at 3M; at 4M seeds 0-3 ended at
    0.78, 0.39, 0.44 and 0.45, so the bound holds whichever trajectory a change of numerics puts
    the run on; the whole budget's results are in docs/benchmarks.md."""
    cfg = GlimpseConfig(run_dir=str(tmp_path / "run"), total_steps=3_000_000, progress=False,
                        heatmap_every=0, save_every=10**9)  # fmt: skip
    assert (cfg.patch_size, cfg.num_scales, cfg.seed) == (6, 3, 1)
    trainer = GlimpseTrainer(cfg)
    untrained = glimpse_catch_rate(trainer.model, episodes=100)
    trainer.run()
    learned = glimpse_catch_rate(trainer.model, episodes=100)
    assert untrained < 0.12 and learned >= 0.25, (untrained, learned)


@pytest.mark.parametrize("action_input", [False, True])
def test_episode_jacobian_runs_in_core_time_with_several_glimpses_per_step(action_input):
    from analysis.glimpse_video import episode_jacobian, play_glimpses

    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, hidden=16, detach_baseline=False, action_input=action_input)
    config = {"game": "catch", "env_options": {"stack_num": 1},
              "train_config": {"glimpses_per_step": 2}}  # fmt: skip
    played = list(play_glimpses(model, config, episodes=1))
    jac = episode_jacobian(model, played, head="baseline")
    assert jac.matrix.shape == (2 * 23, 2 * 23)
    # the last row by hand: unroll the core over every glimpse, differentiate the last baseline
    patches = torch.cat([s.patches for s in played]).requires_grad_(True)
    locations = torch.cat([s.locations for s in played])
    state = model.initial_state(1)
    for t in range(len(patches)):
        heads, state = model.step_patches(patches[t : t + 1], locations[t][None], state)
        if t % 2 == 1:  # the replay is the game the agent played: its heads, its actions
            step = played[t // 2]
            assert np.allclose(heads["baseline"].detach().numpy(), step.heads["baseline"], atol=1e-6)
            state = model.record_action(state, torch.tensor([step.action]))
    (grad,) = torch.autograd.grad(heads["baseline"].sum(), patches)
    norms = grad.reshape(len(patches), -1).norm(dim=1).numpy()
    assert np.allclose(jac.matrix[-1], norms, rtol=1e-5, atol=1e-8) and norms[-2] > 0
    # a baseline read off a detached state depends on no glimpse: zero sensitivity, no error
    model.detach_baseline = True
    assert episode_jacobian(model, played, head="baseline").matrix.max() == 0


def test_learning_curve_evaluates_on_schedule_and_stops_at_its_target(monkeypatch):
    from scripts.bench.glimpse import learning_curve

    small = {"num_envs": 8, "hidden": 32, "heatmap_every": 0}
    curve = learning_curve(4 * 24 * 8, 2 * 24 * 8, episodes=10, **small)
    assert [p["steps"] for p in curve] == [2 * 24 * 8, 4 * 24 * 8]
    assert all(0.0 <= p["catch_rate"] <= 1.0 and p["seconds"] > 0 for p in curve)
    assert [p["episodes"] for p in curve] == [16, 32]  # 8 envs, one 23-step episode per update
    import agents.glimpse.train

    monkeypatch.setattr(agents.glimpse.train, "glimpse_catch_rate", lambda *a, **k: 0.96)
    stopped = learning_curve(4 * 24 * 8, 24 * 8, episodes=10, target=0.95, **small)
    assert [p["steps"] for p in stopped] == [24 * 8]  # the target ends the run at once


@pytest.mark.parametrize("life_loss_info", [False, True])
def test_life_loss_is_terminal_for_the_targets_only(tmp_path, life_loss_info):
    """Breakout under a random policy loses balls often: with life_loss_info each lost life ends
    the targets' episode (more 'done' steps than games ended), without it only game ends do; the
    logged returns are whole games in both cases."""
    cfg = GlimpseConfig.for_game("breakout", num_envs=2, total_steps=2 * 32 * 12, hidden=16,
                              run_dir=str(tmp_path / "run"), progress=False, heatmap_every=0,
                              threads=1, life_loss_info=life_loss_info)  # fmt: skip
    trainer = GlimpseTrainer(cfg)
    dones, lives_seen = [], []
    update = trainer.update

    def record(rows, bootstrap, start):
        dones.append(torch.stack(rows["done"]).sum().item())
        return update(rows, bootstrap, start)

    trainer.update = record
    step = trainer.env.step

    def counting_step(actions):
        out = step(actions)
        lives_seen.append(out[4]["lives"].copy())
        return out

    trainer.env.step = counting_step
    trainer.run()
    lives = np.stack(lives_seen)  # (steps, envs)
    losses = int(((lives[1:] < lives[:-1]) & (lives[1:] > 0)).sum())  # lives lost, game goes on
    games = trainer.tracker.episodes
    assert losses >= 2, "the random policy lost too few lives for the test to mean anything"
    if life_loss_info:
        assert sum(dones) == games + losses
    else:
        assert sum(dones) == games


def _never_firing_trainer(kind, tmp_path):
    """A Breakout trainer of either recurrent agent under --fire-after-life-loss whose policy never
    samples FIRE (its FIRE logit at -1e9)."""
    from agents.soft.train import SoftConfig, SoftTrainer

    common = dict(num_envs=2, total_steps=2 * 32 * 12, hidden=16, run_dir=str(tmp_path / "run"),
                  progress=False, threads=1, fire_after_life_loss=True, epochs=1)  # fmt: skip
    if kind == "glimpse":
        trainer = GlimpseTrainer(GlimpseConfig.for_game("breakout", heatmap_every=0, **common))
        head = trainer.model.action_head
    else:
        trainer = SoftTrainer(SoftConfig.for_game("breakout", attention_every=0, **common))
        head = trainer.model.policy_logits
    with torch.no_grad():
        head.bias[trainer.action_names.index("FIRE")] = -1e9
    return trainer


@pytest.mark.parametrize("kind", ["glimpse", "soft"])
def test_fire_after_life_loss_is_pressed_for_the_agent_and_masked(kind, tmp_path):
    """With --fire-after-life-loss the step after every lost life (the game going on) plays FIRE
    whatever the policy sampled, and is no decision of the policy (mask 0); every other step plays
    what was sampled. A policy that never fires still serves every ball. The soft agent, which
    reads its previous action, reads the FIRE that was played."""
    trainer = _never_firing_trainer(kind, tmp_path)
    fire = trainer.action_names.index("FIRE")
    played, lives, masks, previous = [], [], [], []
    step, update = trainer.env.step, trainer.update

    def recording_step(actions):
        played.append(np.array(actions))
        out = step(actions)
        lives.append(out[4]["lives"].copy())
        return out

    def record(rows, bootstrap, start):
        masks.extend(m.numpy() for m in rows["mask"])
        previous.extend(a.numpy() for a in rows.get("prev_action", []))
        return update(rows, bootstrap, start)

    trainer.env.step, trainer.update = recording_step, record
    path = trainer.run()
    played, lives, masks = np.stack(played), np.stack(lives), np.stack(masks)
    lost = np.zeros_like(played, bool)  # a life lost at step t, the game going on
    lost[1:] = (lives[1:] < lives[:-1]) & (lives[1:] > 0)
    forced = np.zeros_like(lost)
    forced[1:] = lost[:-1]
    assert forced.sum() >= 2, "too few lives lost for the test to mean anything"
    assert (played[forced] == fire).all() and not masks[forced].any()
    assert (played[~forced] != fire).all()
    if kind == "soft":
        after = np.zeros_like(forced)
        after[1:] = forced[:-1]
        assert (np.stack(previous)[after] == fire).all()
        # its videos play the game it learnt: every FIRE of a policy that never fires is pressed for it
        from analysis.attention_video import play_attention

        model, config = load_checkpoint(path)
        actions = [s.action for s in play_attention(model, config, steps=500)]
        assert actions.count(fire) >= 1


def test_frame_stack_gives_each_patch_the_last_frames_and_evaluation_the_same_env(tmp_path):
    """--frame-stack 2: the env stacks two frames, the retina reads both as channels of the same
    patch (the older first), and a checkpoint's evaluation env stacks as training did."""
    cfg = GlimpseConfig.for_game("breakout", num_envs=2, total_steps=2 * 32, hidden=16,
                              run_dir=str(tmp_path / "run"), progress=False, heatmap_every=0,
                              threads=1, frame_stack=2)  # fmt: skip
    trainer = GlimpseTrainer(cfg)
    assert trainer.env.single_observation_space.shape == (2, 210, 160)
    assert trainer.model.architecture()["channels"] == 2
    obs, _ = trainer.env.reset(seed=3)
    for action in (1, 2, 2, 2):  # FIRE, then move: the frames differ
        previous = obs[:, -1].copy()
        obs, *_ = trainer.env.step(np.array([action, action]))
    assert (obs[:, 0] == previous).all() and (obs[:, 0] != obs[:, 1]).any()
    patches = trainer.model.retina(torch.from_numpy(obs), torch.zeros(2, 2))
    assert patches.shape == (2, 3, 2, 16, 16)
    path = trainer.run()
    env = make_eval_env(read_json(path / "config.json"), num_envs=1, seed=0)
    assert env.single_observation_space.shape == (2, 210, 160)
    env.close()


def test_evaluation_presses_fire_after_a_lost_life_for_agents_trained_so():
    """A policy that never fires: in an agent trained with --fire-after-life-loss every lost life is
    served for it and the game ends in 5 lives; otherwise the first lost ball is never served and
    the game runs to the 108k-frame cap (27,000 steps)."""
    from agents.common.evaluate import evaluate

    names = ["NOOP", "FIRE", "RIGHT", "LEFT"]
    config = {"game": "breakout", "action_set": names, "train_config": {"fire_after_life_loss": True},
              "env_options": {"img_height": 210, "img_width": 160, "stack_num": 1}}  # fmt: skip

    def never_fires(obs):
        return np.full(len(obs), names.index("LEFT"))

    served = evaluate(never_fires, config, episodes=1, epsilon=0.0, num_envs=1, progress=False)
    assert served.lengths[0] < 2_000
    config["train_config"] = {}
    stalled = evaluate(never_fires, config, episodes=1, epsilon=0.0, num_envs=1, progress=False)
    assert stalled.lengths[0] == 27_000


@pytest.mark.parametrize(("policy", "glimpses", "action_input"),
                         [("gaussian", 1, False), ("tiles", 2, True)])  # fmt: skip
def test_ppo_replay_reproduces_the_rollout_across_episode_ends(tmp_path, policy, glimpses, action_input):
    """PPO's epochs re-play each rollout from the core state it began with. Before any step the
    replay must give back exactly what was sampled with: the same log-probabilities (ratio 1), the
    same baselines and entropies -- through restarts (a rollout of 60 holds two and a half Catch
    episodes), several glimpses per step, tiles and the previous-action input."""
    cfg = tiny(tmp_path, rollout=60, total_steps=8 * 60 * 3, epochs=3, minibatches=2,
               location_policy=policy, glimpses_per_step=glimpses, action_input=action_input)
    trainer = GlimpseTrainer(cfg)
    update, checked = trainer.update, []

    def check(rows, bootstrap, start):
        with torch.no_grad():
            again = trainer.replay(start, rows, torch.arange(8))
            envs = torch.tensor([5, 2])  # a minibatch replays its envs alone
            part = trainer.replay(start, rows, envs)
        for key in ("logp_a", "logp_l", "baseline", "ent_a", "ent_l"):
            torch.testing.assert_close(again[key], torch.stack(rows[key]))
            torch.testing.assert_close(part[key], torch.stack(rows[key])[:, envs])
        assert torch.stack(rows["restart"]).sum() >= 8 * 2  # episodes did end inside the rollout
        checked.append(True)
        return update(rows, bootstrap, start)

    trainer.update = check
    trainer.run()
    assert len(checked) == 3 and trainer.updates == 3
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"losses/clipfrac", "losses/approx_kl", "losses/location_clipfrac"} <= tags


def test_ppo_replay_reproduces_an_atari_rollout_across_lives_and_games(tmp_path):
    """Breakout as the Atari preset plays it (a lost life a terminal for the targets, FIRE pressed
    for the agent after it, two stacked frames, the convolutional glimpse network and a GRU): the
    replay of every rollout gives back its log-probabilities and baselines."""
    cfg = GlimpseConfig.for_game("breakout", num_envs=4, total_steps=4 * 32 * 10, hidden=16,
                              run_dir=str(tmp_path / "run"), progress=False, heatmap_every=0,
                              threads=1, fire_after_life_loss=True, frame_stack=2, glimpse_net="conv",
                              core="gru", minibatches=2)  # fmt: skip
    trainer = GlimpseTrainer(cfg)
    update, seen = trainer.update, collections.Counter()

    def check(rows, bootstrap, start):
        with torch.no_grad():
            again = trainer.replay(start, rows, torch.arange(4))
        for key in ("logp_a", "logp_l", "baseline", "ent_a", "ent_l"):
            torch.testing.assert_close(again[key], torch.stack(rows[key]))
        restart, mask = torch.stack(rows["restart"]), torch.stack(rows["mask"])
        seen.update(resets=int(restart.sum()), forced=int((~mask & ~restart).sum()),
                    lives=int(torch.stack(rows["done"]).sum()))  # fmt: skip
        return update(rows, bootstrap, start)

    trainer.update = check
    trainer.run()
    assert seen["resets"] >= 1 and seen["forced"] >= 4 and seen["lives"] >= 8, seen


def test_location_head_and_the_rest_are_clipped_separately(tmp_path):
    """With a global clip both groups together would have norm 1e-3; clipped apart, each has it
    (the location's score, ~1/std times the action's, no longer shrinks the action's step)."""
    trainer = GlimpseTrainer(tiny(tmp_path, total_steps=24 * 8, max_grad_norm=1e-3))
    step, norms = trainer.optimizer.step, []

    def record(*args, **kwargs):
        norms.append([torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"]
                                                            if p.grad is not None])).item()
                      for g in trainer.optimizer.param_groups])  # fmt: skip
        return step(*args, **kwargs)

    trainer.optimizer.step = record
    trainer.run()
    assert len(norms) == 1 and norms[0] == pytest.approx([1e-3, 1e-3], rel=1e-4)


def test_a_run_saved_with_the_earlier_env_field_resumes_as_its_game(tmp_path):
    """The glimpse agent's game was the ``env`` field: a run saved so resumes with it as ``game``,
    and ``--env`` stays the flag's other name."""
    import json

    import tyro

    run = tmp_path / "run"
    GlimpseTrainer(GlimpseConfig(total_steps=256, num_envs=8, rollout=8, save_every=128,
                                 progress=False, run_dir=str(run))).run()  # fmt: skip
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**{k: v for k, v in saved.items() if k != "game"},
                                                 "env": "catch"}))  # fmt: skip
    resumed = GlimpseTrainer(GlimpseConfig(resume=str(run), total_steps=512, progress=False))
    assert resumed.cfg.game == "catch" and resumed.global_step == 256
    resumed.env.close()
    assert tyro.cli(GlimpseConfig, args=["--env", "pong"]).game == "pong"
