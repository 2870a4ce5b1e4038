"""Many environments as a few vector envs stepped in turn, so that acting overlaps emulation.

A trainer that steps one vector env waits for all of its games, then for its network, then for its
games again: on a GPU machine the cores idle while the network acts and the GPU idles while the
cores emulate. Split the envs into groups and send each group its actions as soon as they are
chosen (ALE's asynchronous ``send``/``recv``): the network then acts on one group while ALE's C++
threads emulate the others. ALE's vector env can also overlap on its own, as EnvPool's asynchronous
mode does (Weng et al. 2022, "EnvPool: A Highly Parallel Reinforcement Learning Environment
Execution Engine"): with ``batch_size < num_envs``, ``recv`` returns whichever games finish first.
That order depends on thread timing; the groups here come back in a fixed order, so a seeded run
stays reproducible.

Group ``g`` holds envs ``g * size`` to ``(g + 1) * size - 1`` and is seeded so that the games are
those of one vector env of ``num_envs`` (env ``i`` seeded with ``seed + i``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


class EnvGroups:
    """``envs``: vector envs of equal size, in the order of the envs they hold.

    ``send(g, actions)`` then ``recv(g)`` steps group ``g``; an env without ``send`` (Catch: numpy
    in the caller's thread, nothing to overlap) is stepped in ``recv``. ``reset`` and ``step`` act
    on all groups at once and merge what they return, as one vector env of ``num_envs`` would.
    """

    def __init__(self, envs: Sequence[Any]) -> None:
        sizes = {env.num_envs for env in envs}
        if not envs or len(sizes) != 1:
            raise ValueError(f"env groups must be one or more vector envs of one size, got sizes {sizes}")
        self.envs = list(envs)
        self.size = sizes.pop()
        self.num_envs = self.size * len(self.envs)
        self.slices = [slice(g * self.size, (g + 1) * self.size) for g in range(len(self.envs))]
        self.single_observation_space = self.envs[0].single_observation_space
        self.single_action_space = self.envs[0].single_action_space
        self._actions: list[np.ndarray | None] = [None] * len(self.envs)

    def __len__(self) -> int:
        return len(self.envs)

    def send(self, g: int, actions: np.ndarray) -> None:
        env = self.envs[g]
        if hasattr(env, "send"):
            env.send(actions)
        else:
            self._actions[g] = actions

    def recv(self, g: int) -> Step:
        env = self.envs[g]
        if hasattr(env, "recv"):
            return env.recv()
        actions, self._actions[g] = self._actions[g], None
        if actions is None:
            raise RuntimeError(f"recv({g}) without a send({g}) before it")
        return env.step(actions)

    def merge(self, steps: Sequence[Step]) -> Step:
        """One step of every group as one vector env's step (``env_id`` counts across groups)."""
        if len(steps) == 1:
            return steps[0]
        obs, rewards, terminated, truncated = (np.concatenate([s[i] for s in steps]) for i in range(4))
        return obs, rewards, terminated, truncated, self._merge_info([s[4] for s in steps])

    def _merge_info(self, infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
        merged = {key: np.concatenate([info[key] for info in infos]) for key in infos[0]}
        if "env_id" in merged:
            offsets = [info["env_id"] + s.start for info, s in zip(infos, self.slices, strict=True)]
            merged["env_id"] = np.concatenate(offsets)
        return merged

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every game; an integer seed seeds env ``i`` with ``seed + i`` across the groups."""
        outs = [env.reset(seed=None if seed is None else seed + s.start)
                for env, s in zip(self.envs, self.slices, strict=True)]  # fmt: skip
        if len(outs) == 1:
            return outs[0]
        return np.concatenate([o for o, _ in outs]), self._merge_info([i for _, i in outs])

    def step(self, actions: np.ndarray) -> Step:
        """Step every group (all sent before any is received) and merge the results."""
        for g, s in enumerate(self.slices):
            self.send(g, actions[s])
        return self.merge([self.recv(g) for g in range(len(self.envs))])

    def close(self) -> None:
        for env in self.envs:
            env.close()
