"""A predictor's networks are freed as soon as it is dropped, also for runs trained with activation checkpointing."""

from __future__ import annotations

import gc
import weakref

from conftest import tiny_config

from napari_s4mi.core.engine import train
from napari_s4mi.core.predictor import open_predictor


def test_dropped_predictor_frees_its_networks_without_a_garbage_collection(sample_project):
    run_dir = sample_project.root / "runs" / "saving"
    list(train(sample_project, tiny_config(iterations=1, memory_saving="on"), run_dir))
    predictor = open_predictor(run_dir, device="cpu")
    modules = [weakref.ref(m) for net in predictor.method.networks.values() for m in net.modules()]
    gc.collect()
    gc.disable()  # what reference counting alone frees: GPU memory held by cycles waits for a collection
    try:
        del predictor
        alive = sum(ref() is not None for ref in modules)
        assert not alive, f"reference cycles keep {alive} of the networks' modules (and their weights) alive"
    finally:
        gc.enable()


def test_predictor_runs_the_cnn_channels_last_with_the_same_probabilities(sample_project):
    """Inference puts the U-Net in channels_last (faster on CPUs too); its softmax is the contiguous one."""
    import torch

    from napari_s4mi.core import checkpoint as ckpt
    from napari_s4mi.core.methods import build_method

    run_dir = sample_project.root / "runs" / "layout"
    config = tiny_config(iterations=1)
    list(train(sample_project, config, run_dir))
    predictor = open_predictor(run_dir, which="mean", device="cpu")
    cnn = predictor.method.networks["cnn"]
    weights = [p for p in cnn.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)

    reference = build_method(
        config, {"classes": ["background", "foreground"]}, torch.device("cpu"), "fp32", weights="none"
    )
    ckpt.load_networks(predictor.checkpoint, reference.networks)
    x = torch.randn(3, 3, config.input_size, config.input_size, generator=torch.Generator().manual_seed(0))
    expected = reference.predict(x)
    mean, disagreement = predictor.predict_tiles(x)
    assert torch.allclose(mean, expected["mean"], atol=1e-4)
    expected_dis = 0.5 * (expected["cnn"] - expected["swin"]).abs().sum(dim=1)
    assert torch.allclose(disagreement, expected_dis, atol=1e-4)
