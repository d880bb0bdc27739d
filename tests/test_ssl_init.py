"""`--init ssl RUN`: CASS of the two segmentation encoders on the project's own slides (``cass-seg``), then
segmentation that starts from them; in an experiment, one pretraining per seed shared by that seed's runs. Real
training steps on the sample slides with tiny networks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import REPO, TINY_CNN, TINY_SWIN, tiny_config
from safetensors.torch import load_file

from napari_s4mi.cli import main
from napari_s4mi.core.cls_pipeline import pipeline_methods
from napari_s4mi.core.errors import InputError
from napari_s4mi.core.events import CancelToken, Done, Stage
from napari_s4mi.core.experiment import DataSource, ExperimentSpec
from napari_s4mi.core.experiment.runner import GridDone, run_experiment
from napari_s4mi.core.experiment.spec import task_methods
from napari_s4mi.core.methods.segmentation import build_network
from napari_s4mi.core.project import Project
from napari_s4mi.core.registry import pretraining_methods
from napari_s4mi.core.ssl_init import apply_ssl_init, train_with_ssl_init

PRETRAIN = {"iterations": 3, "batch": 4, "projection_dim": 32}
SAMPLE = REPO / "resources" / "sample"


def _pretrained_then_trained(project, tmp_path, **seg):
    config = tiny_config(**seg)
    events = list(train_with_ssl_init(project, config, tmp_path / "seg", tmp_path / "ssl", CancelToken(), PRETRAIN))
    return config, events


def test_segmentation_starts_from_the_encoders_pretrained_on_training_slides_only(sample_project, tmp_path):
    config, events = _pretrained_then_trained(sample_project, tmp_path)
    assert [e.name for e in events if isinstance(e, Stage)] == ["pretraining", "segmentation"]
    done = [e for e in events if isinstance(e, Done)]
    assert [d.run_dir.name for d in done] == ["ssl", "seg"] and not done[-1].cancelled

    pre = json.loads((tmp_path / "ssl" / "config.json").read_text())
    held_out = {i for i in sample_project.ids if sample_project.record(i).split in ("val", "test")}
    assert held_out and not set(pre["data"]["pretraining"]) & held_out  # never a validation or test slide
    assert pre["config"]["method"] == "cass-seg" and pre["config"]["input_size"] == config.input_size

    seg = json.loads((tmp_path / "seg" / "config.json").read_text())["config"]["networks"]
    assert {name: spec["weights"] for name, spec in seg.items()} == {
        name: str(tmp_path / "ssl" / "encoders" / f"{name}.safetensors") for name in ("cnn", "swin")
    }
    pretrained = {name: load_file(str(tmp_path / "ssl" / "last" / f"{name}.safetensors")) for name in ("cnn", "swin")}
    cnn, report = build_network(seg["cnn"], 2, config.input_size)
    assert report.source == "file" and report.loaded == report.total  # every encoder tensor
    first_conv = "encoder.model.conv_stem.weight"  # a tu- (timm) encoder: its tensors under model.
    assert torch.equal(cnn.state_dict()[first_conv], pretrained["cnn"]["backbone.encoder.conv_stem.weight"])
    swin, report = build_network(seg["swin"], 2, config.input_size)
    qkv = "layers.1.blocks.0.attn.qkv.weight"
    assert torch.equal(swin.state_dict()[qkv], pretrained["swin"][f"backbone.encoder.{qkv}"])
    assert torch.equal(swin.state_dict()["decoder_stages.1.blocks.0.attn.qkv.weight"], swin.state_dict()[qkv])
    random_swin, _ = build_network(dict(seg["swin"], weights="none"), 2, config.input_size)
    assert not torch.equal(random_swin.state_dict()[qkv], swin.state_dict()[qkv])


def test_a_finished_pretraining_is_reused_and_other_encoders_are_refused(sample_project, tmp_path):
    _pretrained_then_trained(sample_project, tmp_path)
    stamp = (tmp_path / "ssl" / "last" / "state.json").stat().st_mtime_ns
    again = tiny_config(method="supervised")
    events = list(train_with_ssl_init(sample_project, again, tmp_path / "sup", tmp_path / "ssl", CancelToken()))
    assert [e.name for e in events if isinstance(e, Stage)] == ["segmentation"]
    assert (tmp_path / "ssl" / "last" / "state.json").stat().st_mtime_ns == stamp
    assert set(again.networks) == {"cnn"} and again.networks["cnn"]["weights"].endswith("cnn.safetensors")

    other = tiny_config(cnn=dict(TINY_CNN, encoder="resnet18"), swin=dict(TINY_SWIN, embed_dim=48))
    with pytest.raises(InputError, match="pretrain again"):
        apply_ssl_init(other, tmp_path / "ssl")
    with pytest.raises(InputError, match="a cross-teaching run"):
        apply_ssl_init(tiny_config(), tmp_path / "seg")
    stopped = tmp_path / "seg"  # another kind of run, as if unfinished: refused before anything trains
    (stopped / "last" / "state.json").write_text(json.dumps({"step": 1}))
    with pytest.raises(InputError, match="a cross-teaching run"):
        list(train_with_ssl_init(sample_project, tiny_config(), tmp_path / "d", stopped, CancelToken()))
    assert not (tmp_path / "d").exists()


def test_cass_seg_is_a_segmentation_pretraining_only():
    assert "cass-seg" in pretraining_methods("segmentation")
    assert "cass-seg" not in pipeline_methods() and "cass-seg" not in task_methods("classification")
    assert {"cass", "dino"} <= set(pretraining_methods())


def test_experiment_pretrains_once_per_seed_for_both_methods(tmp_path):
    out = tmp_path / "exp"
    overrides = dict(iterations=2, input_size=64, labeled_batch=2, unlabeled_batch=2, precision="fp32",
                     device="cpu", checkpoint_every=1, cnn=TINY_CNN, swin=TINY_SWIN)  # fmt: skip
    spec = ExperimentSpec("seg", methods=("supervised", "cross-teaching"), fractions=(0.5,), seeds=(0,))
    spec.overrides, spec.pretrain_overrides, spec.init = overrides, {"iterations": 2, "batch": 4}, "ssl"
    items = list(run_experiment(spec, out, DataSource(images=SAMPLE / "images", masks=SAMPLE / "masks")))
    assert isinstance(items[-1], GridDone) and items[-1].trained == 2
    stages = [(i.run.name, i.event.name) for i in items[:-1] if isinstance(getattr(i, "event", None), Stage)]
    assert stages.count(("supervised-50-seed0", "pretraining")) == 1
    assert ("cross-teaching-50-seed0", "pretraining") not in stages
    for name in ("supervised-50-seed0", "cross-teaching-50-seed0"):
        result = json.loads((out / "runs" / name / "result.json").read_text())
        assert result["pretraining"]["run"] == "pretrain-cass-seg-seed0"
        assert all("pretrain-cass-seg-seed0" in spec["weights"] for spec in result["config"]["networks"].values())
    project = Project.open(out / "project", refresh=False)
    pre = json.loads((out / "runs" / "pretrain-cass-seg-seed0" / "config.json").read_text())
    assert not set(pre["data"]["pretraining"]) & set(project.annotated_ids("val") + project.annotated_ids("test"))
    with pytest.raises(InputError, match="segmentation only"):
        ExperimentSpec("cls", init="ssl").resolved()


def test_cli_init_ssl_then_reuse(tmp_path, monkeypatch, capsys):
    import napari_s4mi.core.seg_config as seg_config

    monkeypatch.setattr(seg_config, "unet_spec", lambda encoder: dict(TINY_CNN))
    monkeypatch.setattr(seg_config, "swin_spec", lambda embed_dim, heads: dict(TINY_SWIN))
    for part in ("images", "masks"):
        shutil.copytree(SAMPLE / part, tmp_path / part)
    data = ["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks")]
    tiny = ["--iterations", "2", "--input-size", "64", "--labeled-batch", "2", "--unlabeled-batch", "2",
            "--device", "cpu", "--precision", "fp32", "--weights", "none"]  # fmt: skip
    ssl = ["--init", "ssl", str(tmp_path / "ssl"), "--pretrain-iterations", "2"]
    assert main(["train", "seg", *data, "--out", str(tmp_path / "a"), *tiny, *ssl]) == 0
    assert {p.name for p in (tmp_path / "ssl" / "encoders").iterdir()} == {"cnn.safetensors", "swin.safetensors"}
    assert "finished at step 2" in capsys.readouterr().out
    project = ["--project", str(tmp_path / "images" / ".s4mi")]
    assert main(["train", "seg", *project, "--out", str(tmp_path / "b"), *tiny, "--method", "supervised", *ssl]) == 0
    networks = json.loads((tmp_path / "b" / "config.json").read_text())["config"]["networks"]
    assert networks["cnn"]["weights"] == str(tmp_path / "ssl" / "encoders" / "cnn.safetensors")
    assert main(["train", "seg", *project, "--out", str(tmp_path / "c"), *tiny, "--init", "imagenet", "x"]) == 2
    assert "the only kind is ssl" in capsys.readouterr().err
