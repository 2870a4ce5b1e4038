"""PQN: the Q(lambda) targets by hand and against the forward view, LayerNorm, the trainer's logs,
checkpoints, exact resume and time limit, PQN checkpoints through the analysis scripts, learning."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import call_script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from agents.common.architecture import build_network
from agents.common.checkpoint import (
    StopFlag,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    resolve_checkpoint,
)
from agents.common.evaluate import evaluate_checkpoint
from agents.qlearning.dqn import greedy_catch_rate
from agents.qlearning.networks import ChannelLayerNorm, DuelingQNetwork
from agents.qlearning.pqn import PQNConfig, PQNTrainer, q_lambda_targets

ROOT = Path(__file__).resolve().parent.parent


def script(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_q_lambda_by_hand_across_an_episode_end_and_a_truncation():
    # env 0: the episode terminates at t=1 (t=2 is the reset step); env 1: truncated at t=1
    rewards = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    terminated = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    cut = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    next_max_q = torch.tensor([[4.0, 2.0], [8.0, 10.0], [2.0, 4.0], [6.0, 8.0]])
    g = q_lambda_targets(rewards, terminated, cut, next_max_q, gamma=0.5, lam=0.5)
    # env 0: G3 = 2 + .5*6 = 5; G2 = .5(.5*2 + .5*5) = 1.75; G1 = 1 (terminal); G0 = .5(.5*4 + .5*1)
    # env 1: G3 = .5*8 = 4; G2 = .5(.5*4 + .5*4) = 2; G1 = .5*10 (cut: no lambda) = 5;
    #        G0 = 1 + .5(.5*2 + .5*5) = 2.75
    expected = torch.tensor([[1.25, 2.75], [1.0, 5.0], [1.75, 2.0], [5.0, 4.0]])
    torch.testing.assert_close(g, expected)


def forward_view(rewards, next_max_q, gamma, lam):
    """The lambda-return as the weighted mean of n-step returns (Sutton and Barto, Eq. 12.3),
    truncated at the rollout's end; no episode ends."""
    t_len = len(rewards)
    out = np.zeros_like(rewards)
    for t in range(t_len):
        horizon = t_len - t
        n_step = [
            sum(gamma**k * rewards[t + k] for k in range(n)) + gamma**n * next_max_q[t + n - 1]
            for n in range(1, horizon + 1)
        ]
        weights = [(1 - lam) * lam ** (n - 1) for n in range(1, horizon)] + [lam ** (horizon - 1)]
        out[t] = np.dot(weights, n_step)
    return out


@pytest.mark.parametrize("lam", [0.0, 0.65, 1.0])
def test_q_lambda_matches_the_forward_view(lam, rng):
    rewards = rng.normal(size=(7, 3))
    next_max_q = rng.normal(size=(7, 3))
    zeros = torch.zeros(7, 3, dtype=torch.float64)
    g = q_lambda_targets(torch.from_numpy(rewards), zeros, zeros, torch.from_numpy(next_max_q),
                         gamma=0.9, lam=lam)  # fmt: skip
    for env in range(3):
        np.testing.assert_allclose(
            g[:, env].numpy(), forward_view(rewards[:, env], next_max_q[:, env], 0.9, lam)
        )


def test_channel_layer_norm_normalises_each_pixel_over_channels():
    norm = ChannelLayerNorm(5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 6.0))
        norm.bias.fill_(0.5)
    x = torch.randn(2, 5, 3, 4)
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * torch.arange(1.0, 6.0)[None, :, None, None] + 0.5
    torch.testing.assert_close(norm(x), expected)


def test_layer_norm_network_records_and_rebuilds():
    net = DuelingQNetwork(6, layer_norm=True)
    arch = net.architecture()
    assert arch["layer_norm"] is True
    assert sum(isinstance(m, ChannelLayerNorm) for m in net.modules()) == 3
    assert sum(type(m) is torch.nn.LayerNorm for m in net.modules()) == 2  # one per stream
    rebuilt = build_network(json.loads(json.dumps(arch)))
    rebuilt.load_state_dict(net.state_dict())
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(rebuilt(obs)["q"], net(obs)["q"])
    assert set(net(obs)) == {"q", "value", "advantage"}
    plain = DuelingQNetwork(6).architecture()
    assert "layer_norm" not in plain  # earlier checkpoints keep loading as they were written


def small_catch(tmp_path, name="run", **kw):
    base = dict(total_steps=2_048, num_envs=16, rollout=8, save_every=1_024, log_every=512,
                saliency_every=0, progress=False, run_dir=str(tmp_path / name))  # fmt: skip
    return PQNConfig.for_game("catch", **{**base, **kw})


def test_trainer_logs_checkpoints_and_evaluates(tmp_path):
    trainer = PQNTrainer(small_catch(tmp_path))
    final = trainer.run()
    assert final.name == "step_000000002048" and trainer.updates == 16
    tags = set(EventAccumulator(str(tmp_path / "run")).Reload().Tags()["scalars"])
    assert {"charts/episodic_return", "charts/episodic_length", "charts/epsilon", "charts/SPS",
            "losses/td_loss", "losses/q_values", "values/value_mean", "values/advantage_std",
            "charts/learning_rate", "perf/env_share", "perf/learn_share"} <= tags  # fmt: skip
    net, config = load_checkpoint(tmp_path / "run")
    assert config["agent"] == "pqn" and config["architecture"]["layer_norm"] is True
    for k, v in trainer.q_network.state_dict().items():
        torch.testing.assert_close(net.state_dict()[k], v)
    summary = evaluate_checkpoint(str(tmp_path / "run"), episodes=4, num_envs=4, progress=False)
    assert summary["game"] == "catch" and summary["episodes"] == 4


def test_resume_from_a_checkpoint_reaches_the_uninterrupted_weights(tmp_path):
    PQNTrainer(small_catch(tmp_path, "full")).run()
    # the run as if it had stopped at its first checkpoint: drop what came after, then resume
    partial = tmp_path / "partial"
    shutil.copytree(tmp_path / "full", partial)
    ckpts = partial / "checkpoints"
    shutil.rmtree(ckpts / "step_000000002048")
    (ckpts / "latest").write_text("step_000000001024")
    resumed = PQNTrainer(PQNConfig(resume=str(partial), progress=False))
    assert resumed.global_step == 1024 and resumed.cfg.num_envs == 16
    resumed.run()
    full, _ = load_checkpoint(tmp_path / "full")
    again, _ = load_checkpoint(partial)
    for k, v in full.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


@pytest.mark.parametrize("optimizer", ["adam", "radam"])
def test_captured_update_trains_as_the_eager_one(tmp_path, optimizer):
    """--cuda-graph's update and acting pass without the graphs themselves, which need CUDA: the
    warm-up steps before a capture are undone in place, each replayed step is the eager step, and
    acting reads each observation through the graph's input tensor, so the weights and the
    optimizer's state end bitwise equal to an eager run's."""
    # fp32: on CUDA, where the graphs run, bf16 is autocast, never the CPU's bfloat16 copy
    eager = PQNTrainer(small_catch(tmp_path, "eager", optimizer=optimizer, precision="fp32"))
    eager.run()
    graphed = PQNTrainer(small_catch(tmp_path, "graphed", optimizer=optimizer, precision="fp32"))
    graphed.cfg = dataclasses.replace(graphed.cfg, cuda_graph=True)  # on CPU: no capture
    graphed.run()
    assert graphed.graphed is not None and graphed.graphed.graph is None
    assert graphed.graphed_act is not None and graphed.graphed_act.graph is None
    for k, v in eager.q_network.state_dict().items():
        assert torch.equal(graphed.q_network.state_dict()[k], v), k
    for p, q in zip(eager.q_network.parameters(), graphed.q_network.parameters(), strict=True):
        for key, value in eager.optimizer.state[p].items():
            assert torch.equal(graphed.optimizer.state[q][key], value), key


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-4), ("bf16", 0.01)])
def test_compiled_passes_learn_as_the_eager_ones(tmp_path, precision, tolerance):
    """--compile runs the same module through torch.compile: acting picks the eager actions, the
    compiled passes give the eager Q-values and gradients within rounding (fused kernels round in
    another order; in bf16 they keep float32 between fused operators), an update's TD loss
    matches, and a rollout cut short by a stop learns eagerly (no compilation for its shape)."""
    batches: list[int] = []  # the batch sizes the compiled module ran

    def trained(name: str, compile_: bool) -> tuple[PQNTrainer, dict[str, float]]:
        trainer = PQNTrainer(small_catch(tmp_path, name, precision=precision, compile=compile_))
        if compile_:
            compiled = trainer.compiled
            trainer.compiled = lambda obs: batches.append(len(obs)) or compiled(obs)
        trainer.obs, _ = trainer.env.reset(seed=0)
        stop = StopFlag()
        try:
            steps = trainer.collect(stop)
        finally:
            stop.restore()
        return trainer, trainer.learn(steps)

    (eager, eager_stats), (fast, fast_stats) = trained("eager", False), trained("compiled", True)
    # acting (16 envs, 8 steps), the bootstrap and 4 epochs of 8 minibatches of 16, all compiled
    assert batches == [16] * (8 + 1 + 4 * 8)
    assert fast._net(full=False) is fast.online and eager._net() is eager.online
    assert torch.equal(fast.buffer["actions"], eager.buffer["actions"])
    assert fast_stats["losses/td_loss"] == pytest.approx(eager_stats["losses/td_loss"], rel=tolerance)

    obs = fast.buffer["obs"].flatten(0, 1)  # the rollout's 128 observations, at the new weights
    with torch.no_grad():  # the trainer's compiled acting pass reads the weights the update wrote
        q_now, q_acting = fast.online(obs[:16])["q"].float(), fast.compiled(obs[:16])["q"].float()
    assert (q_acting - q_now).norm() <= tolerance * q_now.norm()
    grads = []
    for net in (fast.online, torch.compile(fast.online, dynamic=False)):
        net.zero_grad()
        q = net(obs)["q"].float()
        q.square().mean().backward()
        grads.append(torch.cat([p.grad.float().flatten() for p in fast.online.parameters()]))
        grads.append(q.detach().flatten())
    for eager_value, compiled_value in ((grads[0], grads[2]), (grads[1], grads[3])):
        assert (compiled_value - eager_value).norm() <= tolerance * eager_value.norm()


def test_env_groups_play_and_train_as_one_vector_env(tmp_path):
    """--env-groups 2 acts on one half of the Pong games while the other half is emulated: the
    rollouts hold the same observations, actions and flags as with one group, and the weights
    end as close as two batch sizes of one forward pass allow."""
    def run(name: str, groups: int) -> PQNTrainer:
        # fp32: in bf16 a forward pass over 8 envs rounds apart from one over 16 often enough to
        # flip a greedy action, and then the games differ
        cfg = PQNConfig(game="pong", total_steps=512, num_envs=16, rollout=16, minibatches=4,
                        env_groups=groups, save_every=10**6, saliency_every=0, progress=False,
                        run_dir=str(tmp_path / name), precision="fp32")  # fmt: skip
        trainer = PQNTrainer(cfg)
        trainer.run()
        return trainer

    one, two = run("one", 1), run("two", 2)
    assert len(two.env) == 2 and two.global_step == one.global_step == 512
    for key in ("obs", "actions", "rewards", "terminated", "cut", "valid"):
        assert torch.equal(one.buffer[key], two.buffer[key]), key
    assert one.buffer["actions"][-1].ne(one.buffer["actions"][-1, 0]).any()  # greedy, not constant
    for k, v in one.q_network.state_dict().items():
        torch.testing.assert_close(two.q_network.state_dict()[k], v)


def test_optimizer_state_loads_into_the_session_s_implementation():
    """A checkpoint's optimizer loads its values, never how it runs: a fused Adam's state goes
    into a capturable one (a device lr tensor, which a CUDA graph reads, filled in place) and back."""
    net = torch.nn.Linear(3, 2)
    fused = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    net(torch.ones(1, 3)).sum().backward()
    fused.step()
    tensors, meta = optimizer_to_tensors(fused)
    lr = torch.tensor(5e-4)
    capturable = torch.optim.Adam(net.parameters(), lr=lr, foreach=True, capturable=True)
    optimizer_from_tensors(capturable, tensors, meta)
    group = capturable.param_groups[0]
    assert group["lr"] is lr and lr.item() == pytest.approx(1e-3)
    assert group["capturable"] and group["foreach"] and not group["fused"]
    assert all(capturable.state[p]["step"].item() == 1 for p in net.parameters())
    tensors, meta = optimizer_to_tensors(capturable)
    json.dumps(meta)  # the tensor lr is written as a number
    again = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    optimizer_from_tensors(again, tensors, meta)
    group = again.param_groups[0]
    assert group["fused"] and not group["capturable"] and isinstance(group["lr"], float)
    net(torch.ones(1, 3)).sum().backward()
    again.step()  # runs: its step counts sit where fused Adam reads them
    assert all(again.state[p]["step"].item() == 2 for p in net.parameters())


def test_time_limit_stops_at_a_rollout_boundary_with_a_checkpoint(tmp_path):
    trainer = PQNTrainer(small_catch(tmp_path, total_steps=10**6, time_limit=1e-6))
    path = trainer.run()
    assert trainer.stopped_by == "time limit" and trainer.global_step == 16 * 8
    assert resolve_checkpoint(tmp_path / "run") == path


def test_q_lambda_targets_follow_the_env_flags_in_a_real_rollout(tmp_path):
    """One Catch rollout: after a catch or miss the target is the reward itself; the reset step is
    excluded from the loss; within an episode the target bootstraps (reward 0 + discounted Q)."""
    # fp32: the expected targets are recomputed below with the float32 network that acted
    trainer = PQNTrainer(small_catch(tmp_path, num_envs=4, rollout=30, precision="fp32"))
    trainer.obs, _ = trainer.env.reset(seed=0)
    trainer.writer = SummaryWriter(str(tmp_path / "events"))
    stop = StopFlag()
    try:
        trainer.collect(stop)
    finally:
        stop.restore()
    b = trainer.buffer
    assert b["terminated"][22].bool().all() and b["cut"][22].bool().all()  # 23-step episodes
    assert not b["valid"][23].bool().any() and b["valid"][:23].bool().all()
    torch.testing.assert_close(b["max_q"][0], trainer.q_network(torch.from_numpy(
        b["obs"][0].numpy()))["q"].max(1).values.detach())  # fmt: skip


@pytest.fixture(scope="module")
def pong_pqn(tmp_path_factory):
    run = tmp_path_factory.mktemp("pqn") / "pong"
    cfg = PQNConfig(game="pong", total_steps=64, num_envs=4, rollout=8, minibatches=4,
                    run_dir=str(run), progress=False, saliency_every=16)  # fmt: skip
    from analysis.tensorboard import SaliencyLogger

    PQNTrainer(cfg, callbacks=[SaliencyLogger(16, probe_size=4)]).run()
    return run


def test_pqn_checkpoint_through_the_analysis_scripts(pong_pqn, tmp_path):
    images = EventAccumulator(str(pong_pqn), size_guidance={"images": 0}).Reload().Tags()["images"]
    assert {"saliency/value", "saliency/advantage", "saliency/clip"} <= set(images)
    r = script("scripts/evaluate.py", "--checkpoint", str(pong_pqn), "--episodes", "1",
               "--num-envs", "1", "--noop-max", "0", "--epsilon", "1.0")  # fmt: skip
    assert r.returncode == 0 and "pong:" in r.stdout, r.stderr
    r = script("scripts/record_saliency.py", "--checkpoint", str(pong_pqn), "--steps", "12",
               "--out", str(tmp_path / "v.mp4"))  # fmt: skip
    assert r.returncode == 0 and (tmp_path / "v.mp4").stat().st_size > 0, r.stderr
    r = script("scripts/compare_heads.py", "--checkpoint", str(pong_pqn), "--steps", "16", "--out",
               str(tmp_path / "report"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "report" / "report.json").read_text())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--q-lambda", "2"], "--q-lambda must be in [0, 1]"),
        (["--num-envs", "0"], "--num-envs must be >= 1 (got 0)"),
        (["--time-limit", "-1"], "--time-limit must be >= 0"),
        (["--max-grad-norm", "-1"], "--max-grad-norm must be > 0"),
        (["--game", "pongg"], "unknown game 'pongg'"),
        (["--cuda-graph", "--device", "cpu"], "--cuda-graph needs a CUDA device"),
        (["--cuda-graph", "--compile"], "--compile and --cuda-graph both replace the eager passes"),
        (["--env-groups", "3"], "--env-groups 3 must divide --num-envs 128"),
        (["--game", "catch", "--env-groups", "2"], "--env-groups must be 1 for catch"),
    ],
)
def test_bad_flags_are_one_line(flags, message, tmp_path):
    r = call_script("scripts/train_pqn.py", *flags, "--run-dir", str(tmp_path / "r"))
    assert r.returncode != 0 and message in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_pqn_learns_catch(tmp_path):
    """The Catch preset on 120k of its 200k steps, seed 1: at least 0.4 of 100 greedy episodes,
    five times a still paddle's 2/24. At 120k steps seeds 1-3 caught 0.78, 0.49 and 0.62 (the
    whole preset catches 0.97, docs/benchmarks.md); the shorter run keeps `make test` within
    its 15 minutes on two cores."""
    trainer = PQNTrainer(PQNConfig.for_game("catch", run_dir=str(tmp_path / "run"), progress=False,
                                         saliency_every=0, total_steps=120_000))  # fmt: skip
    trainer.run()
    net, _ = load_checkpoint(tmp_path / "run")
    assert greedy_catch_rate(net, episodes=100) >= 0.4


def test_pqn_gpu_report_keeps_every_setup_and_the_transfer_column(monkeypatch, tmp_path):
    """benchmark.py pqn-gpu runs only on a GPU window, so its report is checked here with the runs
    faked: each setup's row carries the observations' transfer, a setup that fails keeps its
    row (as many cells as the header) and its error in the results, and the results file is
    written after every setup (a window that ends early keeps what it measured)."""
    import scripts.bench.qlearning as qbench
    import scripts.bench.timing as timing
    from scripts.bench.report import Report
    from scripts.benchmark import PQN_GPU_SETUPS, PqnGpu, run_pqn_gpu

    saved: list[int] = []

    def fake_run(fn, game, steps, num_envs, options, device):
        assert device == "cuda" and fn is qbench.run_pqn
        if (tmp_path / "pqn_gpu.json").exists():
            saved.append(len(Report.load(tmp_path / "pqn_gpu.json").blocks[1].rows))
        if options.get("precision") == "bf16":
            raise RuntimeError("capture failed")
        return {"sps": 100.0 * num_envs, "peak_rss_mb": 900.0, "env_share": 0.3, "act_share": 0.2,
                "learn_share": 0.5, "transfer_ms": 0.5, "transfer_share": 0.05}  # fmt: skip

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *_: "Fake GPU")
    monkeypatch.setattr(timing, "in_fresh_process", fake_run)
    [report] = run_pqn_gpu(PqnGpu(steps=1, num_envs=[64], out=str(tmp_path)))
    assert saved == list(range(1, len(PQN_GPU_SETUPS)))
    assert report.blocks[0] == "GPU: Fake GPU" and report == Report.load(tmp_path / "pqn_gpu.json")
    table = report.body().split("\n\n")[1].splitlines()
    assert table[0].endswith("| observations to GPU per step (share) |")
    assert len(table) == 2 + len(PQN_GPU_SETUPS) and len({row.count("|") for row in table}) == 1
    assert "| PQN, 64 envs, float32 | 6,400 | 30% / 20% / 50% | 900 | 0.50 ms (5%) |" in table
    assert list(report.data) == [f"64 envs, {label}" for label, _ in PQN_GPU_SETUPS]
    assert report.data["64 envs, bf16 autocast, CUDA graphs"] == {"error": "RuntimeError: capture failed"}
    assert qbench.observation_transfer_ms(2, "cpu", repeats=3) > 0
