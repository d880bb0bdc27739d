"""Mean and 95% confidence interval over seeds (Student t)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import t as student_t


@dataclass(frozen=True)
class MeanCI:
    """``mean`` ± ``half`` (the 95% CI's half-width), the sample SD and ``n`` values (non-finite ones left out).

    n = 1: ``sd`` and ``half`` are NaN (no spread can be estimated from one seed); n = 0: all NaN."""

    mean: float
    half: float
    sd: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {"mean": clean(self.mean), "ci95": clean(self.half), "sd": clean(self.sd), "n": self.n}

    def text(self, digits: int = 3) -> str:
        """'0.753 ± 0.012'; one value: '0.753 (n=1)'; none: '–'."""
        if self.n == 0:
            return "–"
        if math.isnan(self.half):
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f}"


def mean_ci(values: Iterable[float | None], level: float = 0.95) -> MeanCI:
    """Mean and half-width t_{(1+level)/2, n-1} x sd / sqrt(n), sd with n - 1 degrees of freedom.

    [1, 2, 3] -> mean 2, sd 1, half 4.303 / sqrt(3) = 2.484."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = sum(finite) / n
    if n == 1:
        return MeanCI(mean, math.nan, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(mean, half, sd, n)
