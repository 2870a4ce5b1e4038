"""The configs' shared ground: limits declared on fields, one check and one message style for every
trainer and script, presets as data, and the command line that starts from a game's preset."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest

from agents.common.config import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Range,
    TrainConfig,
    check_config,
)
from agents.glimpse.train import GlimpseConfig
from agents.qlearning.dqn import DQNConfig
from agents.qlearning.pqn import PQNConfig
from scripts.cli import parse_config

CONFIGS = (DQNConfig, PQNConfig, GlimpseConfig)


@pytest.mark.parametrize("limit, text", [
    (Range(ge=1), ">= 1"), (Range(gt=0), "> 0"), (Range(le=3), "<= 3"), (Range(lt=2.5), "< 2.5"),
    (Range(ge=0, le=1), "in [0, 1]"), (Range(gt=0, le=1), "in (0, 1]"),
    (Range(ge=0.01, lt=1e3), "in [0.01, 1000)"),
])  # fmt: skip
def test_a_range_says_what_it_accepts(limit, text):
    assert str(limit) == text


def test_a_range_admits_its_bounds_as_it_says():
    assert Range(ge=1).admits(1) and not Range(ge=1).admits(0.999)
    assert not Range(gt=0).admits(0) and Range(gt=0).admits(1e-12)
    assert Range(ge=0, le=1).admits(0) and Range(ge=0, le=1).admits(1) and not Range(ge=0, le=1).admits(1.01)
    assert not Range(lt=2).admits(2)


@dataclass
class Flags:
    steps: PositiveInt = 5
    rate: PositiveFloat = 0.1
    share: Probability = 0.5
    every: NonNegativeInt = 0
    width: Annotated[int, Range(ge=2)] = 4
    limit: PositiveInt | None = None
    mode: Literal["a", "b"] = "a"
    on: bool = False


@pytest.mark.parametrize("field, value, message", [
    ("steps", 0, "--steps must be >= 1 (got 0)"),
    ("rate", 0.0, "--rate must be > 0 (got 0.0)"),
    ("rate", float("inf"), "--rate must be a finite number (got inf)"),
    ("share", 1.5, "--share must be in [0, 1] (got 1.5)"),
    ("share", float("nan"), "--share must be a finite number (got nan)"),
    ("every", -1, "--every must be >= 0 (got -1)"),
    ("width", 1, "--width must be >= 2 (got 1)"),
    ("limit", 0, "--limit must be >= 1 (got 0)"),
    ("mode", "c", "--mode must be one of a, b (got 'c')"),
    ("on", "yes", "--on must be true or false (got 'yes')"),
    ("steps", True, "--steps must be an integer (got True)"),
    ("steps", 2.5, "--steps must be an integer (got 2.5)"),
])  # fmt: skip
def test_check_config_refuses_in_one_style(field, value, message):
    with pytest.raises(ValueError) as caught:
        check_config(dataclasses.replace(Flags(), **{field: value}))
    assert str(caught.value) == message


def test_check_config_passes_values_inside_their_limits():
    check_config(Flags())
    check_config(Flags(steps=1, rate=1e-9, share=0.0, every=0, width=2, limit=7, mode="b", on=True))


def _ranges(hint: object) -> list[Range]:
    return [a for a in typing.get_args(hint) if isinstance(a, Range)]


@pytest.mark.parametrize("cls", CONFIGS)
def test_limits_are_declared_once_and_on_every_number(cls):
    """A trainer may change a shared field's default, not what it accepts (but for the glimpse
    core's size, where 0 cannot pick a size), and every numeric field declares its limit, but for
    those where any number means something."""
    base = typing.get_type_hints(TrainConfig, include_extras=True)
    hints = typing.get_type_hints(cls, include_extras=True)
    for name in (f.name for f in dataclasses.fields(TrainConfig)):
        if (cls, name) != (GlimpseConfig, "hidden"):
            assert _ranges(hints[name]) == _ranges(base[name]), name
    free = {"seed", "catch_miss_reward"}
    unbounded = [f.name for f in dataclasses.fields(cls) if hints[f.name] in (int, float)]
    assert set(unbounded) <= free, unbounded


@pytest.mark.parametrize("cls, flag, value", [
    (DQNConfig, "hidden", -1), (PQNConfig, "num_envs", 0), (GlimpseConfig, "hidden", 0),
    (DQNConfig, "gamma", 1.5), (PQNConfig, "q_lambda", -0.1), (GlimpseConfig, "time_limit", -1.0),
    (PQNConfig, "threads", -2), (DQNConfig, "learning_starts", -1),
])  # fmt: skip
def test_each_trainer_refuses_a_value_outside_a_declared_limit(cls, flag, value):
    with pytest.raises(ValueError, match=f"^--{flag.replace('_', '-')} must be "):
        cls(**{flag: value}).validate()


def test_presets_are_data_applied_in_order():
    catch = PQNConfig.for_game("catch")
    assert (catch.num_envs, catch.total_steps, catch.optimizer) == (32, 200_000, "adam")
    assert PQNConfig.for_game("breakout") == PQNConfig(game="breakout")  # no Atari overrides
    assert PQNConfig.for_game("catch", total_steps=7).total_steps == 7  # overrides last
    atari = GlimpseConfig.for_game("breakout")
    assert (atari.game, atari.num_envs, atari.patch_size, atari.life_loss_info) == ("breakout", 16, 16, True)
    foveal = GlimpseConfig.for_game("catch", "foveal")
    assert (foveal.preset, foveal.num_scales, foveal.rollout, foveal.num_envs) == ("foveal", 2, 48, 128)
    with pytest.raises(ValueError, match="unknown preset 'tiny'; known: default, foveal"):
        GlimpseConfig.for_game("catch", "tiny")


def test_a_game_named_preset_comes_after_the_atari_one(monkeypatch):
    presets = {"atari": {"num_envs": 4, "hidden": 16}, "breakout": {"hidden": 32}}
    monkeypatch.setattr(PQNConfig, "PRESETS", presets)
    assert (PQNConfig.for_game("breakout").num_envs, PQNConfig.for_game("breakout").hidden) == (4, 32)
    assert (PQNConfig.for_game("pong").num_envs, PQNConfig.for_game("pong").hidden) == (4, 16)


def test_the_command_line_starts_from_the_games_preset_and_flags_override_it():
    assert parse_config(PQNConfig, None, ["--game", "catch"]) == PQNConfig.for_game("catch")
    assert parse_config(PQNConfig, None, ["--game=catch", "--num-envs", "8"]).num_envs == 8
    # a flag given at the Atari default still overrides the Catch preset's value
    assert parse_config(PQNConfig, None, ["--num-envs", "128", "--game", "catch"]).num_envs == 128
    assert parse_config(GlimpseConfig, None, ["--env", "pong"]).num_envs == 16  # --env names the game
    foveal = parse_config(GlimpseConfig, None, ["--preset", "foveal"])
    assert (foveal.game, foveal.rollout) == ("catch", 48)
    assert parse_config(DQNConfig, None, []) == DQNConfig()


def test_a_resume_never_takes_a_presets_budget():
    cfg = parse_config(PQNConfig, None, ["--resume", "runs/x", "--game", "catch"])
    assert cfg.total_steps == PQNConfig().total_steps and cfg.resume == "runs/x"


def test_help_shows_the_games_defaults(capsys):
    with pytest.raises(SystemExit):
        parse_config(PQNConfig, None, ["--game", "catch", "--help"])
    text = capsys.readouterr().out
    assert "(default: 200000)" in text and "(default: 10000000)" not in text
