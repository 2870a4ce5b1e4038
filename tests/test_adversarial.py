"""Adversarial observations: budgets, a hand-built linear policy whose flips are known, the glimpse
agent's hand-written attack, and attack.py end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import call_script
from torch import nn

from agents.common.evaluate import GreedyQPolicy
from analysis.adversarial import (
    AreaResize,
    AttackedPolicy,
    CNNAttack,
    RecurrentAttack,
    TransferAttack,
    action_head,
    fit_to_screen,
    quantise,
)

ROOT = Path(__file__).resolve().parent.parent


class LinearQ(nn.Module):
    """Q = W x + b over the float input x = obs / 255: two actions, margin set by ``b``."""

    def __init__(self, shape=(2, 12, 12), bias_gap=0.3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(2, *shape, generator=g) * 0.05)
        self.b = nn.Parameter(torch.tensor([bias_gap, 0.0]))

    def forward(self, obs):
        x = obs.float() / 255 if obs.dtype == torch.uint8 else obs
        return {"q": torch.einsum("bchw,achw->ba", x, self.W) + self.b}


def frames(n=4, shape=(2, 12, 12), seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8))


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "noise"])
@pytest.mark.parametrize("eps", [0.0, 1.0, 3.5, 40.0, 255.0])
def test_attacks_stay_in_budget_and_in_range(attack, eps):
    net = LinearQ()
    obs = frames(8)
    adv = CNNAttack(net, (2, 12, 12), attack, eps, steps=3, seed=1)(obs)
    assert adv.dtype == torch.uint8 and adv.shape == obs.shape
    assert (adv.int() - obs.int()).abs().max() <= eps
    if eps == 0:
        assert torch.equal(adv, obs)


def test_fgsm_flips_the_linear_policy_exactly_when_the_budget_beats_the_margin():
    """With x = 128 everywhere (no clipping), FGSM moves every pixel by eps against sign(W_a - W_b):
    the margin falls by eps / 255 * ||W_a - W_b||_1, so the action flips iff that exceeds it."""
    net = LinearQ()
    obs = torch.full((1, 2, 12, 12), 128, dtype=torch.uint8)
    q = net(obs)["q"][0].detach()
    a = int(q.argmax())
    margin = float(q[a] - q[1 - a])
    l1 = float((net.W[a] - net.W[1 - a]).abs().sum().detach())
    threshold = 255 * margin / l1
    assert 1 < threshold < 30 and abs(threshold - round(threshold)) > 0.05  # a clear case
    for eps in range(0, 32):
        adv = CNNAttack(net, (2, 12, 12), "fgsm", float(eps))(obs)
        flipped = int(net(adv)["q"].argmax(1)) != a
        assert flipped == (eps * l1 / 255 > margin), (eps, threshold)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("eps", [2.0, 8.0])
def test_fgsm_and_pgd_give_arts_frames(attack, eps):
    """On the dueling network of the Atari agents (random weights) and random frames, our loop's
    frames are ART's (the same loss, steps, projection), rounded to uint8 the same way."""
    from agents.qlearning.networks import DuelingQNetwork
    from scripts.bench.analysis import art_attack

    torch.manual_seed(0)
    net = DuelingQNetwork(4, 2, input_shape=(44, 44), hidden=64).eval()
    obs = frames(6, (2, 44, 44), seed=4)
    attacker = CNNAttack(net, (2, 44, 44), attack, eps)
    ours = attacker(obs)
    theirs = art_attack(net, "q", (2, 44, 44), attack, eps).generate(x=obs.float().numpy(),
                                                                y=attacker.last_clean_actions)  # fmt: skip
    assert (ours != obs).float().mean() > 0.5  # the attack moved most pixels
    np.testing.assert_array_equal(ours.numpy(), quantise(obs, torch.from_numpy(theirs), eps).numpy())


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_a_frame_seen_at_the_last_step_is_not_attacked_again(attack):
    """The attack of a repeated frame (an idle game's screen) is the last step's, without a pass;
    new frames are attacked as a fresh attacker attacks them, with their own clean actions."""
    net = LinearQ(bias_gap=0.0)
    a, b = frames(3, seed=1), frames(2, seed=2)
    attacker = CNNAttack(net, (2, 12, 12), attack, 8.0, steps=3)
    first = attacker(a)
    passes = []
    attacker.logits = lambda x01: passes.append(len(x01)) or CNNAttack.logits(attacker, x01)
    mixed = torch.cat([a[2:], b, a[2:]])  # a repeat, two new frames, the repeat again
    out = attacker(mixed)
    assert passes == [2] * attacker.steps  # only the two new frames went through the network
    fresh = CNNAttack(net, (2, 12, 12), attack, 8.0, steps=3)
    expected = fresh(mixed)
    np.testing.assert_array_equal(out.numpy(), expected.numpy())
    np.testing.assert_array_equal(out[0].numpy(), first[2].numpy())
    np.testing.assert_array_equal(attacker.last_clean_actions, fresh.last_clean_actions)
    assert len(set(attacker.last_clean_actions.tolist())) == 2  # the rows' own actions, not one
    attacker(b)  # the memo holds the last step only: a's frame is attacked again after a gap
    passes.clear()
    attacker(a[2:])
    assert passes == [1] * attacker.steps


def test_the_attack_benchmark_times_attacks_of_new_frames(monkeypatch):
    """Every timed call of the CNN attacker crafts its whole batch: a benchmark that handed it the
    frames of its last call would time the memo."""
    from analysis import adversarial
    from scripts.bench.analysis import benchmark_attacks

    crafted, calls = [], []
    step_call, cnn_call = adversarial._StepAttack.__call__, CNNAttack.__call__

    def count_crafted(self, obs):
        if isinstance(self, CNNAttack) and self.attack != "noise":
            crafted.append(len(obs))
        return step_call(self, obs)

    def count_calls(self, obs):
        if self.attack != "noise":
            calls.append(len(obs))
        return cnn_call(self, obs)

    monkeypatch.setattr(adversarial._StepAttack, "__call__", count_crafted)
    monkeypatch.setattr(CNNAttack, "__call__", count_calls)
    rows = benchmark_attacks(batch=2, repeats=2)
    assert len(rows) == 8 and all(rate > 0 for _, rate in rows)
    assert calls and crafted == calls == [2] * len(calls)


def test_quantise_rounds_inside_the_ball():
    clean = torch.tensor([0, 10, 250, 128], dtype=torch.uint8)
    perturbed = torch.tensor([-3.0, 12.6, 260.0, 126.2])
    np.testing.assert_array_equal(quantise(clean, perturbed, 2.5).numpy(), [0, 12, 252, 126])


def test_a_network_without_an_action_head_is_refused():
    class ValueOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, obs):
            return {"value": obs.float().sum((1, 2, 3)) * self.w}

    message = "no action head \\(heads: value\\); an attack needs 'q' or 'logits'"
    with pytest.raises(ValueError, match=message):
        action_head(ValueOnly(), (2, 12, 12))


def glimpse_policy(seed=0, glimpses=2):
    from agents.glimpse import GlimpsePolicy, RecurrentAttentionModel

    torch.manual_seed(seed)
    model = RecurrentAttentionModel(n_actions=3, channels=1, patch_size=6, num_scales=2).eval()
    return GlimpsePolicy(model, 6, glimpses)


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "noise"])
def test_glimpse_attack_budget_state_and_effect(attack):
    policy = glimpse_policy()
    obs = frames(6, (1, 24, 24), seed=3)
    policy(obs)  # a state and a gaze of its own, as in the middle of an episode
    state, loc = [s.clone() for s in policy.state], policy.loc.clone()
    attacker = RecurrentAttack(policy, attack, 16.0, steps=5)
    adv = attacker(obs)
    assert (adv.int() - obs.int()).abs().max() <= 16 and adv.dtype == torch.uint8
    # crafting does not advance the agent
    assert all(torch.equal(a, b) for a, b in zip(policy.state, state, strict=True))
    assert torch.equal(policy.loc, loc)
    if attack != "noise":
        # the attack's loss is the clean action's cross-entropy: it must not fall
        target = torch.as_tensor(attacker.last_clean_actions)
        with torch.no_grad():
            clean_loss = nn.functional.cross_entropy(policy.logits(obs.float() / 255), target)
            adv_loss = nn.functional.cross_entropy(policy.logits(adv.float() / 255), target)
        assert adv_loss > clean_loss
    assert torch.equal(RecurrentAttack(policy, attack, 0.0)(obs), obs)


def soft_policy(seed=0):
    from agents.soft import SoftAttentionAgent, SoftPolicy

    torch.manual_seed(seed)
    model = SoftAttentionAgent(3, 1, input_shape=(24, 24), torso="patch", hidden=16, queries=2,
                               qk_norm=True).eval()  # fmt: skip
    return SoftPolicy(model, 6)


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "noise"])
def test_the_soft_agent_is_attacked_through_its_step(attack):
    """From the state, previous action and reward it has in the middle of an episode, which the
    attack leaves as they were; FGSM and PGD raise the clean action's loss of that step."""
    policy = soft_policy()
    obs = frames(6, (1, 24, 24), seed=3)
    policy(obs)
    policy.observe(np.array([2, 1, 0, 2, 1, 0]), np.array([1.0, 0, 0, -1.0, 0, 0]))
    kept = [s.clone() for s in policy.state], policy.prev_action.clone(), policy.prev_reward.clone()
    attacker = RecurrentAttack(policy, attack, 16.0, steps=5)
    adv = attacker(obs)
    assert (adv.int() - obs.int()).abs().max() <= 16 and adv.dtype == torch.uint8
    assert all(torch.equal(a, b) for a, b in zip(policy.state, kept[0], strict=True))
    assert torch.equal(policy.prev_action, kept[1]) and torch.equal(policy.prev_reward, kept[2])
    if attack != "noise":
        target = torch.as_tensor(attacker.last_clean_actions)
        with torch.no_grad():
            clean_loss = nn.functional.cross_entropy(policy.logits(obs.float() / 255), target)
            adv_loss = nn.functional.cross_entropy(policy.logits(adv.float() / 255), target)
        assert adv_loss > clean_loss


def test_transfer_attack_hands_over_the_newest_frame_and_counts_the_targets_flips():
    source = CNNAttack(LinearQ(shape=(2, 24, 24)), (2, 24, 24), "fgsm", 8.0)
    transfer = TransferAttack(source, 2)
    policy = glimpse_policy()
    attacked = AttackedPolicy(policy, transfer)
    first, second = frames(6, (1, 24, 24), seed=1), frames(6, (1, 24, 24), seed=2)
    attacked(first)
    np.testing.assert_array_equal(transfer.history[:, 1].numpy(), first[:, 0].numpy())
    attacked.reset(np.array([True, False, False, False, False, False]))
    assert transfer.history[0].max() == 0 and transfer.history[1].max() > 0
    adv = transfer(second)
    assert adv.shape == second.shape and (adv.int() - second.int()).abs().max() <= 8
    assert attacked.steps == 6 and 0 <= attacked.flip_rate <= 1


def breakout_frames(size, n=16, steps=80):
    """The frames of ``n`` Breakout games after ``steps`` random actions, as an env of the shipped
    PQN agent's options makes them at ``size``: the same games at any size (one seed)."""
    from agents.common.checkpoint import read_json, resolve_checkpoint
    from envs.atari import make_vector_env

    options = read_json(resolve_checkpoint(ROOT / "pretrained" / "breakout") / "config.json")["env_options"]
    env = make_vector_env("breakout", n, seed=3, **{**options, "img_height": size[0], "img_width": size[1]})
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, *_ = env.step(rng.integers(0, 4, n))
    env.close()
    return torch.from_numpy(obs)


def test_area_resize_is_the_resize_of_the_cnns_env():
    """An 84x84 env's frames are the same games' 210x160 frames through AreaResize, to within the
    uint8 rounding (one level); on float frames it is OpenCV's INTER_AREA to float precision."""
    import cv2

    resize = AreaResize((210, 160), (84, 84))
    big, small = breakout_frames((210, 160), 4, 40), breakout_frames((84, 84), 4, 40)
    assert big.shape == (4, 4, 210, 160) and small.shape == (4, 4, 84, 84)
    made = resize(big.float()).round()
    assert (made - small.float()).abs().max() <= 1 and (made != small.float()).float().mean() < 0.01
    x = np.random.default_rng(0).uniform(0, 255, (210, 160)).astype(np.float32)
    np.testing.assert_allclose(resize(torch.from_numpy(x)).numpy(),
                               cv2.resize(x, (84, 84), interpolation=cv2.INTER_AREA), atol=1e-3)  # fmt: skip
    with pytest.raises(ValueError, match="area resizing shrinks frames; 84x84 to 210x160"):
        AreaResize((84, 84), (210, 160))


def test_a_transfer_through_the_resize_fools_the_cnn_on_the_frames_its_env_makes():
    """PGD crafted on the shipped Breakout PQN agent through its env's resize, on the 210x160 frames
    the glimpse agent sees: once resized as the CNN's env resizes them, the CNN's own actions flip
    on nearly every state at epsilon 2, where noise of the same budget flips few."""
    import cv2

    from analysis.adversarial import load_agent

    net, _, config = load_agent(str(ROOT / "pretrained" / "breakout"))
    _, _, target = load_agent(str(ROOT / "pretrained" / "breakout_glimpse"))
    source = fit_to_screen(net, config, target)
    assert source.input_shape == (210, 160) and source.in_channels == 4
    big = breakout_frames((210, 160))

    def cnn_view(frames):  # what the CNN's env makes of full-size frames
        return torch.from_numpy(np.stack([[cv2.resize(f, (84, 84), interpolation=cv2.INTER_AREA)
                                           for f in stack] for stack in frames.numpy()]))  # fmt: skip

    with torch.no_grad():
        clean = net(cnn_view(big))["q"].argmax(1)
    flips = {}
    for attack in ("pgd", "noise"):
        adv = CNNAttack(source, (4, 210, 160), attack, 2.0)(big)
        assert adv.shape == big.shape and (adv.int() - big.int()).abs().max() <= 2
        with torch.no_grad():
            flips[attack] = float((net(cnn_view(adv))["q"].argmax(1) != clean).float().mean())
    assert flips["pgd"] >= 0.9 and flips["noise"] <= 0.5, flips


@pytest.mark.parametrize("source, message", [
    ({"img_height": 210, "img_width": 160, "grayscale": True},
     "--transfer-from sees 210x160 frames and the agent attacked 84x84: a transfer source must see "
     "frames no larger than the target's"),
    ({"img_height": 84, "img_width": 84, "grayscale": False},
     "--transfer-from sees RGB frames and the agent attacked grayscale: a transfer attack needs one "
     "colour space"),
])  # fmt: skip
def test_a_source_whose_frames_cannot_be_made_from_the_targets_is_one_line(source, message):
    target = {"env_options": {"img_height": 84, "img_width": 84, "grayscale": True}}
    with pytest.raises(ValueError, match=message):
        fit_to_screen(LinearQ(), {"env_options": source}, target)
    same = {"env_options": {"img_height": 84, "img_width": 84, "grayscale": True}}
    net = LinearQ()
    assert fit_to_screen(net, same, target) is net


def script(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer
    from agents.qlearning.dqn import DQNConfig, DQNTrainer
    from agents.qlearning.pqn import PQNConfig, PQNTrainer
    from agents.soft.train import SoftConfig, SoftTrainer

    root = tmp_path_factory.mktemp("adv")
    DQNTrainer(DQNConfig.for_game("catch", total_steps=400, learning_starts=100, saliency_every=0,
                               run_dir=str(root / "dqn"), progress=False)).run()  # fmt: skip
    PQNTrainer(PQNConfig.for_game("catch", total_steps=256, num_envs=8, rollout=8, saliency_every=0,
                               run_dir=str(root / "pqn"), progress=False)).run()  # fmt: skip
    GlimpseTrainer(GlimpseConfig(total_steps=8 * 24, num_envs=8, progress=False,
                                 run_dir=str(root / "glimpse"))).run()  # fmt: skip
    SoftTrainer(SoftConfig(num_envs=4, total_steps=4 * 24 * 2, hidden=16, attention_every=0,
                           progress=False, run_dir=str(root / "soft"))).run()  # fmt: skip
    return root


def test_attack_script_compares_agents_with_transfer(runs, tmp_path):
    out = tmp_path / "rep"
    agents = ("dqn", "pqn", "glimpse", "soft")
    r = script("scripts/attack.py", "--checkpoint", *(str(runs / k) for k in agents),
               "--attack", "fgsm", "noise", "--epsilons", "0", "4", "--episodes", "8",
               "--transfer-from", str(runs / "dqn"), "--out", str(out), "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "evaluating" not in r.stderr  # no progress bar
    report = json.loads((out / "robustness.json").read_text())
    assert set(report["summary"]) == {"fgsm", "noise"}
    assert set(report["summary"]["fgsm"]) == {"dqn", "pqn", "glimpse", "soft", "glimpse, crafted on dqn",
                                              "soft, crafted on dqn"}  # fmt: skip
    assert set(report["summary"]["noise"]) == {"dqn", "pqn", "glimpse", "soft"}
    for run in report["runs"]:
        clean = run["results"][0]
        assert clean["epsilon"] == 0 and clean["flip_rate"] == 0 and 0 <= clean["catch_rate"] <= 1
        assert len(clean["scores"]) == 8
    assert (out / "robustness.png").stat().st_size > 0


def test_a_sampled_glimpse_policy_is_attacked_as_it_is_scored(runs):
    """The sampled policy (what policy-gradient agents are scored with) replays from its seed; its
    flips count against the clean frame's most likely action, so that sampling alone flips some
    at epsilon 0 where the greedy policy flips none."""
    from analysis.adversarial import robustness

    kw = dict(episodes=4, num_envs=4, progress=False)
    sampled = [robustness(str(runs / "glimpse"), "fgsm", [0.0, 8.0], sample=True, **kw) for _ in range(2)]
    assert sampled[0]["policy"] == "sample" and sampled[0]["results"] == sampled[1]["results"]
    greedy = robustness(str(runs / "glimpse"), "fgsm", [0.0], **kw)
    assert greedy["policy"] == "greedy" and greedy["results"][0]["flip_rate"] == 0
    assert sampled[0]["results"][0]["flip_rate"] > 0
    transferred = robustness(str(runs / "glimpse"), "fgsm", [0.0], sample=True,
                             transfer_from=str(runs / "dqn"), **kw)  # fmt: skip
    assert transferred["results"][0]["flip_rate"] > 0  # against the clean mode, not a second sample


@pytest.mark.parametrize("agent, sample", [("glimpse", False), ("soft", False), ("soft", True)])
def test_an_attack_of_budget_zero_plays_the_agents_own_games(runs, agent, sample):
    """At epsilon 0 the attacked agent plays exactly its evaluation (the same seed, the same
    episodes): the wrapper hands it everything it reads, the soft agent's last action and reward
    among them. (A sampling glimpse agent's attacker samples glimpse locations from the same
    generator as the agent, so its games are other draws.)"""
    from agents.common.evaluate import evaluate_checkpoint
    from analysis.adversarial import robustness

    kw = dict(episodes=6, num_envs=3, progress=False, seed=5)
    attacked = robustness(str(runs / agent), "fgsm", [0.0], sample=sample, **kw)["results"][0]
    played = evaluate_checkpoint(str(runs / agent), sample=sample, **kw)
    assert attacked["scores"] == played["scores"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--sample"], "--sample is for the glimpse and soft-attention agents, whose policies are "
                       "distributions"),
        (["--attack", "cw"], "error: unknown attack 'cw'; accepted: fgsm, pgd, noise"),
        (["--epsilons", "-1"], "error: epsilon must be in [0, 255] pixel levels"),
        (["--epsilons", "300"], "error: epsilon must be in [0, 255] pixel levels"),
        (["--attack", "noise", "--transfer-from", "{dqn}"], "noise needs no source"),
        (["--transfer-from", "{glimpse}"], "--transfer-from needs a CNN agent"),
    ],
)
def test_attack_bad_input_is_one_line(args, message, runs, tmp_path):
    args = [a.format(dqn=runs / "dqn", glimpse=runs / "glimpse") for a in args]
    target = runs / ("glimpse" if "--transfer-from" in args else "dqn")
    r = call_script("scripts/attack.py", "--checkpoint", str(target), "--episodes", "2", *args,
                    "--out", str(tmp_path / "o"))  # fmt: skip
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "o" / "robustness.json").exists()


@pytest.mark.parametrize("algo", ["DQN", "PPO"])
def test_sb3_models_are_attacked_through_their_action_head(algo, tmp_path):
    import gymnasium as gym
    import stable_baselines3 as sb3

    from analysis.adversarial import load_agent
    from analysis.playback import obs_shape

    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        action_space = gym.spaces.Discrete(6)

    kwargs = {"buffer_size": 100, "learning_starts": 0} if algo == "DQN" else {"n_steps": 8, "batch_size": 8}
    getattr(sb3, algo)("CnnPolicy", Frames(), seed=0, device="cpu", **kwargs).save(tmp_path / "m.zip")
    net, make_policy, config = load_agent(str(tmp_path / "m.zip"), "pong")
    assert action_head(net, obs_shape(net, config)) == ("q" if algo == "DQN" else "logits")
    obs = frames(3, (4, 84, 84))
    attacked = AttackedPolicy(make_policy(3), CNNAttack(net, (4, 84, 84), "pgd", 4.0, steps=3))
    actions = attacked(obs)
    assert actions.shape == (3,) and attacked.steps == 3
    adv = attacked.attack(obs)
    assert (adv.int() - obs.int()).abs().max() <= 4


def test_summary_intervals_are_over_seeds_or_over_one_agents_episodes():
    """Several runs of a kind of agent: the interval is over the runs' means. One run (a shipped
    agent): over its episodes, by hand: scores 1, 3, 5, 7 have mean 4 and a half-width of
    1.96 * sd / sqrt(4) with sd = sqrt(20 / 3)."""
    from analysis.adversarial import summarise

    def run(checkpoint, scores, flips=0.25):
        rows = [{"epsilon": 0.0, "mean_return": float(np.mean(scores)), "flip_rate": flips,
                 "scores": scores}]  # fmt: skip
        return {"checkpoint": checkpoint, "agent": "dqn", "game": "pong", "attack": "fgsm",
                "transfer_from": None, "results": rows}  # fmt: skip

    [one] = summarise([run("a", [1.0, 3.0, 5.0, 7.0])])["fgsm"].values()
    half = 1.96 * np.sqrt(20 / 3) / 2
    assert one[0]["interval_over"] == "episodes" and one[0]["runs"] == 1
    assert one[0]["mean_return"] == pytest.approx({"mean": 4.0, "ci_low": 4 - half, "ci_high": 4 + half})
    assert one[0]["flip_rate"] == {"mean": 0.25, "ci_low": 0.25, "ci_high": 0.25}
    [two] = summarise([run("a", [1.0, 3.0]), run("b", [5.0, 7.0])])["fgsm"].values()
    half = 1.96 * np.sqrt(8) / np.sqrt(2)  # the two runs' means, 2 and 6
    assert two[0]["interval_over"] == "runs"
    assert two[0]["mean_return"] == pytest.approx({"mean": 4.0, "ci_low": 4 - half, "ci_high": 4 + half})


class _Spy(GreedyQPolicy):
    """A greedy Q-policy that records the batch sizes it is asked for."""

    def __init__(self, net):
        super().__init__(net)
        self.sizes = []

    def __call__(self, obs):
        self.sizes.append(len(obs))
        return super().__call__(obs)


@pytest.mark.parametrize("attack", [None, "fgsm", "noise"])
def test_a_frame_by_frame_policy_is_asked_only_for_envs_whose_episodes_count(attack):
    """7 Catch episodes on 3 envs (shares 3, 2 and 2): in the third round only env 0 plays a
    counted episode. A Q-network, attacked or not, is then asked for that env alone, and the
    episodes score what they score when every env is asked (the others' games no longer count)."""
    from agents.common.evaluate import evaluate

    config = {"game": "catch", "env_options": {"size": 12, "stack_num": 2}}
    net = LinearQ((2, 12, 12), bias_gap=0.0)
    played = {}
    for rowwise in (True, False):
        policy = _Spy(net)
        policy.rowwise = rowwise
        sizes = policy.sizes
        if attack is not None:
            policy = AttackedPolicy(policy, CNNAttack(net, (2, 12, 12), attack, 8.0, seed=1))
            assert policy.rowwise == rowwise
        result = evaluate(policy, config, episodes=7, num_envs=3, epsilon=0.0, seed=0, progress=False)
        played[rowwise] = (result.scores, result.lengths, sizes)
    (scores, lengths, sizes), (all_scores, all_lengths, all_sizes) = played[True], played[False]
    assert set(all_sizes) == {3} and set(sizes) == {3, 1} and sizes[-1] == 1
    if attack != "noise":  # the noise's draws follow the batch it is drawn for
        assert (scores, lengths) == (all_scores, all_lengths)
    assert len(scores) == 7 and set(scores) <= {0.0, 1.0}  # a catch scores 1, a miss 0


def test_an_agent_keeps_its_colour_in_every_panel(tmp_path, monkeypatch):
    """The noise panel lists b before a and the FGSM panel a before b: each keeps its colour, and a
    single run's legend names no run count where two seeds' does."""
    import analysis.render
    from analysis.adversarial import plot_robustness, summarise

    def run(agent: str, attack: str, scores: list[float]) -> dict:
        rows = [{"epsilon": e, "mean_return": float(np.mean(scores)), "flip_rate": 0.5 * e, "scores": scores}
                for e in (0.0, 2.0)]  # fmt: skip
        return {"agent": agent, "attack": attack, "transfer_from": None, "results": rows}

    runs = [run("b", "noise", [1.0, 2.0]), run("a", "fgsm", [3.0, 4.0]), run("a", "fgsm", [2.0, 5.0]),
            run("a", "noise", [3.0, 3.0]), run("a", "noise", [2.0, 3.0]),
            run("b", "fgsm", [1.0, 1.0])]  # fmt: skip
    colours, real = [], analysis.render.save_figure

    def save(fig, *args, **kw):  # the lines as drawn, before the figure is closed
        colours.extend({line.get_label(): line.get_color() for line in ax.get_lines()} for ax in fig.axes)
        return real(fig, *args, **kw)

    monkeypatch.setattr(analysis.render, "save_figure", save)
    plot_robustness(summarise(runs), tmp_path / "r.png")
    assert colours[0] == colours[1] == colours[2] == colours[3]  # FGSM and noise, returns and flips
    assert set(colours[0]) == {"a (2 runs)", "b"} and colours[0]["a (2 runs)"] != colours[0]["b"]
