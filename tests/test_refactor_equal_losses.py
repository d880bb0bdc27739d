"""Segmentation behaves exactly as before the one-engine refactor: the first losses of a seeded fp32 run of each
method, recorded with the code before the refactor (commit 52e9c34), are reproduced by the registry-driven engine.

The tolerance covers other CPUs' kernels (AVX2 vs AVX512 sum in other orders); on the recording machine the
values were bit-identical after the refactor.
"""

from __future__ import annotations

import pytest
from conftest import tiny_config

from napari_s4mi.core.engine import train
from napari_s4mi.core.events import Progress, Validation

RECORDED = {
    "cross-teaching": {
        "parts": [
            # loss, supervised, unsupervised, lambda
            (1.2119450569152832, 1.2114624977111816, 0.7162261009216309, 0.0006737947114743292),
            (1.0603485107421875, 0.9962283372879028, 0.7367390990257263, 0.08703247457742691),
            (1.0582937002182007, 0.9820289611816406, 0.7626473903656006, 0.10000000149011612),
        ],
        "val": {"iou_cnn": 0.3166945306902317, "iou_swin": 0.22088353413654618, "iou_mean": 0.24428772919605077},
    },
    "supervised": {
        "parts": [(0.6167119145393372,), (0.48150643706321716,), (0.4191420078277588,)],
        "val": {"iou_cnn": 0.4346420323325635},
    },
}


@pytest.mark.parametrize("method", list(RECORDED))
def test_first_losses_equal_the_recorded_ones(sample_project, method):
    settings = dict(method=method, iterations=3, val_every=3, checkpoint_every=3, label_fraction=0.5)
    settings["cnn"] = {"arch": "unet", "encoder": "resnet18", "weights": "none"}  # the network of the recording
    if method == "supervised":
        settings.update(labeled_batch=4, unlabeled_batch=0)
    events = list(train(sample_project, tiny_config(**settings), sample_project.root / "runs" / method))
    steps = [e for e in events if isinstance(e, Progress)]
    got = [(e.loss, *(v for k, v in e.parts.items() if k != "lr")) for e in steps]
    expected = RECORDED[method]["parts"]
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row == pytest.approx(want, rel=2e-4, abs=2e-5)
    (validation,) = [e for e in events if isinstance(e, Validation)]
    assert validation.metrics == pytest.approx(RECORDED[method]["val"], abs=0.02)
