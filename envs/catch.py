"""Catch, the game Mnih et al. 2014 ("Recurrent Models of Visual Attention", Section 4.2) taught
their glimpse agent: a ball falls from the top row, bouncing off the side walls, and a paddle on the
bottom row must be under it when it lands.

Rules, on a ``size`` x ``size`` binary screen (24 in the paper):

* Reset: the ball appears in a uniformly random column of the top row with a random horizontal
  direction (-1 or +1); the paddle, ``paddle_width`` pixels wide (2 in the paper), is centred:
  its left end is at column ``(size - paddle_width) // 2``.
* Step: actions 0, 1, 2 move the paddle left, keep it, move it right (clamped to the screen).
  With probability ``turn_prob`` (0 in the paper) the ball reverses its horizontal direction; then
  it moves one row down and one column sideways; if that column would leave the screen it reverses
  its direction first (a bounce). With turns, where the ball lands cannot be read from a few early
  frames: an agent that sees a part of the screen has to keep the ball in view. A 3-pixel paddle
  kept under the ball's column catches it whatever the turns (the ball moves one column a step),
  so with turns and ``paddle_width=3`` catching depends on watching the ball to the end.
* When the ball reaches the bottom row the episode ends: reward 1 if it lands on the paddle, else
  ``miss_reward`` (0 as in the paper; -1 is a common option). An episode is ``size - 1`` steps.

Observations are ``(stack_num, size, size)`` uint8 frames in {0, 255}, stacked like the Atari envs
(zero frames behind the first one after reset). One frame hides the ball's direction: a recurrent
agent remembers it, a feed-forward one needs ``stack_num >= 2``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

NUM_ACTIONS = 3


def catch_options(env_options: dict[str, Any]) -> dict[str, Any]:
    """The Catch options a checkpoint's ``env_options`` record, as keyword arguments of
    :class:`CatchEnv` and :class:`CatchVectorEnv`; checkpoints from before an option existed get
    the paper's game (24x24, no turns)."""
    return {"size": env_options.get("size", 24), "stack_num": env_options.get("stack_num", 1),
            "turn_prob": env_options.get("turn_prob", 0.0),
            "paddle_width": env_options.get("paddle_width", 2)}  # fmt: skip


class _CatchBatch:
    """The dynamics of ``n`` Catch games as numpy arrays; one random generator per game."""

    def __init__(self, n: int, size: int, stack_num: int, miss_reward: float,
                 turn_prob: float = 0.0, paddle_width: int = 2) -> None:  # fmt: skip
        if isinstance(size, bool) or not isinstance(size, int) or size < 4:
            raise ValueError(f"size must be an integer >= 4, got {size!r}")
        if (isinstance(paddle_width, bool) or not isinstance(paddle_width, int)
                or not 1 <= paddle_width <= size // 2):  # fmt: skip
            raise ValueError(f"paddle_width must be an integer in [1, size // 2 = {size // 2}], "
                             f"got {paddle_width!r}")  # fmt: skip
        self.paddle_width = paddle_width
        if isinstance(turn_prob, bool) or not 0.0 <= turn_prob <= 1.0:
            raise ValueError(f"turn_prob must be a probability in [0, 1], got {turn_prob!r}")
        self.turn_prob = float(turn_prob)
        if isinstance(stack_num, bool) or not isinstance(stack_num, int) or stack_num < 1:
            raise ValueError(f"stack_num must be an integer >= 1, got {stack_num!r}")
        self.n, self.size, self.stack_num, self.miss_reward = n, size, stack_num, float(miss_reward)
        self.ball_row = np.zeros(n, np.int64)
        self.ball_col = np.zeros(n, np.int64)
        self.ball_dx = np.ones(n, np.int64)
        self.paddle = np.zeros(n, np.int64)
        self.stack = np.zeros((n, stack_num, size, size), np.uint8)
        self.rngs = [np.random.default_rng() for _ in range(n)]

    def seed(self, seed: int | None) -> None:
        ss = np.random.SeedSequence() if seed is None else None
        self.rngs = [
            np.random.default_rng(ss.spawn(1)[0] if ss is not None else seed + i)
            for i in range(self.n)
        ]

    def reset(self, idx: np.ndarray) -> None:
        for i in idx:
            self.ball_col[i] = self.rngs[i].integers(0, self.size)
            self.ball_dx[i] = 1 if self.rngs[i].integers(0, 2) else -1
        self.ball_row[idx] = 0
        self.paddle[idx] = (self.size - self.paddle_width) // 2
        self.stack[idx] = 0
        self._draw(idx)

    def step(self, actions: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the games ``idx`` one step; returns their (rewards, terminated)."""
        last = self.size - 1
        width = self.paddle_width
        self.paddle[idx] = np.clip(self.paddle[idx] + actions[idx] - 1, 0, self.size - width)
        col, dx = self.ball_col[idx], self.ball_dx[idx]
        if self.turn_prob > 0:  # drawn only then: games without turns keep the paper's sequences
            turns = np.array([self.rngs[i].random() < self.turn_prob for i in idx], bool)
            dx = np.where(turns, -dx, dx)
        dx = np.where((col + dx < 0) | (col + dx > last), -dx, dx)
        self.ball_dx[idx], self.ball_col[idx] = dx, col + dx
        self.ball_row[idx] += 1
        done = self.ball_row[idx] >= last
        paddle, col = self.paddle[idx], self.ball_col[idx]
        caught = (col >= paddle) & (col < paddle + width)
        rewards = np.where(done, np.where(caught, 1.0, self.miss_reward), 0.0).astype(np.float32)
        self._draw(idx)
        return rewards, done

    def _draw(self, idx: np.ndarray) -> None:
        self.stack[idx, :-1] = self.stack[idx, 1:]
        frame = np.zeros((len(idx), self.size, self.size), np.uint8)
        rows = np.arange(len(idx))
        for offset in range(self.paddle_width):
            frame[rows, self.size - 1, self.paddle[idx] + offset] = 255
        frame[rows, self.ball_row[idx], self.ball_col[idx]] = 255
        self.stack[idx, -1] = frame

    def observation_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, (self.stack_num, self.size, self.size), np.uint8)


class CatchEnv(gym.Env[np.ndarray, np.int64]):
    """One Catch game (``gymnasium.make("Catch-v0")`` after ``import envs``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        size: int = 24,
        stack_num: int = 1,
        miss_reward: float = 0.0,
        render_mode: str | None = None,
        turn_prob: float = 0.0,
        paddle_width: int = 2,
    ) -> None:
        self._game = _CatchBatch(1, size, stack_num, miss_reward, turn_prob, paddle_width)
        self.observation_space = self._game.observation_space()
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.render_mode = render_mode
        self._over = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._game.seed(seed)
        self._game.reset(np.array([0]))
        self._over = False
        return self._game.stack[0].copy(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._over:
            raise RuntimeError("Catch episode is over: call reset() before step()")
        if not 0 <= int(action) < NUM_ACTIONS:
            raise ValueError(f"action must be 0 (left), 1 (stay) or 2 (right), got {action}")
        rewards, done = self._game.step(np.array([int(action)]), np.array([0]))
        self._over = bool(done[0])
        return self._game.stack[0].copy(), float(rewards[0]), self._over, False, {}

    def render(self) -> np.ndarray | None:
        return self.rgb_frame() if self.render_mode == "rgb_array" else None

    def pooled_ram(self) -> list[np.ndarray]:
        """The game's state as the Atari envs give their RAM, for :mod:`analysis.objects` to read
        the objects from: ball row and column, paddle column and width, screen size (one frame:
        Catch pools none)."""
        g = self._game
        return [np.array([g.ball_row[0], g.ball_col[0], g.paddle[0], g.paddle_width, g.size], np.int64)]

    def rgb_frame(self) -> np.ndarray:
        """The current screen as RGB, for drawing glimpses and saliency on."""
        return np.repeat(self._game.stack[0, -1][..., None], 3, axis=2)


class CatchVectorEnv(VectorEnv):
    """``num_envs`` Catch games stepped together in numpy; NEXT_STEP autoreset like ALE's."""

    def __init__(
        self,
        num_envs: int,
        *,
        size: int = 24,
        stack_num: int = 1,
        miss_reward: float = 0.0,
        seed: int | None = None,
        turn_prob: float = 0.0,
        paddle_width: int = 2,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self._game = _CatchBatch(num_envs, size, stack_num, miss_reward, turn_prob, paddle_width)
        self.num_envs, self.size = num_envs, size
        self.single_observation_space = self._game.observation_space()
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}
        self._first_seed = seed
        self._needs_reset = np.zeros(num_envs, bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:
            seed, self._first_seed = self._first_seed, None
        if seed is not None:
            self._game.seed(seed)
        self._game.reset(np.arange(self.num_envs))
        self._needs_reset[:] = False
        return self._game.stack.copy(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.num_envs,) or actions.min() < 0 or actions.max() >= NUM_ACTIONS:
            raise ValueError(
                f"actions must be {self.num_envs} integers in [0, {NUM_ACTIONS - 1}], got {actions}"
            )
        rewards = np.zeros(self.num_envs, np.float32)
        done = np.zeros(self.num_envs, bool)
        active = np.flatnonzero(~self._needs_reset)
        rewards[active], done[active] = self._game.step(actions, active)
        self._game.reset(np.flatnonzero(self._needs_reset))
        self._needs_reset = done.copy()
        truncated = np.zeros(self.num_envs, bool)
        return self._game.stack.copy(), rewards, done, truncated, {}

    def get_state(self) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        """Everything the games are made of: (arrays, JSON-ready generator states). A trainer
        saves it with a checkpoint so that a resumed run continues these very episodes."""
        g = self._game
        arrays = {"ball_row": g.ball_row, "ball_col": g.ball_col, "ball_dx": g.ball_dx,
                  "paddle": g.paddle, "stack": g.stack, "needs_reset": self._needs_reset}  # fmt: skip
        return {k: v.copy() for k, v in arrays.items()}, [r.bit_generator.state for r in g.rngs]

    def set_state(self, arrays: dict[str, np.ndarray], rngs: list[dict[str, Any]]) -> None:
        """Restore what :meth:`get_state` returned (for envs of the same number and size)."""
        g = self._game
        if len(rngs) != self.num_envs or arrays["stack"].shape != g.stack.shape:
            raise ValueError(
                f"saved Catch state is for {len(rngs)} envs of shape {arrays['stack'].shape[1:]}, "
                f"not {self.num_envs} of {g.stack.shape[1:]}"
            )
        for name in ("ball_row", "ball_col", "ball_dx", "paddle", "stack"):
            getattr(g, name)[...] = arrays[name]
        self._needs_reset = np.asarray(arrays["needs_reset"], bool).copy()
        for rng, state in zip(g.rngs, rngs, strict=True):
            rng.bit_generator.state = state
        self._first_seed = None


def scripted_catch_rate(watch_steps: int | None = None, episodes: int = 2000, seed: int = 0,
                        **game: Any) -> float:  # fmt: skip
    """Fraction of episodes a scripted player catches that sees the whole screen for the first
    ``watch_steps`` steps (all of them if None) and after that extrapolates the last ball it saw
    (bounces, no turns). The reference for what watching the ball to the end is worth in a game
    (``game``: :class:`CatchVectorEnv`'s options), whatever an agent learns.

    The player centres its paddle under where it expects the ball: the current column with a
    paddle of 3 or more pixels (either next column is then covered, so turns cannot beat it), the
    next column without a turn with a narrower one."""
    env = CatchVectorEnv(episodes, seed=seed, **game)
    env.reset()
    g, last = env._game, env.size - 1
    col, dx = g.ball_col.copy(), g.ball_dx.copy()
    caught = np.zeros(episodes, bool)
    for t in range(last):
        if watch_steps is None or t < watch_steps:
            col, dx = g.ball_col.copy(), g.ball_dx.copy()
        step = np.where((col + dx < 0) | (col + dx > last), -dx, dx)
        aim = col if g.paddle_width >= 3 else col + step
        centre = g.paddle + (g.paddle_width - 1) / 2
        actions = np.where(centre > aim + 0.5, 0, np.where(centre < aim - 0.5, 2, 1))
        _, reward, *_ = env.step(actions)
        caught |= reward > 0
        col, dx = col + step, step  # the belief moves with the ball it cannot see
    return float(caught.mean())


gym.register("Catch-v0", entry_point="envs.catch:CatchEnv", vector_entry_point=CatchVectorEnv)
