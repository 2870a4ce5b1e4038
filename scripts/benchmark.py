"""Benchmarks, each side by side with its peer in one run; results go to docs/benchmarks.md.

python scripts/benchmark.py envs      # env steps/s: ours vs SB3's pipeline vs raw ALE
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), Python {python}, torch {torch.__version__}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace the section between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (or append)."""
    command = "python scripts/benchmark.py " + " ".join(sys.argv[1:])
    stamp = datetime.date.today().isoformat()
    block = (
        f"<!-- {name}:begin -->\nCommand: `{command}`  \nMachine: {machine()}  \nDate: {stamp}\n\n"
        f"{body}\n<!-- {name}:end -->"
    )
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {name}:begin -->.*?<!-- {name}:end -->", re.S)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + f"\n\n{block}\n"
    )
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    print(f"wrote the '{name}' section of {doc}")


@dataclass
class Envs:
    """Agent steps/s with random actions: our vector and single env, SB3's pipeline, raw ALE."""

    games: list[str] = field(default_factory=lambda: ["pong", "breakout", "enduro"])
    """Games to measure."""
    vector_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    """num_envs values for our vector env."""
    seconds: float = 2.0
    """Length of one timed window."""
    repeats: int = 3
    """Timed windows per setup; the median is reported."""
    write: bool = True
    """Write the table into docs/benchmarks.md."""


def run_envs(cfg: Envs) -> None:
    from envs.benchmark import benchmark_envs, ratio_rows

    rows = ratio_rows(benchmark_envs(cfg.games, cfg.vector_sizes, cfg.seconds, cfg.repeats))
    table = markdown_table(["game", "setup", "steps/s", "vs SB3 x1", "of emulation ceiling"], rows)
    print(table)
    if cfg.write:
        write_section("envs", table)


def main() -> None:
    cfg = tyro.extras.subcommand_cli_from_dict(
        {"envs": Annotated[Envs, tyro.conf.arg(help=Envs.__doc__)]}, description=__doc__
    )
    {Envs: run_envs}[type(cfg)](cfg)


if __name__ == "__main__":
    main()
