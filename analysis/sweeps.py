"""A sweep's results: per trial, per configuration over seeds, and the learning curves.

Read from the trials' run directories alone (their ``trial.json`` and TensorBoard events), not
from Ray Tune's state: the tables can be remade at any time, by anyone, without Ray.

* A trial's curve is ``charts/episodic_return`` (the unclipped game score) smoothed by a trailing
  mean over a tenth of its points; its **final** return is the smoothed curve's last value, its
  **best** the smoothed curve's maximum. Smoothing keeps one lucky episode from being "best".
* A configuration (game, trainer, param values) gets the mean and 95% interval of its seeds' final
  and best returns, and a figure of its mean curve with the interval as a band.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.common.pretrained import scalar_curves, training_curve
from agents.common.sweep import TRIAL_FILE, variant_label
from analysis.compare import mean_ci_dict
from analysis.render import markdown_table, pyplot, save_figure

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
CURVES_PNG = "curves.png"
NO_CI = ("mean", "ci_low", "ci_high")


@dataclass
class Trial:
    name: str
    trainer: str
    game: str
    seed: int
    params: dict
    steps: np.ndarray
    returns: np.ndarray  # smoothed
    label: str = ""  # a name given on the command line, in place of the params

    @property
    def config(self) -> tuple[str, str, str]:
        return self.game, self.trainer, self.label or variant_label(self.params)

    @property
    def final(self) -> float:
        return float(self.returns[-1]) if len(self.returns) else float("nan")

    @property
    def best(self) -> float:
        return float(self.returns.max()) if len(self.returns) else float("nan")

    @property
    def last_step(self) -> int:
        return int(self.steps[-1]) if len(self.steps) else 0


def smooth(values: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Trailing mean over ``fraction`` of the points (at least one)."""
    window = max(1, int(len(values) * fraction))
    c = np.cumsum(np.insert(np.asarray(values, np.float64), 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - window)
    return (c[idx] - c[start]) / (idx - start)


def smoothed_curve(run_dir: Path, fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(steps, smoothed returns) of a run's ``charts/episodic_return``."""
    curve = training_curve(run_dir)
    steps = np.array([s for s, _ in curve], np.int64)
    return steps, smooth(np.array([r for _, r in curve]), fraction) if curve else np.zeros(0)


def load_trials(sweep_dir: str | Path) -> list[Trial]:
    """Every trial that has started, in name order."""
    trials = []
    for meta in sorted(Path(sweep_dir).glob(f"runs/*/{TRIAL_FILE}")):
        info = json.loads(meta.read_text())
        steps, returns = smoothed_curve(meta.parent)
        trials.append(Trial(meta.parent.name, info["trainer"], info["game"], int(info["seed"]),
                            info["params"], steps, returns))  # fmt: skip
    return trials


def load_runs(run_dirs: list[str], labels: list[str], fraction: float = 0.05) -> list[Trial]:
    """Runs of any trainer, for :func:`plot_curves`: each under its label (the run directory's
    name by default); runs given the same label are seeds of one curve, drawn with their band."""
    if labels and len(labels) != len(run_dirs):
        raise ValueError(f"--labels needs one label per run: {len(run_dirs)} runs, {len(labels)} labels")
    trials = []
    for i, run in enumerate(run_dirs):
        path = Path(run)
        if not (path / "config.json").is_file():
            raise ValueError(f"{run!r} is not a run directory (no config.json)")
        config = json.loads((path / "config.json").read_text())
        steps, returns = smoothed_curve(path, fraction)
        if len(steps) < 2:
            raise ValueError(f"{run!r} has fewer than 2 points of charts/episodic_return yet")
        game = str(config.get("game") or config.get("env", "?"))
        trials.append(Trial(path.name, "", game, int(config.get("seed", 0)), {}, steps, returns,
                            labels[i] if labels else path.name))  # fmt: skip
    return trials


def window_returns(run_dir: str | Path, window: int) -> dict[str, float]:
    """A run's raw ``charts/episodic_return`` (no smoothing) in windows of ``window`` steps from 0,
    each the mean of the games that ended in it: the first window's, the best one's and the last
    one's (the table of a long run: where it started, its peak, where it is), with the last step
    logged. Windows in which no game ended are skipped."""
    tag = "charts/episodic_return"
    curve = training_curve(run_dir)
    means = [w[tag] for w in _window_means(run_dir, {tag: curve}, window, 0)]
    return {"steps": max(s for s, _ in curve), "first": means[0], "best": max(means),
            "last": means[-1]}  # fmt: skip


def every_window(run_dir: str | Path, window: int, tags: list[str], since: int = 0) -> list[dict[str, float]]:
    """Each window of ``window`` steps from ``since`` on: its first step and every tag's mean over
    the points logged in it (NaN where a tag has none), for reading a long run's curve in numbers.
    Windows in which no tag logged a point are left out."""
    return _window_means(run_dir, scalar_curves(run_dir, tags), window, since)


def _window_means(run_dir: str | Path, curves: dict[str, list[tuple[int, float]]], window: int,
                  since: int) -> list[dict[str, float]]:  # fmt: skip
    if window < 1:
        raise ValueError(f"--window must be >= 1 step, got {window}")
    means: dict[int, dict[str, float]] = {}
    for tag, points in curves.items():
        curve = [(s, v) for s, v in points if s >= since]
        if not curve:
            raise ValueError(f"{str(run_dir)!r} has no {tag} at or after step {since:,}")
        steps = np.array([s for s, _ in curve], np.int64)
        values = np.array([v for _, v in curve])
        index = (steps - since) // window
        for k in np.unique(index):
            means.setdefault(int(k), {})[tag] = float(values[index == k].mean())
    return [{"step": since + k * window, **{t: means[k].get(t, math.nan) for t in curves}}
            for k in sorted(means)]  # fmt: skip


def every_window_table(run_dir: str | Path, window: int, tags: list[str], since: int = 0) -> str:
    """:func:`every_window` as a Markdown table, a row per window."""
    def cell(v: float) -> str:
        return "" if math.isnan(v) else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"

    rows = [[f"{w['step']:,}", *(cell(w[t]) for t in tags)]
            for w in every_window(run_dir, window, tags, since)]  # fmt: skip
    return markdown_table(["window from step", *(f"mean {t}" for t in tags)], rows)


def window_table(run_dirs: list[str], window: int) -> str:
    """:func:`window_returns` of each run as a Markdown table (docs/benchmarks.md's Breakout runs)."""
    rows = []
    for run in run_dirs:
        w = window_returns(run, window)
        rows.append([f"`{Path(run).name}`", f"{w['steps'] / 1e6:.2f}M",
                     *(f"{w[k]:.2f}" for k in ("first", "best", "last"))])  # fmt: skip
    size = f"{window / 1000:g}k" if window < 1_000_000 else f"{window / 1e6:g}M"
    return markdown_table(["run", "steps", f"first {size}", f"best {size}", f"last {size}"], rows)


def by_config(trials: list[Trial]) -> dict[tuple[str, str, str], list[Trial]]:
    groups: dict[tuple[str, str, str], list[Trial]] = {}
    for t in trials:
        groups.setdefault(t.config, []).append(t)
    return groups


def summary_rows(trials: list[Trial]) -> list[dict]:
    """One row per configuration: seeds, and the mean and 95% interval of final and best return."""
    rows = []
    for (game, trainer, label), group in by_config(trials).items():
        scored = [t for t in group if len(t.returns)]
        row = {"game": game, "trainer": trainer, "params": label, "seeds": len(scored)}
        for key in ("final", "best"):
            values = np.array([getattr(t, key) for t in scored])
            stats = mean_ci_dict(values) if len(values) else dict.fromkeys(NO_CI, math.nan)
            row.update({f"{key}_{k}": v for k, v in stats.items()})
        rows.append(row)
    return rows


def write_results(sweep_dir: str | Path) -> list[Path]:
    """``results.csv`` (a row per trial), ``results.md`` (both tables) and ``curves.png``."""
    sweep_dir = Path(sweep_dir)
    trials = load_trials(sweep_dir)
    if not trials:
        raise ValueError(f"{str(sweep_dir)!r} has no trials yet")
    with open(sweep_dir / RESULTS_CSV, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "game", "trainer", "params", "seed", "steps", "final_return",
                    "best_return"])  # fmt: skip
        for t in trials:
            w.writerow([t.name, t.game, t.trainer, variant_label(t.params), t.seed, t.last_step,
                        f"{t.final:.4g}", f"{t.best:.4g}"])  # fmt: skip
    (sweep_dir / RESULTS_MD).write_text(markdown(trials))
    plot_curves(trials, sweep_dir / CURVES_PNG)
    return [sweep_dir / n for n in (RESULTS_CSV, RESULTS_MD, CURVES_PNG)]


def markdown(trials: list[Trial]) -> str:
    def ci(row: dict, key: str) -> str:
        return f"{row[f'{key}_mean']:.3g} [{row[f'{key}_ci_low']:.3g}, {row[f'{key}_ci_high']:.3g}]"

    summary = [[r["game"], r["trainer"], r["params"], str(r["seeds"]), ci(r, "final"), ci(r, "best")]
               for r in summary_rows(trials)]  # fmt: skip
    per_trial = [[t.name, str(t.seed), f"{t.last_step:,}", f"{t.final:.3g}", f"{t.best:.3g}"]
                 for t in trials]  # fmt: skip
    return (
        "# Sweep results\n\nReturns are unclipped game scores, smoothed by a trailing mean over a "
        "tenth of each curve's points; final = the smoothed curve's last value, best = its maximum. "
        "Intervals are 95% (normal approximation over seeds).\n\n## Per configuration\n\n"
        + markdown_table(["game", "trainer", "params", "seeds", "final return", "best return"], summary)
        + "\n\n## Per trial\n\n"
        + markdown_table(["trial", "seed", "steps", "final return", "best return"], per_trial)
        + "\n"
    )


def plot_curves(trials: list[Trial], out: Path) -> None:
    """A panel per game; a line per configuration: the mean over seeds on a common step grid
    (up to the shortest seed's last step), with its 95% interval as a band."""
    plt = pyplot()
    groups = by_config([t for t in trials if len(t.steps) >= 2])
    games = sorted({g for g, _, _ in groups})
    fig, axes = plt.subplots(1, max(1, len(games)), figsize=(5.5 * max(1, len(games)), 4), squeeze=False)
    for ax, game in zip(axes[0], games, strict=False):
        for (g, trainer, label), group in groups.items():
            if g != game:
                continue
            seeds = f"{len(group)} seed{'s' if len(group) > 1 else ''}"
            if len(group) == 1 and len(group[0].steps) < 50:  # sparse (long episodes): points alone
                t = group[0]
                ax.plot(t.steps, t.returns, "o", ms=3, label=f"{trainer} {label} ({seeds})".strip())
                continue
            end = min(t.last_step for t in group)
            grid = np.linspace(max(t.steps[0] for t in group), end, 100)
            ys = np.stack([np.interp(grid, t.steps, t.returns) for t in group])
            mean = ys.mean(0)
            ax.plot(grid, mean, label=f"{trainer} {label} ({seeds})".strip())
            if len(group) > 1:
                half = 1.96 * ys.std(0, ddof=1) / np.sqrt(len(group))
                ax.fill_between(grid, mean - half, mean + half, alpha=0.25)
        ax.set_title(game)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episodic return (smoothed)")
        ax.legend(fontsize=7)
    save_figure(fig, out)
