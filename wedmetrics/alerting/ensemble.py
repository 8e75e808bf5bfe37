"""The ensemble detector: raw scorers, each made comparable by conformal
ranking and the anomaly likelihood, combined by taking the most surprised.

For every observation each raw scorer of ``config.scorers`` gives a score:

* ``"robust"``: the robust three-view z-score of
  :class:`~wedmetrics.alerting.detectors.RobustZDetector` (no surprise gate);
* ``"knn"``: the KNN CAD non-conformity
  :class:`~wedmetrics.alerting.scorers.KnnDistance` (shape of the last
  ``knn_dim`` observations against the ``knn_history`` before them);
* ``"seasonal"``: the robust z-score of ``x[t] - x[t - season_lag]``, a
  seasonal residual (``season_lag`` observations, a day at the data's step
  when the rule gives its step);
* ``"art"``: the fuzzy ART novelty of
  :class:`~wedmetrics.alerting.art.ArtNovelty` (the ``knn_dim`` last values,
  scaled by the range of the last ``calibration``, against the learnt
  categories);
* ``"context"``: the contextual novelty of
  :class:`~wedmetrics.alerting.contextual.ContextNovelty` (the share of the
  last 1..7 symbols, 8 bins of the range of the last ``calibration`` values,
  never followed by the current symbol).

Each score is ranked against its own last ``calibration`` scores
(:class:`~wedmetrics.alerting.scorers.ConformalRank`), which maps any scale to
a surprise in [0, 1]; :class:`~wedmetrics.alerting.likelihood.AnomalyLikelihood`
turns the recent surprises into nines (``-log10`` of a Gaussian tail).  The
ensemble's score is the largest nines of its scorers and an observation is
anomalous when it reaches ``threshold``.  Taking the maximum adds no weight to
tune; a threshold of 5 nines is the paper's ``1 - 1e-5``.

With ``novelty_tolerance`` set, the range check of
:class:`~wedmetrics.alerting.spatial.RangeNovelty` (NAB's spatial anomaly)
runs beside the scorers: a value beyond the range of the previous
``likelihood_window`` observations by more than that share of the range
scores :data:`~wedmetrics.alerting.likelihood.MAX_NINES` at once, whatever
the likelihoods say (a tail too small to represent, as for any raw score far
outside all history).
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .art import ArtNovelty
from .contextual import ContextNovelty
from .likelihood import MAX_NINES, AnomalyLikelihood
from .scorers import ConformalRank, KnnDistance
from .spatial import RangeNovelty

if TYPE_CHECKING:
    from .detectors import Decision, DetectorConfig

__all__ = ["EnsembleDetector", "SCORERS"]

SCORERS = ("robust", "knn", "seasonal", "art", "context")


class EnsembleDetector:
    """Max of the anomaly likelihoods of conformally ranked raw scorers.

    Parameters
    ----------
    config : DetectorConfig
        ``method="ensemble"``; uses ``scorers``, ``window``, ``min_periods``,
        ``mean_span``, ``season`` (of the robust scorer), ``season_lag``,
        ``knn_dim``, ``knn_k``, ``knn_history``, ``calibration``,
        ``likelihood_window``, ``averaging``, ``learning``, ``novelty_tolerance``
        and ``threshold``.

    Examples
    --------
    >>> from wedmetrics.alerting.detectors import DetectorConfig
    >>> import math
    >>> cfg = DetectorConfig(method="ensemble", threshold=5.0, window=50, min_periods=10,
    ...                      knn_history=50, calibration=200, likelihood_window=400,
    ...                      averaging=1, learning=100)
    >>> det = EnsembleDetector(cfg)
    >>> quiet = [det.update(math.sin(i / 5.0)) for i in range(400)]
    >>> spike = det.update(9.0)
    >>> spike.anomalous, spike.score >= 5.0
    (True, True)
    """

    def __init__(self, config: "DetectorConfig") -> None:
        from .detectors import RobustZDetector

        if config.method != "ensemble":
            raise ValueError(f"EnsembleDetector needs method='ensemble', got {config.method!r}")
        self.config = config
        robust_cfg = replace(config, method="robust", threshold=1e-12, surprise_window=0,
                             novelty_tolerance=None)
        self._raw = []
        for name in config.scorers:
            if name == "robust":
                self._raw.append(RobustZDetector(robust_cfg))
            elif name == "seasonal":
                self._raw.append(RobustZDetector(replace(robust_cfg, season=config.season_lag)))
            elif name == "knn":
                self._raw.append(KnnDistance(config.knn_dim, config.knn_k, config.knn_history))
            elif name == "art":
                self._raw.append(ArtNovelty(config.knn_dim, config.calibration))
            else:
                self._raw.append(ContextNovelty(config.calibration))
        self._ranks = [ConformalRank(config.calibration) for _ in config.scorers]
        self._likelihoods = [AnomalyLikelihood(config.likelihood_window, config.averaging,
                                               config.learning) for _ in config.scorers]
        self._novelty = None if config.novelty_tolerance is None else RangeNovelty(
            config.likelihood_window, config.novelty_tolerance, config.learning)
        self.n_seen = 0

    def update(self, value: float) -> "Decision":
        """Score one observation (nines), then learn from it.

        Raises
        ------
        TypeError, ValueError
            A non-number, NaN or infinite value (nothing is learnt from it).
        """
        from .detectors import Decision, _check_value

        value = _check_value(value)
        self.n_seen += 1
        best = 0.0
        for raw, rank, lik in zip(self._raw, self._ranks, self._likelihoods):
            score = raw.update(value)
            if not isinstance(score, float):          # a RobustZDetector's Decision
                score = score.score
            nines = lik.update(rank.update(score))
            if nines > best:
                best = nines
        if self._novelty is not None and self._novelty.update(value):
            best = MAX_NINES
        return Decision(best, bool(best >= self.config.threshold))
