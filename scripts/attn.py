"""attn: one command for the suite. Each subcommand is one of the scripts in scripts/, with the
same flags and the same --help (``attn train pqn --help``); ``python scripts/<name>.py`` runs the
same code.

    attn train pqn --game pong            # train the dueling network with PQN
    attn evaluate --checkpoint pretrained/pong
    attn saliency --checkpoint pretrained/pong --out pong.mp4
    attn list-games
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "train dqn": Command("train_dqn", "train a dueling Double DQN (Wang et al. 2016)"),
    "train pqn": Command("train_pqn", "train the dueling network with PQN (parallel Q(lambda))"),
    "train glimpse": Command("train_glimpse", "train the hard-attention glimpse agent (Mnih et al. 2014)"),
    "train soft": Command("train_soft", "train the soft-attention agent (Mott et al. 2019)"),
    "evaluate": Command("evaluate", "score a checkpoint with the papers' protocol"),
    "saliency": Command("record_saliency", "record a video of the value and advantage saliency"),
    "glimpses": Command("record_glimpses", "record a video of where a glimpse agent looks"),
    "report": Command("compare_heads", "compare where two heads look over whole episodes (HTML)"),
    "saliency-over-training": Command("saliency_over_training",
                                      "the same frames' maps at each checkpoint of a run"),
    "attack": Command("attack", "attack an agent's observations and measure its score"),
    "sweep": Command("sweep", "run many trainings at once with Ray Tune"),
    "pack": Command("pack_agent", "evaluate a run and pack it as a shipped agent"),
    "plot": Command("plot_runs", "plot runs' learning curves side by side"),
    "gaze-figure": Command("gaze_figure", "figure of a Catch glimpse agent's gaze"),
    "core-state": Command("core_state", "is a glimpse agent's core still reading its input?"),
    "demo": Command("env_demo", "play random actions and write a video of the agent's view"),
    "shipped": Command("train_pretrained", "train, evaluate and pack the shipped agents"),
    "zoo": Command("zoo", "analyse the shipped agents and make the zoo's page"),
    "bench": Command("benchmark", "benchmarks, each beside its peer in one run"),
    "list-games": Command("", "list the games the installed ale-py bundles"),
}


def usage(prefix: str = "") -> str:
    """The subcommands under ``prefix`` (all of them when empty), one line each."""
    start = f"{prefix} " if prefix else ""
    rows = [(name, c.summary) for name, c in COMMANDS.items() if name.startswith(start)]
    width = max(len(name) for name, _ in rows)
    lines = [f"  attn {name:<{width}}  {summary}" for name, summary in rows]
    what = f"{prefix} {{{','.join(n.split()[1] for n, _ in rows)}}}" if prefix else "<command>"
    return "\n".join([f"usage: attn {what} [flags]", "", *lines, "",
                      "attn <command> --help shows a command's flags with their defaults."])  # fmt: skip


def _games() -> list[str]:
    from envs.games import list_games

    return list_games()


def _command(args: list[str]) -> tuple[str, list[str]]:
    """The subcommand ``args`` start with (two words, ``train pqn``, before one) and the rest."""
    for words in (2, 1):
        name = " ".join(args[:words])
        if len(args) >= words and name in COMMANDS:
            return name, args[words:]
    if not args:
        return "", []
    trainers = [n.split()[1] for n in COMMANDS if n.startswith(args[0] + " ")]
    if trainers and len(args) > 1 and args[1] not in ("-h", "--help"):
        raise ValueError(f"unknown {args[0]} command {args[1]!r}; choose one of {', '.join(trainers)}")
    if not trainers and args[0] not in ("-h", "--help"):
        commands = sorted({n.split()[0] for n in COMMANDS})
        raise ValueError(f"unknown command {args[0]!r}; choose one of {', '.join(commands)}")
    return "", args[:1] if trainers else []


def main(argv: list[str] | None = None) -> None:
    """Run the script of the subcommand that ``argv`` names with the rest of the arguments, its
    usage line naming the subcommand; without one, the list of subcommands."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        name, rest = _command(args)
    except ValueError as e:
        sys.exit(f"error: {e} (attn --help lists them)")
    if not name:  # attn, attn --help, attn train: the commands
        print((__doc__.split("\n\n")[0] + "\n\n" if not rest else "") + usage(rest[0] if rest else ""))
        return
    command = COMMANDS[name]
    if not command.module:
        if rest and rest != ["--help"] and rest != ["-h"]:
            sys.exit(f"error: attn {name} takes no arguments, got {' '.join(rest)}")
        print(command.summary if rest else "\n".join(["catch", *_games()]))
        return
    sys.argv = [f"attn {name}", *rest]
    importlib.import_module(f"scripts.{command.module}").main()


if __name__ == "__main__":
    main()
