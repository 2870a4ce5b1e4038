"""The documentation: the site builds with mkdocs in strict mode (a broken link or anchor, a page
left out of the navigation, an API page whose object is gone, all fail it), the README stays a
front page whose links resolve, and user docs cite no issue numbers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import call_script

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"


@pytest.mark.skipif(not MKDOCS.exists(), reason="mkdocs is not installed (the docs extra)")
def test_the_site_builds_strict_with_every_page_and_the_cli_reference(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([MKDOCS, "build", "--strict", "--site-dir", site], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    cli = (site / "cli.html").read_text()
    from scripts.attn import COMMANDS

    assert all(f"attn {name}" in cli for name in COMMANDS)
    assert "--total-steps" in cli and "(default:" in cli  # the trainers' --help, flags and defaults
    api = (site / "api" / "agents.html").read_text()
    assert "PQNConfig" in api and "q_lambda_targets" in api
    assert "20.97" in (site / "agents.html").read_text()  # pretrained/README.md


def test_the_readme_is_a_front_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links and not [link for link in links if not link.startswith("http")
                          and not (ROOT / link).exists()]  # fmt: skip


def test_user_docs_cite_no_issue_numbers():
    pages = [ROOT / "README.md", ROOT / "pretrained" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    cited = {str(p.relative_to(ROOT)): re.findall(r"(?<![\w/&])#\d+\b", p.read_text()) for p in pages}
    assert not {page: refs for page, refs in cited.items() if refs}


def test_a_benchmark_writes_its_section_in_the_page_that_holds_it(tmp_path):
    """A section lives where the docs put it (the glimpse agent's on its own page): it is replaced
    there, and a section no page holds yet goes to the end of benchmarks.md."""
    from scripts.bench.report import Report, Table

    bench, glimpse = tmp_path / "benchmarks.md", tmp_path / "glimpse_agent.md"
    bench.write_text("# Benchmarks\n")
    glimpse.write_text("# Glimpse\n\nbefore\n<!-- g:begin -->\nold\n<!-- g:end -->\nafter\n")
    Report("g", ["new table"]).write_docs(tmp_path)
    Report("fresh", [Table(["a", "b"], [["1", "2"]])]).write_docs(tmp_path)
    text = glimpse.read_text()
    assert "new table" in text and "old" not in text and text.endswith("after\n")
    assert "new table" not in bench.read_text() and "<!-- fresh:begin -->" in bench.read_text()
    assert "| a | b |\n|---|---|\n| 1 | 2 |" in bench.read_text()


def test_a_section_records_the_command_that_measured_it_without_where_it_went():
    from scripts.bench.report import measuring_command

    argv = ["pqn", "--steps", "8192", "--out", "/tmp/b", "--write-docs", "--docs=docs", "--repeats", "2"]
    assert measuring_command(argv) == "attn bench pqn --steps 8192 --repeats 2"


def test_a_saved_result_renders_as_the_run_did(tmp_path):
    """The JSON a benchmark writes holds all its section shows: rendered later (another machine's
    run, say), the section is the same text, command, machine and date included."""
    from scripts.bench.report import Report, Table

    table = Table(["setup", "steps/s"], [["fp32", "687"], ["bf16", "1,040"]])
    report = Report("pqn", ["Two setups.", table], {"fp32": {"sps": 687.2}}, command="attn bench pqn",
                    machine="2 cores", date="2026-12-04")  # fmt: skip
    again = Report.load(report.save(tmp_path / "out"))
    assert again == report and again.markdown() == report.markdown()
    head = "Command: `attn bench pqn`  \nMachine: 2 cores  \nDate: 2026-12-04\n\nTwo setups.\n\n| setup |"
    assert again.markdown().startswith(head)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benchmarks.md").write_text("# B\n\n<!-- pqn:begin -->\nold\n<!-- pqn:end -->\n")
    done = call_script("scripts/benchmark.py", "docs", str(tmp_path / "out" / "pqn.json"), "--docs",
                       str(docs))  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = f"# B\n\n<!-- pqn:begin -->\n{report.markdown()}\n<!-- pqn:end -->\n"
    assert (docs / "benchmarks.md").read_text() == expected
    (tmp_path / "bad.json").write_text("{}")
    done = call_script("scripts/benchmark.py", "docs", str(tmp_path / "bad.json"), "--docs", str(docs))
    assert done.returncode == 2 and "is not a benchmark result" in done.stderr
    done = call_script("scripts/benchmark.py", "envs", "--write-docs", "--docs", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "--docs" in done.stderr and done.stderr.count("\n") == 1
