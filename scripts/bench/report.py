"""A benchmark's results: the measurements as data, the tables made from them, the command, the
machine and the date, written as JSON; rendered as Markdown into the docs page that holds the
section's markers only when asked, so that a run on another machine (a GPU window, say) can be
rendered into the docs later, from its file."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.render import markdown_table


def machine() -> str:
    """The cores, the CPU's model, Python's and torch's versions: what a figure was measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}"


def measuring_command(argv: list[str]) -> str:
    """``attn bench`` with the arguments that shape the measurement: where its results go
    (``--out``, ``--docs``, ``--write-docs``) changes no figure, so a section does not record it."""
    kept, skip = [], False
    for arg in argv:
        name = arg.split("=", 1)[0]
        if skip:
            skip = False
        elif name in ("--write-docs", "--no-write-docs"):
            continue
        elif name in ("--out", "--docs"):
            skip = "=" not in arg
        else:
            kept.append(arg)
    return " ".join(["attn bench", *kept])


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Report:
    """One section of results. ``blocks`` are what the docs show, in order: text and tables;
    ``data`` the measurements they were made from (JSON-ready)."""

    section: str
    blocks: list[str | Table]
    data: Any = None
    command: str = field(default_factory=lambda: measuring_command(sys.argv[1:]))
    machine: str = field(default_factory=machine)
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())

    def body(self) -> str:
        """The blocks as Markdown."""
        return "\n\n".join(b if isinstance(b, str) else markdown_table(b.header, b.rows) for b in self.blocks)

    def markdown(self) -> str:
        """The section as the docs show it: the command, the machine and the date, then the body."""
        return (f"Command: `{self.command}`  \nMachine: {self.machine}  \nDate: {self.date}\n\n"
                f"{self.body()}")  # fmt: skip

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """``folder/<section>.json``, written whole or not at all (a temporary file renamed)."""
        path = Path(folder) / f"{self.section}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """A saved report; a file that is not one is refused in one line."""
        try:
            saved = json.loads(Path(path).read_text())
            blocks = [b if isinstance(b, str) else Table(b["header"], b["rows"]) for b in saved.pop("blocks")]
            return cls(blocks=blocks, **saved)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{str(path)!r} is not a benchmark result (a JSON file that attn bench "
                             f"wrote): {type(e).__name__}: {e}") from None  # fmt: skip

    def write_docs(self, docs: str | os.PathLike[str]) -> Path:
        """Replace the section between ``<!-- section:begin -->`` and ``<!-- section:end -->`` in
        the page of ``docs`` that holds it; a section no page holds yet goes to the end of
        ``benchmarks.md``."""
        folder = Path(docs)
        if not folder.is_dir():
            raise ValueError(f"--docs {str(folder)!r} is not a folder: --write-docs writes into the "
                             "repository's docs/ (run from the checkout, or give --docs)")  # fmt: skip
        name = self.section
        marker = f"<!-- {name}:begin -->"
        pages = sorted(folder.rglob("*.md"))
        page = next((p for p in pages if marker in p.read_text()), folder / "benchmarks.md")
        block = f"{marker}\n{self.markdown()}\n<!-- {name}:end -->"
        text = page.read_text() if page.exists() else "# Benchmarks\n"
        pattern = re.compile(rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->", re.S)
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
        tmp = page.with_suffix(".md.tmp")
        tmp.write_text(text)
        os.replace(tmp, page)
        return page
