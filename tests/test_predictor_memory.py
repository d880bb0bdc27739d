"""A Predictor's networks are freed as soon as it is dropped, also for runs trained with activation checkpointing."""

from __future__ import annotations

import gc
import weakref

from conftest import tiny_config

from napari_s4mi.core.engine import train_segmentation
from napari_s4mi.core.predictor import Predictor


def test_dropped_predictor_frees_its_networks_without_a_garbage_collection(sample_project):
    run_dir = sample_project.root / "runs" / "saving"
    list(train_segmentation(sample_project, tiny_config(iterations=1, memory_saving=True), run_dir))
    predictor = Predictor(run_dir, device="cpu")
    modules = [weakref.ref(m) for net in predictor.method.networks.values() for m in net.modules()]
    gc.collect()
    gc.disable()  # what reference counting alone frees: GPU memory held by cycles waits for a collection
    try:
        del predictor
        alive = sum(ref() is not None for ref in modules)
        assert not alive, f"reference cycles keep {alive} of the networks' modules (and their weights) alive"
    finally:
        gc.enable()
