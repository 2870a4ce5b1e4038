"""The zoo: each shipped agent with its score, where its value and advantage streams look (the head
report), a still and a clip of its saliency video, and its robustness to attacks on its
observations, on one page made from those files by :func:`write_zoo_page`, never by hand.

Each agent's analysis (:func:`analyse_agent`) lives in ``docs/zoo/<agent>/``:

* ``report.json`` and ``report.png``: the head report (``attn report``) over ``steps`` frames;
* ``clip.mp4`` and ``still.png``: the first seconds of its video and one frame of it: the value's
  and the advantage's saliency (``attn saliency``), the glimpses and the patches they took
  (``attn glimpses``), or the soft-attention agent's maps beside its value's Jacobian;
* ``robustness.json`` and ``robustness.png``: FGSM, PGD and random noise at each epsilon, the agent
  attacked at every step of ``episodes`` evaluation episodes (``attn attack``), the intervals over
  those episodes;
* ``analysis.json``: the SHA-256 of the weights analysed and the settings of each part, so that an
  interrupted analysis resumes instead of starting over.
"""

from __future__ import annotations

import collections
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.common.checkpoint import CONFIG, atomic_write_text, read_json, resolve_checkpoint
from analysis.render import markdown_table

ATTACKS = ("fgsm", "pgd", "noise")
KINDS = {"pqn": "dueling PQN", "dqn": "dueling DQN", "glimpse": "glimpse agent",
         "soft": "soft-attention agent"}  # fmt: skip
# what a still shows, by kind of agent (the dueling agents: the game beside their heads' saliency)
STILLS = {"glimpse": "the game with its glimpses, beside the patches it saw",
          "soft": "the game, each query's attention and the value's Jacobian"}  # fmt: skip
# games whose printed name is not their id's words capitalised
TITLES = {"ms_pacman": "Ms. Pac-Man"}
EPSILONS = (0.0, 1.0, 2.0, 4.0, 8.0)
PGD_STEPS = 10  # PGD's iterations (Madry et al. 2018)
REPORT_KEPT = ("report.json", "report.png")
NAMES = {"fgsm": "FGSM", "pgd": "PGD", "noise": "noise"}


def analyse_agent(agent: str | Path, out: str | Path, *, steps: int = 1000, clip_steps: int = 150,
                  episodes: int = 30, epsilons: Sequence[float] = EPSILONS,
                  attacks: Sequence[str] = ATTACKS, num_envs: int = 8, seed: int = 0,
                  progress: bool = True, fresh: bool = False,
                  transfer_from: str | Path | None = None) -> list[Path]:  # fmt: skip
    """Write the zoo's files for one shipped agent (see the module docstring) into ``out``. An
    agent without two heads to compare (the glimpse and soft-attention agents) gets no head report;
    no ``attacks``, the head report and the clip only (the attacks are most of the time). The clip
    and the attacked evaluations play the policy the agent's evaluation played (greedy, or sampled
    as its ``eval.json`` says). ``transfer_from``, a CNN agent of the same game: FGSM and PGD are
    also crafted on it and applied to this agent's frames (transfer attacks), at every epsilon.

    An analysis resumes: ``analysis.json`` names the weights (their SHA-256) and the settings of
    what ``out`` holds, and ``robustness.json`` is written after every attack and epsilon, so that
    the same call, after Ctrl-C or on another day, redoes only what is missing or was made for
    other weights or settings (on two CPU cores one PGD point of a long game takes hours).
    ``fresh`` redoes everything."""
    from agents.common.checkpoint import load_checkpoint
    from agents.common.pretrained import weights_digest
    from analysis.adversarial import check_attack, plot_robustness, summarise

    for attack in attacks:
        check_attack(attack, list(epsilons))
    net, config = load_checkpoint(agent)
    source = _transfer_source(transfer_from, attacks, config)
    record = Path(agent) / "eval.json"
    greedy = not record.is_file() or read_json(record).get("policy", "greedy") == "greedy"
    if not greedy and config.get("agent") not in ("glimpse", "soft"):
        raise ValueError(f"{record} scores a sampled policy, which only the glimpse and soft-attention "
                         "agents have")  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digest = weights_digest(agent)
    stamp_path = out / "analysis.json"
    stamp = {} if fresh or not stamp_path.is_file() else read_json(stamp_path)
    if stamp.get("weights_sha256") != digest:
        stamp = {"weights_sha256": digest}
    written = []

    def part(name: str, files: list[str], settings: dict[str, Any], make: Any) -> None:
        """Make a part unless ``out`` holds it for these weights and settings already."""
        if stamp.get(name) == settings and all((out / f).is_file() for f in files):
            written.extend(out / f for f in files)
            return
        written.extend(make())
        stamp[name] = settings
        _write_json(stamp_path, stamp)

    if config.get("agent") in ("dqn", "pqn"):  # the dueling heads to compare
        part("report", list(REPORT_KEPT), {"steps": steps, "seed": seed},
             lambda: _head_report(net, config, out, steps, seed, progress))
    part("clip", ["clip.mp4", "still.png"], {"steps": clip_steps, "seed": seed, "greedy": greedy},
         lambda: _clip_and_still(net, config, out, clip_steps, seed, progress, greedy))
    if not attacks:  # the head report and the clip alone
        return written + [stamp_path]
    eps = sorted(set(epsilons))
    settings = {"episodes": episodes, "seed": seed, "num_envs": num_envs,
                "policy": "greedy" if greedy else "sample"}  # fmt: skip
    plans = [(a, None) for a in attacks] + [(a, source) for a in attacks if source and a != "noise"]
    path, figure, title = out / "robustness.json", out / "robustness.png", f"{config['game']}: robustness"
    try:
        runs = _attack_points(agent, path, digest, plans, eps, settings, fresh, progress)
    except KeyboardInterrupt:  # the figure of the points kept, so that it and the page match the file
        kept = read_json(path) if path.is_file() else {}
        if kept.get("weights_sha256") == digest:
            plot_robustness(summarise(kept["runs"]), figure, title)
        raise
    plot_robustness(summarise(runs), figure, title)
    return written + [stamp_path, path, figure]


@dataclass(frozen=True)
class Source:
    """The CNN agent that transfer attacks are crafted on: its folder, its weights' SHA-256 (a
    point crafted on other weights is played again) and its kind."""

    path: str
    sha: str
    agent: str


def _transfer_source(transfer_from: str | Path | None, attacks: Sequence[str],
                     target: dict[str, Any]) -> Source | None:  # fmt: skip
    """The source of the transfer attacks, checked before anything is played: a CNN agent of the
    ``target``'s game that sees frames of its size, and an attack to transfer."""
    if transfer_from is None:
        return None
    from agents.common.pretrained import weights_digest
    from analysis.adversarial import fit_to_screen, transfer_source

    if not set(attacks) - {"noise"}:
        raise ValueError("--transfer-from crafts FGSM or PGD on another agent: give --attacks fgsm or pgd")
    net, config = transfer_source(str(transfer_from))
    if config["game"] != target["game"]:
        raise ValueError(f"--transfer-from is a {config['game']!r} agent; the agent attacked plays "
                         f"{target['game']!r}")  # fmt: skip
    fit_to_screen(net, config, target)
    return Source(str(transfer_from), weights_digest(transfer_from), config.get("agent") or "dqn")


def _attack_points(agent: str | Path, path: Path, digest: str,
                   plans: list[tuple[str, Source | None]], eps: list[float],
                   settings: dict[str, Any], fresh: bool,
                   progress: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Every attack of ``plans`` (an attack, and the agent it is crafted on for a transfer attack,
    else None) at every epsilon, one point at a time, ``path`` rewritten after each (its
    ``complete`` true once every run it holds has every epsilon, whichever call played them); a
    point ``path`` already holds for these weights, ``settings`` and source is kept, not played
    again. Epsilon 0 is the clean evaluation whatever
    the attack (an attack at 0 hands the frame on untouched), so it is played once and shared.
    The runs ``path`` holds for attacks not planned here (another attack, or a transfer attack when
    no source is given) stay in it as they are: a call for some attacks loses none of the others."""
    from analysis.adversarial import robustness, summarise

    def key(attack: str, sha: str | None, e: float) -> tuple[str, str, float]:
        return attack, sha or "", e

    held: dict[tuple[str, str, float], tuple[dict[str, Any], dict[str, Any]]] = {}
    others: list[dict[str, Any]] = []  # the runs of attacks not planned here, kept whole
    if not fresh and path.is_file():
        previous = read_json(path)
        if previous.get("weights_sha256") == digest and previous.get("settings") == settings:
            planned = {(attack, source is not None) for attack, source in plans}
            for run in previous.get("runs", []):
                if (run["attack"], run.get("transfer_sha256") is not None) not in planned:
                    others.append(run)
                for row in run["results"]:
                    held[key(run["attack"], run.get("transfer_sha256"), row["epsilon"])] = (run, row)
    clean = next((point for k, point in held.items() if k[2] == 0), None)

    def assemble(reached: int) -> list[dict[str, Any]]:
        """The runs as they stand: each planned attack's points in epsilon order, those of the
        attacks not reached yet included, so that a stop loses no point the file held."""
        runs = list(others)
        for n, (attack, source) in enumerate(plans):
            at = (held.get(key(attack, source and source.sha, e)) or (clean if e == 0 else None) for e in eps)
            points = [point for point in at if point is not None]
            if n > reached and all(row["epsilon"] == 0 for _, row in points):
                continue  # nothing of its own yet (the clean point is every attack's)
            # the run's settings from its points (the shared clean one made under another attack
            # named for this one), what names this attack and its source over them
            run = {k: v for meta, _ in points for k, v in meta.items() if k != "results"}
            run.update({"attack": attack, "pgd_steps": PGD_STEPS if attack == "pgd" else None,
                        "transfer_from": source and source.path, "transfer_sha256": source and source.sha,
                        "transfer_from_agent": source and source.agent})  # fmt: skip
            runs.append({**run, "results": [row for _, row in points]})
        return runs

    for n, (attack, source) in enumerate(plans):
        for e in eps:
            point = held.get(key(attack, source and source.sha, e)) or (clean if e == 0 else None)
            if point is None:
                began = time.monotonic()
                meta = robustness(str(agent), attack, [e], episodes=settings["episodes"],
                                  seed=settings["seed"], num_envs=settings["num_envs"], progress=progress,
                                  sample=settings["policy"] == "sample", steps=PGD_STEPS,
                                  transfer_from=source and source.path)  # fmt: skip
                point = meta, meta["results"][0]
                row = point[1]
                crafted = f" crafted on {source.path}" if source else ""
                print(f"{NAMES[attack]}{crafted} at epsilon {e:g}: return {row['mean_return']:.1f}, actions "
                      f"flipped {row['flip_rate']:.2f}, {row['steps']:,} steps in "
                      f"{(time.monotonic() - began) / 60:.1f} min", flush=True)  # fmt: skip
            held[key(attack, source and source.sha, e)] = point
            clean = clean or (point if e == 0 else None)
            runs = assemble(n)
            complete = all({row["epsilon"] for row in run["results"]} >= set(eps) for run in runs)
            _write_json(path, {"weights_sha256": digest, "settings": settings, "epsilons": eps,
                               "complete": complete, "summary": summarise(runs), "runs": runs})
    return assemble(len(plans))


def compare_robustness(agents: Sequence[str], zoo: str | Path, figure: str | Path,
                       labels: Sequence[str] = ()) -> tuple[Path, str]:  # fmt: skip
    """Several agents' robustness curves from their analyses (``<zoo>/<agent>/robustness.json``)
    on one figure, and the Markdown table of the same numbers. Each return is scaled as a
    human-normalised score is, between random play (0; Wang et al. 2016's random scores,
    ``agents.common.scores``, 0 for a game without one) and the agent's own clean return (1), so
    that agents of very different scores, and games whose scores go negative (Pong's -21), compare
    by the share of their play that an attack leaves them. The intervals are the attacked return's
    over its episodes, scaled alike (the clean mean's own uncertainty left out). ``labels`` name
    the agents (default: their folder names), and a transfer attack crafted on one of them is
    named after it."""
    from agents.common.scores import RANDOM
    from analysis.adversarial import group_label, plot_robustness, summarise

    if len(agents) < 2:
        raise ValueError(f"comparing needs at least two agents (got {len(agents)})")
    if labels and len(labels) != len(agents):
        raise ValueError(f"--labels names each agent compared: {len(agents)} labels, got {len(labels)}")
    named = dict(zip(agents, labels or agents, strict=True))
    runs = []
    for name in agents:
        path = Path(zoo) / name / "robustness.json"
        if not path.is_file():
            raise ValueError(f"{path} does not exist: run `attn zoo analyse pretrained/{name}` first")
        for run in read_json(path)["runs"]:
            source = Path(run["transfer_from"]).name if run.get("transfer_from") else None
            if source in named:
                run = {**run, "transfer_from_agent": named[source]}
            runs.append({**run, "label": named[name]})
    summary = summarise(runs)
    floors = {group_label(run): RANDOM.get(run.get("game", ""), 0.0) for run in runs}
    for attack, groups in summary.items():
        for label, rows in groups.items():
            clean = next((r["mean_return"]["mean"] for r in rows if r["epsilon"] == 0), None)
            floor = floors[label]
            if clean is None or clean <= floor:
                raise ValueError(f"{label} under {attack} has no clean return (epsilon 0) above random "
                                 f"play ({floor:g}) to scale by")  # fmt: skip
            for r in rows:
                r["return_share"] = {k: (v - floor) / (clean - floor) for k, v in r["mean_return"].items()}
    path = plot_robustness(summary, figure, "return under attack: 1 is the agent's clean play, 0 random play")
    eps = sorted({r["epsilon"] for groups in summary.values() for rows in groups.values() for r in rows
                  if r["epsilon"] > 0})  # fmt: skip
    table = []
    for attack, groups in summary.items():
        for label, rows in groups.items():
            at = {r["epsilon"]: r for r in rows}
            clean = at[0]["mean_return"]
            table.append([label, NAMES[attack], f"{clean['mean']:.1f}", f"{floors[label]:g}",
                          *(_interval(at[e]["return_share"]) if e in at else "" for e in eps)])  # fmt: skip
    header = ["agent", "attack", "clean return", "random play", *(f"epsilon {e:g}" for e in eps)]
    return path, markdown_table(header, table)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all: a Ctrl-C between two points leaves the last complete file."""
    atomic_write_text(path, json.dumps(data, indent=2))


def _head_report(net: Any, config: dict[str, Any], out: Path, steps: int, seed: int,
                 progress: bool) -> list[Path]:  # fmt: skip
    """The head report over ``steps`` frames; the zoo keeps its JSON and its figure."""
    from analysis.report import build_report, collect, regions_for, write_report

    collected = collect(net, config, None, seed=seed, steps=steps, progress=progress)
    report = build_report(net, collected, regions_for(config["game"]), seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        write_report(report, tmp, title=f"{config['game']}: value vs advantage")
        for name in REPORT_KEPT:
            shutil.copyfile(Path(tmp) / name, out / name)
    return [out / name for name in REPORT_KEPT]


def _clip_and_still(net: Any, config: dict[str, Any], out: Path, steps: int, seed: int,
                    progress: bool, greedy: bool = True) -> list[Path]:  # fmt: skip
    """The first ``steps`` frames of the agent's video (its kind's: saliency, glimpses or attention),
    and its middle frame as a still."""
    import imageio.v2 as imageio

    kind, path = config.get("agent"), out / "clip.mp4"
    if kind == "glimpse":
        from analysis.glimpse_video import record_glimpses

        clip = record_glimpses(net, config, path, steps=steps, seed=seed, height=320, greedy=greedy,
                               progress=progress)[0]  # fmt: skip
    elif kind == "soft":
        from analysis.attention_video import record_attention

        clip = record_attention(net, config, path, steps=steps, seed=seed, height=320, progress=progress)[0]
    else:
        from analysis.saliency_video import record_saliency

        clip = record_saliency(net, config, path, steps=steps, seed=seed, height=320, progress=progress)
    with imageio.get_reader(clip) as video:
        imageio.imwrite(out / "still.png", video.get_data(steps // 2))
    return [clip, out / "still.png"]


@dataclass
class Entry:
    """One shipped agent on the zoo's page: its record and whatever analysis it has."""

    name: str
    label: str  # "Pong, dueling PQN"
    record: dict[str, Any]  # eval.json
    report: dict[str, Any] | None
    robustness: dict[str, Any] | None
    files: dict[str, Path]  # what docs/zoo/<name>/ holds: still, clip, report and robustness figures
    kind: str = "dqn"  # the agent's kind, as its checkpoint's config names it


def entries(pretrained: str | Path, zoo: str | Path) -> list[Entry]:
    """Every agent folder of ``pretrained`` (those with an eval.json), with its analysis in
    ``zoo/<name>`` where there is one, in the order of the folders' names."""
    found = []
    for folder in sorted(Path(pretrained).iterdir()):
        if not (folder / "eval.json").is_file():
            continue
        analysis = Path(zoo) / folder.name
        read = {name: json.loads((analysis / f"{name}.json").read_text())
                for name in ("report", "robustness") if (analysis / f"{name}.json").is_file()}  # fmt: skip
        files = {name: analysis / name for name in ("still.png", "clip.mp4", "report.png", "robustness.png")
                 if (analysis / name).is_file()}  # fmt: skip
        record = json.loads((folder / "eval.json").read_text())
        agent = read_json(resolve_checkpoint(folder) / CONFIG).get("agent") or "dqn"
        title = TITLES.get(record["game"], record["game"].replace("_", " ").title())
        label = f"{title}, {KINDS.get(agent, agent)}"
        found.append(Entry(folder.name, label, record, read.get("report"), read.get("robustness"), files,
                           agent))  # fmt: skip
    labels = collections.Counter(e.label for e in found)
    for e in found:  # two agents of one kind on one game (a young one kept beside): named by folder
        if labels[e.label] > 1:
            e.label += f" (`{e.name}`)"
    return found


def _interval(stats: dict[str, float], signed: bool = False) -> str:
    digits = 3 if signed else 2
    # rounded first, so that a value a hair below 0 reads 0.00, not -0.00
    mean, low, high = ((f"{round(stats[k], digits) + 0.0:{'+' if signed else ''}.{digits}f}")
                       for k in ("mean", "ci_low", "ci_high"))  # fmt: skip
    return f"{mean} [{low}, {high}]"


def main_difference(report: dict[str, Any]) -> str:
    """The value-minus-advantage share of saliency with the largest magnitude, among the game's
    objects where the report has them (else its regions), with its 95% interval: where the two
    streams differ most."""
    method = report.get("method", "jacobian")
    objects = report.get("objects", {}).get(method, {}).get("differences", {})
    differences = next(iter(objects.values()), None) or {
        k.split("/", 1)[1]: v for k, v in report.get("region_differences", {}).items()}
    if not differences:
        return ""
    name, stats = max(differences.items(), key=lambda item: abs(item[1]["mean"]))
    return f"{name}: {_interval(stats, signed=True)}"


def sanity_verdicts(report: dict[str, Any]) -> str:
    """Per head, whether its maps pass the randomisation check (Adebayo et al. 2018): a map that
    survives randomising the whole network shows the input, not the network."""
    sanity = report.get("sanity", {}).get(report.get("method", "jacobian"), {})
    survives = sanity.get("survives_full_randomisation", {})
    return " / ".join(f"{head}: {'fails' if bad else 'passes'}" for head, bad in survives.items())


def attacked_return(robustness: dict[str, Any], attack: str, epsilon: float) -> str:
    """The return (or catch rate) at ``epsilon`` under ``attack``, with its 95% interval."""
    for rows in robustness.get("summary", {}).get(attack, {}).values():
        for row in rows:
            if row["epsilon"] == epsilon:
                return _interval(row.get("catch_rate") or row["mean_return"])
    return ""


def _score(record: dict[str, Any]) -> str:
    sampled = " (sampled policy)" if record.get("policy") == "sample" else ""
    return f"{record['mean']:.2f} +- {record['std']:.2f}{sampled}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def table(found: list[Entry], epsilon: float = 2.0) -> str:
    """The zoo's table: score, human-normalised score, steps, hours and machine from each agent's
    eval.json; the heads' largest difference and the sanity verdicts from its head report; the
    return at ``epsilon`` under each attack."""
    rows = []
    for e in found:
        r, training = e.record, e.record.get("training", {})
        hns = r.get("human_normalized")
        rows.append([
            e.label, _score(r), "" if hns is None else f"{hns:.2f}", f"{training.get('steps', 0):,}",
            _duration(training.get("wall_seconds", 0)), training.get("machine", ""),
            main_difference(e.report) if e.report else "", sanity_verdicts(e.report) if e.report else "",
            *(attacked_return(e.robustness, a, epsilon) if e.robustness else "" for a in ATTACKS),
            str(e.robustness["runs"][0]["episodes"]) if e.robustness and e.robustness.get("runs") else "",
        ])  # fmt: skip
    header = ["agent", "score (30 episodes)", "human-normalised", "steps", "training", "machine",
              "value - advantage: largest difference (95% CI)", "sanity (randomisation)",
              *(f"return at epsilon {epsilon:g}: {NAMES[a]}" for a in ATTACKS),
              "attacked episodes"]  # fmt: skip
    return markdown_table(header, rows)


def page(found: list[Entry], zoo_link: str, command: str) -> str:
    """docs/zoo.md: the table, then a section per agent with its still and links to its clip and
    figures. ``zoo_link``: the path from the page to the analyses' folder."""
    parts = ["# The zoo", "",
             "Every shipped agent (`pretrained/`), scored with the evaluation protocol (up to 30 no-op "
             "starts, epsilon 0.001), beside where its value and advantage streams look and how its "
             "score holds under attacks on its observations. Made by:", "", f"```bash\n{command}\n```",
             "", table(found), "",
             "The heads' largest difference is the value stream's share of saliency minus the "
             "advantage stream's, on the game's objects where the suite reads them (else its "
             "regions), with a 95% batch-means interval over the frames. Sanity: whether each head's "
             "Jacobian maps change when the network is randomised (Adebayo et al. 2018). Attacks: "
             "FGSM, PGD-10 and random noise at an L-infinity budget of epsilon pixel levels, at every "
             "step of the attacked episodes, the interval over those episodes; a blank is a point "
             "not played yet (`attn zoo analyse pretrained/<agent>` plays the missing points, and "
             "an interrupted one goes on where it stopped). Every epsilon, the agents side by side "
             "(`attn zoo compare`): [robustness](robustness.md#every-pqn-agent-of-the-zoo)."]  # fmt: skip
    for e in found:
        parts += ["", f"## {e.label}", "", f"`pretrained/{e.name}`", ""]
        folder = f"{zoo_link}/{e.name}"
        if "still.png" in e.files:
            still = STILLS.get(e.kind, "the game, the value and the advantage saliency")
            parts += [f"![{e.label}: {still}]({folder}/still.png)", ""]
        shown = (("clip", "clip.mp4"), ("head report", "report.png"),
                 ("robustness", "robustness.png"))
        links = [f"[{label}]({folder}/{file})" for label, file in shown if file in e.files]
        command = e.record.get("training", {}).get("command", "")
        parts.append(f"Score {_score(e.record)}" + (f"; made with `{command}`." if command else "."))
        parts += ["", " · ".join(links) if links else "Not analysed yet: `attn zoo analyse` makes its files."]
    return "\n".join(parts) + "\n"


def write_zoo_page(pretrained: str | Path, zoo: str | Path, out: str | Path, command: str,
                   summaries: Sequence[str | Path] = ()) -> list[Path]:  # fmt: skip
    """Write the zoo's page (``out``) from ``pretrained`` and the analyses in ``zoo``, and the
    table's summary between the ``<!-- zoo:begin -->`` and ``<!-- zoo:end -->`` of each page of
    ``summaries`` (the README, the docs' home page)."""
    import os
    import re

    found = entries(pretrained, zoo)
    if not found:
        raise ValueError(f"{str(pretrained)!r} holds no shipped agent (a folder with an eval.json)")
    out = Path(out)
    link = os.path.relpath(Path(zoo), out.parent)
    out.write_text(page(found, link, command))
    written = [out]
    block = f"<!-- zoo:begin -->\n{summary(found)}\n<!-- zoo:end -->"
    pattern = re.compile(r"<!-- zoo:begin -->.*?<!-- zoo:end -->", re.S)
    texts = {Path(p): Path(p).read_text() for p in summaries}
    for path, text in texts.items():  # every page checked before any is written
        if not pattern.search(text):
            raise ValueError(f"{str(path)!r} has no <!-- zoo:begin --> ... <!-- zoo:end --> block")
    for path, text in texts.items():
        path.write_text(pattern.sub(lambda _: block, text))
        written.append(path)
    return written


def summary(found: list[Entry]) -> str:
    """The README's short table: agent, score, steps and where it trained."""
    rows = []
    for e in found:
        training = e.record.get("training", {})
        rows.append([e.label, _score(e.record), f"{training.get('steps', 0) / 1e6:.1f}M",
                     f"{training.get('machine', '')}, {_duration(training.get('wall_seconds', 0))}"])
    return markdown_table(["agent", "score (30 episodes)", "steps", "trained on"], rows)

