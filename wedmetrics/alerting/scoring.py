"""Scoring alert decisions against labelled anomaly windows.

Two views of the same per-row boolean ``detections`` (row ``i`` alerting or
not) and inclusive row-index ``windows`` (``(k, 2)`` int array):

* **plain measures** (:func:`score_events`): an *event* is a run of
  consecutive alerting rows, i.e. one notification; its *onset* is its first
  row.  We report windows detected, event precision (events overlapping a
  window / all events), false alarms per day and detection delay (time from a
  window's first row to the first alerting row inside it).
* **NAB scoring** (:func:`nab_file_score`, :func:`nab_score`): the Numenta
  Anomaly Benchmark v1.1 rules (Lavin & Ahmad, "Evaluating Real-time Anomaly
  Detection Algorithms - the Numenta Anomaly Benchmark", 2015;
  numenta/NAB ``sweeper.py``), with the ``standard``, ``reward_low_FP_rate``
  and ``reward_low_FN_rate`` profiles.  Only the earliest detection in a
  window counts; every detected row outside a window is penalised.

Both ignore the probationary rows at the start of a file
(``min(floor(0.15 n), 750)``), where a detector is still learning.

Examples
--------
>>> import numpy as np
>>> det = np.zeros(1000, dtype=bool); det[[800, 950]] = True
>>> windows = np.array([[790, 840]])
>>> s = score_events(det, windows)
>>> (s.windows_detected, s.true_events, s.false_events)
(1, 1, 1)
>>> round(nab_file_score(det, windows).raw, 4)
0.8678
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

__all__ = ["NabProfile", "NAB_PROFILES", "probationary_rows", "scaled_sigmoid",
           "nab_row_weights", "NabFileScore", "nab_file_score", "NabScore", "nab_score",
           "alert_events", "EventScore", "score_events", "combine_event_scores",
           "threshold_detections"]

SECONDS_PER_DAY = 86_400.0
PROBATION_FRACTION = 0.15       # NAB: the first 15 % of a file ...
PROBATION_CAP_ROWS = 750        # ... but at most 0.15 * 5000 rows


@dataclass(frozen=True)
class NabProfile:
    """Costs of one NAB scoring profile (``config/profiles.json``).

    Attributes
    ----------
    name : str
    tp_weight : float
        ``A_TP``: reward for a detection at a window's first row.
    fn_weight : float
        ``A_FN``: cost of a window with no detection.
    fp_weight : float
        ``A_FP``: cost of each detected row well outside any window.
    """

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float


NAB_PROFILES: Mapping[str, NabProfile] = MappingProxyType({
    "standard": NabProfile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP_rate": NabProfile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    "reward_low_FN_rate": NabProfile("reward_low_FN_rate", 1.0, 2.0, 0.11),
})


def _profile(profile: str | NabProfile) -> NabProfile:
    if isinstance(profile, NabProfile):
        return profile
    try:
        return NAB_PROFILES[profile]
    except KeyError:
        raise ValueError(f"profile={profile!r} is not one of {sorted(NAB_PROFILES)}") from None


def probationary_rows(n_rows: int) -> int:
    """Number of leading rows NAB leaves unscored: ``min(floor(0.15 n), 750)``."""
    if n_rows < 0:
        raise ValueError(f"n_rows={n_rows} must be >= 0")
    return int(min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_FRACTION * 5000))


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's ``scaledSigmoid``: ``2 / (1 + exp(5x)) - 1``, and ``-1`` past ``x > 3``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):       # exp overflow -> inf -> value -1, as intended
        value = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, value)


def _check_detections(detections: np.ndarray) -> np.ndarray:
    det = np.asarray(detections)
    if det.ndim != 1:
        raise ValueError(f"detections must be 1-D, got shape {det.shape}")
    if det.dtype != np.bool_:
        if det.size and not np.isin(det, (0, 1)).all():
            raise ValueError("detections must be booleans (or 0/1); threshold scores first "
                             "with threshold_detections()")
        det = det.astype(bool)
    return det


def _check_windows(windows: np.ndarray, n_rows: int) -> np.ndarray:
    win = np.asarray(windows, dtype=np.int64).reshape(-1, 2) if np.size(windows) else \
        np.empty((0, 2), dtype=np.int64)
    if win.ndim != 2 or win.shape[1] != 2:
        raise ValueError(f"windows must have shape (k, 2), got {np.shape(windows)}")
    for k, (lo, hi) in enumerate(win.tolist()):
        if not 0 <= lo <= hi < n_rows:
            raise ValueError(f"windows[{k}] = [{lo}, {hi}] is not inside rows 0..{n_rows - 1}")
        if k and lo <= win[k - 1, 1]:
            raise ValueError(f"windows[{k}] = [{lo}, {hi}] overlaps or precedes windows[{k - 1}]")
    return win


def threshold_detections(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Rows whose anomaly score reaches the threshold (NAB: ``score >= threshold``)."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():
        raise ValueError(f"scores contain NaN at row {int(np.flatnonzero(np.isnan(scores))[0])}")
    return scores >= float(threshold)


def nab_row_weights(n_rows: int, windows: np.ndarray,
                    profile: str | NabProfile = "standard") -> np.ndarray:
    """The value NAB gives a detection at each row (``sweeper.calcSweepScore``).

    Inside window ``[L, R]`` of width ``W``: ``A_TP * sig(-(R - i + 1) / W) / sig(-1)``.
    Outside: ``-A_FP`` before the first window, else
    ``A_FP * sig(|i - R_p| / (W_p - 1))`` for the most recent window ``p``.
    Probationary rows are included here; the scorers mask them.

    Returns
    -------
    numpy.ndarray
        float64, one weight per row.
    """
    prof = _profile(profile)
    win = _check_windows(windows, n_rows)
    rows = np.arange(n_rows, dtype=np.float64)
    weights = np.full(n_rows, -prof.fp_weight)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (lo, hi) in enumerate(win.tolist()):
        width = float(hi - lo + 1)
        inside = rows[lo:hi + 1]
        weights[lo:hi + 1] = scaled_sigmoid(-(hi - inside + 1.0) / width) * prof.tp_weight / max_tp
        after_end = int(win[k + 1, 0]) if k + 1 < len(win) else n_rows
        after = rows[hi + 1:after_end]
        # NAB divides by (W - 1); a one-row window would divide by zero there,
        # we read it as "far past the window" (full FP cost) instead.
        past = (after - hi) / (width - 1.0) if width > 1 else np.full(after.shape, np.inf)
        weights[hi + 1:after_end] = scaled_sigmoid(past) * prof.fp_weight
    return weights


@dataclass(frozen=True)
class NabFileScore:
    """NAB result of one file.

    Attributes
    ----------
    raw : float
        ``S_f``: best weight per detected window, ``-A_FN`` per missed window,
        plus the weights of every detected row outside windows.
    tp, fp, fn, tn : int
        Detected / undetected rows inside / outside windows, after probation.
    windows, windows_detected : int
    """

    raw: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows: int
    windows_detected: int


def nab_file_score(detections: np.ndarray, windows: np.ndarray,
                   profile: str | NabProfile = "standard") -> NabFileScore:
    """Score one file's detections under a NAB profile.

    Parameters
    ----------
    detections : numpy.ndarray
        bool per row (use :func:`threshold_detections` for scores).
    windows : numpy.ndarray
        int ``(k, 2)`` inclusive row ranges, sorted, non-overlapping.
    profile : str or NabProfile
        ``"standard"``, ``"reward_low_FP_rate"``, ``"reward_low_FN_rate"`` or custom.

    Returns
    -------
    NabFileScore
    """
    prof = _profile(profile)
    det = _check_detections(detections).copy()
    n = len(det)
    win = _check_windows(windows, n)
    det[:probationary_rows(n)] = False
    weights = nab_row_weights(n, win, prof)
    in_window = np.zeros(n, dtype=bool)
    raw = 0.0
    detected_windows = 0
    for lo, hi in win.tolist():
        in_window[lo:hi + 1] = True
        hits = np.flatnonzero(det[lo:hi + 1])
        if hits.size:
            detected_windows += 1
            raw += float(weights[lo + hits[0]])   # earliest = largest weight
        else:
            raw -= prof.fn_weight
    outside = det & ~in_window
    raw += float(weights[outside].sum())
    scored = np.zeros(n, dtype=bool)
    scored[probationary_rows(n):] = True
    return NabFileScore(
        raw=raw,
        tp=int((det & in_window).sum()), fp=int(outside.sum()),
        fn=int((~det & in_window & scored).sum()), tn=int((~det & ~in_window & scored).sum()),
        windows=len(win), windows_detected=detected_windows)


@dataclass(frozen=True)
class NabScore:
    """NAB result over a corpus.

    Attributes
    ----------
    profile : str
    raw : float
        ``S``, the sum of the file scores.
    perfect, null : float
        ``A_TP * windows`` and ``-A_FN * windows``.
    normalized : float
        ``100 (S - null) / (perfect - null)``: the published NAB score.
    windows, windows_detected : int
    files : tuple of NabFileScore
    """

    profile: str
    raw: float
    perfect: float
    null: float
    normalized: float
    windows: int
    windows_detected: int
    files: tuple[NabFileScore, ...]


def nab_score(files: Iterable[tuple[np.ndarray, np.ndarray]],
              profile: str | NabProfile = "standard") -> NabScore:
    """Score a corpus and normalise it as NAB's ``runner.normalize`` does.

    Parameters
    ----------
    files : iterable of (detections, windows)
        One pair per file, as for :func:`nab_file_score`.
    profile : str or NabProfile

    Returns
    -------
    NabScore

    Raises
    ------
    ValueError
        When the corpus has no window (the normalisation is undefined).
    """
    prof = _profile(profile)
    per_file = tuple(nab_file_score(det, win, prof) for det, win in files)
    n_windows = sum(f.windows for f in per_file)
    if n_windows == 0:
        raise ValueError("nab_score needs at least one window to normalise against")
    raw = sum(f.raw for f in per_file)
    perfect = prof.tp_weight * n_windows
    null = -prof.fn_weight * n_windows
    return NabScore(profile=prof.name, raw=raw, perfect=perfect, null=null,
                    normalized=100.0 * (raw - null) / (perfect - null), windows=n_windows,
                    windows_detected=sum(f.windows_detected for f in per_file), files=per_file)


def alert_events(detections: np.ndarray) -> np.ndarray:
    """Runs of consecutive alerting rows.

    Returns
    -------
    numpy.ndarray
        int64 ``(k, 2)``: inclusive ``[first_row, last_row]`` of each run;
        the first row is the notification onset.

    Examples
    --------
    >>> alert_events(np.array([0, 1, 1, 0, 1], dtype=bool)).tolist()
    [[1, 2], [4, 4]]
    """
    det = _check_detections(detections).astype(np.int8)
    edges = np.diff(np.concatenate(([0], det, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return np.stack([starts, ends], axis=1).astype(np.int64)


@dataclass(frozen=True)
class EventScore:
    """Plain, notification-level measures (one file or summed over many).

    Attributes
    ----------
    windows, windows_detected : int
        Windows, and windows overlapped by at least one event.
    true_events, false_events : int
        Events overlapping a window, and the others.
    scored_days : float
        Time span scored (after probation), for the false-alarm rate; NaN
        when no timestamps were given.
    detection_delays : tuple of float
        Per detected window, seconds (rows when no timestamps were given) from
        the window's first row to its first alerting row.
    """

    windows: int
    windows_detected: int
    true_events: int
    false_events: int
    scored_days: float
    detection_delays: tuple[float, ...]

    @property
    def events(self) -> int:
        """All notification onsets."""
        return self.true_events + self.false_events

    @property
    def window_recall(self) -> float:
        """Share of windows detected (NaN with no window)."""
        return self.windows_detected / self.windows if self.windows else math.nan

    @property
    def event_precision(self) -> float:
        """True events / all events (NaN with no event)."""
        return self.true_events / self.events if self.events else math.nan

    @property
    def false_alarms_per_day(self) -> float:
        """False events per scored day (NaN without timestamps or span)."""
        if not self.scored_days > 0:
            return math.nan
        return self.false_events / self.scored_days

    @property
    def median_delay(self) -> float:
        """Median detection delay over detected windows (NaN when none)."""
        return float(np.median(self.detection_delays)) if self.detection_delays else math.nan


def score_events(detections: np.ndarray, windows: np.ndarray,
                 timestamps: np.ndarray | None = None, *,
                 probation: bool = True) -> EventScore:
    """Notification-level measures of one file.

    Parameters
    ----------
    detections : numpy.ndarray
        bool per row.
    windows : numpy.ndarray
        int ``(k, 2)`` inclusive row ranges.
    timestamps : numpy.ndarray, optional
        float64 epoch seconds per row; without them delays are in rows and
        the false-alarm rate is NaN.
    probation : bool
        Ignore NAB's probationary rows (default), as the NAB score does.

    Returns
    -------
    EventScore
    """
    det = _check_detections(detections).copy()
    n = len(det)
    win = _check_windows(windows, n)
    first_scored = probationary_rows(n) if probation else 0
    det[:first_scored] = False
    if timestamps is not None:
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.shape != (n,):
            raise ValueError(f"timestamps has shape {ts.shape}, detections has {n} rows")
        span = ts[first_scored:]
        days = float(span.max() - span.min()) / SECONDS_PER_DAY if span.size else 0.0
    else:
        ts = np.arange(n, dtype=np.float64)
        days = math.nan
    in_window = np.zeros(n, dtype=bool)
    for lo, hi in win.tolist():
        in_window[lo:hi + 1] = True
    events = alert_events(det)
    true_events = sum(bool(in_window[lo:hi + 1].any()) for lo, hi in events.tolist())
    delays = []
    for lo, hi in win.tolist():
        hits = np.flatnonzero(det[lo:hi + 1])
        if hits.size:
            delays.append(float(ts[lo + hits[0]] - ts[lo]))
    return EventScore(windows=len(win), windows_detected=len(delays), true_events=true_events,
                      false_events=len(events) - true_events, scored_days=days,
                      detection_delays=tuple(delays))


def combine_event_scores(scores: Iterable[EventScore]) -> EventScore:
    """Sum per-file :class:`EventScore` s into corpus totals (delays pooled)."""
    scores = list(scores)
    return EventScore(
        windows=sum(s.windows for s in scores),
        windows_detected=sum(s.windows_detected for s in scores),
        true_events=sum(s.true_events for s in scores),
        false_events=sum(s.false_events for s in scores),
        scored_days=sum(s.scored_days for s in scores),
        detection_delays=tuple(d for s in scores for d in s.detection_delays))
