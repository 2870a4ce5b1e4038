"""The ``attn`` command: every script is one of its subcommands, with the script's own flags and
--help under the subcommand's name; a wrong command is one line naming the right ones."""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.attn import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]


def attn(*args: str) -> tuple[int, str, str]:
    """``attn ARGS`` in this process: exit code, stdout, stderr (``sys.exit("error: ...")``'s
    line included)."""
    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    text = err.getvalue() + (f"{code}\n" if isinstance(code, str) else "")
    return (1 if isinstance(code, str) else code or 0), out.getvalue(), text


def test_every_script_is_a_subcommand_and_every_subcommand_a_script():
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")
               if "def main(" in p.read_text() and p.stem != "attn"}  # fmt: skip
    modules = [c.module for c in COMMANDS.values() if c.module]
    assert sorted(modules) == sorted(scripts)  # each once


def test_attn_lists_its_commands_and_a_group_its_own():
    code, out, _ = attn()
    assert code == 0 and all(f"attn {name} " in out for name in COMMANDS)
    code, out, _ = attn("train")
    assert code == 0 and out.startswith("usage: attn train {dqn,pqn,glimpse,soft} [flags]")
    assert "attn evaluate" not in out


def test_a_subcommand_is_its_script_under_its_name():
    code, out, _ = attn("train", "pqn", "--help")
    assert code == 0 and out.startswith("usage: attn train pqn ")
    assert "--precision" in out and "(default: auto)" in out
    code, out, _ = attn("bench", "--help")
    assert code == 0 and "learner" in out and "parity" in out


@pytest.mark.parametrize(("args", "message"), [
    (("fly",), "error: unknown command 'fly'; choose one of attack, bench,"),
    (("train", "ppo"), "error: unknown train command 'ppo'; choose one of dqn, pqn, glimpse, soft"),
    (("list-games", "--all"), "error: attn list-games takes no arguments, got --all"),
    (("train", "dqn", "--hidden", "x"), "--hidden"),
])  # fmt: skip
def test_a_wrong_command_is_one_line(args, message):
    code, out, err = attn(*args)
    assert code != 0 and message in err and out == ""
    assert len([line for line in err.splitlines() if line.startswith("error")]) <= 1


def test_list_games_names_catch_and_the_bundled_roms():
    code, out, _ = attn("list-games")
    games = out.split()
    assert code == 0 and games[0] == "catch" and {"pong", "breakout", "ms_pacman"} <= set(games)


def test_the_console_command_trains_and_evaluates(tmp_path):
    """The installed ``attn`` (next to this interpreter), end to end on Catch: the flags reach the
    trainer (a run of exactly the steps asked) and the evaluation reads the run it wrote."""
    exe = Path(sys.executable).parent / "attn"
    if not exe.exists():
        pytest.skip("attn is not installed next to this interpreter (pip install -e .)")
    run = tmp_path / "run"
    subprocess.run([exe, "train", "pqn", "--game", "catch", "--total-steps", "512", "--num-envs", "8",
                    "--rollout", "8", "--saliency-every", "0", "--no-progress", "--run-dir", run],
                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip
    assert json.loads((run / "config.json").read_text())["total_steps"] == 512
    done = subprocess.run([exe, "evaluate", "--checkpoint", run, "--episodes", "2", "--num-envs", "2"],
                          check=True, capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert "catch" in done.stdout.lower()


def test_the_recorded_command_is_the_one_a_user_types(monkeypatch):
    """eval.json records how an agent was packed: the subcommand is part of the command, not a
    quoted word, and arguments with spaces are quoted."""
    from scripts.cli import command_line

    monkeypatch.setattr(sys, "argv", ["attn pack", "--run", "runs/my run", "--dtype", "float16"])
    assert command_line() == "attn pack --run 'runs/my run' --dtype float16"
    monkeypatch.setattr(sys, "argv", ["/usr/bin/pack_agent.py", "--run", "r"])
    assert command_line() == "pack_agent.py --run r"
