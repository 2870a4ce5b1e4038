"""SB3 models load without unpickling and give the same outputs as SB3 itself."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from analysis.saliency import jacobian_saliency
from analysis.sb3 import load_sb3


class Frames(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(6)

    def reset(self, *, seed=None, options=None):
        return np.zeros((4, 84, 84), np.uint8), {}

    def step(self, action):
        return np.zeros((4, 84, 84), np.uint8), 0.0, True, False, {}


@pytest.mark.parametrize("algo", ["DQN", "PPO", "A2C"])
def test_sb3_zip_loads_safely_with_the_same_outputs(algo, tmp_path):
    import stable_baselines3 as sb3

    kwargs = {"buffer_size": 100, "learning_starts": 0} if algo == "DQN" else {"n_steps": 8}
    model = getattr(sb3, algo)("CnnPolicy", Frames(), seed=0, device="cpu", **kwargs)
    model.save(tmp_path / "m.zip")
    net, config = load_sb3(tmp_path / "m.zip")
    obs = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (3, 4, 84, 84), dtype=np.uint8)
    )
    heads = net(obs)
    with torch.no_grad():
        if algo == "DQN":
            torch.testing.assert_close(heads["q"], model.q_net(obs.float()))
        else:
            dist = model.policy.get_distribution(obs.float())
            # SB3's Categorical stores normalised logits (log-probabilities)
            torch.testing.assert_close(heads["logits"].log_softmax(-1), dist.distribution.logits)
            torch.testing.assert_close(
                heads["value"], model.policy.predict_values(obs.float()).squeeze(-1)
            )
    head = "q" if algo == "DQN" else "value"
    maps = jacobian_saliency(net, obs, head=head)
    assert maps.per_frame.shape == (3, 4, 84, 84) and maps.per_frame.sum() > 0


def test_unsupported_and_broken_zips(tmp_path):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=8, device="cpu")
    model.save(tmp_path / "mlp.zip")
    with pytest.raises(ValueError, match="unsupported SB3 policy 'ActorCriticPolicy'"):
        load_sb3(tmp_path / "mlp.zip")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a Stable-Baselines3 model zip"):
        load_sb3(tmp_path / "bad.zip")
    with pytest.raises(ValueError, match="not found"):
        load_sb3(tmp_path / "missing.zip")
