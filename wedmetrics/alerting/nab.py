"""Loading data in the Numenta Anomaly Benchmark (NAB) layout.

NAB (https://github.com/numenta/NAB, MIT licence) keeps each series as a CSV
file ``timestamp,value``, its anomaly windows in ``labels/combined_windows.json``
(inclusive timestamp pairs keyed by ``"<category>/<file>.csv"``) and its
scoring profiles in ``config/profiles.json``.  This module turns those files
into numpy arrays and row-index windows that :mod:`wedmetrics.alerting.scoring`
scores; it knows nothing about detectors.

Timestamps become float seconds since the epoch (UTC), the unit the rest of
wedmetrics uses.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["NabSeries", "parse_timestamps", "read_series_csv", "read_windows",
           "window_rows", "read_profiles", "iter_corpus", "read_detector_scores"]


@dataclass(frozen=True)
class NabSeries:
    """One NAB data file with its windows resolved to row indices.

    Attributes
    ----------
    name : str
        Key of the file in the label files, ``"<category>/<file>.csv"``.
    timestamps : numpy.ndarray
        float64 seconds since the epoch, one per row (may repeat: DST).
    values : numpy.ndarray
        float64 observations.
    windows : numpy.ndarray
        int64 array of shape ``(k, 2)``: inclusive ``[first_row, last_row]``
        of each anomaly window, sorted.
    """

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


def parse_timestamps(texts: list[str] | np.ndarray, *, source: str = "timestamps") -> np.ndarray:
    """Parse NAB timestamp strings (``"2014-04-01 00:05:00[.000000]"``) as UTC.

    Parameters
    ----------
    texts : sequence of str
        Timestamps; a space or ``T`` between date and time, optional fraction.
    source : str
        Named in the error message when a timestamp does not parse.

    Returns
    -------
    numpy.ndarray
        float64 seconds since the epoch.

    Raises
    ------
    ValueError
        Naming ``source`` and the offending text.
    """
    try:
        parsed = np.array(list(texts), dtype="datetime64[us]")
    except ValueError as exc:
        raise ValueError(f"{source}: unparseable timestamp ({exc})") from exc
    if np.isnat(parsed).any():
        bad = list(texts)[int(np.flatnonzero(np.isnat(parsed))[0])]
        raise ValueError(f"{source}: unparseable timestamp {bad!r}")
    return parsed.astype("int64").astype(np.float64) / 1e6


def read_series_csv(path: str | Path, *, value_column: str = "value") -> tuple[np.ndarray, np.ndarray]:
    """Read a NAB CSV file into ``(timestamps, values)``.

    Parameters
    ----------
    path : str or Path
        File with a header containing ``timestamp`` and ``value_column``.
    value_column : str
        ``"value"`` for data files, ``"anomaly_score"`` for detector outputs.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float64 epoch seconds and float64 values.

    Raises
    ------
    ValueError
        A missing column, or a row whose value is not a finite number
        (naming the file and row).
    """
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "timestamp" not in reader.fieldnames \
                or value_column not in reader.fieldnames:
            raise ValueError(f"{path}: expected columns 'timestamp' and {value_column!r}, "
                             f"got {reader.fieldnames}")
        stamps: list[str] = []
        values: list[float] = []
        for row_number, row in enumerate(reader, start=2):
            try:
                value = float(row[value_column])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{row_number}: {value_column}={row[value_column]!r} "
                                 "is not a number") from None
            if not np.isfinite(value):
                raise ValueError(f"{path}:{row_number}: {value_column}={value!r} is not finite")
            stamps.append(row["timestamp"])
            values.append(value)
    return parse_timestamps(stamps, source=str(path)), np.asarray(values, dtype=np.float64)


def read_windows(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Read ``combined_windows.json`` into epoch-second window bounds per file.

    Returns
    -------
    dict
        ``{"<category>/<file>.csv": [(start_s, end_s), ...]}``, inclusive.
    """
    path = Path(path)
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object keyed by file name")
    windows: dict[str, list[tuple[float, float]]] = {}
    for name, pairs in raw.items():
        if not isinstance(pairs, list) or any(len(p) != 2 for p in pairs):
            raise ValueError(f"{path}: windows of {name!r} must be [start, end] pairs")
        flat = parse_timestamps([t for pair in pairs for t in pair], source=f"{path}[{name}]")
        windows[name] = [(float(flat[2 * i]), float(flat[2 * i + 1])) for i in range(len(pairs))]
    return windows


def window_rows(timestamps: np.ndarray, windows: list[tuple[float, float]], *,
                name: str = "series") -> np.ndarray:
    """Resolve window bounds to inclusive row indices the way NAB does.

    NAB looks a boundary up with ``list.index``: when a timestamp repeats
    (daylight-saving changes) the FIRST matching row is the boundary.

    Parameters
    ----------
    timestamps : numpy.ndarray
        float64 epoch seconds of the rows.
    windows : list of (float, float)
        Inclusive bounds; each must equal a row's timestamp exactly.
    name : str
        Named in errors.

    Returns
    -------
    numpy.ndarray
        int64 ``(k, 2)`` array of ``[first_row, last_row]``.

    Raises
    ------
    ValueError
        A bound that is no row's timestamp, or a window ending before it starts.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    first_row: dict[float, int] = {}
    for i, t in enumerate(timestamps.tolist()):
        first_row.setdefault(t, i)
    rows = np.empty((len(windows), 2), dtype=np.int64)
    for k, (start, end) in enumerate(windows):
        for j, bound in enumerate((start, end)):
            if bound not in first_row:
                raise ValueError(f"{name}: window {k} bound {bound!r} is not a row timestamp")
            rows[k, j] = first_row[bound]
        if rows[k, 1] < rows[k, 0]:
            raise ValueError(f"{name}: window {k} ends (row {rows[k, 1]}) before it starts "
                             f"(row {rows[k, 0]})")
    return rows


def read_profiles(path: str | Path) -> dict[str, dict[str, float]]:
    """Read NAB's ``config/profiles.json``.

    Returns
    -------
    dict
        ``{profile: {"tp": A_TP, "fn": A_FN, "fp": A_FP}}``.
    """
    raw = json.loads(Path(path).read_text())
    out: dict[str, dict[str, float]] = {}
    for profile, body in raw.items():
        costs = body["CostMatrix"]
        out[profile] = {"tp": float(costs["tpWeight"]), "fn": float(costs["fnWeight"]),
                        "fp": float(costs["fpWeight"])}
    return out


def iter_corpus(root: str | Path) -> Iterator[NabSeries]:
    """Yield every series listed in ``<root>/labels/combined_windows.json``.

    Parameters
    ----------
    root : str or Path
        A NAB checkout (or subset) with ``data/`` and ``labels/``.

    Yields
    ------
    NabSeries
        In sorted file-name order, so runs are reproducible.
    """
    root = Path(root)
    windows = read_windows(root / "labels" / "combined_windows.json")
    for name in sorted(windows):
        timestamps, values = read_series_csv(root / "data" / name)
        yield NabSeries(name=name, timestamps=timestamps, values=values,
                        windows=window_rows(timestamps, windows[name], name=name))


def read_detector_scores(root: str | Path, detector: str, name: str) -> np.ndarray:
    """Read one published NAB detector output (``anomaly_score`` column).

    Parameters
    ----------
    root : str or Path
        Folder holding ``reference_detectors/<detector>/<name>``.
    detector, name : str
        Detector folder and ``"<category>/<file>.csv"``.
    """
    path = Path(root) / "reference_detectors" / detector / name
    return read_series_csv(path, value_column="anomaly_score")[1]
