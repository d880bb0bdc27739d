"""`s4mi bench` (the ``benchmarks/s4mi_bench`` package, outside the plugin): the baselines are the same models and
trains, each implementation is timed in processes of its own, and the table is produced (tiny sizes). No test here
assumes what kind of CPU runs it (native bf16 or not)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import BENCHMARKS, REPO, TINY_CNN, TINY_SWIN, tiny_config

TINY = dict(input_size=64, labeled_batch=1, unlabeled_batch=1, cnn=dict(TINY_CNN), swin=dict(TINY_SWIN))


def _tiny_pair_and_method():
    from s4mi_bench.plain import PlainCrossTeaching, build_pair

    from napari_s4mi.core.methods import build_method

    config = tiny_config()
    torch.manual_seed(0)
    method = build_method(config, {"classes": ["background", "foreground"]}, torch.device("cpu"), "fp32")
    torch.manual_seed(0)
    plain = PlainCrossTeaching(*build_pair(TINY_CNN, TINY_SWIN, 2, config.input_size))
    return config, method, plain


def _batch(size: int = 64):
    g = torch.Generator().manual_seed(1)
    x_l, x_u = torch.randn(2, 3, size, size, generator=g), torch.randn(2, 3, size, size, generator=g)
    y_l = torch.zeros(2, size, size, dtype=torch.long)
    y_l[:, size // 4 : size // 2, size // 4 : size // 2] = 1
    return x_l, y_l, x_u


def test_plain_and_engine_build_the_same_networks() -> None:
    from napari_s4mi.core.models import count_parameters

    _, method, plain = _tiny_pair_and_method()
    assert type(plain.cnn) is type(method.networks["cnn"]) and type(plain.swin) is type(method.networks["swin"])
    assert count_parameters(plain.cnn) == count_parameters(method.networks["cnn"])
    assert count_parameters(plain.swin) == count_parameters(method.networks["swin"])
    # same seed, same factory: the very same initial weights
    for a, b in zip(plain.swin.parameters(), method.networks["swin"].parameters(), strict=True):
        assert torch.equal(a, b)


def test_plain_step_matches_the_engine_loss_and_trains() -> None:
    from s4mi_bench.plain import dice_loss

    from napari_s4mi.core.losses import soft_dice_loss

    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    assert torch.allclose(dice_loss(logits, target), soft_dice_loss(logits, target), atol=1e-6)
    _, method, plain = _tiny_pair_and_method()
    method.config.constant_lambda = True  # λ = 1, as passed to the plain step
    x_l, y_l, x_u = _batch()
    before = [p.detach().clone() for p in plain.cnn.parameters()]
    torch.manual_seed(3)  # same drop-path draws: same weights, same batch, same loss
    engine_loss = method.train_step(0, {"x_l": x_l, "y_l": y_l, "x_u": x_u})["loss"]
    torch.manual_seed(3)
    first = plain.train_step(x_l, y_l, x_u, 1.0)
    assert abs(engine_loss - first) < 1e-4 * max(1.0, abs(first))
    losses = [plain.train_step(x_l, y_l, x_u, 1.0) for _ in range(3)]
    assert min(losses) < first
    assert any(not torch.equal(a, b) for a, b in zip(before, plain.cnn.parameters(), strict=True))


def test_simple_autocast_step_is_the_plain_step_in_bf16() -> None:
    """The second baseline: the same step under bf16 autocast, channels_last; its first loss is the plain one's
    within bf16 rounding, and it trains (runs on any CPU: emulated bf16 is only slower)."""
    from s4mi_bench.plain import PlainCrossTeaching, SimpleAutocastStep, build_pair

    x_l, y_l, x_u = _batch()
    torch.manual_seed(0)
    plain = PlainCrossTeaching(*build_pair(TINY_CNN, TINY_SWIN, 2, 64))
    torch.manual_seed(0)
    simple = SimpleAutocastStep(*build_pair(TINY_CNN, TINY_SWIN, 2, 64), device_type="cpu", precision="bf16")
    conv = next(m for m in simple.cnn.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    reference = plain.train_step(x_l, y_l, x_u, 1.0)
    torch.manual_seed(3)
    first = simple.train_step(x_l, y_l, x_u, 1.0)
    assert abs(first - reference) < 0.05 * abs(reference)
    assert min(simple.train_step(x_l, y_l, x_u, 1.0) for _ in range(3)) < first


def test_swin_fused_head_and_options_keep_the_maths() -> None:
    from s4mi_bench.plain import build_pair

    _, swin = build_pair(TINY_CNN, TINY_SWIN, 2, 64)
    swin.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = swin.decode(*swin.encode(x))
        reference = swin.head(swin.final_expand(tokens)).permute(0, 3, 1, 2)
        assert torch.allclose(swin(x), reference, atol=1e-6)
        swin.set_fused_attention(True)
        assert torch.allclose(swin(x), reference, atol=1e-4)
    swin.train()
    swin.set_memory_saving(True)
    torch.manual_seed(0)
    swin(x).sum().backward()
    assert all(p.grad is not None for p in swin.parameters() if p.requires_grad)


def _train_item(**changes) -> dict:
    item = {
        "preset": "cpu-small",
        "batch": "4+4 at 128",
        "precision": "bf16",
        "memory_saving": False,
        "engine": {"s": 0.5, "peak_mb": 1000, "precision": "bf16", "params": {"cnn": 10, "swin": 5}},
        "plain": {"s": 1.2, "peak_mb": 2000, "precision": "fp32", "params": {"cnn": 10, "swin": 5}},
        "simple": {"s": 0.6, "peak_mb": 1100, "precision": "bf16", "params": {"cnn": 10, "swin": 5}},
        "flops": 50e9,
        "ratio": 2.4,
        "ratio_simple": 1.2,
        "engine_s": 0.5,
        "plain_s": 1.2,
        "engine_params": {"cnn": 10, "swin": 5},
        "plain_params": {"cnn": 10, "swin": 5},
    }
    return item | changes


def test_table_marks_targets() -> None:
    from s4mi_bench.report import markdown_table

    results = {
        "peak": {"fp32": 200.0, "bf16": 400.0, "size": 4096},
        "train": [_train_item(), _train_item(preset="paper", ratio_simple=0.8)],
        "memory": {
            "preset": "paper",
            "rows": [
                {"label": "engine", "impl": "engine", "peak_mb": 6000, "memory_saving": False, "batch": "8+8 at 224"},
                {"label": "engine (memory saving on)", "impl": "engine", "peak_mb": 5000, "memory_saving": True},
                {"label": "plain", "impl": "plain", "peak_mb": 7000},
                {"label": "simple", "impl": "simple", "peak_mb": 6500},
            ],
        },
        "gui": {"skipped": "no display"},
        "environment": {"cpu": "Some CPU", "bf16_native": True, "engine_precision": "bf16"},
    }
    table = markdown_table(results)
    row = (
        "| train step, `cpu-small` (4+4 at 128); engine bf16 | 0.50 s/step | 1.20 s/step | 0.60 s/step (bf16) "
        "| 2.40× / 1.20× | ≥ 2× / ≥ 1× | PASS / PASS |"
    )
    assert row in table
    assert "| 2.40× / 0.80× | ≥ 2× / ≥ 1× | PASS / MISS |" in table  # paper: slower than the simple step
    # 50 GFLOP in 0.5 s = 100 GFLOP/s: 25% of the bf16 peak; the plain step 42 GFLOP/s of the fp32 peak's 200
    assert (
        "| share of the matmul peak, `cpu-small` (50 GFLOP/step) | 25% of bf16 | 21% of fp32 | 21% of bf16 |" in table
    )
    assert "engine with memory saving on | 5.24 GB |" in table and "MISS" in table  # 5000 MiB is over 4 GB
    assert "memory saving as `auto` chose here (off) | 6.29 GB | 7.34 GB | 6.82 GB |" in table
    assert "skipped: no display" in table
    assert "Some CPU, native bf16" in table and "matmul peak (4096² products, GFLOP/s): fp32 200, bf16 400" in table


def test_table_without_the_simple_step_on_fp32_cpus() -> None:
    from s4mi_bench.report import markdown_table

    item = _train_item(precision="fp32", ratio=1.1)
    item.pop("simple")
    item.pop("ratio_simple")
    item["engine"] = item["engine"] | {"precision": "fp32"}
    table = markdown_table({"train": [item]})
    assert "| 0.50 s/step | 1.20 s/step | = plain (fp32) | 1.10× | ≥ 2× | MISS |" in table


def test_bench_cli_quick_train_part(tmp_path, monkeypatch, capsys) -> None:
    """`s4mi bench --quick --parts train` end to end (tiny networks, one round of fresh processes): whatever
    precision `auto` resolves to on this machine, the table and bench.json say so."""
    from s4mi_bench import training

    from napari_s4mi import cli
    from napari_s4mi.core.device import resolve_precision

    real = training.throughput

    def tiny_throughput(name, reps=2, device="cpu", precision="auto", steps=1, warmup=1, quiet_wait_s=0):
        return real(name, reps=1, device=device, precision=precision, steps=1, warmup=1, overrides=TINY, quiet_wait_s=0)

    monkeypatch.setattr(training, "throughput", tiny_throughput)
    assert cli.main(["bench", "--quick", "--parts", "train", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| train step, `cpu-small`" in out and "parameters cnn/swin" in out and "share of the matmul peak" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    item = data["train"][0]
    assert "error" not in item, item.get("error")
    assert item["engine_params"] == item["plain_params"]
    assert (tmp_path / "bench.md").read_text().startswith("| measurement")
    expected = resolve_precision("auto", torch.device("cpu"))  # bf16 where the CPU has it natively, else fp32
    assert item["precision"] == data["environment"]["engine_precision"] == expected
    assert ("simple" in item) == (expected != "fp32")
    assert item["plain"]["precision"] == "fp32" and item["flops"] > 0
    assert data["peak"]["fp32"] > 0 and data["peak"]["bf16"] > 0
    assert isinstance(data["environment"]["bf16_native"], bool) and data["environment"]["cpu"]


def test_each_implementation_runs_in_a_process_of_its_own(monkeypatch) -> None:
    """Rounds of fresh processes, alternating engine, plain, simple; the median of the processes' medians."""
    from s4mi_bench import training

    calls = []

    def fake_run_json(module, args, **_):
        impl = args[args.index("--impl") + 1]
        calls.append(impl)
        seconds = {"engine": 1.0, "plain": 3.0, "simple": 2.0}[impl] + 0.1 * len(calls)
        info = {"precision": "fp32" if impl == "plain" else "bf16", "params": {"cnn": 1, "swin": 2}}
        return (
            info
            | {"median_s": seconds, "times": [seconds], "peak_mb": 10, "batch": "1+1 at 64"}
            | {
                "captured": False,
                "memory_saving": False,
                **({"flops": 1e9} if "--flops" in args else {}),
            }
        )

    monkeypatch.setattr(training, "run_json", fake_run_json)
    result = training.throughput("cpu-small", reps=3, precision="bf16", quiet_wait_s=0)
    assert calls == ["engine", "plain", "simple"] * 3
    assert result["engine"]["s"] == pytest.approx(1.0 + 0.4)  # processes 1, 4, 7: median 1.4
    assert result["ratio_simple"] == pytest.approx(result["simple"]["s"] / result["engine"]["s"])
    assert result["flops"] == 1e9


def test_cli_bench_parts_are_the_benchmark_parts() -> None:
    """`s4mi --help` lists the parts without importing the benchmark: the two lists must agree."""
    from s4mi_bench.run import PARTS

    from napari_s4mi.cli.other import BENCH_PARTS

    assert BENCH_PARTS == PARTS


REMOVED = ("napari_s4mi.bench", "napari_s4mi.widgets.bench_gui", "napari_s4mi.widgets.latency")


def _imports(path, package: str):
    """(module name, at module level) for every import statement in a file (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            yield base, id(node) in top
            for alias in node.names:
                yield f"{base}.{alias.name}", id(node) in top


def test_the_plugin_never_imports_the_benchmark() -> None:
    """No module of the plugin imports the benchmark package or the modules that moved into it; the one exception
    is `s4mi bench`'s thin entry, which imports it inside its function (never at import time)."""
    plugin = REPO / "napari_s4mi"
    assert not (plugin / "bench").exists()
    assert not (plugin / "widgets" / "bench_gui.py").exists() and not (plugin / "widgets" / "latency.py").exists()
    for path in sorted(plugin.rglob("*.py")):
        relative = path.relative_to(REPO).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        package = ".".join(parts[:-1]) if relative.name != "__init__" else ".".join(parts)
        for name, top_level in _imports(path, package):
            assert not any(name == r or name.startswith(r + ".") for r in REMOVED), f"{relative}: imports {name}"
            if name == "s4mi_bench" or name.startswith("s4mi_bench."):
                assert relative.as_posix() == "napari_s4mi/bench_entry", f"{relative}: imports {name}"
                assert not top_level, f"{relative}: imports {name} at import time"


def test_bench_never_imports_napari() -> None:
    code = (
        "import sys; from s4mi_bench import run, gui, startup, report, display, training, slide, memory, step; "
        "import napari_s4mi.cli; print('napari' in sys.modules, 'napari_s4mi.widgets' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_bench_quick_everything(tmp_path) -> None:
    from s4mi_bench.run import run_bench

    results = run_bench(("train", "iou", "slide", "memory"), quick=True, out=tmp_path)
    assert all("error" not in item for item in results["train"])
    assert "error" not in results["iou"] and "error" not in results["slide"]
    assert all("error" not in row for row in results["memory"]["rows"])


def test_peak_memory_is_the_measuring_process_own_not_its_parent():
    """A child's ru_maxrss keeps the RSS of the process that forked it; the benchmark must not report that."""
    import numpy as np

    ballast = np.ones(600 * 2**20, np.uint8)  # this (parent) process now holds > 600 MB
    code = "from s4mi_bench.proc import peak_rss_mb; print(peak_rss_mb())"
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    child_peak_mb = float(done.stdout)
    assert ballast.sum() == ballast.size
    assert child_peak_mb < 300, f"the child reported {child_peak_mb:.0f} MiB: its parent's peak leaked in"


def test_table_reports_the_gui_rows() -> None:
    from s4mi_bench.report import markdown_table

    gui = {
        "train_max_gap_ms": 480.0,
        "train_steady_max_gap_ms": 32.5,
        "train_steady_gaps_over_50ms": 0,
        "train_gui_s_per_step": 1.71,
        "predict_max_gap_ms": 61.0,
        "predict_gaps_over_50ms": 1,
        "final_insert_ms": 300.0,
        "start_click_ms": 120.0,
        "predict_click_ms": 80.0,
        "slide": "1408x1876",
    }
    gui["guest"] = dict(gui, train_steady_max_gap_ms=44.0, predict_max_gap_ms=40.0, predict_gaps_over_50ms=0)
    table = markdown_table({"gui": gui})
    training = "| napari event loop, longest gap while training (after its first step) (s4mi napari) | 32 ms (0 gaps"
    assert training in table
    assert "longest gap while predicting (s4mi napari) | 61 ms (1 gaps > 50 ms) |  |  |  | < 50 ms | MISS |" in table
    assert "while training (after its first step) (plain napari + plugin) | 44 ms (0 gaps > 50 ms)" in table
    assert "while predicting (plain napari + plugin) | 40 ms (0 gaps > 50 ms) |  |  |  | < 50 ms | PASS |" in table
    assert "training step inside napari, `cpu-small` (1408x1876 slides; after the first) | 1.71 s/step |" in table
    assert "| longest gap from Start to the first step (PyTorch loads; once a session) | 480 ms |" in table


def test_table_reports_the_classification_gui_rows() -> None:
    from s4mi_bench.report import markdown_table

    base = {"train_max_gap_ms": 400.0, "predict_max_gap_ms": 30.0, "final_insert_ms": 300.0, "slide": "1408x1876"}
    cls = {
        "pretrain_steady_max_gap_ms": 38.2,
        "pretrain_gaps_over_50ms": 0,
        "pretrain_gui_s_per_step": 0.84,
        "finetune_max_gap_ms": 72.0,
        "finetune_gaps_over_50ms": 2,
        "saliency_max_gap_ms": 24.1,
        "saliency_gaps_over_50ms": 0,
    }
    gui = dict(base, cls=cls, guest=dict(base, cls={"skipped": "no display"}))
    table = markdown_table({"gui": gui})
    assert "while CASS pretraining (after its first step) (s4mi napari) | 38 ms (0 gaps > 50 ms)" in table
    assert (
        "fine-tuning (from the switch of stage) (s4mi napari) | 72 ms (2 gaps > 50 ms) |  |  |  | < 50 ms | MISS |"
        in table
    )
    assert (
        "computing a slide's saliency map (s4mi napari) | 24 ms (0 gaps > 50 ms) |  |  |  | < 50 ms | PASS |" in table
    )
    assert "CASS pretraining step inside napari, `cpu-small` (s4mi napari; after the first) | 0.84 s/step" in table
    assert "while classifying (plain napari + plugin) | skipped: no display" in table


def test_gaps_are_attributed_to_the_stage_they_began_in() -> None:
    from s4mi_bench.gui_cls_latency import longest_within

    gaps = [(0.0, 0.02), (0.02, 0.09), (1.0, 1.03), (2.0, 2.2), (2.2, 2.21)]
    assert longest_within(gaps, 0.0, 2.0) == (pytest.approx(70.0), 1)
    assert longest_within(gaps, 2.0, 3.0) == (pytest.approx(200.0), 1)
    ms, count = longest_within(gaps, 5.0, 6.0)
    assert ms != ms and count == 0  # nan: no gap began there


def test_insertion_windows_come_from_the_event_loop_pass_that_inserted_the_layers() -> None:
    """Measured from outside the widgets: the pass holding the `inserted` events, plus the first paint after."""
    from s4mi_bench.gui_latency import SETTLE_S, insertion_windows

    gaps = [(0.0, 0.01), (0.01, 0.30), (0.30, 0.35), (0.35, 0.36), (5.0, 5.01)]
    windows = insertion_windows([0.2, 0.25], gaps)  # two layers inserted in one pass
    assert len(windows) == 1
    ms, (start, end) = windows[0]
    assert ms == pytest.approx(1000 * (0.29 + 0.05))
    assert (start, end) == (0.01, pytest.approx(0.30 + SETTLE_S))


def test_table_reports_the_cass_step() -> None:
    from s4mi_bench.report import markdown_table

    engine = {"s": 0.5, "peak_mb": 1500, "precision": "bf16"}
    cass = {"preset": "cpu-small", "batch": "16 at 128", "engine": engine, "ratio": 2.0}
    cass["plain"] = {"s": 1.0, "peak_mb": 1600, "precision": "fp32"}
    table = markdown_table({"cass": cass})
    assert "| CASS pretraining step, `cpu-small` (batch 16 at 128); engine bf16 | 0.50 s | 1.00 s |  | 2.00× |" in table
    assert "| peak memory, CASS step processes | 1.46 GB | 1.56 GB |" in table


@pytest.mark.slow
def test_cass_step_processes_report_times_and_memory() -> None:
    """One real CASS step of each implementation, each in this process (a smoke test of the part's workers)."""
    from s4mi_bench.cass import measure

    from napari_s4mi.core.host import release_process

    try:
        for impl in ("engine", "plain"):
            result = measure(impl, "cpu-small", steps=1, precision="fp32")
            assert result["impl"] == impl and result["median_s"] > 0 and result["peak_mb"] > 0
    finally:
        release_process()
