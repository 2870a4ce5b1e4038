"""mkdocs hooks: pages made from the code at build time, so that they cannot fall out of date:
the command-line reference (each ``attn`` subcommand's ``--help``) and the shipped agents' page
(``pretrained/README.md``, which lives beside the agents it describes)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]


def _help(name: str) -> str:
    """What ``attn NAME --help`` prints, 100 columns wide."""
    from scripts.attn import main

    out, argv, columns = io.StringIO(), sys.argv, os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        with contextlib.redirect_stdout(out):
            main([*name.split(), "--help"])
    except SystemExit:
        pass
    finally:
        sys.argv = argv
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return out.getvalue().rstrip()


def cli_page() -> str:
    from scripts.attn import COMMANDS, usage

    sections = [
        "# Command line\n\n"
        "One command, `attn`, with a subcommand for each part of the suite. Each subcommand is a "
        "script in `scripts/` (`python scripts/train_pqn.py` is `attn train pqn`), and every flag "
        "shows its default. This page is made from the `--help` of each, when the site is built.\n\n"
        f"```text\n{usage()}\n```"
    ]
    for name, command in COMMANDS.items():
        text = _help(name) if command.module else command.summary
        sections.append(f"## attn {name}\n\n```text\n{text}\n```")
    return "\n\n".join(sections) + "\n"


def agents_page() -> str:
    text = (ROOT / "pretrained" / "README.md").read_text()
    return re.sub(r"\]\(\.\./docs/", "](", text)  # its links to docs/ from pretrained/


def on_files(files: Files, config) -> Files:
    sys.path.insert(0, str(ROOT))
    files.append(File.generated(config, "cli.md", content=cli_page()))
    files.append(File.generated(config, "agents.md", content=agents_page()))
    return files
