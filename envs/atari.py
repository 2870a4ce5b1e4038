"""Atari environments with the DQN preprocessing: one Python env and the batched C++ vector env.

Both paths share the same options (:class:`envs.options.AtariOptions`) and produce byte-identical
observations, rewards and terminations for the same seed and actions when ``noop_max=0`` (the no-op
count is drawn from different random generators in C++ and here). The single env is written against
``ale_py.ALEInterface`` and follows the order of operations of ale-py's C++ ``PreprocessedEnv``
step by step, so that an agent trained on the vector env is evaluated and analysed on exactly the
observations it learned from; on top, it exposes the current RGB frame for drawing saliency.

Semantics that training code relies on (both paths):

* A reset observation stacks the first frame behind ``stack_num - 1`` zero frames.
* ``terminated`` is game over, or a life loss under ``episodic_life`` / ``life_loss_info``.
  With ``episodic_life`` the next reset starts a new game (ALE's behaviour); with
  ``life_loss_info`` the game simply goes on.
* ``truncated`` is the frame cap, and only when not terminated.
* The vector env auto-resets in gymnasium's NEXT_STEP mode: the ``step`` after an episode ended
  ignores that env's action and returns the reset observation with reward 0 and both flags False.
  That step is not a transition and must not be stored (see ``agents.qlearning.replay``).
"""

from __future__ import annotations

from typing import Any

import ale_py
import cv2
import gymnasium as gym
import numpy as np
from ale_py import roms
from ale_py.vector_env import AtariVectorEnv

from envs.games import resolve_game
from envs.options import AtariOptions

# ALE prints a banner to stderr on its first ROM load; errors still get through. Quiet stderr keeps
# a script's failure to one line.
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)

_NOOP = ale_py.Action.NOOP
_FIRE = ale_py.Action.FIRE


class AtariEnv(gym.Env[np.ndarray, np.int64]):
    """One preprocessed Atari game; see the module docstring for the exact semantics."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(
        self,
        game: str,
        *,
        seed: int | None = None,
        render_mode: str | None = None,
        **options: Any,
    ) -> None:
        self.game = resolve_game(game)
        self.options = AtariOptions.from_kwargs(**options)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        o = self.options
        self._rom = roms.get_rom_path(self.game)
        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setFloat("repeat_action_probability", float(o.repeat_action_probability))
        self._first_seed = seed
        self._load(seed if seed is not None else int(np.random.SeedSequence().entropy % 2**31))
        actions = (
            self.ale.getLegalActionSet() if o.full_action_space else self.ale.getMinimalActionSet()
        )
        self.action_set: list[ale_py.Action] = list(actions)
        self._fire_reset = o.use_fire_reset and _FIRE in self.action_set
        h, w = self.ale.getScreenDims()
        channels = () if o.grayscale else (3,)
        self._raw = [np.zeros((h, w, *channels), np.uint8) for _ in range(2)]
        self._ram = [np.zeros(128, np.uint8) for _ in range(2)]  # the RAM of each _raw frame
        self._screens: list[np.ndarray] | None = None  # and its RGB screen, once recorded
        self._pooled = 1  # how many of them the newest observation frame pooled
        self._stack = np.zeros((o.stack_num, o.img_height, o.img_width, *channels), np.uint8)
        self._stack_idx = 0
        self.observation_space = gym.spaces.Box(0, 255, self._stack.shape, np.uint8)
        self.action_space = gym.spaces.Discrete(len(self.action_set))
        self._elapsed = o.max_num_frames_per_episode + 1
        self._lives = 0

    def _load(self, seed: int) -> None:
        self.ale.setInt("random_seed", int(seed))
        self.ale.loadROM(self._rom)
        self._noop_rng = np.random.default_rng(seed)

    def _grab(self, buffer: np.ndarray) -> None:
        if self.options.grayscale:
            self.ale.getScreenGrayscale(buffer)
        else:
            self.ale.getScreenRGB(buffer)

    def _remember(self, slot: int) -> None:
        """Keep what analysis reads of raw frame ``slot``: its RAM, and its screen if recorded."""
        self._ram[slot][:] = self.ale.getRAM()
        if self._screens is not None:
            self.ale.getScreenRGB(self._screens[slot])

    def _push_frame(self) -> None:
        o = self.options
        frame = self._raw[0]
        if o.maxpool:
            np.maximum(frame, self._raw[1], out=frame)
        if frame.shape[:2] != (o.img_height, o.img_width):
            frame = cv2.resize(frame, (o.img_width, o.img_height), interpolation=cv2.INTER_AREA)
        self._stack[self._stack_idx] = frame
        self._stack_idx = (self._stack_idx + 1) % o.stack_num

    def _observation(self) -> np.ndarray:
        return np.roll(self._stack, -self._stack_idx, axis=0)

    def _info(self) -> dict[str, Any]:
        return {
            "lives": self._lives,
            "frame_number": self.ale.getFrameNumber(),
            "episode_frame_number": self.ale.getEpisodeFrameNumber(),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is None and self._first_seed is not None:
            seed, self._first_seed = self._first_seed, None
        if seed is not None:
            self._load(seed)
        self._first_seed = None
        self.ale.reset_game()
        if self._fire_reset:
            self.ale.act(_FIRE)
        noop_max = self.options.noop_max
        noops = int(self._noop_rng.integers(0, noop_max)) if noop_max > 0 else 0
        for _ in range(noops - int(self._fire_reset)):
            self.ale.act(_NOOP)
            if self.ale.game_over():
                self.ale.reset_game()
        self._stack[:] = 0
        self._stack_idx = 0
        self._grab(self._raw[0])
        self._remember(0)
        self._raw[1][:] = 0
        self._pooled = 1
        self._push_frame()
        self._elapsed = 0
        self._lives = self.ale.lives()
        return self._observation(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not 0 <= int(action) < len(self.action_set):
            raise ValueError(f"action must be in [0, {len(self.action_set) - 1}], got {action}")
        o = self.options
        ale_action = self.action_set[int(action)]
        reward = 0
        game_over = life_lost = False
        for skip in range(o.frameskip, 0, -1):
            reward += self.ale.act(ale_action)
            game_over = self.ale.game_over()
            self._elapsed += 1
            lives = self.ale.lives()
            life_lost = 0 < lives < self._lives
            if (
                game_over
                or self._elapsed >= o.max_num_frames_per_episode
                or (o.episodic_life and life_lost)
            ):
                break
            if skip <= 2:
                self._grab(self._raw[skip - 1])
                self._remember(skip - 1)
        self._pooled = 2 if self.options.maxpool else 1
        self._push_frame()
        self._lives = self.ale.lives()
        if o.reward_clipping:
            reward = max(-1, min(1, reward))
        terminated = game_over or ((o.life_loss_info or o.episodic_life) and life_lost)
        truncated = self._elapsed >= o.max_num_frames_per_episode and not terminated
        return self._observation(), float(reward), terminated, truncated, self._info()

    def pooled_ram(self) -> list[np.ndarray]:
        """The RAM at each frame that the newest observation frame was made of (the last frame,
        and with ``maxpool`` the one before it), so that what is read from RAM
        (:mod:`analysis.objects`) matches what the observation shows."""
        return [r.copy() for r in self._ram[: self._pooled]]

    def record_screens(self) -> None:
        """Keep the RGB screen of each pooled frame from the next reset on, for
        :meth:`pooled_screens` (off by default: two screen copies a step that only analysis uses)."""
        if self._screens is None:
            h, w = self.ale.getScreenDims()
            self._screens = [np.zeros((h, w, 3), np.uint8) for _ in range(2)]

    def pooled_screens(self) -> list[np.ndarray]:
        """The RGB screens of the frames the newest observation frame pooled, newest first (as
        :meth:`pooled_ram`), for objects found on the screen rather than in RAM."""
        if self._screens is None:
            raise RuntimeError("pooled_screens needs record_screens() before the episode's reset")
        return [s.copy() for s in self._screens[: self._pooled]]

    def rgb_frame(self) -> np.ndarray:
        """The current 210x160x3 game screen, on which analysis draws saliency."""
        return self.ale.getScreenRGB()

    def render(self) -> np.ndarray | None:
        return self.rgb_frame() if self.render_mode == "rgb_array" else None

    def get_action_meanings(self) -> list[str]:
        return [a.name for a in self.action_set]


def episode_ended(
    terminated: np.ndarray, truncated: np.ndarray, lives: np.ndarray, options: AtariOptions
) -> np.ndarray:
    """Which envs end their episode on this step, so that the next vector ``step`` is a reset step.

    ``terminated`` alone is not enough under ``life_loss_info``: a life loss then sets it while the
    game goes on (no reset follows); a life loss leaves lives > 0, a game over leaves 0.
    """
    terminated, truncated = np.asarray(terminated), np.asarray(truncated)
    if options.life_loss_info and not options.episodic_life:
        terminated = terminated & (np.asarray(lives) == 0)
    return terminated | truncated


class FireAfterLifeLoss:
    """Presses FIRE for an agent on the step after each life it loses while the game goes on. One
    rule for the glimpse trainer (``--fire-after-life-loss``) and for whatever plays its checkpoints,
    so that they play the game the agent learnt. Off, it passes the actions through."""

    def __init__(self, on: bool, fire: int, info: dict[str, Any]) -> None:
        self.on, self.fire = on, fire
        self.lives = np.asarray(info.get("lives", 0))
        self.forced = np.zeros(self.lives.shape, bool)  # envs whose next step is FIRE, not the agent's

    @classmethod
    def for_checkpoint(cls, config: dict[str, Any], info: dict[str, Any]) -> FireAfterLifeLoss:
        """On when the checkpoint's training pressed FIRE so (its ``fire_after_life_loss``)."""
        on = bool(config.get("train_config", {}).get("fire_after_life_loss", False))
        return cls(on, config["action_set"].index("FIRE") if on else -1, info)

    def actions(self, actions: np.ndarray) -> np.ndarray:
        return np.where(self.forced, self.fire, actions) if self.on else actions

    def observe(self, info: dict[str, Any], game_over: np.ndarray) -> None:
        """After a step: which envs lost a life at it while their game goes on (``game_over``: the
        game ended or was cut, whatever an episode is to the env)."""
        if self.on:
            lives = np.asarray(info["lives"])
            self.forced = (lives < self.lives) & ~np.asarray(game_over)
            self.lives = lives


def make_atari_env(game: str, *, seed: int | None = None, **options: Any) -> AtariEnv:
    """One Atari env with the standard DQN preprocessing; options as ``AtariVectorEnv`` names them.

    ``seed`` seeds the emulator (sticky actions) and the no-op draw at the first ``reset()``.
    """
    return AtariEnv(game, seed=seed, **options)


class SeededAtariVectorEnv(AtariVectorEnv):
    """``AtariVectorEnv`` that remembers a seed for its first reset, like :class:`AtariEnv`.

    Sub-environment ``i`` is seeded with ``seed + i``: env 0 matches ``make_atari_env(seed=seed)``.
    """

    def __init__(self, game: str, num_envs: int, *, seed: int | None, **kwargs: Any) -> None:
        super().__init__(game, num_envs, **kwargs)
        self.game = game
        self._first_seed = seed

    def reset(
        self, *, seed: int | np.ndarray | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if seed is None and self._first_seed is not None:
            seed = self._first_seed
        self._first_seed = None
        return super().reset(seed=seed, options=options)

    def send(self, actions: np.ndarray) -> None:
        """Check the actions, then send them: ALE's C++ threads wait forever (deaf to Ctrl-C) on an
        action outside the game's set instead of failing."""
        arr = np.asarray(actions)
        n = int(self.single_action_space.n)
        if (arr.shape != (self.num_envs,) or not np.issubdtype(arr.dtype, np.integer)
                or (arr.size and (arr.min() < 0 or arr.max() >= n))):  # fmt: skip
            raise ValueError(
                f"actions must be {self.num_envs} integers in [0, {n - 1}], got {arr.tolist()}"
            )
        super().send(arr.astype(np.int64, copy=False))


AUTORESET_MODES = {"next_step": "NextStep", "same_step": "SameStep"}


def make_vector_env(
    game: str,
    num_envs: int,
    *,
    seed: int | None = None,
    num_threads: int = 0,
    autoreset: str = "next_step",
    **options: Any,
) -> SeededAtariVectorEnv:
    """``num_envs`` games stepped by ale-py's C++ thread pool: the fast path for training.

    Same options and defaults as :func:`make_atari_env`. ``autoreset`` is gymnasium's NEXT_STEP mode
    by default (see the module docstring); ``"same_step"`` resets within the step that ended an
    episode and puts the last observation in ``info["final_obs"]`` (what SB3's ``VecEnv`` API needs,
    see ``envs.sb3``). ``num_threads=0`` lets ALE pick (one per core, at most num_envs).
    """
    if autoreset not in AUTORESET_MODES:
        raise ValueError(f"autoreset must be next_step or same_step, got {autoreset!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(f"num_threads must be an integer >= 0, got {num_threads!r}")
    rom = resolve_game(game)
    opts = AtariOptions.from_kwargs(**options)
    return SeededAtariVectorEnv(rom, num_envs, seed=seed, num_threads=num_threads,
                                autoreset_mode=AUTORESET_MODES[autoreset], **opts.as_dict())  # fmt: skip
