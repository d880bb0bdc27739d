"""Spherical k-means on unit feature vectors (cosine similarity), seeded and deterministic, in torch."""

from __future__ import annotations

import torch


def _plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding with cosine distance: each next centre drawn with probability ∝ its distance²."""
    first = int(torch.randint(len(x), (1,), generator=generator))
    centres = [x[first]]
    distance = (1.0 - x @ x[first]).clamp_min(0.0)
    for _ in range(1, k):
        weights = distance.square().cpu()
        if float(weights.sum()) <= 0:
            weights = torch.ones(len(x))
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centres.append(x[pick])
        distance = torch.minimum(distance, (1.0 - x @ x[pick]).clamp_min(0.0))
    return torch.stack(centres)


def _lloyd(x: torch.Tensor, centroids: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Lloyd iterations from ``centroids``; an emptied cluster takes the feature worst served by its centre."""
    k = len(centroids)
    for _ in range(iterations):
        similarity = x @ centroids.T
        best, assign = similarity.max(dim=1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        for empty in torch.nonzero(counts == 0).flatten().tolist():
            worst = int(best.argmin())
            sums[empty] = x[worst]
            best[worst] = 2.0  # not picked twice
        updated = torch.nn.functional.normalize(sums, dim=1)
        if torch.equal(updated, centroids):
            break
        centroids = updated
    best, assign = (x @ centroids.T).max(dim=1)
    return centroids, torch.bincount(assign, minlength=k), float((1.0 - best).mean())


def spherical_kmeans(
    x: torch.Tensor,
    k: int,
    iterations: int,
    generator: torch.Generator,
    init: torch.Tensor | None = None,
    restarts: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit centroids (k, D) of unit features ``x`` (n, D) and each cluster's size. ``init`` warm-starts from given
    centroids; else the best (lowest mean cosine distance) of ``restarts`` k-means++ seedings."""
    x = x.float()
    if init is not None:
        centroids, counts, _ = _lloyd(x, torch.nn.functional.normalize(init.float(), dim=1), iterations)
        return centroids, counts
    best: tuple[torch.Tensor, torch.Tensor, float] | None = None
    for _ in range(restarts):
        result = _lloyd(x, _plus_plus(x, k, generator), iterations)
        if best is None or result[2] < best[2]:
            best = result
    assert best is not None
    return best[0], best[1]
