"""The benchmark table: measured numbers, ratios, and PASS/MISS against the issue's targets.

Columns: the engine, the plain fp32 eager step, the simple autocast step (the plain step under the engine's
precision with channels_last), the engine's speed-up over each, the target and the verdict."""

from __future__ import annotations

import math

SPEED_TARGET = 2.0  # against the plain fp32 step (the target)
SIMPLE_TARGET = 1.0  # at least as fast as the simple autocast step
MEMORY_TARGET_GB = 4.0
GAP_TARGET_MS = 50.0

HEAD = (
    "| measurement | s4mi engine | plain fp32 eager | simple autocast step | engine speed-up (vs plain / vs simple) "
    "| target | result |"
)
Row = tuple[str, str, str, str, str, str, str]


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else "PASS" if ok else "MISS"


def _s(value: float) -> str:
    return f"{value:.2f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


def _gb(mb: float) -> str:
    return f"{mb * 2**20 / 1e9:.2f} GB"


def _params(params: dict[str, int]) -> str:
    return "/".join(f"{v / 1e6:.2f}M" for v in params.values())


def _fastest(entry: dict | None) -> str:
    if not entry or "best_s" not in entry:
        return ""
    load = entry.get("other_cores", math.nan)
    return f"{_s(entry['best_s'])}; {load:.2f}" if not math.isnan(load) else _s(entry["best_s"])


def _train_rows(item: dict, peak: dict) -> list[Row]:
    from .training import share_of_peak

    name = item["preset"]
    if "error" in item:
        return [(f"train step, `{name}`", "error", item["error"], "", "", "≥ 2× / ≥ 1×", "MISS")]
    simple = item.get("simple")
    engine_label = f"{item['engine']['precision']}" + (", memory saving" if item.get("memory_saving") else "")
    speed = f"{item['ratio']:.2f}×" + (f" / {item['ratio_simple']:.2f}×" if simple else "")
    verdicts = [_verdict(item["ratio"] >= SPEED_TARGET)]
    if simple:
        verdicts.append(_verdict(item["ratio_simple"] >= SIMPLE_TARGET))
    rows: list[Row] = [
        (
            f"train step, `{name}` ({item['batch']}); engine {engine_label}",
            f"{_s(item['engine']['s'])}/step",
            f"{_s(item['plain']['s'])}/step",
            f"{_s(simple['s'])}/step ({simple['precision']})" if simple else "= plain (fp32)",
            speed,
            "≥ 2× / ≥ 1×" if simple else "≥ 2×",
            " / ".join(verdicts),
        ),
        (
            f"fastest timed step; other processes' load meanwhile (cores, median), `{name}`",
            *(_fastest(item.get(impl)) for impl in ("engine", "plain", "simple")),  # type: ignore[arg-type]
            "",
            "reported",
            "—",
        ),
        (
            f"peak memory of those processes, `{name}`",
            _gb(item["engine"]["peak_mb"]),
            _gb(item["plain"]["peak_mb"]),
            _gb(simple["peak_mb"]) if simple else "",
            "",
            "reported",
            "—",
        ),
    ]
    shares = share_of_peak(item, peak)
    if shares:
        flops = item["flops"] / 1e9
        cells = [f"{100 * shares[impl]:.0f}% of {item[impl]['precision']}" if impl in shares else "" for impl in
                 ("engine", "plain", "simple")]  # fmt: skip
        rows.append(
            (f"share of the matmul peak, `{name}` ({flops:.0f} GFLOP/step)", *cells, "", "reported", "—")  # type: ignore[arg-type]
        )
    same = item["engine_params"] == item["plain_params"]
    rows.append(
        (
            f"parameters cnn/swin, `{name}`",
            _params(item["engine_params"]),
            _params(item["plain_params"]),
            "= plain" if simple else "",
            "",
            "equal",
            _verdict(same),
        )
    )
    return rows


def _memory_rows(memory: dict) -> list[Row]:
    name = memory["preset"]
    if "error" in memory:
        return [(f"peak memory, `{name}` train step", "error", memory["error"], "", "", "< 4 GB (paper)", "MISS")]
    by_label = {row.get("label", row.get("impl", "")): row for row in memory.get("rows", [])}

    def cell(label: str) -> str:
        row = by_label.get(label)
        if row is None:
            return ""
        return _gb(row["peak_mb"]) if "peak_mb" in row else f"error: {row.get('error', '')}"

    engine = by_label.get("engine", {})
    chose = "on" if engine.get("memory_saving") else "off"
    batch = engine.get("batch", "")
    rows: list[Row] = [
        (
            f"peak memory, `{name}` train step ({batch}), memory saving as `auto` chose here ({chose})",
            cell("engine"),
            cell("plain"),
            cell("simple"),
            "",
            "reported",
            "—",
        )
    ]
    saving = by_label.get("engine (memory saving on)")
    if saving is not None:
        ok = saving["peak_mb"] * 2**20 / 1e9 < MEMORY_TARGET_GB if "peak_mb" in saving and name == "paper" else None
        rows.append(
            (
                f"peak memory, `{name}` train step, engine with memory saving on",
                cell("engine (memory saving on)"),
                "",
                "",
                "",
                "< 4 GB (paper)",
                _verdict(ok),
            )
        )
    return rows


def _rows(results: dict) -> list[Row]:
    rows: list[Row] = []
    peak = results.get("peak", {})
    for item in results.get("train", []):
        rows.extend(_train_rows(item, peak if "error" not in peak else {}))
    iou = results.get("iou")
    if iou and "error" not in iou:
        rows.append(
            (
                f"val IoU `cpu-small`, {iou['steps']} steps, seeds {','.join(map(str, iou['seeds']))}",
                ", ".join(f"{v:.3f}" for v in iou["engine"]),
                ", ".join(f"{v:.3f}" for v in iou["plain"]),
                "",
                f"Δ {iou['difference']:+.3f}",
                f"Δ within ±{iou['seed_noise']:.3f} (seed noise)",
                _verdict(abs(iou["difference"]) <= iou["seed_noise"]),
            )
        )
    elif iou:
        rows.append(("val IoU `cpu-small`", "error", iou["error"], "", "", "equal", "MISS"))
    slide = results.get("slide")
    if slide and "error" not in slide:
        rows.append(
            (
                f"slide {slide['slide']} predicted + stitched, `{slide['preset']}` nets; engine {slide['precision']}",
                _s(slide["engine_s"]),
                _s(slide["plain_s"]),
                "",
                f"{slide['ratio']:.2f}×",
                "≥ 2×",
                _verdict(slide["ratio"] >= SPEED_TARGET),
            )
        )
    elif slide:
        rows.append(("slide prediction", "error", slide["error"], "", "", "≥ 2×", "MISS"))
    if results.get("memory"):
        rows.extend(_memory_rows(results["memory"]))
    cass = results.get("cass")
    if cass:
        rows.extend(_cass_rows(cass))
    gui = results.get("gui")
    if gui:
        if "skipped" in gui:
            rows.append(("napari event loop, longest gap", f"skipped: {gui['skipped']}", "", "", "", "< 50 ms", "—"))
        else:
            rows.extend(_gap_rows(gui, "s4mi napari"))
            guest = gui.get("guest") or {}
            if guest and "skipped" not in guest:
                rows.extend(_gap_rows(guest, "plain napari + plugin")[:2])
            insert = f"{float(gui['final_insert_ms']):.0f} ms"
            rows.append(("final layer insertion + its first paint (one-off)", insert, "", "", "", "reported", "—"))
            rows.extend(_cls_gap_rows(gui.get("cls"), "s4mi napari"))
            rows.extend(_cls_gap_rows(guest.get("cls"), "plain napari + plugin"))
    startup = results.get("startup")
    if startup:
        if "error" in startup:
            rows.append(("napari start-up", "error", startup["error"], "", "", "reported", "—"))
        else:
            overhead = startup["overhead_s"]
            rows.append(
                (
                    "napari start-up (shown viewer), with / without plugin",
                    _s(startup["with_s"]),
                    _s(startup["without_s"]),
                    "",
                    f"+{_s(overhead)}" if overhead >= 0 else f"−{_s(-overhead)}",
                    "reported",
                    "—",
                )
            )
    return rows


def _cass_rows(cass: dict) -> list[Row]:
    """The CASS pretraining step (engine vs plain fp32 eager) and both processes' peak memory."""
    if "error" in cass:
        return [("CASS pretraining step", "error", cass["error"][:120], "", "", "reported", "—")]
    engine, plain = cass["engine"], cass["plain"]
    label = f"CASS pretraining step, `{cass['preset']}` (batch {cass['batch']}); engine {engine['precision']}"
    step = (label, _s(engine["s"]), _s(plain["s"]), "", f"{cass['ratio']:.2f}×", "reported", "—")
    memory = (
        "peak memory, CASS step processes",
        f"{engine['peak_mb'] / 1024:.2f} GB",
        f"{plain['peak_mb'] / 1024:.2f} GB",
    )
    return [step, (*memory, "", "", "reported", "—")]


CLS_GAPS = (
    ("pretrain_steady_max_gap_ms", "pretrain_gaps_over_50ms", "CASS pretraining (after its first step)"),
    ("finetune_max_gap_ms", "finetune_gaps_over_50ms", "fine-tuning (from the switch of stage)"),
    ("saliency_max_gap_ms", "saliency_gaps_over_50ms", "computing a slide's saliency map"),
)


def _cls_gap_rows(cls: dict | None, mode: str) -> list[Row]:
    """The event-loop rows while classifying (pretraining, fine-tuning, saliency) in one napari ``mode``."""
    if not cls:
        return []
    if "skipped" in cls:
        return [
            (f"napari event loop while classifying ({mode})", f"skipped: {cls['skipped']}", "", "", "", "< 50 ms", "—")
        ]
    rows: list[Row] = []
    for key, count_key, what in CLS_GAPS:
        value = float(cls.get(key, math.nan))
        ok = not math.isnan(value) and value < GAP_TARGET_MS
        count = f" ({cls[count_key]} gaps > 50 ms)" if count_key in cls else ""
        label = f"napari event loop, longest gap while {what} ({mode})"
        rows.append((label, f"{value:.0f} ms{count}", "", "", "", "< 50 ms", _verdict(ok)))
    if "pretrain_gui_s_per_step" in cls:
        label = f"CASS pretraining step inside napari, `cpu-small` ({mode}; after the first)"
        rows.append((label, f"{float(cls['pretrain_gui_s_per_step']):.2f} s/step", "", "", "", "reported", "—"))
    return rows


def _gap_rows(gui: dict, mode: str = "") -> list[Row]:
    """The event-loop rows: training after its first step, predicting, and the one-off PyTorch load; ``mode`` says
    in which napari (`s4mi napari`, or a plain napari where the plugin is a guest)."""
    parts = (
        ("train_steady_max_gap_ms", "train_steady_gaps_over_50ms", "training (after its first step)"),
        ("predict_max_gap_ms", "predict_gaps_over_50ms", "predicting"),
    )
    rows: list[Row] = []
    for key, count_key, what in parts:
        value = float(gui.get(key, gui.get("train_max_gap_ms", math.nan)))
        ok = not math.isnan(value) and value < GAP_TARGET_MS
        count = f" ({gui[count_key]} gaps > 50 ms)" if count_key in gui else ""
        label = f"napari event loop, longest gap while {what}" + (f" ({mode})" if mode else "")
        rows.append((label, f"{value:.0f} ms{count}", "", "", "", "< 50 ms", _verdict(ok)))
    if "predict_click_ms" in gui:
        clicks = f"{float(gui['start_click_ms']):.0f} ms / {float(gui['predict_click_ms']):.0f} ms"
        label = "Start / Predict click handlers (napari's activity dock adds a bar)"
        rows.append((label, clicks, "", "", "", "reported", "—"))
    if "train_gui_s_per_step" in gui:
        label = f"training step inside napari, `cpu-small` ({gui['slide']} slides; after the first)"
        rows.append((label, f"{float(gui['train_gui_s_per_step']):.2f} s/step", "", "", "", "reported", "—"))
    label = "longest gap from Start to the first step (PyTorch loads; once a session)"
    rows.append((label, f"{float(gui['train_max_gap_ms']):.0f} ms", "", "", "", "reported", "—"))
    return rows


def environment_line(env: dict, peak: dict | None = None) -> str:
    """One line on the machine and the run: CPU, native bf16, threads, torch, device, load, measured peaks."""
    bf16 = env.get("bf16_native")
    native = "" if bf16 is None else (", native bf16" if bf16 else ", no native bf16 (emulated)")
    line = (
        f"{env.get('mode', '')} run, {env.get('date', '')}: {env.get('cpu', '')}{native}, "
        f"{env.get('threads', '')} threads, torch {env.get('torch', '')}, device {env.get('device', '')}, "
        f"engine precision {env.get('engine_precision', '')}; load average at start/end "
        f"{env.get('load_start', '')} / {env.get('load_end', '')}"
    )
    if peak and "error" not in peak:
        peaks = ", ".join(f"{k} {peak[k]:.0f}" for k in ("fp32", "bf16", "fp16") if k in peak)
        line += f"; matmul peak ({peak.get('size', '')}² products, GFLOP/s): {peaks}"
    return line


def markdown_table(results: dict) -> str:
    """The results as a markdown table with the environment line under it."""
    lines = [HEAD, "|---|---|---|---|---|---|---|"]
    for row in _rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    env = results.get("environment", {})
    if env:
        lines += ["", environment_line(env, results.get("peak"))]
    return "\n".join(lines)
