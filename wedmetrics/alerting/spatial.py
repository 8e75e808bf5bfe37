"""Range novelty: a value outside everything the series did for a long while.

NAB's HTM and ARTime detectors both add a *spatial anomaly* check to their
learnt scores (Lavin & Ahmad, "Evaluating real-time anomaly detection
algorithms - the Numenta Anomaly Benchmark", 2015; the HTM detector's
documentation in NAB): a value that lies above the largest, or below the
smallest, value seen so far by more than a tolerance of 5 % of that range is
anomalous at once, whatever the learnt score says.  It needs no model and
almost never fires on a series that stays within its usual envelope, which is
what makes its notifications precise: on a series whose range has settled,
a new extreme beyond the margin is rare.

:class:`RangeNovelty` keeps that rule with bounded state: the range is that
of the previous ``span`` observations (not of the whole history), kept as the
minimum and maximum of ``ceil(span / block)`` blocks of ``block =
ceil(span / BLOCKS)`` observations plus the block being filled, so the range
covers the previous ``span`` to ``span + block - 1`` observations.  Memory is
``2 * BLOCKS`` floats whatever ``span``; the cost is O(1) per observation
plus an O(``BLOCKS``) re-aggregation when a block completes.

The value is checked against the range *before* it joins it, nothing is
flagged before ``learning`` observations, and a series whose whole range is
one value (``max == min``) never flags (NAB's rule: there is no scale to
measure the margin in).

The Numba twin (``wedmetrics._kernels._numba.range_novelty``) repeats these
operations in the same order; ``tests/alerting/test_novelty.py`` checks they
agree.
"""
from __future__ import annotations

import math
from array import array

__all__ = ["RangeNovelty", "novel_rows", "blocking", "TOLERANCE", "BLOCKS"]

#: NAB's spatial tolerance: the margin beyond the range, as a share of the range
TOLERANCE = 0.05
#: blocks the trailing range is kept in (memory per series: 2 * BLOCKS floats)
BLOCKS = 96


def blocking(span: int, blocks: int = BLOCKS) -> tuple[int, int]:
    """``(block, n_blocks)`` for a trailing span: ``block * n_blocks >= span``
    and ``block * (n_blocks - 1) < span``."""
    block = -(-span // blocks)
    return block, -(-span // block)


class RangeNovelty:
    """Is a value beyond the range of the previous ``span`` observations by
    more than ``tolerance`` times that range?

    Parameters
    ----------
    span : int
        Observations the range is taken over (``>= 1``).
    tolerance : float
        Margin beyond the range, as a share of it (``>= 0``; NAB: 0.05).
    learning : int
        Observations seen before anything is flagged.
    blocks : int
        Blocks the range is kept in (:data:`BLOCKS`).

    Examples
    --------
    >>> nov = RangeNovelty(span=50, tolerance=0.05, learning=10)
    >>> quiet = [nov.update(v) for v in [1.0, 3.0] * 20]
    >>> any(quiet), nov.update(3.05), nov.update(3.2), nov.update(0.5)
    (False, False, True, True)
    """

    __slots__ = ("_tolerance", "_learning", "_block", "_n_blocks", "_lows", "_highs",
                 "_head", "_low", "_high", "_cur_low", "_cur_high", "_cur_n", "_seen")

    def __init__(self, span: int, tolerance: float = TOLERANCE, learning: int = 0,
                 blocks: int = BLOCKS) -> None:
        for name, value, low in (("span", span, 1), ("learning", learning, 0),
                                 ("blocks", blocks, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
                or not math.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance={tolerance!r} must be a finite number >= 0")
        self._tolerance = float(tolerance)
        self._learning = learning
        self._block, self._n_blocks = blocking(span, blocks)
        self._lows = array("d")                  # completed blocks, a ring
        self._highs = array("d")
        self._head = 0
        self._low = math.inf                     # over the completed blocks
        self._high = -math.inf
        self._cur_low = math.inf                 # the block being filled
        self._cur_high = -math.inf
        self._cur_n = 0
        self._seen = 0

    def update(self, value: float) -> bool:
        """Is ``value`` novel against the previous span?  Then it joins the range."""
        low = self._low if self._low < self._cur_low else self._cur_low
        high = self._high if self._high > self._cur_high else self._cur_high
        novel = False
        if self._seen >= self._learning and high > low:
            margin = self._tolerance * (high - low)
            novel = value > high + margin or value < low - margin
        self._seen += 1
        if value < self._cur_low:
            self._cur_low = value
        if value > self._cur_high:
            self._cur_high = value
        self._cur_n += 1
        if self._cur_n == self._block:
            self._close_block()
        return novel

    def _close_block(self) -> None:
        lows, highs = self._lows, self._highs
        if len(lows) < self._n_blocks:
            lows.append(self._cur_low)
            highs.append(self._cur_high)
        else:
            lows[self._head] = self._cur_low
            highs[self._head] = self._cur_high
        self._head = (self._head + 1) % self._n_blocks
        self._low, self._high = min(lows), max(highs)
        self._cur_low, self._cur_high, self._cur_n = math.inf, -math.inf, 0


def novel_rows(values, span: int, tolerance: float = TOLERANCE, learning: int = 0, *,
               use_numba: bool | None = None):
    """:class:`RangeNovelty` over a whole array: a bool per value.

    Uses the Numba twin when Numba is installed (``use_numba=None``); the
    outputs are identical either way.

    Examples
    --------
    >>> novel_rows([1.0, 3.0, 1.0, 3.0, 9.0], span=3, learning=2, use_numba=False).tolist()
    [False, False, False, False, True]
    """
    import numpy as np

    from .detectors import HAVE_NUMBA, _as_values

    arr = _as_values(np.asarray(values, dtype=np.float64))
    RangeNovelty(span, tolerance, learning)                 # validates the parameters
    if HAVE_NUMBA if use_numba is None else use_numba:
        from wedmetrics._kernels import _numba

        return _numba.range_novelty(arr, span, float(tolerance), learning, BLOCKS)
    novelty = RangeNovelty(span, tolerance, learning)
    return np.array([novelty.update(v) for v in arr.tolist()], dtype=bool)
