"""analysis.core_state: the core's input size, cell-state size and output spread."""

import math

import pytest
import torch

from agents.glimpse import RecurrentAttentionModel
from analysis.core_state import core_state_stats, markdown

CATCH = {"game": "catch", "env_options": {}}


def test_a_core_whose_output_cannot_vary_has_zero_spread_and_the_cell_state_by_hand():
    """An LSTM with zero weights, forget gate shut (bias -100), input gate half open (bias 0) and
    cell input tanh(b) = 0.8: c = 0.5 * 0.8 = 0.4 in every unit at every step, whatever it sees."""
    torch.manual_seed(0)
    model = RecurrentAttentionModel(3, patch_size=6, num_scales=2, hidden=16)
    with torch.no_grad():
        for p in model.core.parameters():
            p.zero_()
        h = 16
        model.core.bias_ih[h : 2 * h] = -100.0  # forget
        model.core.bias_ih[2 * h : 3 * h] = math.atanh(0.8)  # cell input
    stats = core_state_stats(model, CATCH, steps=30, num_envs=4)
    assert stats.output_spread == 0.0
    assert stats.cell_size == pytest.approx(0.4, abs=1e-6)
    assert stats.input_size > 0
    assert stats.action_information == pytest.approx(0.0, abs=1e-6)  # one output: one distribution


def test_a_fresh_core_reads_its_input_and_gru_has_no_cell_state():
    torch.manual_seed(0)
    lstm = core_state_stats(RecurrentAttentionModel(3, patch_size=6, num_scales=2, hidden=16), CATCH,
                            steps=30, num_envs=4, step=123)  # fmt: skip
    assert lstm.output_spread > 0.01 and lstm.cell_size > 0 and lstm.step == 123
    gru = core_state_stats(RecurrentAttentionModel(3, patch_size=6, num_scales=2, hidden=16, core="gru"),
                           CATCH, steps=30, num_envs=4)  # fmt: skip
    assert math.isnan(gru.cell_size) and gru.output_spread > 0.01
    table = markdown([lstm, gru]).splitlines()
    assert len(table) == 4 and table[2].startswith("| 123 |") and table[3].count("|") == 6


def test_action_information_by_hand():
    """Two states, deterministic and different: log 2. Two states with one distribution: 0. States
    (1, 0) and (0.5, 0.5): mean (0.75, 0.25), KLs log(1/0.75) and 0.5 log(0.5/0.75) + 0.5 log(0.5/0.25)."""
    from analysis.core_state import action_information

    assert action_information(torch.tensor([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(math.log(2))
    assert action_information(torch.tensor([[0.3, 0.7], [0.3, 0.7]])) == pytest.approx(0.0, abs=1e-7)
    kl = (math.log(1 / 0.75) + 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)) / 2
    assert action_information(torch.tensor([[1.0, 0.0], [0.5, 0.5]])) == pytest.approx(kl)


def test_cli_refusals_are_one_line(tmp_path):
    import subprocess
    import sys

    for args, message in [(["--run", str(tmp_path / "nope")], "run directory not found"),
                          (["--run", str(tmp_path), "--steps", "0"], "--steps must be >= 1")]:  # fmt: skip
        out = subprocess.run([sys.executable, "scripts/core_state.py", *args], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode != 0 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
