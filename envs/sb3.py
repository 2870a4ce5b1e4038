"""Our Atari pipeline as a Stable-Baselines3 ``VecEnv``: SB3's algorithms on ALE's C++ vector env.

SB3's own Atari pipeline (``make_atari_env`` + ``VecFrameStack``) steps one Python env per game in a
loop; this one steps all games in ale-py's thread pool, with the preprocessing that our trainers,
``evaluate.py`` and the saliency tools use, so an SB3 model trained here is analysed on exactly
what it learned from (``record_saliency.py --checkpoint model.zip --game GAME``).

What SB3 expects of a ``VecEnv``, and how it is met:

* Same-step autoreset: the step that ends an episode returns the next episode's first observation,
  and the last one in ``info["terminal_observation"]`` (ALE's SAME_STEP mode does the reset).
* ``info["episode"] = {"r", "l", "t"}`` at the end of each game, as ``Monitor`` gives it: the
  unclipped score, the length in agent steps (SB3's Monitor sits under the frame skip and counts
  emulator frames, about 4 times as many), and the seconds since the env was made. Under
  ``life_loss_info`` a life loss ends SB3's episode (``done``) but the game goes on, and no
  ``episode`` entry is written until the game is over, as with SB3's ``EpisodicLifeEnv`` above
  ``Monitor``. ``env_is_wrapped(Monitor)`` says True for that reason, so ``evaluate_policy`` scores
  whole games.
* Rewards are clipped to their sign when ``reward_clipping`` (the default, as in SB3's
  ``AtariWrapper``); the emulator itself runs unclipped so that ``episode`` holds the real score.
* Observations are channel-first ``(stack, 84, 84)`` uint8, which SB3's CNN policies take without
  ``VecTransposeImage``.
* ``seed(s)`` seeds env ``i`` with ``s + i`` at the next ``reset()``, like SB3's own ``VecEnv``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from envs.atari import make_vector_env
from envs.options import AtariOptions

RENDER_MODES = (None, "rgb_array")


class AtariSB3VecEnv(VecEnv):
    """``num_envs`` Atari games behind SB3's ``VecEnv`` interface (see the module docstring)."""

    def __init__(self, game: str, num_envs: int, seed: int | None = None,
                 render_mode: str | None = None, **options: Any) -> None:  # fmt: skip
        if render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.options = AtariOptions.from_kwargs(**options)
        self._render_mode = render_mode
        emulator = {**self.options.as_dict(), "reward_clipping": False}
        self.venv = make_vector_env(game, num_envs, seed=seed, autoreset="same_step", **emulator)
        self.game = self.venv.game
        super().__init__(num_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._obs = np.zeros((num_envs, *self.observation_space.shape), np.uint8)
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, np.int64)
        self._lives = np.zeros(num_envs, np.int64)
        self._t0 = time.perf_counter()
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        """Start a new game in every env (seeded if ``seed`` was called since the last reset)."""
        seed = self._seeds[0] if self._seeds[0] is not None else None
        obs, info = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self._obs[:] = obs
        self._returns[:], self._lengths[:] = 0.0, 0
        self._lives[:] = info["lives"]
        self.reset_infos = [{"lives": int(n)} for n in info["lives"]]
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Hand the actions to ALE's threads at once: they emulate while the caller goes on."""
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)
        self.venv.send(self._actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.venv.recv()
        self._actions = None
        lives = info["lives"]
        self._returns += rewards
        self._lengths += 1
        # under life_loss_info a life loss terminates while the game goes on (lives went down); a
        # game over resets at once, so its lives read full again
        life_lost = self.options.life_loss_info & (lives < self._lives)
        game_over = truncated | (terminated & ~life_lost)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{"lives": int(n)} for n in lives]
        for i in np.flatnonzero(dones):
            last = info["final_obs"][i] if game_over[i] else obs[i]
            infos[i]["terminal_observation"] = last.copy()
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        for i in np.flatnonzero(game_over):
            infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i]),
                                   "t": round(time.perf_counter() - self._t0, 6)}  # fmt: skip
            self._returns[i], self._lengths[i] = 0.0, 0
        self._lives[:] = lives
        self._obs[:] = obs
        out = np.sign(rewards) if self.options.reward_clipping else rewards
        return self._obs.copy(), out.astype(np.float32), dones, infos

    def close(self) -> None:
        if self._actions is not None:  # ALE's threads must be collected before they are stopped
            self.venv.recv()
            self._actions = None
        self.venv.close()

    # ---- what SB3 asks of sub-environments ----------------------------------------------------
    def _attributes(self) -> dict[str, Any]:
        return {"render_mode": self._render_mode, "game": self.game, "spec": None,
                **self.options.as_dict()}  # fmt: skip

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The env-wide attributes (``render_mode``, ``game`` and the Atari options) and
        ``lives``, per env; the games share one emulator object, so there is nothing else."""
        idx = list(self._get_indices(indices))
        if attr_name == "lives":
            return [int(self._lives[i]) for i in idx]
        attrs = self._attributes()
        if attr_name not in attrs:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {attr_name!r}; it has lives, "
                + ", ".join(attrs)
            )
        return [attrs[attr_name]] * len(idx)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(
            f"cannot set {attr_name!r}: the games run in one C++ emulator whose options are fixed "
            "when it is made; make a new env with the options you want"
        )

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:  # fmt: skip
        """``get_action_meanings`` (the game's action names), the one method SB3 users call on
        Atari envs; the games are not separate Python objects, so there is nothing else to call."""
        if method_name != "get_action_meanings":
            raise AttributeError(
                f"{type(self).__name__} has no per-env method {method_name!r}; only "
                "get_action_meanings"
            )
        from envs.atari import make_atari_env

        names = make_atari_env(
            self.game, full_action_space=self.options.full_action_space
        ).get_action_meanings()
        return [list(names) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper],
                       indices: VecEnvIndices = None) -> list[bool]:  # fmt: skip
        """True for ``Monitor`` alone: its ``episode`` infos are written here."""
        return [wrapper_class is Monitor for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """Each env's newest preprocessed frame as RGB: ALE's vector emulator exposes only the
        frames it preprocessed, not the 210x160 screen (``envs.make_atari_env`` renders that)."""
        frames = self._obs[:, -1]
        if self.options.grayscale:
            frames = np.repeat(frames[..., None], 3, axis=-1)
        return list(frames)


def sb3_vec_env(game: str, num_envs: int = 8, seed: int | None = None,
                **options: Any) -> AtariSB3VecEnv:  # fmt: skip
    """An SB3 ``VecEnv`` of ``num_envs`` preprocessed Atari games (options as ``make_atari_env``
    names them, plus ``render_mode``); see ``envs.sb3`` for the semantics."""
    return AtariSB3VecEnv(game, num_envs, seed=seed, **options)
