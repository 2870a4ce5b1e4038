"""Stable-Baselines3 models as networks with named heads, loaded without unpickling.

An SB3 ``.zip`` holds ``data`` (JSON in which some entries are cloudpickled: loading those runs
code from the file) and ``policy.pth`` (a state dict). :func:`load_sb3` reads only the readable
parts of ``data`` -- the policy class name, the observation shape and the number of actions -- builds
that policy with SB3's default architecture and loads ``policy.pth`` with ``torch.load(...,
weights_only=True)``, which refuses anything but tensors. What this cannot load, and says so: custom
``policy_kwargs`` (they are pickled), non-CNN policies, non-discrete action spaces. ``DQN.load``
would load those too, but only trust that on files you made yourself.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

SUPPORTED = {
    "CnnPolicy": "DQN (q)",
    "ActorCriticCnnPolicy": "PPO / A2C (logits, value)",
}


class SB3Heads(nn.Module):
    """Wraps an SB3 policy so that ``forward`` returns named heads like our networks.

    Input: uint8 (0-255) or float already divided by 255, as for our networks; SB3 divides by 255
    itself, so float input is scaled back first.
    """

    def __init__(self, policy: nn.Module, kind: str) -> None:
        super().__init__()
        self.policy, self.kind = policy, kind

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        x = obs.float() if obs.dtype == torch.uint8 else obs * 255.0
        if self.kind == "CnnPolicy":
            return {"q": self.policy.q_net(x)}
        features = self.policy.extract_features(x)
        if self.policy.share_features_extractor:
            latent_pi, latent_vf = self.policy.mlp_extractor(features)
        else:
            latent_pi = self.policy.mlp_extractor.forward_actor(features[0])
            latent_vf = self.policy.mlp_extractor.forward_critic(features[1])
        return {
            "logits": self.policy.action_net(latent_pi),
            "value": self.policy.value_net(latent_vf).squeeze(-1),
        }


def load_sb3(path: str | Path) -> tuple[SB3Heads, dict]:
    """Load an SB3 zip safely; returns (network with named heads, a config dict)."""
    from gymnasium import spaces

    path = Path(path)
    if not path.exists():
        raise ValueError(f"SB3 model not found: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; give the SB3 model's .zip file")
    try:
        with zipfile.ZipFile(path) as z:
            data = json.loads(z.read("data"))
            weights = z.read("policy.pth")
    except (zipfile.BadZipFile, KeyError, ValueError) as e:  # ValueError: JSON, encoding
        raise ValueError(f"{str(path)!r} is not a Stable-Baselines3 model zip: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} is not a Stable-Baselines3 model zip: its data is not a dict")
    policy_class = data.get("policy_class")
    init = str(policy_class.get("__init__", "")) if isinstance(policy_class, dict) else ""
    match = re.search(r"<function (\w+)\.__init__", init)
    name = match.group(1) if match else "?"
    if name not in SUPPORTED:
        raise ValueError(
            f"unsupported SB3 policy {name!r} in {str(path)!r}; supported: "
            + ", ".join(f"{k} ({v})" for k, v in SUPPORTED.items())
        )
    # optimizer settings (A2C stores RMSprop's) do not change the network; anything else might
    readable = {":type:", ":serialized:", "optimizer_class", "optimizer_kwargs"}
    custom = set(data.get("policy_kwargs") or {}) - readable
    if custom:
        raise ValueError(
            f"{str(path)!r} uses custom policy_kwargs ({', '.join(sorted(custom))}), which SB3 "
            "stores pickled; not loaded"
        )
    obs, act = data.get("observation_space"), data.get("action_space")
    if not isinstance(obs, dict) or "_shape" not in obs or not isinstance(act, dict):
        raise ValueError(f"{str(path)!r} does not record its observation and action spaces")
    if "n" not in act:
        raise ValueError(
            f"{str(path)!r} has a non-discrete action space; only Discrete is supported"
        )
    shape = tuple(obs["_shape"] if isinstance(obs["_shape"], list) else json.loads(obs["_shape"]))
    obs_space = spaces.Box(0, 255, shape, np.uint8)
    action_space = spaces.Discrete(int(act["n"]))
    if name == "CnnPolicy":
        from stable_baselines3.dqn.policies import CnnPolicy as policy_cls
    else:
        from stable_baselines3.common.policies import ActorCriticCnnPolicy as policy_cls
    policy = policy_cls(obs_space, action_space, lr_schedule=lambda _: 0.0)
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        policy.load_state_dict(state)
    except Exception:  # noqa: BLE001 - any failure here means: not loadable safely
        # torch's own message advises weights_only=False, which would run code from the file:
        # never pass that advice on
        raise ValueError(
            f"cannot load the weights in {str(path)!r} safely: policy.pth is not a plain state dict "
            f"of this policy's tensors"
        ) from None
    config = {"source": "sb3", "policy": name, "observation_shape": list(shape),
              "n_actions": action_space.n}  # fmt: skip
    return SB3Heads(policy.eval(), name), config
