"""PiCIE (Cho et al., CVPR 2021): unsupervised semantic segmentation by invariance and equivariance in clustering.

Once per epoch (``refresh``, before the step; see ``base.Method``) the network is copied into its frozen
``labeler`` and the labeler's pixel features of a seeded sample of training images are clustered by spherical
k-means, one clustering per view family (view 1: P1(x); view 2: P2(G(x)); ``picie_views``). The first clustering
starts from k-means++ and orders the clusters by size (cluster 0 the largest); later ones start from the previous
centroids, so a cluster keeps its number through the run. Each step then trains, on unit features and cosine
logits / τ,

    within = ½ [CE(z1·μ1, y1) + CE(z2·μ2, y2)]    cross = ½ [CE(z1·μ2, y2) + CE(z2·μ1, y1)]    loss = ½ (within + cross)

with z1 = G(f(P1 x)) (view 1's feature map cropped and flipped by the same G), z2 = f(P2(G x)), y the nearest
centroid of the labeler's feature of the same pixel (the network as it was at the clustering: the targets stay
fixed for the epoch, as in the paper, and cannot collapse with the features), and, when ``balance``, weights
inverse to the cluster sizes. At each clustering the network's BatchNorm running statistics are recalibrated on the
sample, and the labeler, the clustering and evaluation use them (eval mode), as the reference code clusters and
labels in eval mode; training steps normalise with batch statistics.

Evaluation fits the cluster -> class map once on the pooled confusion of the whole validation split (Hungarian
matching, ``cluster_map.hungarian_map``), never per image, and scores foreground IoU under it. Prediction turns
view-1 cluster probabilities into class probabilities through the user's foreground pick
(``config.foreground_clusters``), else that fitted map, else the default (cluster 0 background).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..cluster_map import foreground_iou, foreground_map, hungarian_map
from ..device import autocast
from ..models.fpn import PicieNet, build_picie_net
from ..picie_config import PicieConfig
from .base import Batch, Evaluation
from .kmeans import spherical_kmeans
from .segmentation import SegMethod

MAX_WEIGHT = 10.0  # a tiny cluster's cross-entropy weight is capped at this multiple of the mean


def crop_features(z: torch.Tensor, box: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """G on feature maps: the crop ``box`` ((N, 4) fractions y, x, h, w) resampled to ``z``'s size, mirrored
    left-right where ``flip``; as ``picie_views.geometric`` does to images."""
    y, x, h, w = box.to(z.dtype).unbind(1)
    sign = 1.0 - 2.0 * flip.to(z.dtype)
    zero = torch.zeros_like(y)
    theta = torch.stack([torch.stack([w * sign, zero, 2 * x + w - 1], 1), torch.stack([zero, h, 2 * y + h - 1], 1)], 1)
    grid = F.affine_grid(theta, list(z.shape), align_corners=False)
    return F.grid_sample(z, grid, mode="bilinear", padding_mode="border", align_corners=False)


def cluster_weights(counts: torch.Tensor, balance: bool) -> torch.Tensor:
    """Cross-entropy weights inverse to the cluster sizes (mean 1, capped), or all ones."""
    if not balance:
        return torch.ones(len(counts), device=counts.device)
    inverse = counts.sum() / (len(counts) * counts.float().clamp_min(1.0))
    return inverse.clamp(max=MAX_WEIGHT)


class Picie(SegMethod):
    """One ResNet + FPN feature network (``models.fpn.PicieNet``) whose buffers hold the clustering."""

    config: PicieConfig

    def build(self, weights: str | None) -> None:
        self.memory_saving = False
        (name,) = self.config.networks
        spec = self.config.networks[name]
        net, report = build_picie_net(
            spec.get("encoder", "resnet18"),
            self.config.clusters,
            self.config.feature_dim,
            weights if weights is not None else spec.get("weights", "imagenet"),
        )
        self.add_network(name, net, report)

    @property
    def default_output(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return next(iter(self.networks))

    @property
    def net(self) -> PicieNet:
        return self.networks[self.name]  # type: ignore[return-value]

    def logits(self, z: torch.Tensor, view: int) -> torch.Tensor:
        """Cosine similarity of unit features (N, D, h, w) to view family ``view``'s centroids, over τ."""
        return torch.einsum("ndhw,kd->nkhw", z, self.net.centroids[view]) / self.config.temperature

    def view_features(self, batch: Batch, net: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit features z1 = G(f(x1)) and z2 = f(x2) of ``net`` (the features or the labeler), aligned."""
        z1 = crop_features(net(batch["x1"]).float(), batch["box"], batch["flip"])
        z2 = net(batch["x2"]).float()
        return F.normalize(z1, dim=1), F.normalize(z2, dim=1)

    def losses(self, batch: Batch, scalars: Mapping[str, float | torch.Tensor]) -> dict[str, torch.Tensor]:
        z1, z2 = self.view_features(batch, self.net.features)
        with torch.no_grad():
            l1, l2 = self.view_features(batch, self.net.labeler)
            y1, y2 = self.logits(l1, 0).argmax(dim=1), self.logits(l2, 1).argmax(dim=1)

        def ce(z: torch.Tensor, view: int, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self.logits(z, view), target, weight=self.net.weights[view])

        within = 0.5 * (ce(z1, 0, y1) + ce(z2, 1, y2))
        cross = 0.5 * (ce(z1, 1, y2) + ce(z2, 0, y1))
        return {"loss": 0.5 * (within + cross), "within": within, "cross": cross}

    # ----------------------------------------------------------------------------------------- clustering

    def refresh_due(self, step: int) -> bool:
        every = int(self.run_info.get("cluster_every_steps") or self.config.cluster_every or 1)
        return step % every == 0 or not bool(self.net.clustered)

    @torch.no_grad()
    def refresh(self, step: int, batches: Iterable[Batch]) -> None:
        """k-means of each view family's features on the sample (see the module docstring)."""
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        sample = list(batches)
        features: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        with autocast(self.device, self.precision):
            self.net.snapshot([b[key] for b in sample for key in ("x1", "x2")])
            for batch in sample:
                for view, z in enumerate(self.view_features(batch, self.net.labeler)):
                    features[view].append(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
        first = not bool(self.net.clustered)
        for view, parts in enumerate(features):
            x = torch.cat(parts)
            pick = torch.randperm(len(x), generator=generator)[: self.config.cluster_pixels].to(x.device)
            init = None if first else self.net.centroids[view]
            k, iterations = self.config.clusters, self.config.kmeans_iterations
            centroids, counts = spherical_kmeans(x[pick], k, iterations, generator, init)
            if first:  # cluster 0 the largest, and so on
                order = torch.argsort(-counts.cpu(), stable=True).to(counts.device)
                centroids, counts = centroids[order], counts[order]
            self.net.centroids[view].copy_(centroids)
            self.net.weights[view].copy_(cluster_weights(counts, self.config.balance))
        self.net.clustered.fill_(1)

    # ----------------------------------------------------------------------------------------- outputs

    @torch.no_grad()
    def cluster_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) probabilities of the view-1 clusters at the input's size, in fp32."""
        self.eval_mode()
        with autocast(self.device, self.precision):
            raw = self.net(x)
        logits = self.logits(F.normalize(raw.float(), dim=1), 0)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False).softmax(dim=1)

    def class_map(self) -> torch.Tensor:
        """The class of each cluster that prediction uses: the user's pick, else the validation (or default) map."""
        picked = self.config.foreground_clusters
        if picked:
            return torch.from_numpy(foreground_map(self.config.clusters, picked)).to(self.device)
        return self.net.cluster_map

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Class scores: each class's most likely cluster's probability, normalised to sum 1, so the predicted class
        is the class of the most likely cluster, as in validation. (Summing a class's clusters would not be: with
        k > 2 three near-tied background clusters outvote the foreground cluster that is the argmax.)"""
        probs = self.cluster_probabilities(x)
        owner = F.one_hot(self.class_map().long(), self.num_classes).to(probs.dtype).T[None, :, :, None, None]
        scores = (probs[:, None] * owner).amax(dim=2)  # (N, C, H, W)
        return {self.name: scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)}

    def evaluate(self, batches: Iterable[Batch]) -> Evaluation:
        """Fit the cluster -> class map on the pooled validation confusion (Hungarian), then foreground IoU."""
        k, c = self.config.clusters, self.num_classes
        confusion = np.zeros((k, c), dtype=np.int64)
        for batch in batches:
            clusters = self.cluster_probabilities(batch["image"]).argmax(dim=1).cpu().numpy().ravel()
            mask = np.minimum(batch["mask"].cpu().numpy().ravel().astype(np.int64), c - 1)
            confusion += np.bincount(clusters * c + mask, minlength=k * c).reshape(k, c)
        mapping = hungarian_map(confusion)
        self.net.cluster_map.copy_(torch.from_numpy(mapping))
        metric = f"iou_{self.name}"
        details = {"cluster_map": mapping.tolist(), "cluster_confusion": confusion.tolist()}
        return Evaluation({metric: foreground_iou(confusion, mapping)}, metric, self.name, details)
