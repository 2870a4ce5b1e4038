"""--precision: bf16 autocast agrees with float32 on a fixed batch, auto picks what the machine
runs, bf16 where it cannot run is one line, a bf16 run keeps float32 checkpoints and its precision
across a resume."""

import json

import pytest
import torch

import agents.common.training as training
from agents.common.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_tensors,
    resolve_checkpoint,
)
from agents.common.training import cpu_supports_bf16, resolve_precision
from agents.qlearning.dqn import DQNConfig
from agents.qlearning.networks import DuelingQNetwork
from agents.qlearning.pqn import PQNConfig, PQNTrainer

NATIVE = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bfloat16")


def _loss_and_grads(net: DuelingQNetwork, bf16: bool) -> tuple[float, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8, generator=gen)
    actions = torch.randint(0, 6, (32,), generator=gen)
    targets = torch.randn(32, generator=gen)
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        q = net(obs)["q"]
    loss = 0.5 * (q.float().gather(1, actions[:, None]).squeeze(1) - targets).square().mean()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("layer_norm", [False, True], ids=["dqn", "pqn"])
def test_bf16_loss_and_gradients_agree_with_float32_on_a_fixed_batch(layer_norm):
    """Tolerances for bfloat16's 8-bit significand (a relative step of 2^-8 = 0.4%) carried through
    a network: the loss within 2%, the whole gradient within 8% of its norm (measured: 3.3% without
    LayerNorm, 5.4% with) and pointing the same way (cosine > 0.998; measured 0.999), and each
    parameter's gradient within 15% (measured at most 12%, the convolutions)."""
    torch.manual_seed(0)
    net = DuelingQNetwork(6, layer_norm=layer_norm)
    loss32, grads32 = _loss_and_grads(net, bf16=False)
    loss16, grads16 = _loss_and_grads(net, bf16=True)
    assert all(g.dtype == torch.float32 for g in grads16)  # the weights stay float32
    assert loss16 == pytest.approx(loss32, rel=0.02)
    flat32, flat16 = torch.cat([g.flatten() for g in grads32]), torch.cat([g.flatten() for g in grads16])
    assert (flat16 - flat32).norm() / flat32.norm() < 0.08
    assert all((b - a).norm() / a.norm() < 0.15 for a, b in zip(grads32, grads16, strict=True))
    assert torch.nn.functional.cosine_similarity(flat16, flat32, dim=0) > 0.998
    assert loss16 != loss32  # bf16 did run: the same numbers would mean autocast was off


def test_auto_picks_what_the_machine_runs_and_bf16_where_it_cannot_is_one_line(monkeypatch):
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="--precision bf16 needs a CPU with AVX-512 BF16 or AMX"):
        PQNConfig(precision="bf16", device="cpu").validate()
    with pytest.raises(ValueError, match="--precision bf16 needs"):
        DQNConfig(precision="bf16", device="cpu").validate()
    with pytest.raises(ValueError, match="--precision must be one of fp32, bf16, auto, got 'fp16'"):
        resolve_precision("fp16", "cpu")
    monkeypatch.setattr(training, "cpu_supports_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"


def _catch(run, **kw) -> PQNTrainer:
    return PQNTrainer(PQNConfig.catch(**{"total_steps": 256, "num_envs": 8, "rollout": 8,
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
    from agents.qlearning.dqn import DQNTrainer

    trainers = [_catch(tmp_path / "pqn", precision=precision),
                DQNTrainer(DQNConfig.catch(precision=precision, run_dir=str(tmp_path / "dqn"),
                                           progress=False))]  # fmt: skip
    for trainer in trainers:
        obs = torch.zeros(2, 2, 24, 24, dtype=torch.uint8)
        with trainer._autocast():
            assert trainer.q_network(obs)["q"].dtype == dtype
        assert {p.dtype for p in trainer.q_network.parameters()} == {torch.float32}
