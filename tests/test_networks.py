import math

import pytest
import torch

from agents.common.architecture import build_network
from agents.qlearning.networks import DuelingQNetwork, SingleStreamQNetwork


def test_heads_and_eq9_aggregation():
    torch.manual_seed(0)
    net = DuelingQNetwork(6)
    obs = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    out = net(obs)
    assert set(out) == {"q", "value", "advantage"}
    assert (
        out["q"].shape == (5, 6) and out["value"].shape == (5,) and out["advantage"].shape == (5, 6)
    )
    a = out["advantage"]
    expected = out["value"][:, None] + a - a.mean(1, keepdim=True)
    torch.testing.assert_close(out["q"], expected)
    # Eq. 9 makes the mean Q over actions equal V
    torch.testing.assert_close(out["q"].mean(1), out["value"])


def test_eq8_max_aggregation():
    net = DuelingQNetwork(4, aggregation="max")
    out = net(torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8))
    torch.testing.assert_close(out["q"].max(1).values, out["value"])


def test_uint8_is_scaled_inside():
    net = DuelingQNetwork(3)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(net(obs)["q"], net(obs.float() / 255)["q"])


def test_gradient_entering_torso_is_rescaled_by_inv_sqrt2():
    torch.manual_seed(0)
    net = DuelingQNetwork(4, input_shape=(24, 24), torso="small", hidden=16)
    obs = torch.rand(2, 4, 24, 24, requires_grad=True)
    out = net(obs)
    (real,) = torch.autograd.grad(out["value"].sum() + out["advantage"].sum(), obs)
    h = net.features(obs)  # the same streams without the rescale
    ref_out = net.value_stream(h).sum() + net.advantage_stream(h).sum()
    (ref,) = torch.autograd.grad(ref_out, obs)
    torch.testing.assert_close(real, ref / math.sqrt(2))
    # the stream weights themselves get the full gradient
    w = net.value_stream[0].weight
    (g_real,) = torch.autograd.grad(net(obs)["value"].sum(), w)
    (g_ref,) = torch.autograd.grad(net.value_stream(net.features(obs)).sum(), w)
    torch.testing.assert_close(g_real, g_ref)


def test_single_stream_matches_dueling_parameter_count():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    dueling, single = count(DuelingQNetwork(18)), count(SingleStreamQNetwork(18))
    assert (
        abs(dueling - single) / dueling < 0.01
    )  # Wang et al. 2016: 1024 units match two 512 streams
    assert set(SingleStreamQNetwork(6)(torch.zeros(1, 4, 84, 84))) == {"q"}


def test_rebuild_from_architecture_and_errors():
    net = DuelingQNetwork(5, aggregation="max")
    assert build_network(net.architecture()).architecture() == net.architecture()
    with pytest.raises(ValueError, match="unknown network class"):
        build_network({"class": "Nope"})
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(1, 3, 84, 84))
    with pytest.raises(ValueError, match="too small"):
        DuelingQNetwork(3, input_shape=(20, 20))
    with pytest.raises(ValueError, match="aggregation"):
        DuelingQNetwork(3, aggregation="median")


def test_flop_count_of_the_dueling_network_is_the_hand_computed_one():
    """The learner benchmark's achieved GFLOP/s rests on torch's FlopCounterMode: on one 84x84
    observation it counts 2 x the multiply-adds of the Nature convolutions (32 8x8/4 to 20x20,
    64 4x4/2 to 9x9, 64 3x3/1 to 7x7) and the two 512-unit streams."""
    from torch.utils.flop_counter import FlopCounterMode

    macs = (32 * 20 * 20 * 4 * 8 * 8 + 64 * 9 * 9 * 32 * 4 * 4 + 64 * 7 * 7 * 64 * 3 * 3
            + 2 * 3136 * 512 + 512 * 1 + 512 * 6)  # fmt: skip
    net = DuelingQNetwork(6)  # outside the counter: building it runs the torso once
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 4, 84, 84, dtype=torch.uint8))
    assert counter.get_total_flops() == 2 * macs == 21_904_384


def test_learner_profile_categories_hold_every_operator_once():
    """The optimizer's operators count under "optimizer" whatever they are, convolutions under
    their own rows, and the categories add up to the profile's self time."""
    from torch.profiler import ProfilerActivity, profile

    from scripts.bench.qlearning import op_categories

    net = DuelingQNetwork(6)
    opt = torch.optim.Adam(net.parameters())
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8))["q"].sum().backward()
        opt.step()
    events = prof.events()
    cats = op_categories(events)
    assert {"conv forward", "conv backward", "linear (matmul)", "optimizer"} <= set(cats)
    total = sum(e.self_cpu_time_total for e in events if not e.name.startswith("Optimizer.")) / 1000
    assert sum(cats.values()) == pytest.approx(total)
    in_step = [e for e in events
               if e.cpu_parent is not None and e.cpu_parent.name.startswith("Optimizer.step")]
    assert in_step and cats["optimizer"] >= sum(e.self_cpu_time_total for e in in_step) / 1000


def test_rate_counts_calls_unless_a_call_says_how_many_units():
    """A call that returns a result (a product, a learner's statistics) is one unit; one that
    returns an int did that many. The matmul peak the learner is read against is a float."""
    from scripts.bench.qlearning import matmul_peak_gflops
    from scripts.bench.timing import rate

    calls = rate(lambda: {"loss": 1.0}, 0.02)
    units = rate(lambda: 100, 0.02)
    assert isinstance(calls, float) and units > 20 * calls
    assert rate(lambda: torch.ones(2), 0.02) > 0 and rate(lambda: True, 0.02) > 0
    peak = matmul_peak_gflops(torch.float32, size=64, seconds=0.05)
    assert isinstance(peak, float) and peak > 0


def test_learner_profile_names_the_compiled_graphs_parts():
    """Under --compile, inductor's fused kernels run inside a call of the compiled graph (its name
    carries the graph's hash); the wrappers around it are overhead, and eager operators keep theirs."""
    from scripts.bench.qlearning import op_category

    assert op_category("## Call CompiledFxGraph fo3wi7xcwq7nc2cz6etjg47sdyg7") == (
        "compiled kernels (fused elementwise)")
    for name in ("CompiledFunction", "CompiledFunctionBackward", "Torch-Compiled Region: 0/1",
                 "TorchDynamo Cache Lookup"):  # fmt: skip
        assert op_category(name) == "compiled graphs' calls and guards", name
    assert op_category("aten::convolution_backward") == "conv backward"
    assert op_category("aten::_fused_adam_") == "other ops"


def test_learner_table_gives_a_category_a_setup_lacks_zero():
    """Setups side by side: a category only one of them has (the compiled kernels) is 0 in the
    others, and each column's rows add up to its profiled wall time."""
    from scripts.benchmark import learner_tables

    run = {"ms_per_update": 90.0, "flops": 9e9, "gflops": 100.0, "transitions": 4096, "peak_rss_mb": 1.0}
    fused = "compiled kernels (fused elementwise)"
    runs = {"bf16": {**run, "profiled_ms": 100.0, "categories": {"conv backward": 60.0, "optimizer": 30.0}},
            "bf16 --compile": {**run, "profiled_ms": 80.0,
                               "categories": {"conv backward": 40.0, fused: 20.0}}}
    table, summary = learner_tables(runs, {"bf16": 1000.0})
    rows = {row[0]: row[1:] for row in table.rows}
    assert rows[fused][:2] == ["0", "0%"]
    assert rows["optimizer"][2:] == ["0", "0%"]
    assert rows["Python and waiting (wall minus operators)"] == ["10", "10%", "20", "25%"]
    assert [row[5] for row in summary.rows] == ["10.0%", "10.0%"]


def test_learner_profile_counts_an_updates_flops_on_a_real_rollout():
    """4 envs x 4 steps, 2 epochs of 2 minibatches: every transition is learnt from twice
    (forward, and a backward of twice its FLOPs less conv1's input gradient, which nothing needs),
    and the targets take one forward pass over the 4 last observations."""
    from scripts.bench.qlearning import learner_profile

    r = learner_profile("pong", "fp32", repeats=1, num_envs=4, rollout=4, minibatches=2)
    forward, conv1 = 21_904_384, 2 * 32 * 20 * 20 * 4 * 8 * 8
    assert r["transitions"] == 16
    assert r["flops"] == 2 * 16 * (3 * forward - conv1) + 4 * forward
    assert r["ms_per_update"] > 0 and r["gflops"] > 0
    assert {"conv forward", "conv backward", "optimizer"} <= set(r["categories"])
    assert sum(r["categories"].values()) <= r["profiled_ms"] * 1.5  # the profile's own update
