"""A contextual novelty scorer, in the spirit of CAD OSE.

The Contextual Anomaly Detector (Smirnov, NAB's "CAD OSE") turns each value
into discrete facts, learns which facts follow which contexts of earlier
facts, and scores an observation by the share of its facts that no active
context predicted.  This scorer keeps that idea in a bounded online form:

* each value becomes one of ``levels`` symbols, its bin between the minimum
  and maximum of the last ``normaliser`` values
  (:class:`~wedmetrics.alerting.scorers.RangeNormaliser`; CAD OSE scales by
  the series' range, and its 3 bits per value are the 8 levels here);
* the contexts are the last ``k`` symbols for every ``k`` up to ``order``
  (7, CAD OSE's longest left semi-context);
* the raw score is the share of those contexts after which the current
  symbol has never been seen, in [0, 1]: 0 on a pattern that has happened
  before, up to 1 for a symbol nothing has led to.

Transitions are remembered in a direct-mapped table of ``slots`` exact keys
(a context and its next symbol encoded as one integer, placed by
Knuth's multiplicative hashing, TAOCP vol. 3 6.4, whose good bits are the
high ones of the 32-bit product, mapped to a slot by multiply-shift,
Lemire, "A fast alternative to the modulo reduction", 2016): a newer transition
overwrites an older one in the same slot, so the state is bounded
(``slots`` integers, the normaliser's queues of at most ``2 * normaliser``
entries) and the
cost is O(order) per observation.  The Numba twin
(``wedmetrics._kernels._numba.context_novelty``) repeats these operations;
``tests/alerting/test_novelty.py`` checks they agree.
"""
from __future__ import annotations

from array import array

from .scorers import RangeNormaliser

__all__ = ["ContextNovelty", "ORDER", "LEVELS", "SLOTS", "GOLDEN"]

ORDER = 7
LEVELS = 8
SLOTS = 16384
#: Knuth's multiplicative hash constant (2**32 / golden ratio)
GOLDEN = 2654435761


class ContextNovelty:
    """Share of the last ``order`` contexts that never led to the current symbol.

    Examples
    --------
    >>> ctx = ContextNovelty(normaliser=50, order=3)
    >>> quiet = [ctx.update(v) for v in [0.0, 1.0, 2.0, 3.0] * 30]
    >>> max(quiet[-40:]), ctx.update(3.0) > 0.5
    (0.0, True)
    """

    __slots__ = ("_order", "_levels", "_slots", "_norm", "_symbols", "_table", "_n")

    def __init__(self, normaliser: int, order: int = ORDER, levels: int = LEVELS,
                 slots: int = SLOTS) -> None:
        for name, value, low in (("normaliser", normaliser, 1), ("order", order, 1),
                                 ("levels", levels, 2), ("slots", slots, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        if slots > 2 ** 24:                    # the slot product stays inside an int64
            raise ValueError(f"slots={slots} exceeds 2**24")
        # keys stay below 2**31 so key * GOLDEN fits an int64 in the Numba twin
        if (order + 1) * levels ** (order + 1) >= 2 ** 31:
            raise ValueError(f"order={order} and levels={levels} give keys beyond 2**31")
        self._order, self._levels, self._slots = order, levels, slots
        self._norm = RangeNormaliser(normaliser)
        self._symbols = array("q", bytes(8 * order))   # ring of the last order symbols
        self._table = array("q", [-1]) * slots
        self._n = 0

    def update(self, value: float) -> float:
        """Score the symbol of ``value`` against its contexts, then learn them."""
        levels, order, table = self._levels, self._order, self._table
        symbol = min(levels - 1, int(self._norm.update(value) * levels))
        known = min(self._n, order)
        unseen = 0
        for k in range(1, known + 1):
            key = k
            for back in range(k, 0, -1):                 # oldest symbol of the context first
                key = key * levels + self._symbols[(self._n - back) % order]
            key = key * levels + symbol
            slot = ((key * GOLDEN) & 0xFFFFFFFF) * self._slots >> 32
            if table[slot] != key:
                unseen += 1
                table[slot] = key
        self._symbols[self._n % order] = symbol
        self._n += 1
        return unseen / known if known else 0.0
