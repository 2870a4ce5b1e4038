"""FrameReplayBuffer: rebuilt stacks equal the env's own, n-step returns, sum-tree sampling."""

import json

import numpy as np
import pytest
from scipy import stats

from agents.qlearning.replay import FrameReplayBuffer, SumTree
from envs import CatchVectorEnv, make_vector_env


class Recorder:
    """Feeds a buffer from a vector env and remembers, per slot, the full observation written."""

    def __init__(self, buffer, env, seed=0):
        self.buffer, self.env = buffer, env
        self.expected = {}  # (env, slot) -> full stacked observation
        self.actions, self.rewards, self.terminal = {}, {}, {}
        self.rng = np.random.default_rng(seed)
        obs, _ = env.reset()
        self._record(np.arange(env.num_envs), obs)
        buffer.reset(obs)
        self.obs = obs
        self.ended = np.zeros(env.num_envs, bool)

    def _record(self, envs, obs):
        for e in envs:
            self.expected[(e, int(self.buffer.pos[e]))] = obs[e].copy()

    def step(self):
        n = self.env.num_envs
        actions = self.rng.integers(self.env.single_action_space.n, size=n)
        next_obs, rew, term, trunc, info = self.env.step(actions)
        stepped = np.flatnonzero(~self.ended)
        for e in stepped:
            cur = (int(self.buffer.pos[e]) - 1) % self.buffer.seg
            self.actions[(e, cur)], self.rewards[(e, cur)] = actions[e], rew[e]
            self.terminal[(e, cur)] = term[e]
        self._record(range(n), next_obs)
        self.buffer.add(actions, rew, term, next_obs, reset_step=self.ended)
        self.ended = term | trunc  # no life_loss_info here: every end is followed by a reset step
        return self.ended


@pytest.mark.parametrize("num_envs", [1, 3])
def test_stacks_equal_the_envs_own_across_episode_ends_life_losses_and_wraparound(num_envs):
    # episodic_life turns each Breakout life loss into an episode end; a 60-slot segment wraps often
    env = make_vector_env("breakout", num_envs, seed=1, episodic_life=True, noop_max=0)
    buf = FrameReplayBuffer(60 * num_envs, num_envs, seed=0)
    rec = Recorder(buf, env)
    ends = 0
    for step in range(400):
        ends += rec.step().sum()
        if step % 50 == 49:
            batch = buf.sample(64)
            for i, gidx in enumerate(batch.indices):
                e, s = divmod(int(gidx), buf.seg)
                np.testing.assert_array_equal(batch.obs[i], rec.expected[(e, s)])
                np.testing.assert_array_equal(
                    batch.next_obs[i], rec.expected[(e, (s + 1) % buf.seg)]
                )
                assert batch.actions[i] == rec.actions[(e, s)]
                assert batch.returns[i] == rec.rewards[(e, s)]
                assert batch.dones[i] == rec.terminal[(e, s)]
    env.close()
    assert ends >= 5 * num_envs and buf.written.min() == buf.seg  # crossed episodes and wrapped


def test_every_valid_slot_rebuilds_exactly():
    env = CatchVectorEnv(2, seed=0, stack_num=3, size=8)
    buf = FrameReplayBuffer(2 * 25, 2, frame_shape=(8, 8), stack_num=3)
    rec = Recorder(buf, env)
    for _ in range(90):
        rec.step()
    envs, slots = np.nonzero(buf.valid)
    assert len(envs) > 30
    np.testing.assert_array_equal(
        buf.states(envs, slots),
        np.stack([rec.expected[(e, s)] for e, s in zip(envs, slots, strict=True)]),
    )


def feed(buf, rewards, terminals, reset_after=()):
    """Feed one env a scripted stream: frame value k at step k; resets after the given steps."""
    obs = np.zeros((1, 4, 2, 2), np.uint8)
    buf.reset(obs)
    reset_next = False
    for k, (r, d) in enumerate(zip(rewards, terminals, strict=True)):
        obs = np.full((1, 4, 2, 2), k + 1, np.uint8)
        if reset_next:
            buf.add(
                np.zeros(1, np.int64),
                np.zeros(1),
                np.zeros(1, bool),
                obs,
                reset_step=np.ones(1, bool),
            )
            reset_next = False
            continue
        buf.add(np.zeros(1, np.int64), np.array([r], np.float32), np.array([d]), obs)
        reset_next = d or k in reset_after


def test_n_step_returns_and_done_masks_by_hand():
    gamma = 0.5
    buf = FrameReplayBuffer(64, 1, frame_shape=(2, 2), n_step=3, gamma=gamma)
    # stream: r = 1, 2, 4, 8(terminal), [reset step], 16, 32
    feed(buf, [1, 2, 4, 8, 0, 16, 32], [False, False, False, True, False, False, False])
    envs, slots = np.zeros(6, np.int64), np.array([0, 1, 2, 3, 5, 6])
    ret, done, k = buf._returns(envs, slots)
    np.testing.assert_allclose(
        ret, [1 + 2 * 0.5 + 4 * 0.25, 2 + 4 * 0.5 + 8 * 0.25, 4 + 8 * 0.5, 8, 16 + 32 * 0.5, 32]
    )
    np.testing.assert_array_equal(done, [False, True, True, True, False, False])
    np.testing.assert_array_equal(k, [3, 3, 2, 1, 2, 1])  # the newest ones stop at the stream's end
    assert buf.valid[0, :4].all() and not buf.valid[0, 4]  # slot 4: the final frame, not sampleable


def test_truncation_bootstraps_from_the_final_frame():
    buf = FrameReplayBuffer(64, 1, frame_shape=(2, 2), n_step=3, gamma=0.5)
    feed(
        buf, [1, 1, 0, 1], [False, False, False, False], reset_after=(1,)
    )  # truncated after step 1
    ret, done, k = buf._returns(np.zeros(2, np.int64), np.array([0, 1]))
    np.testing.assert_array_equal(k, [2, 1])  # stop at slot 2, the truncated episode's last frame
    assert not done.any()
    assert buf.first[0, 3] and not buf.valid[0, 2]


def test_memory_per_transition_is_under_7_2_kb():
    for prioritized in (False, True):
        buf = FrameReplayBuffer(100_000, 8, prioritized=prioritized)
        per = buf.nbytes() / buf.capacity
        assert per <= 7200, per


def test_sum_tree_prefix_search_by_hand():
    tree = SumTree(5)
    tree.update(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    np.testing.assert_array_equal(
        tree.find(np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])), [0, 0, 2, 2, 3, 3, 4, 4]
    )


def test_prioritized_sampling_frequencies_match_priorities():
    env = CatchVectorEnv(1, seed=0, size=8)
    buf = FrameReplayBuffer(
        40, 1, frame_shape=(8, 8), stack_num=1, prioritized=True, alpha=1.0, seed=3
    )
    rec = Recorder(buf, env)
    for _ in range(60):
        rec.step()
    idx = np.flatnonzero(buf.valid.reshape(-1))
    priorities = np.random.default_rng(0).uniform(0.1, 5.0, len(idx))
    buf.update_priorities(idx, priorities - buf.priority_eps)
    counts = np.zeros(buf.capacity)
    for _ in range(400):
        b = buf.sample(50, beta=1.0)
        np.add.at(counts, b.indices, 1)
    observed = counts[idx]
    expected = priorities / priorities.sum() * observed.sum()
    # stratified sampling is less variable than multinomial, so the chi-square test is conservative
    assert stats.chisquare(observed, expected).pvalue > 0.01
    assert counts[~buf.valid.reshape(-1)].sum() == 0
    b = buf.sample(16, beta=1.0)  # IS weights: (N P)^-beta / max
    p = buf.tree.leaves(b.indices) / buf.tree.total
    w = (len(buf) * p) ** -1.0
    np.testing.assert_allclose(b.weights, w / w.max(), rtol=1e-5)


def test_uniform_sampling_is_uniform_over_valid_slots():
    env = CatchVectorEnv(2, seed=0, size=8)
    buf = FrameReplayBuffer(60, 2, frame_shape=(8, 8), stack_num=1, seed=0)
    rec = Recorder(buf, env)
    for _ in range(50):
        rec.step()
    counts = np.zeros(buf.capacity)
    for _ in range(300):
        np.add.at(counts, buf.sample(64).indices, 1)
    valid = buf.valid.reshape(-1)
    assert counts[~valid].sum() == 0
    assert stats.chisquare(counts[valid]).pvalue > 0.01


def test_bad_arguments():
    with pytest.raises(ValueError, match="too small"):
        FrameReplayBuffer(10, 4)
    with pytest.raises(ValueError, match="empty"):
        FrameReplayBuffer(100, 1).sample(4)
    with pytest.raises(ValueError, match="prioritized=True"):
        FrameReplayBuffer(100, 1).update_priorities(np.array([0]), np.array([1.0]))


def test_a_memory_restored_from_its_state_samples_as_the_original():
    """state() and arrays() hold all that sampling depends on: a fresh memory loaded from them draws
    the same batches, priorities included, as the memory it was saved from."""
    env = CatchVectorEnv(3, stack_num=2, seed=0)
    make = lambda: FrameReplayBuffer(90, 3, frame_shape=(24, 24), stack_num=2, n_step=3,  # noqa: E731
                                     prioritized=True, seed=5)  # fmt: skip
    buf = make()
    rec = Recorder(buf, env)
    for _ in range(70):
        rec.step()
    b = buf.sample(16, beta=0.5)
    buf.update_priorities(b.indices, np.linspace(0.1, 3.0, 16))
    state = json.loads(json.dumps(buf.state()))  # what a checkpoint's trainer.json holds
    arrays = {k: v.copy() for k, v in buf.arrays().items()}
    copy = make()
    copy.load(state, arrays)
    for _ in range(3):
        x, y = buf.sample(16, beta=0.7), copy.sample(16, beta=0.7)
        for field in x._fields:
            np.testing.assert_array_equal(getattr(x, field), getattr(y, field))
    assert copy.max_priority == buf.max_priority > 1.0


def test_a_memory_of_another_size_is_refused_before_it_is_touched():
    buf = FrameReplayBuffer(90, 3, frame_shape=(24, 24), stack_num=2, seed=5)
    other = FrameReplayBuffer(120, 3, frame_shape=(24, 24), stack_num=2, seed=5)
    before = {k: v.copy() for k, v in buf.arrays().items()}
    with pytest.raises(ValueError, match=r"saved replay field frames has shape \(3, 40, 24, 24\), "
                                         r"expected \(3, 30, 24, 24\)"):  # fmt: skip
        buf.load(other.state(), other.arrays())
    for k, v in buf.arrays().items():
        np.testing.assert_array_equal(v, before[k])
