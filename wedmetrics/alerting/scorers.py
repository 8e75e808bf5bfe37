"""Raw anomaly scorers of the ensemble, one observation at a time, bounded state.

* :class:`ConformalRank` turns any raw score into a conformal p-value against
  its own recent history (Vovk, Gammerman & Shafer, "Algorithmic learning in
  a random world", 2005): ``p = (1 + #{previous scores >= s}) / (m + 1)``
  over the last ``m <= calibration`` scores, reported as the *surprise*
  ``-log(p) / log(calibration + 1)`` in [0, 1].  Under exchangeability p is
  uniform whatever the scorer's scale, which is what lets one likelihood
  layer serve a robust z-score and a nearest-neighbour distance alike.
* :class:`KnnDistance` is the non-conformity measure of KNN CAD (Burnaev &
  Ishimtsev, "Conformalized density- and clustering-based anomaly detection
  in time-series data", 2016): the mean Euclidean distance from the current
  lag vector of ``dim`` observations to its ``k`` nearest neighbours among
  the ``history`` lag vectors before it (those overlapping it excluded).  It
  sees shapes, not levels: a series that starts oscillating differently
  scores high although every value is in range.

* :class:`RangeNormaliser` maps a value into [0, 1] by the minimum and
  maximum of the last ``size`` values: the unit-free input of the ART and
  contextual scorers (:mod:`wedmetrics.alerting.art`,
  :mod:`wedmetrics.alerting.contextual`).

The Numba twins (``wedmetrics._kernels._numba``) repeat these operations in
the same order; ``tests/alerting/test_ensemble.py`` checks they agree.
"""
from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from collections import deque

import numpy as np

__all__ = ["ConformalRank", "KnnDistance", "RangeNormaliser"]


class ConformalRank:
    """Surprise of a score against the last ``calibration`` scores, in [0, 1].

    Memory: two float arrays of ``calibration`` entries (ring and sorted copy).

    Examples
    --------
    >>> rank = ConformalRank(9)
    >>> [round(rank.update(s), 3) for s in [1.0, 2.0, 0.5, 3.0]]
    [0.0, 0.301, 0.0, 0.602]
    """

    __slots__ = ("_size", "_log", "_ring", "_sorted", "_head")

    def __init__(self, calibration: int) -> None:
        if isinstance(calibration, bool) or not isinstance(calibration, int) or calibration < 1:
            raise ValueError(f"calibration={calibration!r} must be an integer >= 1")
        self._size = calibration
        self._log = math.log(calibration + 1.0)
        self._ring = array("d")
        self._sorted = array("d")
        self._head = 0

    def update(self, score: float) -> float:
        """Surprise of ``score`` (0 with no history), then remember it."""
        srt = self._sorted
        k = len(srt)
        surprise = 0.0
        if k:
            at_least = k - bisect_left(srt, score)
            surprise = math.log((k + 1.0) / (1.0 + at_least)) / self._log
        if k == self._size:
            old = self._ring[self._head]
            del srt[bisect_left(srt, old)]
            self._ring[self._head] = score
            self._head = (self._head + 1) % self._size
        else:
            self._ring.append(score)
        srt.insert(bisect_right(srt, score), score)
        return surprise


class KnnDistance:
    """Mean distance of the current lag vector to its ``k`` nearest predecessors.

    Scores 0 until ``k`` predecessors exist.  Cost O(history * dim) per
    observation, done as ``dim`` numpy operations over the ``history``
    compared vectors (the same additions in the same order as the Numba
    twin, so the two agree bit for bit); memory ``2 * (history + 2 * dim -
    1)`` floats.

    Examples
    --------
    >>> knn = KnnDistance(dim=2, k=1, history=10)
    >>> scores = [knn.update(v) for v in [0.0, 1.0] * 6 + [5.0]]
    >>> scores[-2], scores[-1] > 3
    (0.0, True)
    """

    __slots__ = ("_dim", "_k", "_history", "_size", "_buf", "_n")

    def __init__(self, dim: int, k: int, history: int) -> None:
        for name, value in (("dim", dim), ("k", k), ("history", history)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if k > history:
            raise ValueError(f"k={k} exceeds history={history}")
        self._dim, self._k, self._history = dim, k, history
        self._size = history + 2 * dim - 1      # values the oldest compared vector reaches back to
        # Each value is written twice, at p and p + size, so any run of at
        # most ``size`` consecutive values is one contiguous slice.
        self._buf = np.zeros(2 * self._size)
        self._n = 0

    def update(self, value: float) -> float:
        """Score the lag vector ending at ``value``, then keep ``value``."""
        size, dim, buf = self._size, self._dim, self._buf
        i = self._n                              # index of the current value
        p = i % size
        buf[p] = buf[p + size] = value
        self._n += 1
        if i < dim - 1:
            return 0.0
        lo = max(dim - 1, i - dim - self._history + 1)
        hi = i - dim                             # last end that does not overlap the current vector
        m = hi - lo + 1
        if m < self._k:
            return 0.0
        # column q holds x[j - q] for the compared ends j = lo..hi, oldest first
        total = None
        for q in range(dim):
            start = (lo - q) % size
            t = buf[(i - q) % size] - buf[start:start + m]
            t *= t
            if total is None:
                total = t
            else:
                total += t
        dists = np.sqrt(total)
        nearest = np.sort(np.partition(dists, self._k - 1)[:self._k]).tolist()
        acc = 0.0
        for d in nearest:
            acc += d
        return acc / self._k


class RangeNormaliser:
    """A value's position between the minimum and maximum of the last ``size``
    values (itself included), in [0, 1]; 0.5 while they are all equal.

    CAD OSE and ARTime scale by the series' range; kept over a trailing span
    it stays online and bounded, and it keeps what a rank would lose: a level
    jump lands far from everything learnt before it.  The extremes come from
    two monotone queues (each value enters and leaves each once: amortised
    O(1)); memory at most ``2 * size`` (index, value) pairs.

    Examples
    --------
    >>> norm = RangeNormaliser(3)
    >>> [norm.update(v) for v in [5.0, 1.0, 3.0, 9.0, 9.0, 9.0]]
    [0.5, 0.0, 0.5, 1.0, 1.0, 0.5]
    """

    __slots__ = ("_size", "_n", "_lows", "_highs")

    def __init__(self, size: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size={size!r} must be an integer >= 1")
        self._size = size
        self._n = 0
        self._lows: deque[tuple[int, float]] = deque()    # increasing values
        self._highs: deque[tuple[int, float]] = deque()   # decreasing values

    def update(self, value: float) -> float:
        """Position of ``value`` in the range of the span ending at it."""
        n = self._n
        self._n += 1
        lows, highs = self._lows, self._highs
        while lows and lows[-1][1] >= value:
            lows.pop()
        lows.append((n, value))
        while highs and highs[-1][1] <= value:
            highs.pop()
        highs.append((n, value))
        if lows[0][0] <= n - self._size:
            lows.popleft()
        if highs[0][0] <= n - self._size:
            highs.popleft()
        low, high = lows[0][1], highs[0][1]
        return 0.5 if high <= low else (value - low) / (high - low)
