"""`s4mi bench`: the plain baseline is the same models and trains; the table is produced (tiny sizes)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import TINY_CNN, TINY_SWIN, tiny_config


def _tiny_pair_and_method():
    from napari_s4mi.bench.plain import PlainCrossTeaching, build_pair
    from napari_s4mi.core.methods import make_method

    config = tiny_config()
    torch.manual_seed(0)
    method = make_method(config, 2, torch.device("cpu"), "fp32")
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
    from napari_s4mi.bench.plain import dice_loss
    from napari_s4mi.core.losses import soft_dice_loss

    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    assert torch.allclose(dice_loss(logits, target), soft_dice_loss(logits, target), atol=1e-6)
    _, method, plain = _tiny_pair_and_method()
    method.config.constant_lambda = True  # λ = 1, as passed to the plain step
    x_l, y_l, x_u = _batch()
    before = [p.detach().clone() for p in plain.cnn.parameters()]
    torch.manual_seed(3)  # same drop-path draws: same weights, same batch, same loss
    engine_loss = method.train_step(0, x_l, y_l, x_u)["loss"]
    torch.manual_seed(3)
    first = plain.train_step(x_l, y_l, x_u, 1.0)
    assert abs(engine_loss - first) < 1e-4 * max(1.0, abs(first))
    losses = [plain.train_step(x_l, y_l, x_u, 1.0) for _ in range(3)]
    assert min(losses) < first
    assert any(not torch.equal(a, b) for a, b in zip(before, plain.cnn.parameters(), strict=True))


def test_swin_fused_head_and_options_keep_the_maths() -> None:
    from napari_s4mi.bench.plain import build_pair

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


def test_table_marks_targets(tmp_path) -> None:
    from napari_s4mi.bench.report import markdown_table

    results = {
        "train": [
            {
                "preset": "cpu-small",
                "batch": "4+4 at 128",
                "engine_s": 0.5,
                "plain_s": 1.2,
                "ratio": 2.4,
                "engine_params": {"cnn": 10, "swin": 5},
                "plain_params": {"cnn": 10, "swin": 5},
            }
        ],
        "memory": {"preset": "paper", "batch": "8+8 at 224", "engine": {"peak_mb": 5000}, "plain": {"peak_mb": 7000}},
        "gui": {"skipped": "no display"},
    }
    table = markdown_table(results)
    assert "| train step, `cpu-small` (4+4 at 128) | 0.50 s/step | 1.20 s/step | 2.40× | ≥ 2× | PASS |" in table
    assert "MISS" in table  # 5000 MiB is over 4 GB
    assert "skipped: no display" in table


def test_bench_cli_quick_train_part(tmp_path, monkeypatch, capsys) -> None:
    from napari_s4mi import cli
    from napari_s4mi.bench import training

    real = training.throughput

    def tiny_throughput(name, reps=2, device="cpu", precision="auto"):
        return real(
            name,
            reps=1,
            device=device,
            precision=precision,
            overrides=dict(input_size=64, labeled_batch=1, unlabeled_batch=1, cnn=dict(TINY_CNN), swin=dict(TINY_SWIN)),
        )

    monkeypatch.setattr(training, "throughput", tiny_throughput)
    assert cli.main(["bench", "--quick", "--parts", "train", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| train step, `cpu-small`" in out and "parameters cnn/swin" in out
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["train"][0]["engine_params"] == data["train"][0]["plain_params"]
    assert (tmp_path / "bench.md").read_text().startswith("| measurement")
    assert data["train"][0]["precision"] == "fp32"  # auto on an AVX2 CPU
    assert data["environment"]["engine_precision"] == "fp32"


def test_bench_never_imports_napari(tmp_path) -> None:
    import subprocess

    code = (
        "import sys; from napari_s4mi.bench import run, gui, startup, report, display; "
        "import napari_s4mi.cli; print('napari' in sys.modules, 'napari_s4mi.widgets' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_bench_quick_everything(tmp_path) -> None:
    from napari_s4mi.bench.run import run_bench

    results = run_bench(("train", "iou", "slide", "memory"), quick=True, out=tmp_path)
    assert all("error" not in item for item in results["train"])
    assert "error" not in results["iou"] and "error" not in results["slide"]


def test_peak_memory_is_the_measuring_process_own_not_its_parent():
    """A child's ru_maxrss keeps the RSS of the process that forked it; the benchmark must not report that."""
    import subprocess
    import sys

    import numpy as np

    ballast = np.ones(600 * 2**20, np.uint8)  # this (parent) process now holds > 600 MB
    code = "from napari_s4mi.bench.memory import _rss_mb; print(_rss_mb())"
    child_peak_mb = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert ballast.sum() == ballast.size
    assert child_peak_mb < 300, f"the child reported {child_peak_mb:.0f} MiB: its parent's peak leaked in"


def test_table_reports_the_gui_rows() -> None:
    from napari_s4mi.bench.report import markdown_table

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
    table = markdown_table({"gui": gui})
    assert "| napari event loop, longest gap while training (after its first step) | 32 ms (0 gaps > 50 ms) |" in table
    assert "longest gap while predicting | 61 ms (1 gaps > 50 ms) |  |  | < 50 ms | MISS |" in table
    assert "training step inside napari, `cpu-small` (1408x1876 slides; after the first) | 1.71 s/step |" in table
    assert "| longest gap from Start to the first step (PyTorch loads; once a session) | 480 ms |" in table
