"""Closed buckets as columns: what the engine hands to storage and to users."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SeriesKey", "BucketBatch"]

SERIES_KINDS = ("distribution", "counter", "gauge")


@dataclass(frozen=True)
class SeriesKey:
    """Identity of a series across processes: its name and sorted labels.

    Engine-local ids are small ints that mean nothing outside one engine;
    storage backends key rows by ``SeriesKey`` instead.
    """

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    kind: str = "distribution"

    @classmethod
    def of(cls, name: str, labels: "dict[str, str] | None" = None,
           kind: str = "distribution") -> "SeriesKey":
        return cls(name, tuple(sorted((labels or {}).items())), kind)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass
class BucketBatch:
    """Closed buckets, one row per bucket, as parallel columns.

    ``sketch[i]`` is the serialized quantile sketch of row ``i``
    (``wedmetrics.Sketch.to_bytes()``); ``keys`` maps every id found in
    ``series`` to its :class:`SeriesKey`.
    """

    series: np.ndarray            # int64, engine-local series id
    width: np.ndarray             # float64, resolution width in seconds
    start: np.ndarray             # float64, bucket start, epoch seconds
    count: np.ndarray             # int64
    sum: np.ndarray               # float64
    min: np.ndarray               # float64
    max: np.ndarray               # float64
    sketch: list = field(default_factory=list)   # list[bytes]
    keys: dict = field(default_factory=dict)     # dict[int, SeriesKey]

    def __len__(self) -> int:
        return int(self.series.shape[0])

    @classmethod
    def empty(cls) -> "BucketBatch":
        f = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype=np.int64), f, f.copy(), np.empty(0, dtype=np.int64),
                   f.copy(), f.copy(), f.copy(), [], {})

    @classmethod
    def concat(cls, batches: "list[BucketBatch]") -> "BucketBatch":
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        keys: dict = {}
        sketches: list = []
        for b in batches:
            keys.update(b.keys)
            sketches.extend(b.sketch)
        cat = np.concatenate
        return cls(cat([b.series for b in batches]), cat([b.width for b in batches]),
                   cat([b.start for b in batches]), cat([b.count for b in batches]),
                   cat([b.sum for b in batches]), cat([b.min for b in batches]),
                   cat([b.max for b in batches]), sketches, keys)

    def take(self, index) -> "BucketBatch":
        """Rows selected by a slice, boolean mask or integer index array."""
        idx = np.arange(len(self))[index]
        keep_ids = set(int(i) for i in np.unique(self.series[idx]))
        return BucketBatch(self.series[idx], self.width[idx], self.start[idx], self.count[idx],
                           self.sum[idx], self.min[idx], self.max[idx],
                           [self.sketch[int(i)] for i in idx],
                           {k: v for k, v in self.keys.items() if k in keep_ids})
