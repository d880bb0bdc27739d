"""Config of PiCIE, the segmentation method that trains without labels (label fraction 0)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .config import Check
from .seg_config import SegConfig


def fpn_spec(encoder: str) -> dict[str, Any]:
    """A ResNet + FPN pixel-feature network, ImageNet weights for its encoder where they can be had."""
    return {"arch": "fpn", "encoder": encoder, "weights": "imagenet"}


@dataclass
class PicieConfig(SegConfig):
    """PiCIE (Cho et al., CVPR 2021): pixel features clustered by k-means once per epoch, then trained to predict
    their clusters across photometric changes (invariance) and crops/flips (equivariance). Masks are never read
    for training; the validation masks only fit which cluster is which class. ``labeled_batch`` is the number of
    images per step (none of them labeled)."""

    uses_labels: ClassVar[bool] = False

    method: str = "picie"
    label_fraction: float = 0.0
    labeled_batch: int = 8
    unlabeled_batch: int = 0
    lr: float = 3e-4
    clusters: int = 2  # k of k-means
    feature_dim: int = 128  # channels of the pixel features
    cluster_every: int = 50  # steps between clusterings; 0: once per epoch of the training tiles
    cluster_images: int = 64  # images (two views each) whose features are clustered
    cluster_pixels: int = 20000  # features per view family k-means runs on (sampled from those images)
    kmeans_iterations: int = 20
    temperature: float = 0.2  # logits = cosine similarity to the centroids / temperature
    balance: bool = True  # weight the cross-entropy by inverse cluster sizes
    min_crop: float = 0.5  # smallest side of the equivariance crop, as a fraction of the image
    jitter: float = 0.4  # colour jitter strength of the invariance views
    foreground_clusters: list[int] = field(default_factory=list)  # the user's pick; empty: the validation map
    networks: dict[str, dict[str, Any]] = field(default_factory=lambda: {"cnn": fpn_spec("resnet18")})

    def checks(self) -> list[Check]:
        picked = self.foreground_clusters
        return super().checks() + [
            (self.clusters >= 2, "PiCIE needs at least 2 clusters"),
            (self.feature_dim > 0, "the feature dimension must be positive"),
            (self.cluster_every >= 0, "cluster_every cannot be negative (0: once per epoch)"),
            (self.cluster_images > 0 and self.cluster_pixels >= self.clusters, "cluster at least k features"),
            (self.kmeans_iterations > 0, "k-means needs at least one iteration"),
            (self.temperature > 0, "the temperature must be positive"),
            (0.0 < self.min_crop <= 1.0, "min_crop must be in (0, 1]"),
            (
                all(0 <= k < self.clusters for k in picked) and len(set(picked)) == len(picked) < self.clusters,
                f"foreground clusters {picked}: give distinct clusters in 0..{self.clusters - 1}, "
                "leaving at least one for the background",
            ),
        ]

    @classmethod
    def paper_settings(cls) -> dict[str, Any]:
        """The paper's recipe scaled to one GPU: Adam 1e-4, 128-d features, a clustering every epoch."""
        return {
            "iterations": 6000,
            "input_size": 224,
            "labeled_batch": 32,
            "lr": 1e-4,
            "cluster_every": 0,
            "cluster_images": 512,
            "cluster_pixels": 200000,
            "kmeans_iterations": 30,
            "val_every": 200,
            "checkpoint_every": 200,
        }
