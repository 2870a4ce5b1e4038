"""``report.html``: the explorer of the playback's first steps (:mod:`analysis.explorer`), the head
comparison, its sanity and fidelity checks in one page that opens from disk in any browser (images
inlined as base64, the explorer's data as JSON, nothing fetched)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from analysis.explorer import explorer_html
from analysis.xai_metrics import SCORES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; max-width: 60em; }
.bad { background: #fdd; color: #900; font-weight: bold; } .good { background: #dfd; }
"""

METRIC_NOTES = {
    "pearson": "Pearson correlation of the two maps",
    "spearman": "Spearman rank correlation",
    "top5_iou": "overlap (IoU) of the top 5% pixels",
    "concentration_a": "share of the first head's saliency in its top 5% pixels",
    "concentration_b": "the same for the second head",
    "entropy_a": "entropy of the first head's map (nats)",
    "entropy_b": "entropy of the second head's map (nats)",
    "centre_distance": "distance between the maps' centres of mass (screen pixels)",
}


def _data(path: Path) -> str:
    mime = {".png": "image/png", ".webm": "video/webm"}[path.suffix]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _img(path: Path, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{_data(path)}">'


def _ci(s: dict[str, float]) -> str:
    return f"{s['mean']:.3f} <small>[{s['ci_low']:.3f}, {s['ci_high']:.3f}]</small>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _comparison(report: dict[str, Any]) -> str:
    methods = report["methods"]
    rows = [[f"{k} <small>({html.escape(note)})</small>"]
            + [_ci(methods[m]["per_frame_summary"][k]) for m in methods]
            for k, note in METRIC_NOTES.items()]  # fmt: skip
    out = _table(["per-frame metric (mean, 95% CI)", *methods], rows)
    regions = report["regions"]
    if regions:
        out += "<h3>Share of saliency per region (first method)</h3>"
        out += _table(["head/region", "share"], [[html.escape(k), _ci(v)] for k, v in regions.items()])
        out += ("<h3>Difference of the shares, paired per frame (an interval that excludes 0 "
                "separates the heads)</h3>")
        differences = report["region_differences"].items()
        out += _table(["heads/region", "difference"], [[html.escape(k), _ci(v)] for k, v in differences])
    agreement = [[html.escape(f"{h}: {pair}"), _ci(s)]
                 for h, pairs in report["method_agreement"].items() for pair, s in pairs.items()]  # fmt: skip
    if agreement:
        out += "<h3>Agreement between methods (per-frame Spearman)</h3>"
        out += _table(["head: methods", "Spearman"], agreement)
    return out


def _objects(report: dict[str, Any]) -> str:
    """Per method, head and object class: the mass share, the enrichment and the pointing game."""
    if "objects" not in report:
        return ""
    out = ("<h2>Where the heads look among the game's objects</h2><p class=\"note\">Objects read "
           "from the emulator's RAM (OCAtari's tables), each class's cells on the observation grid "
           "over the stacked frames. Share: the map's mass on the class (relevance mass accuracy, "
           "Arras et al. 2022); enrichment: that share over the class's share of the screen (1 for "
           "a map spread evenly); pointing: how often the map's maximum is on the class (Zhang et "
           "al. 2018). 95% intervals by batch means.</p>")
    for m, o in report["objects"].items():
        rows = []
        for h, per in o["heads"].items():
            for c, r in per["classes"].items():
                rows.append([html.escape(f"{h} / {c}"), _ci(r["mass_share"]),
                             _ci(r["enrichment"]) if r["enrichment"] else "not on screen",
                             _ci(r["pointing"]) if r["pointing"] else "not on screen"])  # fmt: skip
        for pair, per in o["differences"].items():
            for c, d in per.items():
                rows.append([html.escape(f"{pair} / {c}"), _ci(d), "", ""])
        out += f"<h3>{html.escape(m)}</h3>" + _table(["head / object", "share", "enrichment", "pointing"],
                                                      rows)  # fmt: skip
    return out


def _action_control(report: dict[str, Any]) -> str:
    """The random-action control of the per-action head, where the report has one."""
    control = report.get("action_control")
    if not control:
        return ""
    rows = [[html.escape(k), _ci(v)] for k, v in control["similarity"].items()]
    return (f"<h2>Random-action control: does the {html.escape(control['head'])} map say which action?"
            f"</h2><p class=\"note\">Each frame's {html.escape(control['method'])} map of the "
            f"{html.escape(control['head'])} for the chosen action against its map for another action "
            "drawn at random, over every frame (95% intervals by batch means). Near 1, the map shows "
            "what every action's output reads, not what sets the chosen one apart.</p>"
            + _table(["similarity", "chosen vs random action"], rows))  # fmt: skip


def _sanity(report: dict[str, Any], out_dir: Path) -> str:
    parts = []
    for m, summary in report["sanity"].items():
        flags = "<br>".join(
            f'<span class="{"bad" if survives else "good"}">{html.escape(h)}: '
            f'{"SURVIVES full randomisation: the map shows the input, not the network" if survives else "changes with the weights"}</span>'  # noqa: E501
            for h, survives in summary["survives_full_randomisation"].items()
        )
        heads = list(summary["survives_full_randomisation"])
        names = ("Spearman", "SSIM", "top-5% IoU")
        header = ["randomised down to"] + [f"{h} {k}" for h in heads for k in names]
        rows = [[html.escape(st["randomised_down_to"])]
                + [_ci(st["similarity"][h][k]) for h in heads for k in ("spearman", "ssim", "top5_iou")]
                for st in summary["stages"]]  # fmt: skip
        parts.append(f"<h3>{html.escape(m)}</h3><p>{flags}</p>" + _table(header, rows)
                     + _img(out_dir / f"sanity_{m}.png", f"randomisation, {m}"))  # fmt: skip
    return "".join(parts)


def _fidelity(report: dict[str, Any], out_dir: Path) -> str:
    rows = []
    for m, heads in report["fidelity"].items():
        for h, curves in heads.items():
            for kind, c in curves.items():
                cls = "good" if c["ratio"] > 1 else "bad"
                ratio = f'<span class="{cls}">{c["ratio"]:.2f}</span>'
                rows.append([html.escape(f"{m}, {h}, {kind}"), f"{c['auc_salient']:.4g}",
                             f"{c['auc_random']:.4g}", ratio])  # fmt: skip
    return _table(["method, head, curve", "AUC by the map", "AUC random pixels", "ratio"], rows) + _img(
        out_dir / "fidelity.png", "deletion and insertion curves"
    )


def _quantus(report: dict[str, Any]) -> str:
    """Quantus's complexity and randomisation scores per method and head (analysis.xai_metrics)."""
    rows = [[html.escape(f"{m}, {h}")] + [_ci(s[k]) if k in s else "-" for k in SCORES]
            for m, heads in report.get("quantus", {}).items() for h, s in heads.items()]  # fmt: skip
    if not rows:
        return ""
    return ("<h2>The field's scores (Quantus)</h2><p class=\"note\">Hedström et al. 2023, on the probe "
            "frames. Sparseness: the Gini index of the map's mass (Chalasani et al. 2020; 1 on one "
            "pixel, 0 spread evenly). Complexity: its entropy (Bhatt et al. 2020). Efficient MPRT "
            "(Hedström et al. 2023): the relative rise of the maps' complexity once every layer is "
            "randomised; near 0, the map does not depend on the weights. Random logit (Sixt et al. "
            "2020), for a head with an output per action: the SSIM of the chosen action's map and "
            "a random other action's; near 1, the map does not tell the actions apart.</p>"
            + _table(["method, head", "sparseness", "complexity", "efficient MPRT", "random logit"],
                     rows))  # fmt: skip


def write_html(report: dict[str, Any], out_dir: Path, title: str) -> Path:
    """Write ``report.html`` beside the figures that :func:`analysis.report.write_report` made."""
    a, b = report["heads"]
    clip = out_dir / "clip.webm"
    if "_explorer" in report:  # the steps of the clip, frame by frame
        video = explorer_html(report["_explorer"])
    else:
        video = f'<video controls autoplay loop muted src="{_data(clip)}"></video>' if clip.exists() else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE} video {{ width: 720px; max-width: 100%; }}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{report["frames"]} frames; methods: {html.escape(", ".join(report["methods"]))};
sanity and fidelity on {len(report["probe_frames"])} probe frames spread over the playback.
Intervals are normal-approximation 95% confidence intervals of the mean over frames.</p>
{video}
<h2>Where the {html.escape(a)} and the {html.escape(b)} look</h2>
{_img(out_dir / "report.png", "head comparison")}
{_comparison(report)}
{_objects(report)}
{_action_control(report)}
<h2>Sanity check: cascading parameter randomisation</h2>
<p class="note">Adebayo et al. 2018: the layers are re-initialised from the output down, and each
stage's maps are compared with the trained network's. A map that still resembles the trained one
when every layer is random explains the input, not what the network learnt (flagged in red at a
mean Spearman of {next(iter(report["sanity"].values()))["survival_threshold_spearman"]} or more).
Data randomisation (retraining on permuted rewards) is out of scope.</p>
{_sanity(report, out_dir)}
<h2>Fidelity: deletion and insertion</h2>
<p class="note">Petsiuk et al. 2018, with Greydanus et al. 2018's blur as the removed state: blur
(deletion) or restore (insertion) the top fraction of pixels by each map, and measure how far the
head moves; the control is as many random pixels. A ratio above 1 means the map's pixels matter
more than random ones.</p>
{_fidelity(report, out_dir)}
{_quantus(report)}
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path
