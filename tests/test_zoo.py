"""The zoo: an agent's analysis files, and the page and README table made from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import call_script

from agents.qlearning.pqn import PQNConfig, PQNTrainer
from analysis.zoo import (
    _interval,
    analyse_agent,
    entries,
    main_difference,
    sanity_verdicts,
    write_zoo_page,
)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """A pretrained/ folder with one tiny Catch PQN agent and its eval.json."""
    root = tmp_path_factory.mktemp("zoo")
    run = root / "run"
    PQNTrainer(PQNConfig.for_game("catch", total_steps=256, num_envs=8, rollout=8, progress=False,
                                  saliency_every=0, run_dir=str(run))).run()  # fmt: skip
    agent = root / "pretrained" / "catch"
    agent.mkdir(parents=True)
    newest = sorted((run / "checkpoints").glob("step_*"))[-1]
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(newest / name, agent / name)
    record = {"game": "catch", "mean": 0.5, "std": 0.5, "human_normalized": None, "policy": "greedy",
              "scores": [1.0, 0.0], "training": {"command": "attn train pqn --game catch", "steps": 256,
              "wall_seconds": 90.0, "machine": "CPU (x86_64), 2 threads"}}  # fmt: skip
    (agent / "eval.json").write_text(json.dumps(record))
    return root


REPORT = {
    "method": "jacobian",
    "objects": {"jacobian": {"differences": {"value - advantage": {
        "ball": {"mean": -0.010, "ci_low": -0.015, "ci_high": -0.005},
        "score": {"mean": 0.032, "ci_low": 0.026, "ci_high": 0.037},
        "player": {"mean": 0.001, "ci_low": -0.002, "ci_high": 0.004}}}}},
    "region_differences": {"value - advantage/left": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}},
    "sanity": {"jacobian": {"survives_full_randomisation": {"value": False, "advantage": True}}},
}


def _robustness(eps2: dict[str, float]) -> dict:
    rows = lambda m: [{"epsilon": e, "mean_return": {"mean": m if e == 2 else 9.0, "ci_low": m - 1,  # noqa: E731
                                                     "ci_high": m + 1}} for e in (0.0, 2.0)]  # fmt: skip
    return {"summary": {attack: {"pqn": rows(m)} for attack, m in eps2.items()}, "runs": [{"episodes": 30}]}


def test_the_largest_difference_is_on_objects_before_regions_and_the_verdicts_name_each_head():
    assert main_difference(REPORT) == "score: +0.032 [+0.026, +0.037]"
    assert main_difference({"region_differences": REPORT["region_differences"]}) == \
        "left: +0.500 [+0.400, +0.600]"  # fmt: skip
    assert main_difference({}) == ""
    assert sanity_verdicts(REPORT) == "value: passes / advantage: fails"


def test_the_page_and_the_readme_table_come_from_the_files(shipped, tmp_path):
    zoo = tmp_path / "docs" / "zoo"
    (zoo / "catch").mkdir(parents=True)
    (zoo / "catch" / "report.json").write_text(json.dumps(REPORT))
    (zoo / "catch" / "robustness.json").write_text(json.dumps(_robustness({"fgsm": 0.2, "pgd": 0.1,
                                                                            "noise": 0.9})))  # fmt: skip
    (zoo / "catch" / "still.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- zoo:begin -->\nold\n<!-- zoo:end -->\n\nafter\n")
    page = tmp_path / "docs" / "zoo.md"
    write_zoo_page(shipped / "pretrained", zoo, page, "attn zoo page", [readme])
    text = page.read_text()
    row = ("| Catch, dueling PQN | 0.50 +- 0.50 |  | 256 | 1.5 min | CPU (x86_64), 2 threads | "
           "score: +0.032 [+0.026, +0.037] | value: passes / advantage: fails | 0.20 [-0.80, 1.20] | "
           "0.10 [-0.90, 1.10] | 0.90 [-0.10, 1.90] | 30 |")  # fmt: skip
    assert row in text.splitlines()
    assert "![Catch, dueling PQN: the game, the value and the advantage saliency](zoo/catch/still.png)" \
        in text  # fmt: skip
    assert "```bash\nattn zoo page\n```" in text and "made with `attn train pqn --game catch`" in text
    summary = readme.read_text()
    assert "| Catch, dueling PQN | 0.50 +- 0.50 | 0.0M | CPU (x86_64), 2 threads, 1.5 min |" in summary
    assert summary.startswith("# x\n\n<!-- zoo:begin -->\n| agent |")
    assert summary.endswith("<!-- zoo:end -->\n\nafter\n")
    readme.write_text("no block\n")
    with pytest.raises(ValueError, match="has no <!-- zoo:begin --> ... <!-- zoo:end --> block"):
        write_zoo_page(shipped / "pretrained", zoo, page, "attn zoo page", [readme])
    done = call_script("scripts/zoo.py", "page", "--pretrained", str(tmp_path / "none"), "--summaries")
    assert done.returncode == 1 and done.stderr.count("\n") == 1


def test_an_agents_analysis_writes_what_the_page_shows(shipped, tmp_path):
    """Tiny budgets on the Catch agent: the head report, the clip and its still, the robustness
    curve; the page then fills the agent's row from them."""
    out = tmp_path / "zoo" / "catch"
    written = analyse_agent(shipped / "pretrained" / "catch", out, steps=24, clip_steps=12,
                            episodes=2, epsilons=(0.0, 2.0), attacks=("fgsm", "noise"), num_envs=2,
                            progress=False)  # fmt: skip
    assert {p.name for p in written} == {"report.json", "report.png", "clip.mp4", "still.png",
                                         "robustness.json", "robustness.png", "analysis.json"}  # fmt: skip
    assert all(p.stat().st_size > 0 for p in written)
    robustness = json.loads((out / "robustness.json").read_text())
    assert robustness["epsilons"] == [0.0, 2.0] and set(robustness["summary"]) == {"fgsm", "noise"}
    [entry] = entries(shipped / "pretrained", tmp_path / "zoo")
    assert entry.report["frames"] == 24 and set(entry.files) == {"still.png", "clip.mp4", "report.png",
                                                                 "robustness.png"}  # fmt: skip
    assert "value: " in sanity_verdicts(entry.report)


def test_an_analysis_resumes_point_by_point_and_plays_the_clean_point_once(shipped, tmp_path, monkeypatch):
    """Stopped after its first attacked point, the same call plays only the points it lacks; made
    whole, it plays nothing again; another agent's weights in the folder start it over. Epsilon 0
    (the clean play) is played once for both attacks."""
    import analysis.adversarial
    import analysis.zoo

    real, played = analysis.adversarial.robustness, []

    def counted(agent, attack, eps, **kw):
        played.append((attack, eps[0]))
        if len(played) == stop_after + 1:
            raise KeyboardInterrupt
        return real(agent, attack, eps, **kw)

    monkeypatch.setattr(analysis.adversarial, "robustness", counted)
    agent, out = shipped / "pretrained" / "catch", tmp_path / "catch"
    kwargs = dict(steps=12, clip_steps=6, episodes=2, epsilons=(0.0, 2.0, 4.0), attacks=("fgsm", "noise"),
                  num_envs=2, progress=False)  # fmt: skip
    stop_after = 2
    with pytest.raises(KeyboardInterrupt):
        analyse_agent(agent, out, **kwargs)
    partial = json.loads((out / "robustness.json").read_text())
    assert not partial["complete"] and [r["epsilon"] for r in partial["runs"][0]["results"]] == [0.0, 2.0]
    made = {f: (out / f).stat().st_mtime_ns for f in ("report.json", "clip.mp4")}

    played.clear()
    monkeypatch.setattr(analysis.zoo, "_head_report", None)  # not called again
    stop_after = 99
    analyse_agent(agent, out, **kwargs)
    assert played == [("fgsm", 4.0), ("noise", 2.0), ("noise", 4.0)]  # noise at 0 is fgsm's clean play
    whole = json.loads((out / "robustness.json").read_text())
    assert whole["complete"] and [run["attack"] for run in whole["runs"]] == ["fgsm", "noise"]
    assert whole["runs"][1]["results"][0] == whole["runs"][0]["results"][0]
    assert {e: len(r["scores"]) for e, r in ((r["epsilon"], r) for r in whole["runs"][1]["results"])} == \
        {0.0: 2, 2.0: 2, 4.0: 2}  # fmt: skip
    assert made == {f: (out / f).stat().st_mtime_ns for f in made}

    played.clear()
    analyse_agent(agent, out, **kwargs)
    assert played == []
    stamp = json.loads((out / "analysis.json").read_text())
    stamp["weights_sha256"] = "another agent's"
    (out / "analysis.json").write_text(json.dumps(stamp))
    with pytest.raises(TypeError):  # the head report is made again, and _head_report is None
        analyse_agent(agent, out, **kwargs)
    monkeypatch.undo()
    monkeypatch.setattr(analysis.adversarial, "robustness", counted)
    rewritten = json.loads((out / "robustness.json").read_text())
    rewritten["weights_sha256"] = "another agent's"
    (out / "robustness.json").write_text(json.dumps(rewritten))
    played.clear()
    analyse_agent(agent, out, **kwargs)
    assert len(played) == 5  # every point but the shared clean one, again


def test_transfer_attacks_join_the_analysis_and_resume_by_their_source(shipped, tmp_path, monkeypatch):
    """Crafted on the agent itself, a transfer attack is the white-box attack (the same frames, the
    same perturbation): the same scores, labelled as crafted on a PQN agent; its points are kept
    while the source's weights are the same and played again when they are not."""
    import analysis.adversarial

    agent, out = shipped / "pretrained" / "catch", tmp_path / "zoo" / "catch"
    kwargs = dict(steps=12, clip_steps=6, episodes=4, epsilons=(0.0, 8.0), attacks=("fgsm", "noise"),
                  num_envs=4, progress=False, transfer_from=agent)  # fmt: skip
    analyse_agent(agent, out, **kwargs)
    whole = json.loads((out / "robustness.json").read_text())
    white, noise, transfer = whole["runs"]
    assert (white["attack"], noise["attack"], transfer["attack"]) == ("fgsm", "noise", "fgsm")
    assert transfer["transfer_from"] == str(agent) and white["transfer_from"] is None
    assert transfer["results"] == white["results"] and whole["complete"]
    assert set(whole["summary"]["fgsm"]) == {"pqn", "pqn, crafted on pqn"}

    real, played = analysis.adversarial.robustness, []
    monkeypatch.setattr(analysis.adversarial, "robustness",
                        lambda *a, **kw: played.append((a[1], kw["transfer_from"])) or real(*a, **kw))
    analyse_agent(agent, out, **kwargs)
    assert played == []
    transfer["transfer_sha256"] = "another source's"
    (out / "robustness.json").write_text(json.dumps(whole))
    analyse_agent(agent, out, **kwargs)
    assert played == [("fgsm", str(agent))]  # its attacked point; the clean one is everyone's


def test_the_breakout_glimpse_agent_is_attacked_through_the_pqn_agents_resize():
    """The Breakout glimpse agent sees 210x160 frames, the PQN agent 84x84: its attacks go through
    the PQN agent's resize, and its points are kept under the PQN agent's weights."""
    from agents.common.checkpoint import read_json, resolve_checkpoint
    from agents.common.pretrained import weights_digest
    from analysis.zoo import _transfer_source

    target = read_json(resolve_checkpoint("pretrained/breakout_glimpse") / "config.json")
    source = _transfer_source("pretrained/breakout", ("fgsm", "pgd", "noise"), target)
    assert (source.agent, source.sha) == ("pqn", weights_digest("pretrained/breakout"))
    with pytest.raises(ValueError, match="--transfer-from crafts FGSM or PGD on another agent"):
        _transfer_source("pretrained/breakout", ("noise",), target)


def test_an_interrupted_analysis_says_where_its_points_are_kept(monkeypatch, tmp_path):
    import analysis.zoo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis.zoo, "analyse_agent", interrupted)
    done = call_script("scripts/zoo.py", "analyse", "pretrained/pong", "--zoo", str(tmp_path))
    assert done.returncode == 130 and done.stderr.count("\n") == 1
    assert f"interrupted by SIGINT; what was complete is kept in {tmp_path / 'pong'}" in done.stderr


def test_agents_compare_by_the_share_of_their_play_above_random_they_keep(tmp_path):
    """Two agents' curves on one figure, each return between random play and its clean return; the table
    by hand: a clean 5 and an attacked 2 keep 0.40, a clean 50 and an attacked 45 keep 0.90, and on
    Pong (random play -20.7) a clean 19.3 and an attacked -0.7 keep (-0.7 + 20.7) / (19.3 + 20.7) =
    0.50, where -21 is -0.01, not the -1.09 of a share of the clean return. Named by --labels, a
    transfer attack crafted on one of them is named after its source's label."""
    from analysis.zoo import compare_robustness

    def run(agent: str, clean: list[float], attacked: list[float], **extra) -> dict:
        rows = [{"epsilon": e, "mean_return": float(np.mean(x)), "flip_rate": 0.1 * e, "scores": x}
                for e, x in ((0.0, clean), (8.0, attacked))]  # fmt: skip
        return {"agent": agent, "attack": "fgsm", "transfer_from": None, "results": rows, **extra}

    for name, runs in (("cnn", [run("pqn", [4.0, 6.0], [1.0, 3.0])]),
                       ("glimpse", [run("glimpse", [40.0, 60.0], [44.0, 46.0]),
                                    run("glimpse", [40.0, 60.0], [30.0, 34.0], transfer_from="cnn",
                                        transfer_from_agent="pqn")])):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "robustness.json").write_text(json.dumps({"runs": runs}))
    figure, table = compare_robustness(["cnn", "glimpse"], tmp_path, tmp_path / "cmp.png")
    assert figure.stat().st_size > 0
    lines = table.splitlines()
    assert lines[0] == "| agent | attack | clean return | random play | epsilon 8 |"
    assert lines[2].startswith("| cnn | FGSM | 5.0 | 0 | 0.40 [")
    assert lines[3].startswith("| glimpse | FGSM | 50.0 | 0 | 0.90 [")
    assert lines[4].startswith("| glimpse, crafted on cnn | FGSM | 50.0 | 0 | 0.64 [")
    _, table = compare_robustness(["cnn", "glimpse"], tmp_path, tmp_path / "cmp.png", labels=("PQN", "hard"))
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| PQN", "| hard",
                                                                        "| hard, crafted on PQN"]  # fmt: skip
    pong = [run("pqn", [19.3], [-0.7], game="pong"),
            {**run("pqn", [19.3], [-21.0], game="pong"), "attack": "noise"}]  # fmt: skip
    (tmp_path / "pong").mkdir()
    (tmp_path / "pong" / "robustness.json").write_text(json.dumps({"runs": pong}))
    _, table = compare_robustness(["cnn", "pong"], tmp_path, tmp_path / "cmp.png")
    assert "| pong | FGSM | 19.3 | -20.7 | 0.50 [0.50, 0.50] |" in table
    assert "| pong | noise | 19.3 | -20.7 | -0.01 [-0.01, -0.01] |" in table
    assert _interval({"mean": -0.001, "ci_low": -0.02, "ci_high": 0.004}) == "0.00 [-0.02, 0.00]"
    with pytest.raises(ValueError, match="--labels names each agent compared: 2 labels, got 1"):
        compare_robustness(["cnn", "glimpse"], tmp_path, tmp_path / "cmp.png", labels=("PQN",))
    (tmp_path / "cnn" / "robustness.json").write_text(json.dumps({"runs": [run("pqn", [-1.0], [-1.0])]}))
    with pytest.raises(ValueError, match=r"cnn under fgsm has no clean return \(epsilon 0\) above random"):
        compare_robustness(["cnn", "glimpse"], tmp_path, tmp_path / "cmp.png")
    with pytest.raises(ValueError, match="at least two agents"):
        compare_robustness(["cnn"], tmp_path, tmp_path / "cmp.png")


def test_the_readme_the_home_page_and_the_zoo_page_show_the_shipped_agents_as_they_are():
    """What `attn zoo page` wrote is what it would write now: a shipped agent added, removed or
    re-evaluated without remaking the pages fails here."""
    from analysis.zoo import summary, table

    root = Path(__file__).resolve().parent.parent
    found = entries(root / "pretrained", root / "docs" / "zoo")
    for page in (root / "README.md", root / "docs" / "index.md"):
        assert f"<!-- zoo:begin -->\n{summary(found)}\n<!-- zoo:end -->" in page.read_text(), page
    assert table(found) in (root / "docs" / "zoo.md").read_text()
    assert {e.name: e.label for e in found}["ms_pacman"] == "Ms. Pac-Man, dueling PQN"  # its own spelling


def test_an_analysis_without_attacks_is_the_head_report_and_the_clip(shipped, tmp_path):
    out = tmp_path / "zoo" / "catch"
    written = analyse_agent(shipped / "pretrained" / "catch", out, steps=12, clip_steps=6, attacks=(),
                            progress=False)  # fmt: skip
    assert {p.name for p in written} == {"report.json", "report.png", "clip.mp4", "still.png",
                                         "analysis.json"}  # fmt: skip
    assert not (out / "robustness.json").exists()


@pytest.mark.parametrize("kind", ["glimpse", "soft"])
def test_attention_agents_get_their_own_clip_and_no_head_report(kind, tmp_path):
    """A glimpse agent's clip shows its glimpses, a soft-attention agent's its attention maps; neither
    has two heads to compare, and the page's still says what it shows."""
    from agents.glimpse.train import GlimpseConfig, GlimpseTrainer
    from agents.soft.train import SoftConfig, SoftTrainer

    run = tmp_path / "run"
    if kind == "glimpse":
        GlimpseTrainer(GlimpseConfig(total_steps=2 * 24 * 4, num_envs=4, hidden=16, heatmap_every=0,
                                     progress=False, run_dir=str(run))).run()  # fmt: skip
    else:
        SoftTrainer(SoftConfig(total_steps=2 * 24 * 4, num_envs=4, hidden=16, attention_every=0,
                               progress=False, run_dir=str(run))).run()  # fmt: skip
    agent = tmp_path / "pretrained" / "catch"
    agent.mkdir(parents=True)
    newest = sorted((run / "checkpoints").glob("step_*"))[-1]
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(newest / name, agent / name)
    record = {"game": "catch", "mean": 0.1, "std": 0.3, "policy": "sample" if kind == "glimpse" else "greedy"}
    (agent / "eval.json").write_text(json.dumps(record))
    written = analyse_agent(agent, tmp_path / "zoo" / "catch", clip_steps=8, attacks=(), progress=False)
    assert {p.name for p in written} == {"clip.mp4", "still.png", "analysis.json"}
    [entry] = entries(tmp_path / "pretrained", tmp_path / "zoo")
    assert entry.kind == kind and entry.report is None
    write_zoo_page(tmp_path / "pretrained", tmp_path / "zoo", tmp_path / "zoo.md", "attn zoo page")
    shows = "the game with its glimpses" if kind == "glimpse" else "each query's attention"
    assert f"{shows}" in (tmp_path / "zoo.md").read_text()


def test_an_analysis_of_some_attacks_keeps_the_others(shipped, tmp_path, monkeypatch, capsys):
    """A call for one attack, or without the transfer source, keeps the points the file holds for
    the others as they were (and their clean point serves it); the figure shows them all. Each
    point played says what it gave and what it cost, in one line."""
    import analysis.adversarial

    agent, out = shipped / "pretrained" / "catch", tmp_path / "zoo" / "catch"
    kwargs = dict(steps=12, clip_steps=6, episodes=2, epsilons=(0.0, 8.0), num_envs=2, progress=False)
    analyse_agent(agent, out, attacks=("fgsm", "noise"), transfer_from=agent, **kwargs)
    whole = json.loads((out / "robustness.json").read_text())
    real, played = analysis.adversarial.robustness, []
    monkeypatch.setattr(analysis.adversarial, "robustness",
                        lambda *a, **kw: played.append(a[1]) or real(*a, **kw))
    capsys.readouterr()
    analyse_agent(agent, out, attacks=("pgd",), **kwargs)
    assert played == ["pgd"]  # at epsilon 8; the clean point is the file's
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("PGD at epsilon 8: return ") and " steps in " in line and line.endswith(" min")
    after = json.loads((out / "robustness.json").read_text())
    assert after["runs"][:3] == whole["runs"] and after["runs"][3]["attack"] == "pgd"
    assert set(after["summary"]) == {"fgsm", "noise", "pgd"}
    assert set(after["summary"]["fgsm"]) == {"pqn", "pqn, crafted on pqn"}


def test_a_stop_keeps_the_points_of_the_attacks_not_reached_yet(shipped, tmp_path, monkeypatch):
    """The file is rewritten after every point with every point it held: stopped while an earlier
    attack plays a point it lacked, the later attacks' points are still in it and in the figure
    drawn on the way out, a call for those later attacks alone does not call the file complete,
    and the same call then plays that one point alone."""
    import analysis.adversarial

    agent, out = shipped / "pretrained" / "catch", tmp_path / "zoo" / "catch"
    kwargs = dict(steps=12, clip_steps=6, episodes=2, epsilons=(0.0, 2.0), num_envs=2, progress=False)
    analyse_agent(agent, out, attacks=("noise",), **kwargs)
    noise = json.loads((out / "robustness.json").read_text())["runs"][0]["results"]
    real, played = analysis.adversarial.robustness, []

    def stopped(*args, **kw):
        played.append((args[1], args[2][0]))
        if stop:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(analysis.adversarial, "robustness", stopped)
    stop = True
    (out / "robustness.png").unlink()
    with pytest.raises(KeyboardInterrupt):
        analyse_agent(agent, out, attacks=("fgsm", "noise"), **kwargs)
    assert (out / "robustness.png").stat().st_size > 0  # drawn from the points kept
    partial = json.loads((out / "robustness.json").read_text())
    assert not partial["complete"] and played == [("fgsm", 2.0)]
    points = {run["attack"]: run["results"] for run in partial["runs"]}
    assert points == {"fgsm": noise[:1], "noise": noise}  # fgsm's clean point is the shared one
    assert set(partial["summary"]) == {"fgsm", "noise"}
    analyse_agent(agent, out, attacks=("noise",), **kwargs)  # whole itself, and plays nothing
    assert played == [("fgsm", 2.0)] and not json.loads((out / "robustness.json").read_text())["complete"]
    stop, played[:] = False, []
    analyse_agent(agent, out, attacks=("fgsm", "noise"), **kwargs)
    whole = json.loads((out / "robustness.json").read_text())
    assert whole["complete"] and played == [("fgsm", 2.0)]
    assert [run["attack"] for run in whole["runs"]] == ["fgsm", "noise"]
    assert whole["runs"][1]["results"] == noise
