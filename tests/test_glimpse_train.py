"""The glimpse trainer runs end to end: rollouts through the env, updates, logs, a checkpoint.

(Learning Catch to 0.85 is not yet reached in CI time; see the open issue.)"""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.checkpoint import read_json, read_tensors, resolve_checkpoint
from agents.glimpse import RecurrentAttentionModel
from agents.glimpse_train import GlimpseConfig, GlimpseTrainer, glimpse_catch_rate


def test_trainer_updates_logs_and_checkpoints(tmp_path):
    cfg = GlimpseConfig(
        total_steps=4 * 24 * 8, num_envs=8, hidden=32, run_dir=str(tmp_path / "run"), progress=False
    )
    trainer = GlimpseTrainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    final = trainer.run()
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "action_head.weight" in changed and "baseline_head.weight" in changed
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "losses/policy_loss",
        "losses/baseline_loss",
        "charts/action_entropy",
        "charts/episodic_return",
    } <= scalars
    assert all(math.isfinite(e.value) for e in events.Scalars("losses/policy_loss"))
    assert resolve_checkpoint(tmp_path / "run") == final
    config = read_json(final / "config.json")
    assert (
        config["agent"] == "glimpse"
        and config["architecture"]["class"] == "RecurrentAttentionModel"
    )
    arch = {k: v for k, v in config["architecture"].items() if k != "class"}
    model = RecurrentAttentionModel(**arch)
    model.load_state_dict(read_tensors(final / "model.safetensors"))
    assert 0.0 <= glimpse_catch_rate(model, episodes=10) <= 1.0
    from analysis.playback import load_policy

    with pytest.raises(ValueError, match="is a 'glimpse' checkpoint; saliency"):
        load_policy(str(tmp_path / "run"), None)


def test_retina_too_large_for_the_frame_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="larger than the 24x24 frame"):
        GlimpseTrainer(GlimpseConfig(patch_size=30, run_dir=str(tmp_path / "r"), progress=False))
