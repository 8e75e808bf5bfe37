"""An adaptive-resonance (fuzzy ART) novelty scorer, in the spirit of ARTime.

ARTime (Hampton, NAB's best published detector) presents windows of the
series to an adaptive resonance network and treats what the network has not
categorised before as anomalous.  This scorer keeps the part that carries
over to a bounded online detector, fuzzy ART (Carpenter, Grossberg & Rosen,
"Fuzzy ART: fast stable learning and categorization of analog patterns",
Neural Networks 4, 1991):

* the input is the lag vector of the last ``dim`` values, each placed in
  [0, 1] by the minimum and maximum of the last ``normaliser`` values
  (:class:`~wedmetrics.alerting.scorers.RangeNormaliser`, the online form
  of ARTime's scaling by the series' range), complement coded
  ``I = (u, 1 - u)`` so ``|I| = dim`` always;
* a category is a hyperbox ``w`` (also complement coded); the input's match
  with it is ``|I ^ w| / |I|`` (``^`` the element-wise minimum), 1 inside
  the box;
* the raw score is ``1 - max_j match_j``: how far, in mean L1 distance per
  coordinate, the current shape lies outside every learnt category;
* learning is fuzzy ART's: the category of highest choice
  ``|I ^ w| / (ALPHA + |w|)`` whose match reaches the ``vigilance`` resonates
  and grows to cover the input (fast learning, ``w <- I ^ w``); when none
  does, a new category ``w = I`` is committed.  At most ``categories`` are
  kept; a new one replaces the least recently resonating.

State: ``categories * 2 * dim`` weights plus the normaliser's queues
(at most ``2 * normaliser`` entries); O(categories * dim) per observation.  The Numba twin
(``wedmetrics._kernels._numba.art_novelty``) repeats these operations in the
same order; ``tests/alerting/test_novelty.py`` checks they agree.
"""
from __future__ import annotations

from array import array

from .scorers import RangeNormaliser

__all__ = ["ArtNovelty", "ALPHA", "VIGILANCE", "CATEGORIES"]

#: fuzzy ART's choice parameter: small, so the tightest fitting box wins ties
ALPHA = 0.001
#: match a box must reach to learn the input (boxes then span at most 10 % of the range)
VIGILANCE = 0.9
#: categories kept per series
CATEGORIES = 32


class ArtNovelty:
    """Distance of the current shape from every learnt fuzzy ART category, in [0, 1].

    Scores 0 until ``dim`` values have been seen.

    Examples
    --------
    >>> art = ArtNovelty(dim=2, normaliser=50)
    >>> quiet = [art.update(v) for v in [0.0, 1.0] * 30]
    >>> max(quiet[-10:]) < 0.05, art.update(0.5) > 0.2
    (True, True)
    """

    __slots__ = ("_dim", "_vigilance", "_capacity", "_norm", "_lags", "_weights", "_used",
                 "_n_cat", "_n")

    def __init__(self, dim: int, normaliser: int, vigilance: float = VIGILANCE,
                 categories: int = CATEGORIES) -> None:
        for name, value in (("dim", dim), ("normaliser", normaliser),
                            ("categories", categories)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1")
        if not (isinstance(vigilance, (int, float)) and 0.0 <= vigilance <= 1.0):
            raise ValueError(f"vigilance={vigilance!r} must be in [0, 1]")
        self._dim, self._vigilance, self._capacity = dim, float(vigilance), categories
        self._norm = RangeNormaliser(normaliser)
        self._lags = array("d", bytes(8 * dim))     # ring of the last dim normalised values
        self._weights = array("d", bytes(8 * 2 * dim * categories))
        self._used = array("q", bytes(8 * categories))
        self._n_cat = 0
        self._n = 0

    def update(self, value: float) -> float:
        """Score the lag vector ending at ``value``, then learn it."""
        dim, lags = self._dim, self._lags
        lags[self._n % dim] = self._norm.update(value)
        self._n += 1
        if self._n < dim:
            return 0.0
        # I = (u_oldest..u_newest, 1 - u_oldest..1 - u_newest)
        start = self._n % dim
        u = [lags[(start + q) % dim] for q in range(dim)]
        w = self._weights
        best_match = 0.0
        chosen = -1
        chosen_choice = -1.0
        for j in range(self._n_cat):
            base = 2 * dim * j
            overlap = 0.0
            size = 0.0
            for q in range(dim):
                a = w[base + q]
                b = w[base + dim + q]
                overlap += (u[q] if u[q] < a else a) + ((1.0 - u[q]) if 1.0 - u[q] < b else b)
                size += a + b
            match = overlap / dim
            if match > best_match:
                best_match = match
            if match >= self._vigilance:
                choice = overlap / (ALPHA + size)
                if choice > chosen_choice:
                    chosen, chosen_choice = j, choice
        if chosen < 0:
            if self._n_cat < self._capacity:
                chosen = self._n_cat
                self._n_cat += 1
            else:
                chosen = min(range(self._capacity), key=self._used.__getitem__)
            base = 2 * dim * chosen
            for q in range(dim):
                w[base + q] = u[q]
                w[base + dim + q] = 1.0 - u[q]
        else:
            base = 2 * dim * chosen
            for q in range(dim):
                if u[q] < w[base + q]:
                    w[base + q] = u[q]
                if 1.0 - u[q] < w[base + dim + q]:
                    w[base + dim + q] = 1.0 - u[q]
        self._used[chosen] = self._n
        return 1.0 - best_match
