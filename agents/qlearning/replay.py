"""Replay memory that stores each 84x84 frame once and rebuilds the stacks at sample time.

Design (after Dopamine's circular replay buffer). A stacked observation repeats each frame
``stack_num`` times, and ``(s, s')`` pairs store everything twice more: SB3's ReplayBuffer spends
56.5 KB on one Atari transition. Here every slot holds one *state*: its newest frame (7,056 bytes),
the action taken from it, the reward, a terminal flag, a flag that marks an episode's first frame,
and whether the slot is a sampleable transition, about 7.07 KB all told (8 more bytes with
prioritized replay). The state at slot ``t`` is rebuilt from slots ``t-3 .. t`` with the frames
before its episode's first one zeroed, exactly as the environment pads a reset stack; its successor
is slot ``t+1``.

Each vector env owns a contiguous segment of ``capacity // num_envs`` slots, so a stack never mixes
envs. The final observation of an episode is written to a slot of its own that never becomes a
transition; the next episode starts in the slot after it. Slots whose frame history was overwritten
by the circular write (the ``stack_num - 1`` oldest of a segment) are not sampled.

n-step returns (Sutton and Barto, Ch. 7; Hessel et al. 2018 use n=3) sum up to ``n`` rewards and stop
early at a terminal (done) or where the stream has no successor yet / was truncated, bootstrapping
with ``gamma**k`` after ``k`` rewards. Prioritized replay follows Schaul et al. 2016 (proportional
variant, sum tree, priorities ``(|delta| + eps)**alpha``, importance weights ``(N P)**-beta``
normalised by their maximum).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np


class Batch(NamedTuple):
    obs: np.ndarray  # (B, stack, H, W) uint8
    actions: np.ndarray  # (B,) int64
    returns: np.ndarray  # (B,) float32: sum_{j<k} gamma^j r_{t+j}
    next_obs: np.ndarray  # (B, stack, H, W) uint8: the state after k steps
    dones: np.ndarray  # (B,) float32: 1 where the k steps reached a terminal
    discounts: np.ndarray  # (B,) float32: gamma^k
    weights: np.ndarray  # (B,) float32: importance-sampling weights (ones when uniform)
    indices: np.ndarray  # (B,) int64: global slot ids, for update_priorities


class SumTree:
    """Binary tree of partial sums over ``capacity`` leaves; batched update and prefix-sum search."""

    def __init__(self, capacity: int) -> None:
        self.size = 1 << max(0, int(capacity - 1).bit_length())
        self.tree = np.zeros(2 * self.size, np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(leaves, np.int64) + self.size
        self.tree[nodes] = values
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """For each prefix sum in [0, total), the leaf whose cumulative range contains it."""
        nodes = np.ones(len(prefix), np.int64)
        prefix = np.asarray(prefix, np.float64).copy()
        while nodes[0] < self.size:
            left = 2 * nodes
            go_right = prefix >= self.tree[left]
            prefix -= np.where(go_right, self.tree[left], 0.0)
            nodes = left + go_right
        return nodes - self.size

    def leaves(self, leaves: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(leaves, np.int64) + self.size]


class FrameReplayBuffer:
    """Replay memory fed with the vector env's stream; see the module docstring for the layout.

    Use: ``reset(obs)`` after ``env.reset()``; after each ``env.step``,
    ``add(actions, rewards, terminated, next_obs, reset_step)`` where ``reset_step``
    marks the envs whose step was the NEXT_STEP auto-reset (their ``next_obs`` starts an episode).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int = 1,
        *,
        frame_shape: tuple[int, int] = (84, 84),
        stack_num: int = 4,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        alpha: float = 0.6,
        priority_eps: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if capacity // num_envs < stack_num + n_step + 1:
            raise ValueError(
                f"capacity {capacity} is too small for {num_envs} envs: each env needs at least "
                f"stack_num + n_step + 1 = {stack_num + n_step + 1} slots"
            )
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.num_envs, self.seg = num_envs, capacity // num_envs
        self.capacity = self.seg * num_envs
        self.stack_num, self.n_step, self.gamma = stack_num, n_step, gamma
        self.frames = np.zeros((num_envs, self.seg, *frame_shape), np.uint8)
        self.actions = np.zeros((num_envs, self.seg), np.uint8)
        self.rewards = np.zeros((num_envs, self.seg), np.float32)
        self.terminal = np.zeros((num_envs, self.seg), bool)
        self.first = np.zeros((num_envs, self.seg), bool)
        self.valid = np.zeros((num_envs, self.seg), bool)
        self.pos = np.zeros(num_envs, np.int64)  # next slot to write, per env
        self.written = np.zeros(num_envs, np.int64)  # slots written so far, per env (saturates)
        self.prioritized, self.alpha, self.priority_eps = prioritized, alpha, priority_eps
        self.tree = SumTree(self.capacity) if prioritized else None
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    # ---- memory accounting ------------------------------------------------------------------
    def nbytes(self) -> int:
        """Bytes of every array this memory allocated (what a transition really costs)."""
        arrays = [self.frames, self.actions, self.rewards, self.terminal, self.first, self.valid]
        total = sum(a.nbytes for a in arrays) + self.pos.nbytes + self.written.nbytes
        return total + (self.tree.tree.nbytes if self.tree is not None else 0)

    def __len__(self) -> int:
        return int(self.valid.sum())

    # ---- saving -------------------------------------------------------------------------------
    ARRAYS = ("frames", "actions", "rewards", "terminal", "first", "valid", "pos", "written")

    def state(self) -> dict[str, Any]:
        """JSON-ready state, small enough for every checkpoint: the sampling generator and the
        largest priority, so that a resume samples as the uninterrupted run would."""
        return {"rng": self.rng.bit_generator.state, "max_priority": self.max_priority}

    def arrays(self) -> dict[str, np.ndarray]:
        """The memory itself (an ``.npz`` beside a checkpoint; gigabytes on Atari)."""
        arrays = {k: getattr(self, k) for k in self.ARRAYS}
        if self.tree is not None:
            arrays["tree"] = self.tree.tree
        return arrays

    def load(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray] | None = None) -> None:
        """Restore :meth:`state` and, when given, :meth:`arrays`; arrays of another shape (a
        memory of another size or game) are refused by name before anything is overwritten."""
        if arrays is not None:
            for k in self.ARRAYS:
                if arrays[k].shape != getattr(self, k).shape:
                    raise ValueError(f"saved replay field {k} has shape {arrays[k].shape}, "
                                     f"expected {getattr(self, k).shape}")  # fmt: skip
            for k in self.ARRAYS:
                getattr(self, k)[...] = arrays[k]
            if self.tree is not None and "tree" in arrays:
                self.tree.tree[...] = arrays["tree"]
        self.rng.bit_generator.state = state["rng"]
        self.max_priority = state["max_priority"]

    # ---- writing ----------------------------------------------------------------------------
    def _write_states(self, envs: np.ndarray, frames: np.ndarray, first: bool) -> None:
        slots = self.pos[envs]
        self.frames[envs, slots] = frames
        self.first[envs, slots] = first
        self.terminal[envs, slots] = False
        self._set_valid(envs, slots, False)
        # the oldest stack_num - 1 slots lost the frames their stacks need: never sample them
        for k in range(1, self.stack_num):
            old = (slots + k) % self.seg
            self._set_valid(envs, old, False)
        self.pos[envs] = (slots + 1) % self.seg
        self.written[envs] = np.minimum(self.written[envs] + 1, self.seg)

    def _set_valid(self, envs: np.ndarray, slots: np.ndarray, value: bool) -> None:
        self.valid[envs, slots] = value
        if self.tree is not None:
            priority = self.max_priority**self.alpha if value else 0.0
            self.tree.update(envs * self.seg + slots, np.full(len(envs), priority))

    def reset(self, obs: np.ndarray) -> None:
        """Every env starts an episode with ``obs`` (``(num_envs, stack, H, W)``)."""
        self._write_states(np.arange(self.num_envs), obs[:, -1], first=True)

    def add(
        self,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        next_obs: np.ndarray,
        reset_step: np.ndarray | None = None,
    ) -> None:
        """Record one vector step. Envs in ``reset_step`` did not act: their ``next_obs`` is the
        first observation of a new episode. The others close the transition of their current
        state and write ``next_obs`` as its successor (an episode's final frame if it ended; a
        truncated episode is not terminal and bootstraps from that frame)."""
        reset_step = np.zeros(self.num_envs, bool) if reset_step is None else np.asarray(reset_step)
        stepped = np.flatnonzero(~reset_step)
        if len(stepped):
            cur = (self.pos[stepped] - 1) % self.seg
            self.actions[stepped, cur] = actions[stepped]
            self.rewards[stepped, cur] = rewards[stepped]
            self.terminal[stepped, cur] = terminated[stepped]
            self._write_states(stepped, next_obs[stepped, -1], first=False)
            self._set_valid(stepped, cur, True)
        restarted = np.flatnonzero(reset_step)
        if len(restarted):
            self._write_states(restarted, next_obs[restarted, -1], first=True)

    # ---- reading ----------------------------------------------------------------------------
    def states(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Rebuild the stacked observations of the given slots (zero frames before an episode)."""
        offsets = np.arange(-self.stack_num + 1, 1)
        hist = (slots[:, None] + offsets) % self.seg  # (B, stack), oldest first
        first = self.first[envs[:, None], hist]
        # frame j is kept unless a later frame in the stack starts the episode
        later_first = np.flip(np.cumsum(np.flip(first[:, 1:], 1), 1), 1) > 0
        keep = np.concatenate([~later_first, np.ones((len(slots), 1), bool)], axis=1)
        out = self.frames[envs[:, None], hist]
        out *= keep[:, :, None, None]
        return out

    def _returns(self, envs: np.ndarray, slots: np.ndarray):
        ret = np.zeros(len(slots), np.float32)
        done = np.zeros(len(slots), bool)
        k = np.zeros(len(slots), np.int64)
        active = np.ones(len(slots), bool)
        for j in range(self.n_step):
            s = (slots + j) % self.seg
            ret += np.where(active, self.gamma**j * self.rewards[envs, s], 0.0).astype(np.float32)
            k += active
            term = self.terminal[envs, s]
            done |= active & term
            nxt_valid = self.valid[envs, (s + 1) % self.seg]
            active &= ~term & nxt_valid
        return ret, done, k

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        """A batch of n-step transitions: uniform, or proportional to priority with IS weights."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay memory")
        if self.tree is not None:
            total = self.tree.total
            bounds = np.linspace(0.0, total, batch_size + 1)
            prefix = self.rng.uniform(bounds[:-1], bounds[1:])  # stratified, as in Schaul et al.
            idx = np.minimum(
                self.tree.find(np.minimum(prefix, np.nextafter(total, 0))), self.capacity - 1
            )
            probs = self.tree.leaves(idx) / total
            bad = probs <= 0  # float round-off can land on a zero leaf: resample those uniformly
            if bad.any():
                idx[bad] = self._uniform(int(bad.sum()))
                probs[bad] = self.tree.leaves(idx[bad]) / total
            weights = (len(self) * probs) ** (-beta)
            weights = (weights / weights.max()).astype(np.float32)
        else:
            idx = self._uniform(batch_size)
            weights = np.ones(batch_size, np.float32)
        envs, slots = idx // self.seg, idx % self.seg
        ret, done, k = self._returns(envs, slots)
        next_slots = (slots + k) % self.seg
        return Batch(
            obs=self.states(envs, slots),
            actions=self.actions[envs, slots].astype(np.int64),
            returns=ret,
            next_obs=self.states(envs, next_slots),
            dones=done.astype(np.float32),
            discounts=(self.gamma**k).astype(np.float32),
            weights=weights,
            indices=idx.astype(np.int64),
        )

    def _uniform(self, n: int) -> np.ndarray:
        out = np.empty(0, np.int64)
        flat_valid = self.valid.reshape(-1)
        while len(out) < n:
            cand = self.rng.integers(0, self.capacity, size=2 * (n - len(out)) + 8)
            out = np.concatenate([out, cand[flat_valid[cand]]])
        return out[:n]

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        if self.tree is None:
            raise ValueError("update_priorities needs prioritized=True")
        priorities = np.abs(td_errors) + self.priority_eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        still_valid = self.valid.reshape(-1)[indices]  # a slot may have been overwritten since
        self.tree.update(indices[still_valid], priorities[still_valid] ** self.alpha)
