"""The benchmark table: measured numbers, ratios, and PASS/MISS against the issue's targets."""

from __future__ import annotations

import math

SPEED_TARGET = 2.0
MEMORY_TARGET_GB = 4.0
GAP_TARGET_MS = 50.0


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else "PASS" if ok else "MISS"


def _s(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def _rows(results: dict) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for item in results.get("train", []):
        if "error" in item:
            rows.append((f"train step, `{item['preset']}`", "error", item["error"], "", "≥ 2×", "MISS"))
            continue
        same = item["engine_params"] == item["plain_params"]
        params = "/".join(f"{v / 1e6:.2f}M" for v in item["engine_params"].values())
        rows.append(
            (
                f"train step, `{item['preset']}` ({item['batch']})",
                f"{_s(item['engine_s'])}/step",
                f"{_s(item['plain_s'])}/step",
                f"{item['ratio']:.2f}×",
                "≥ 2×",
                _verdict(item["ratio"] >= SPEED_TARGET),
            )
        )
        rows.append(
            (
                f"parameters cnn/swin, `{item['preset']}`",
                params,
                "/".join(f"{v / 1e6:.2f}M" for v in item["plain_params"].values()),
                "",
                "equal",
                _verdict(same),
            )
        )
    iou = results.get("iou")
    if iou and "error" not in iou:
        rows.append(
            (
                f"val IoU `cpu-small`, {iou['steps']} steps, seeds {','.join(map(str, iou['seeds']))}",
                ", ".join(f"{v:.3f}" for v in iou["engine"]),
                ", ".join(f"{v:.3f}" for v in iou["plain"]),
                f"Δ {iou['difference']:+.3f}",
                f"Δ within ±{iou['seed_noise']:.3f} (seed noise)",
                _verdict(abs(iou["difference"]) <= iou["seed_noise"]),
            )
        )
    elif iou:
        rows.append(("val IoU `cpu-small`", "error", iou["error"], "", "equal", "MISS"))
    slide = results.get("slide")
    if slide and "error" not in slide:
        rows.append(
            (
                f"slide {slide['slide']} predicted + stitched, `{slide['preset']}` nets",
                _s(slide["engine_s"]),
                _s(slide["plain_s"]),
                f"{slide['ratio']:.2f}×",
                "≥ 2×",
                _verdict(slide["ratio"] >= SPEED_TARGET),
            )
        )
    elif slide:
        rows.append(("slide prediction", "error", slide["error"], "", "≥ 2×", "MISS"))
    memory = results.get("memory")
    if memory:
        engine, plain = memory.get("engine", {}), memory.get("plain", {})
        label = f"peak memory, `{memory['preset']}` train step (batch {memory['batch']})"
        if "peak_mb" in engine:
            gb = engine["peak_mb"] * 2**20 / 1e9
            plain_text = f"{plain['peak_mb'] * 2**20 / 1e9:.2f} GB" if "peak_mb" in plain else plain.get("error", "")
            ok = gb < MEMORY_TARGET_GB if memory["preset"] == "paper" else None
            rows.append((label, f"{gb:.2f} GB", plain_text, "", "< 4 GB (paper)", _verdict(ok)))
        else:
            rows.append((label, "error", engine.get("error", ""), "", "< 4 GB", "MISS"))
    gui = results.get("gui")
    if gui:
        if "skipped" in gui:
            rows.append(("napari event loop, longest gap", f"skipped: {gui['skipped']}", "", "", "< 50 ms", "—"))
        else:
            rows.extend(_gap_rows(gui))
            rows.append(
                (
                    "final layer insertion + its first paint (one-off)",
                    f"{float(gui['final_insert_ms']):.0f} ms",
                    "",
                    "",
                    "reported",
                    "—",
                )
            )
    startup = results.get("startup")
    if startup:
        if "error" in startup:
            rows.append(("napari start-up", "error", startup["error"], "", "reported", "—"))
        else:
            rows.append(
                (
                    "napari start-up (shown viewer), with / without plugin",
                    _s(startup["with_s"]),
                    _s(startup["without_s"]),
                    f"+{_s(startup['overhead_s'])}" if startup["overhead_s"] >= 0 else f"−{_s(-startup['overhead_s'])}",
                    "reported",
                    "—",
                )
            )
    return rows


def _gap_rows(gui: dict) -> list[tuple[str, ...]]:
    """The event-loop rows: training after its first step, predicting, and the one-off PyTorch load."""
    parts = (
        ("train_steady_max_gap_ms", "train_steady_gaps_over_50ms", "training (after its first step)"),
        ("predict_max_gap_ms", "predict_gaps_over_50ms", "predicting"),
    )
    rows = []
    for key, count_key, what in parts:
        value = float(gui.get(key, gui.get("train_max_gap_ms", math.nan)))
        ok = not math.isnan(value) and value < GAP_TARGET_MS
        count = f" ({gui[count_key]} gaps > 50 ms)" if count_key in gui else ""
        rows.append(
            (f"napari event loop, longest gap while {what}", f"{value:.0f} ms{count}", "", "", "< 50 ms", _verdict(ok))
        )
    if "predict_click_ms" in gui:
        clicks = f"{float(gui['start_click_ms']):.0f} ms / {float(gui['predict_click_ms']):.0f} ms"
        rows.append(
            ("Start / Predict click handlers (napari's activity dock adds a bar)", clicks, "", "", "reported", "—")
        )
    if "train_gui_s_per_step" in gui:
        rows.append(
            (
                f"training step inside napari, `cpu-small` ({gui['slide']} slides; after the first)",
                f"{float(gui['train_gui_s_per_step']):.2f} s/step",
                "",
                "",
                "reported",
                "—",
            )
        )
    rows.append(
        (
            "longest gap from Start to the first step (PyTorch loads; once a session)",
            f"{float(gui['train_max_gap_ms']):.0f} ms",
            "",
            "",
            "reported",
            "—",
        )
    )
    return rows


def markdown_table(results: dict) -> str:
    """The results as a markdown table (engine, plain baseline, ratio, target, verdict), with a header line."""
    head = "| measurement | s4mi engine | plain fp32 eager | ratio | target | result |"
    lines = [head, "|---|---|---|---|---|---|"]
    for row in _rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    env = results.get("environment", {})
    if env:
        lines.append("")
        lines.append(
            f"{env.get('mode', '')} run, {env.get('date', '')}: {env.get('cpu', '')}, "
            f"{env.get('threads', '')} threads, "
            f"torch {env.get('torch', '')}, device {env.get('device', '')}, engine precision "
            f"{env.get('engine_precision', 'fp32')}; load average at start/end "
            f"{env.get('load_start', '')} / {env.get('load_end', '')}"
        )
    return "\n".join(lines)
