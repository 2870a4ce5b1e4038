"""--precision: bf16 (the CPU's bfloat16 copy and CUDA's autocast) agrees with float32 on a fixed
batch and on a trained agent's decisions, auto picks what the machine runs, bf16 where it cannot
run is one line, a bf16 run keeps float32 checkpoints and its precision across a resume; RAdam
on fused Adam's kernel is RAdam; the trainers' allocator setting stops the page faults of an
update."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import agents.common.precision as precision_module
from agents.common.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_tensors,
    resolve_checkpoint,
)
from agents.common.optim import FusedRAdam
from agents.common.precision import Bf16Copy, cpu_supports_bf16, resolve_precision
from agents.qlearning.dqn import DQNConfig
from agents.qlearning.networks import DuelingQNetwork
from agents.qlearning.pqn import PQNConfig, PQNTrainer

NATIVE = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bfloat16")


def _loss_and_grads(net: DuelingQNetwork, how: str) -> tuple[float, list[torch.Tensor]]:
    """The loss and float32 gradients of a fixed batch, in float32 (``how="fp32"``), under
    autocast (CUDA's bf16, which a CPU runs too) or through a :class:`Bf16Copy` (the CPU's)."""
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8, generator=gen)
    actions = torch.randint(0, 6, (32,), generator=gen)
    targets = torch.randn(32, generator=gen)
    net.zero_grad()
    copy = Bf16Copy(net, keep_float=net.layer_groups()[-1][1]) if how == "copy" else None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=how == "autocast"):
        q = (copy.net if copy else net)(obs)["q"]
    loss = 0.5 * (q.float().gather(1, actions[:, None]).squeeze(1) - targets).square().mean()
    loss.backward()
    if copy:
        copy.to_master()
    return loss.item(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("how", ["copy", "autocast"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["dqn", "pqn"])
def test_bf16_loss_and_gradients_agree_with_float32_on_a_fixed_batch(layer_norm, how):
    """Tolerances for bfloat16's 8-bit significand (a relative step of 2^-8 = 0.4%) carried through
    a network: the loss within 2%, the whole gradient within 8% of its norm (measured: autocast
    3.3% without LayerNorm, 5.4% with; the bfloat16 copy 3.3% and 5.3%) and pointing the same way
    (cosine > 0.998; measured 0.999), and each parameter's gradient within 15% (measured at most
    12%, the convolutions)."""
    torch.manual_seed(0)
    net = DuelingQNetwork(6, layer_norm=layer_norm)
    loss32, grads32 = _loss_and_grads(net, "fp32")
    loss16, grads16 = _loss_and_grads(net, how)
    assert all(g.dtype == torch.float32 for g in grads16)  # the weights stay float32
    assert loss16 == pytest.approx(loss32, rel=0.02)
    flat32, flat16 = torch.cat([g.flatten() for g in grads32]), torch.cat([g.flatten() for g in grads16])
    assert (flat16 - flat32).norm() / flat32.norm() < 0.08
    assert all((b - a).norm() / a.norm() < 0.15 for a, b in zip(grads32, grads16, strict=True))
    assert torch.nn.functional.cosine_similarity(flat16, flat32, dim=0) > 0.998
    assert loss16 != loss32  # bf16 did run: the same numbers would mean it was float32 throughout
    assert {p.dtype for p in net.parameters()} == {torch.float32}


def test_the_bf16_copy_keeps_layernorm_and_the_output_layers_float32_and_follows_the_weights():
    net = DuelingQNetwork(6, layer_norm=True)
    outputs = net.layer_groups()[-1][1]
    copy = Bf16Copy(net, keep_float=outputs)
    for original, module in zip(net.modules(), copy.net.modules(), strict=True):
        if isinstance(original, (torch.nn.Conv2d, torch.nn.Linear)):
            kept = any(original is o for o in outputs)
            assert module.weight.dtype == (torch.float32 if kept else torch.bfloat16)
        elif isinstance(original, torch.nn.LayerNorm):
            assert module.weight.dtype == torch.float32
    heads = copy.net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8))
    assert heads["q"].dtype == torch.float32  # the Q-values, targets and loss are float32
    with torch.no_grad():
        net.torso[0].weight.add_(1.0)
    copy.refresh()
    assert torch.equal(copy.net.torso[0].weight, net.torso[0].weight.to(torch.bfloat16))


def test_fused_radam_is_radam_across_its_rectification_switch_and_shares_its_checkpoints():
    """Steps 1-5 (rho_t <= 5 at beta2 = 0.999) run RAdam's own code, the rest fused Adam with the
    learning rate and epsilon rescaled: the weights agree with torch's RAdam to float32 rounding
    over 300 steps (measured 6e-8 of their scale), and the state dicts are interchangeable."""
    torch.manual_seed(0)
    ours = [torch.randn(50, 30), torch.randn(30)]
    theirs = [p.clone() for p in ours]
    a, b = FusedRAdam(ours, lr=1e-2), torch.optim.RAdam(theirs, lr=1e-2, foreach=True)
    for step in range(300):
        for p, q in zip(ours, theirs, strict=True):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        a.step()
        b.step()
        if step == 2:
            assert all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))  # RAdam's code
    assert all((p - q).abs().max() < 1e-6 * p.abs().max() for p, q in zip(ours, theirs, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(ours, theirs, strict=True))  # fused did run
    c = FusedRAdam([p.clone() for p in theirs], lr=1e-2)
    c.load_state_dict(b.state_dict())
    assert c.state_dict()["param_groups"] == b.state_dict()["param_groups"]
    assert float(c.state[c.param_groups[0]["params"][0]]["step"]) == 300


def test_auto_picks_what_the_machine_runs_and_bf16_where_it_cannot_is_one_line(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="--precision bf16 needs a CPU with AVX-512 BF16 or AMX"):
        PQNConfig(precision="bf16", device="cpu").validate()
    with pytest.raises(ValueError, match="--precision bf16 needs"):
        DQNConfig(precision="bf16", device="cpu").validate()
    with pytest.raises(ValueError, match=r"--precision must be one of fp32, bf16, auto \(got 'fp16'\)"):
        resolve_precision("fp16", "cpu")
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"


def _catch(run, **kw) -> PQNTrainer:
    return PQNTrainer(PQNConfig.for_game("catch", **{"total_steps": 256, "num_envs": 8, "rollout": 8,
                                         "save_every": 128, "progress": False, "saliency_every": 0,
                                         "run_dir": str(run), **kw}))  # fmt: skip


@NATIVE
def test_a_bf16_run_records_it_keeps_float32_weights_and_its_precision_on_resume(tmp_path):
    run = tmp_path / "run"
    _catch(run, precision="auto").run()
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"  # auto, resolved
    ckpt = resolve_checkpoint(run)
    assert {t.dtype for t in read_tensors(ckpt / "model.safetensors").values()} == {torch.float32}
    net, config = load_checkpoint(run)
    assert config["train_config"]["precision"] == "bf16"
    refused = r"--precision cannot change when resuming \(the run has 'bf16'\)"
    with pytest.raises(CheckpointError, match=refused):
        PQNTrainer(PQNConfig(resume=str(run), precision="fp32", total_steps=512, progress=False),
                   given={"precision"})  # fmt: skip
    resumed = PQNTrainer(PQNConfig(resume=str(run), total_steps=512, progress=False))
    assert resumed.cfg.precision == "bf16"  # no flag: the run's own
    resumed.env.close()
    auto = PQNTrainer(PQNConfig(resume=str(run), precision="auto", total_steps=512, progress=False),
                      given={"precision"})  # fmt: skip
    assert auto.cfg.precision == "bf16"  # --precision auto: what auto runs here, the run's own


def test_a_run_saved_with_the_earlier_bf16_flag_resumes(tmp_path):
    run = tmp_path / "run"
    _catch(run).run()
    saved = json.loads((run / "config.json").read_text())
    del saved["precision"]
    (run / "config.json").write_text(json.dumps({**saved, "bf16": False}))
    resumed = PQNTrainer(PQNConfig(resume=str(run), total_steps=512, progress=False))
    assert resumed.cfg.precision == "fp32" and resumed.global_step == 256


@NATIVE
@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_each_trainer_runs_its_passes_at_the_precision_asked(precision, dtype, tmp_path):
    """The convolutions of every pass (acting, the targets, the update) run at the precision asked;
    the weights the optimizer steps, and so the checkpoints, stay float32."""
    from agents.qlearning.dqn import DQNTrainer

    pqn = _catch(tmp_path / "pqn", precision=precision)
    dqn = DQNTrainer(DQNConfig.for_game("catch", precision=precision, run_dir=str(tmp_path / "dqn"),
                                     progress=False))  # fmt: skip
    for net in (pqn.online, dqn.online, dqn.target):
        seen = []
        hook = net.torso[0].register_forward_hook(lambda m, i, out, seen=seen: seen.append(out.dtype))
        with torch.no_grad():
            q = net(torch.zeros(2, 2, 24, 24, dtype=torch.uint8))["q"]
        hook.remove()
        assert seen == [dtype] and q.dtype == torch.float32
    for trainer in (pqn, dqn):
        assert {p.dtype for p in trainer.optimizer.param_groups[0]["params"]} == {torch.float32}
        assert trainer.optimizer.param_groups[0]["params"][0] is next(trainer.q_network.parameters())


@NATIVE
def test_a_trained_agent_decides_alike_at_both_precisions():
    """The shipped Pong agent (float32 weights) on 400 frames of its own play: the bfloat16 copy's
    greedy action is float32's on at least 95% of them (measured 98.5%: Pong's actions come in
    near-tied pairs, NOOP and FIRE, RIGHT and RIGHTFIRE), and its Q-values are within 3% of their
    range (measured 1.6%)."""
    from agents.common.evaluate import make_eval_env

    net, config = load_checkpoint("pretrained/pong")
    copy = Bf16Copy(net, keep_float=net.layer_groups()[-1][1])
    env = make_eval_env(config, num_envs=4, seed=0)
    obs, _ = env.reset()
    frames = []
    with torch.no_grad():
        for _ in range(100):
            frames.append(torch.from_numpy(obs).clone())
            obs = env.step(net(torch.from_numpy(obs))["q"].argmax(1).numpy())[0]
        env.close()
        batch = torch.cat(frames)
        q32, q16 = net(batch)["q"], copy.net(batch)["q"]
    agree = (q32.argmax(1) == q16.argmax(1)).float().mean().item()
    spread = (q32.max() - q32.min()).item()
    assert agree >= 0.95, agree
    assert (q16 - q32).abs().max().item() < 0.03 * spread


FAULTS = """
import resource, sys
import torch
from agents.common.resources import keep_freed_memory
from agents.qlearning.networks import DuelingQNetwork
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
net = DuelingQNetwork(6, layer_norm=True)
obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8)
def step():
    net.zero_grad(set_to_none=True)
    net(obs)["q"].sum().backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


@pytest.mark.skipif(not Path("/proc/self").exists() or platform.libc_ver()[0] != "glibc",
                    reason="glibc's allocator on Linux")  # fmt: skip
def test_keeping_freed_memory_stops_the_page_faults_of_a_training_step():
    """A forward and backward pass of the dueling network at batch 32, in a fresh process each:
    with glibc's defaults every step faults its activations in again (measured 4,000-7,600 minor
    faults a step), with ``keep_freed_memory`` it reuses them (measured 80-96)."""
    root = Path(__file__).resolve().parent.parent
    faults = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], cwd=root, capture_output=True,
                             text=True, timeout=120, check=True).stdout  # fmt: skip
        faults[mode] = float(out.split()[-1])
    assert faults["keep"] < 500 and faults["default"] > 5 * faults["keep"], faults


def _glimpse_rollout(trainer, steps: int = 16):
    """A rollout's records (patches, gazes, sampled locations, actions) played on random Pong-sized
    frames by ``trainer``'s model, and the core state it began with: what a PPO epoch replays."""
    gen = torch.Generator().manual_seed(0)
    n = trainer.cfg.num_envs
    start = state = trainer.model.initial_state(n)
    loc, rows = torch.zeros(n, 2), {k: [] for k in ("patches", "looked", "sampled", "action")}
    with torch.no_grad():
        for _ in range(steps):
            frames = torch.randint(0, 256, (n, 1, 210, 160), dtype=torch.uint8, generator=gen)
            loc, state = trainer.act(frames, loc, state, rows)[-2:]
    rows["restart"] = [torch.zeros(n, dtype=torch.bool)] * steps
    rows["restart"][steps // 2] = torch.arange(n) % 2 == 0  # half the envs start over mid-rollout
    return rows, start


def _glimpse_loss_and_grads(trainer, rows, start, bf16: bool):
    trainer.model.zero_grad()
    with trainer._autocast() if bf16 else torch.autocast("cpu", enabled=False):
        played = trainer.replay(start, rows, torch.arange(trainer.cfg.num_envs))
    loss = (-(played["logp_a"] + played["logp_l"]).mean() + played["baseline"].square().mean()
            - 0.01 * played["ent_a"].mean())  # fmt: skip
    loss.backward()
    return loss.item(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


@NATIVE
def test_the_glimpse_agents_bf16_replay_agrees_with_float32_and_keeps_its_heads_float32(tmp_path):
    """The Atari preset's network (3 scales, LSTM 256) replaying a 16-step rollout of 8 envs:
    under bf16 the glimpse network's matmuls run in bfloat16, the heads in float32, and the loss
    and gradients agree with float32's: the loss within 1% (measured 0.23%), the whole gradient
    within 3% of its norm (measured 0.6%) and pointing the same way (cosine 0.99999)."""
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer

    trainer = GlimpseTrainer(GlimpseConfig.for_game("pong", num_envs=8, precision="bf16", progress=False,
                                                 run_dir=str(tmp_path / "run")))  # fmt: skip
    trainer.env.close()
    rows, start = _glimpse_rollout(trainer)
    seen = []
    hook = trainer.model.glimpse.what_out.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    loss16, grads16 = _glimpse_loss_and_grads(trainer, rows, start, bf16=True)
    hook.remove()
    loss32, grads32 = _glimpse_loss_and_grads(trainer, rows, start, bf16=False)
    assert seen == [torch.bfloat16]
    with trainer._autocast():
        heads = trainer.model.heads_of(torch.zeros(2, trainer.cfg.hidden, dtype=torch.bfloat16))
    assert {v.dtype for v in heads.values()} == {torch.float32}
    assert loss16 != loss32 and loss16 == pytest.approx(loss32, rel=0.01)
    flat32, flat16 = torch.cat([g.flatten() for g in grads32]), torch.cat([g.flatten() for g in grads16])
    assert (flat16 - flat32).norm() / flat32.norm() < 0.03
    assert torch.nn.functional.cosine_similarity(flat16, flat32, dim=0) > 0.998
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}


def test_the_glimpse_trainers_auto_is_float32_and_its_bf16_is_checked_like_the_others(monkeypatch, tmp_path):
    """auto is float32 for the glimpse agent even on a CPU with bfloat16 (bf16 did not train Pong
    faster); bf16 where the CPU cannot run it is the shared one line; a resume keeps the run's."""
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer

    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ValueError, match="--precision bf16 needs a CPU with AVX-512 BF16 or AMX"):
        GlimpseConfig(precision="bf16").validate()
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: True)
    run = tmp_path / "run"
    trainer = GlimpseTrainer(GlimpseConfig(total_steps=512, num_envs=8, rollout=8, save_every=256,
                                           progress=False, run_dir=str(run)))  # fmt: skip
    assert trainer.cfg.precision == "fp32"
    trainer.run()
    assert json.loads((run / "config.json").read_text())["precision"] == "fp32"
    refused = r"--precision cannot change when resuming \(the run has 'fp32'\)"
    with pytest.raises(CheckpointError, match=refused):
        GlimpseTrainer(GlimpseConfig(resume=str(run), precision="bf16", total_steps=1024,
                                     progress=False), given={"precision"})  # fmt: skip
    resumed = GlimpseTrainer(GlimpseConfig(resume=str(run), precision="auto", total_steps=1024,
                                           progress=False), given={"precision"})  # fmt: skip
    assert resumed.cfg.precision == "fp32" and resumed.global_step == 512
    resumed.env.close()
