"""The series registry: names and label sets to handles, with a cardinality cap."""
from __future__ import annotations

import re
import threading

from ._kernels import LabelIndex
from .buckets import SERIES_KINDS, SeriesKey
from .errors import CardinalityError, UnknownSeriesError

__all__ = ["SeriesRegistry", "validate_labels"]

_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def validate_labels(labels) -> dict[str, str]:
    """Check label names (identifiers) and values (strings); return a plain dict."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise TypeError(f"labels must be a dict of str to str, got {type(labels).__name__}")
    for k, v in labels.items():
        if not isinstance(k, str) or not _LABEL_NAME.match(k):
            raise ValueError(f"label name {k!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(v, str):
            raise TypeError(f"label {k!r} must have a str value, got {type(v).__name__}")
    return dict(labels)


class SeriesRegistry:
    """Maps ``(name, labels)`` to recording handles.

    Parameters
    ----------
    make_handle : callable
        ``make_handle(name, labels, kind, exact) -> handle``; the engine
        allocates the series in its core here.
    max_series_per_name : int
        Cap on label sets per metric name; a new label set beyond it is
        refused (``cardinality="raise"``) or counted and ignored (``"drop"``).
    """

    def __init__(self, make_handle, max_series_per_name: int = 10_000,
                 cardinality: str = "raise") -> None:
        if cardinality not in ("raise", "drop"):
            raise ValueError(f"cardinality policy must be 'raise' or 'drop', got {cardinality!r}")
        if int(max_series_per_name) < 1:
            raise ValueError("max_series_per_name must be >= 1")
        self._make = make_handle
        self.max_series_per_name = int(max_series_per_name)
        self.cardinality = cardinality
        self._by_key: dict = {}          # (name, sorted label items) -> handle
        self._fast = LabelIndex()        # (name, labels as given) -> handle, no key built
        # per-call label resolution, ``None`` when unseen: the index's own
        # method, so the hot path of engine.record adds no Python frame
        self.lookup = self._fast.find
        self._by_name: dict[str, list] = {}
        self._by_id: list = []
        self.cardinality_dropped = 0
        self._lock = threading.Lock()

    def get_or_create(self, name: str, labels=None, kind: str = "distribution",
                      exact: int = 0):
        """The handle of ``name`` + ``labels``, created on first use.

        Returns ``None`` when the cardinality cap refuses a new label set
        under the ``"drop"`` policy.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"series name must be a non-empty str, got {name!r}")
        if kind not in SERIES_KINDS:
            raise ValueError(f"kind must be one of {SERIES_KINDS}, got {kind!r}")
        labels = validate_labels(labels)
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            h = self._by_key.get(key)
            if h is not None:
                if h.kind != kind:
                    raise ValueError(f"series {name!r} {labels} is a {h.kind}, not a {kind}")
                return h
            siblings = self._by_name.setdefault(name, [])
            if len(siblings) >= self.max_series_per_name:
                self.cardinality_dropped += 1
                if self.cardinality == "raise":
                    raise CardinalityError(
                        f"metric {name!r} already has {len(siblings)} label sets, the cap "
                        f"(max_series_per_name={self.max_series_per_name}); refusing {labels}")
                return None
            h = self._make(name, labels, kind, exact)
            self._by_key[key] = h
            siblings.append(h)
            self._by_id.append(h)
            return h

    def adopt(self, name: str, labels, kind: str):
        """Register a series another engine stored, without the cardinality
        policy's raise or drop count: the handle, or ``None`` beyond the cap
        or when ``name``/``labels``/``kind`` clash with a live series."""
        with self._lock:
            if len(self._by_name.get(name, ())) >= self.max_series_per_name:
                return None
        try:
            return self.get_or_create(name, labels, kind)
        except (ValueError, TypeError, CardinalityError):
            return None

    def remember(self, name: str, labels, handle) -> None:
        with self._lock:
            self._fast.add(name, labels, handle)

    def by_id(self, sid: int):
        try:
            return self._by_id[sid]
        except (IndexError, TypeError):
            raise UnknownSeriesError(f"no series with id {sid!r}") from None

    def by_name(self, name: str) -> list:
        return list(self._by_name.get(name, ()))

    def matching(self, name: str, labels: dict | None) -> list:
        """Handles of ``name`` whose labels include every pair of ``labels``."""
        handles = self._by_name.get(name)
        if not handles:
            raise UnknownSeriesError(f"no series named {name!r}")
        if not labels:
            return list(handles)
        items = labels.items()
        return [h for h in handles if all(h.labels.get(k) == v for k, v in items)]

    def key_of(self, sid: int) -> SeriesKey:
        h = self.by_id(sid)
        return SeriesKey(h.name, tuple(sorted(h.labels.items())), h.kind)

    def all(self) -> list:
        return list(self._by_id)

    def names(self) -> list[str]:
        return list(self._by_name)

    def __len__(self) -> int:
        return len(self._by_id)
