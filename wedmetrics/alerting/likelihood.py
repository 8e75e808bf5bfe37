"""Anomaly likelihood (Ahmad, Lavin, Purdy & Agha, "Unsupervised real-time
anomaly detection for streaming data", Neurocomputing 262, 2017).

Raw anomaly scores mean different things on different series: a detector that
is often surprised by a noisy series scores it high all the time.  The
likelihood asks instead how unusual the *recent* raw scores are for *this*
series:

* the short-term average ``a_t`` of the last ``averaging`` raw scores (the
  paper's W' = 10) smooths single-point noise;
* a Gaussian is fitted to the ``a`` of the last ``window`` observations (the
  paper's W, 8640 in NAB's runs), re-estimated every ``reestimate``
  observations (100) with the paper's floors on its mean (0.03) and
  variance (0.0003), so an almost constant raw score does not make every
  wobble infinitely unlikely;
* the likelihood is ``1 - Q((a_t - mu) / sigma)``, ``Q`` the Gaussian tail.

:class:`AnomalyLikelihood` reports the tail ``Q`` itself as *nines*,
``-log10(Q)``: 5.0 is the paper's threshold ``L >= 1 - 1e-5``, and the
largest nines of several likelihoods is the likelihood of the most surprised
scorer (their ensemble, :mod:`wedmetrics.alerting.ensemble`).  Only high raw
scores are anomalous: a below-average score has tail 1, nines 0.

Memory: ``window + averaging`` floats.  Cost O(1) per observation plus an
O(window) re-estimate every ``reestimate`` observations.
"""
from __future__ import annotations

import math
from array import array

__all__ = ["AnomalyLikelihood", "MEAN_FLOOR", "VARIANCE_FLOOR", "MAX_NINES", "REESTIMATE"]

MEAN_FLOOR = 0.03
VARIANCE_FLOOR = 0.0003
#: nines of a tail that underflows (a raw score far outside all history)
MAX_NINES = 300.0
#: observations between two fits of the Gaussian (the paper's re-estimation period)
REESTIMATE = 100


def _nines(tail: float) -> float:
    return MAX_NINES if tail <= 1e-300 else min(MAX_NINES, -math.log10(tail))


class AnomalyLikelihood:
    """Streaming anomaly likelihood of raw scores in [0, 1], as nines.

    Parameters
    ----------
    window : int
        Averaged scores the Gaussian is fitted to.
    averaging : int
        Raw scores in the short-term average.
    learning : int
        Observations before the first estimate (nines are 0 until then).
    reestimate : int
        Observations between estimates.

    Examples
    --------
    >>> lik = AnomalyLikelihood(window=200, averaging=1, learning=50, reestimate=10)
    >>> quiet = [lik.update(0.05 * (i % 3)) for i in range(100)]
    >>> max(quiet) < 3, lik.update(1.0) > 5
    (True, True)
    """

    __slots__ = ("window", "averaging", "learning", "reestimate", "_ring", "_recent",
                 "_seen", "_mean", "_sd", "_fitted")

    def __init__(self, window: int = 8640, averaging: int = 10, learning: int = 300,
                 reestimate: int = REESTIMATE) -> None:
        for name, value, low in (("window", window, 2), ("averaging", averaging, 1),
                                 ("learning", learning, 0), ("reestimate", reestimate, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} must be an integer >= {low}")
        self.window, self.averaging = window, averaging
        self.learning, self.reestimate = learning, reestimate
        self._ring = array("d")
        self._recent = array("d")
        self._seen = 0
        self._mean = 0.0
        self._sd = 1.0
        self._fitted = False

    def update(self, raw: float) -> float:
        """Nines of the short-term average ending at ``raw`` (0 while learning)."""
        i = self._seen
        self._seen += 1
        recent = self._recent
        if len(recent) < self.averaging:
            recent.append(raw)
        else:
            recent[i % self.averaging] = raw
        # summed afresh in ring order: no running-sum drift, and the Numba twin
        # adds the same numbers in the same order
        total = 0.0
        start = 0 if len(recent) < self.averaging else i % self.averaging + 1
        for j in range(len(recent)):
            total += recent[(start + j) % len(recent)]
        avg = total / len(recent)
        ring = self._ring
        if len(ring) < self.window:
            ring.append(avg)
        else:
            ring[i % self.window] = avg
        if i >= self.learning and (not self._fitted or (i - self.learning) % self.reestimate == 0):
            self._fit()
        if not self._fitted:
            return 0.0
        z = (avg - self._mean) / self._sd
        return _nines(0.5 * math.erfc(z / math.sqrt(2.0)))

    def _fit(self) -> None:
        ring = self._ring
        total = 0.0
        for u in ring:
            total += u
        mean = total / len(ring)
        ss = 0.0
        for u in ring:
            ss += (u - mean) * (u - mean)
        var = ss / len(ring)
        self._mean = max(mean, MEAN_FLOOR)
        self._sd = math.sqrt(max(var, VARIANCE_FLOOR))
        self._fitted = True
