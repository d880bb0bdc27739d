"""An experiment's report from its finished runs: results.json, table.md, table.csv and plot.png.

Rows are methods, columns label fractions (label-free methods in a 0% column), cells mean ± 95% CI over seeds
(``stats.mean_ci``; one seed: the value and n=1). The plot draws each metric against the label fraction with CI
error bars, a label-free method as a horizontal line with its CI band. Matplotlib is used through its Agg canvas
only (no pyplot, no GUI backend), so a report can be written inside napari.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes, atomic_write_text
from .evaluate import HEADLINE, NAMES, PLOTTED, TABLED
from .runner import EXPERIMENT_FILE, FAILED_FILE, RESULT_FILE, RUNS_DIR, clean, read_result
from .spec import percent, task_methods
from .stats import MeanCI, mean_ci

REPORT_FILES = ("results.json", "table.md", "table.csv", "plot.png")


def collect(out: Path) -> list[dict[str, Any]]:
    """The results of the finished runs under ``out/runs``."""
    runs = Path(out) / RUNS_DIR
    found = [read_result(p) for p in sorted(runs.iterdir())] if runs.is_dir() else []
    return [r for r in found if r is not None]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def summarise(results: list[dict[str, Any]], metric: str) -> dict[str, dict[float, MeanCI]]:
    """method -> fraction -> mean and CI of ``metric`` over seeds."""
    values: dict[str, dict[float, list[float]]] = {}
    for r in results:
        values.setdefault(r["method"], {}).setdefault(float(r["fraction"]), []).append(r["metrics"].get(metric))
    return {m: {f: mean_ci(v) for f, v in sorted(per.items())} for m, per in values.items()}


def _methods(results: list[dict[str, Any]], task: str) -> list[str]:
    present = list(dict.fromkeys(r["method"] for r in results))
    order = {m: k for k, m in enumerate(task_methods(task))}
    return sorted(present, key=lambda m: order.get(m, len(order)))


def _params(results: list[dict[str, Any]], method: str) -> str:
    counts = [r.get("params", {}).get("total", 0) for r in results if r["method"] == method]
    return f"{max(counts) / 1e6:.1f}M" if counts and max(counts) else "?"


def table_rows(results: list[dict[str, Any]], task: str, metric: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of one metric's table."""
    fractions = sorted({float(r["fraction"]) for r in results})
    summary = summarise(results, metric)
    header = ["method", "params", *(f"{percent(f)}%" for f in fractions)]
    rows = []
    for method in _methods(results, task):
        cells = [summary[method][f].text() if f in summary[method] else "–" for f in fractions]
        rows.append([method, _params(results, method), *cells])
    return header, rows


def write_report(out: Path) -> list[Path]:
    """Write the report files from every finished run; returns the paths written."""
    out = Path(out)
    experiment = json.loads((out / EXPERIMENT_FILE).read_text())
    task = experiment["settings"]["task"]
    results = collect(out)
    summary = {
        metric: {m: {percent(f): s.to_dict() for f, s in per.items()} for m, per in summarise(results, metric).items()}
        for metric in TABLED[task]
    }
    runs = [{k: v for k, v in r.items() if k not in ("per_slide", "report")} for r in results]
    done = {r["name"] for r in results}
    failed = [f for f in (_read_json(p) for p in sorted(out.glob(f"{RUNS_DIR}/*/{FAILED_FILE}"))) if f]
    document = {
        "experiment": experiment,
        "headline": HEADLINE[task],
        "metrics": {m: NAMES[m] for m in TABLED[task]},
        "runs": runs,
        "failed": [f for f in failed if f.get("name") not in done],
        "summary": summary,
    }
    written = [out / "results.json"]
    atomic_write_text(written[0], json.dumps(clean(document), indent=1))
    if not results:
        return written
    atomic_write_text(out / "table.md", table_markdown(results, experiment))
    atomic_write_text(out / "table.csv", table_csv(results, task))
    atomic_write_bytes(out / "plot.png", plot_png(results, task))
    return [*written, out / "table.md", out / "table.csv", out / "plot.png"]


def table_markdown(results: list[dict[str, Any]], experiment: dict[str, Any]) -> str:
    """One table per metric, the headline first."""
    settings = experiment["settings"]
    task = settings["task"]
    seeds = sorted({r["seed"] for r in results})
    tested = sorted({r.get("test_slides", 0) for r in results})
    lines = [
        f"# Experiment: {task}, preset {settings['preset']}",
        "",
        f"Test split: {'/'.join(map(str, tested))} slides, never used for training or model selection. Cells: mean "
        f"± 95% CI (Student t) over seeds {', '.join(map(str, seeds))}; (n=k) when fewer seeds finished. "
        f"Headline: {NAMES[HEADLINE[task]]}. Columns: the share of the training slides used with labels.",
    ]
    for metric in TABLED[task]:
        header, rows = table_rows(results, task, metric)
        lines += ["", f"## {NAMES[metric]}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def table_csv(results: list[dict[str, Any]], task: str) -> str:
    """Rows metric, method, params, then a 'mean ± CI' cell per fraction."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for k, metric in enumerate(TABLED[task]):
        header, rows = table_rows(results, task, metric)
        if k == 0:
            writer.writerow(["metric", *header])
        writer.writerows([metric, *row] for row in rows)
    return text.getvalue()


def plot_png(results: list[dict[str, Any]], task: str) -> bytes:
    """Each plotted metric against the label fraction (%), per method, with 95% CI error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = PLOTTED[task]
    figure = Figure(figsize=(5.2 * len(metrics), 4.0), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    fractions = sorted({float(r["fraction"]) for r in results if float(r["fraction"]) > 0})
    for axis, metric in zip(figure.subplots(1, len(metrics), squeeze=False)[0], metrics, strict=True):
        summary = summarise(results, metric)
        methods = _methods(results, task)
        for k, method in enumerate(methods):
            per = summary[method]
            points = [(f * 100, s) for f, s in per.items() if f > 0 and s.n]
            if points:
                dodge = 1 + 0.015 * (k - (len(methods) - 1) / 2)  # overlapping error bars side by side
                x = [p * dodge for p, _ in points]
                y = [s.mean for _, s in points]
                err = [0.0 if math.isnan(s.half) else s.half for _, s in points]
                axis.errorbar(x, y, yerr=err, marker="o", capsize=3, color=f"C{k}", label=method)
            elif 0.0 in per and per[0.0].n:
                s = per[0.0]
                axis.axhline(s.mean, linestyle="--", color=f"C{k}", label=f"{method} (0%)")
                if not math.isnan(s.half):
                    axis.axhspan(s.mean - s.half, s.mean + s.half, color=f"C{k}", alpha=0.15)
        if len(fractions) > 1 and fractions[-1] / fractions[0] >= 5:
            axis.set_xscale("log")
        if fractions:
            axis.set_xticks([f * 100 for f in fractions], [f"{percent(f)}%" for f in fractions])
            axis.minorticks_off()
        axis.set_xlabel("labeled training slides")
        axis.set_ylabel(NAMES[metric])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{task}: test split, mean ± 95% CI over seeds")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


__all__ = ["REPORT_FILES", "RESULT_FILE", "collect", "summarise", "table_rows", "write_report"]
