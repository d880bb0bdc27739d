"""Measure how long the Qt event loop goes without running a timer: the GUI's worst freeze."""

from __future__ import annotations

import time

from qtpy.QtCore import QObject, QTimer


class EventLoopGaps(QObject):
    """A 5 ms timer that records the longest interval between its ticks (gaps inside ``exclude`` windows not)."""

    def __init__(self, interval_ms: int = 5):
        super().__init__()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.gaps: list[tuple[float, float]] = []  # (start, end) of each interval
        self.excluded: list[tuple[float, float]] = []

    def start(self) -> EventLoopGaps:
        self._last = time.perf_counter()
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def exclude(self, start: float, end: float) -> None:
        """Leave out gaps overlapping [start, end] (e.g. the final layer insertion, reported on its own)."""
        self.excluded.append((start, end))

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append((self._last, now))
        self._last = now

    def _kept(self) -> list[tuple[float, float]]:
        """The (start, end) gaps outside the excluded windows."""
        return [
            (start, end)
            for start, end in self.gaps
            if not any(start <= x_end and end >= x_start for x_start, x_end in self.excluded)
        ]

    def kept_ms(self) -> list[float]:
        """Every gap in milliseconds, leaving out excluded windows."""
        return [1000.0 * (end - start) for start, end in self._kept()]

    def longest_ms(self) -> float:
        """The longest gap in milliseconds, leaving out excluded windows."""
        return max(self.kept_ms(), default=0.0)

    def longest_at_s(self) -> float:
        """When the longest kept gap began, in seconds after the first tick (NaN without gaps)."""
        kept = self._kept()
        if not kept:
            return float("nan")
        start = max(kept, key=lambda gap: gap[1] - gap[0])[0]
        return start - self.gaps[0][0]

    def count_over(self, limit_ms: float) -> int:
        """How many gaps (excluded windows left out) were longer than ``limit_ms``."""
        return sum(gap > limit_ms for gap in self.kept_ms())
