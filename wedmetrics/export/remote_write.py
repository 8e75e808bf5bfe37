"""RemoteWriteExporter: closed buckets pushed with the Prometheus remote-write 1.0 protocol.

What a bucket of resolution ``resolution`` (default 1 minute) becomes, each
sample stamped at the bucket's *end* (``start + width``, milliseconds):

==============  ====================================  =================================
series kind     samples                               value
==============  ====================================  =================================
counter         ``<name>_total``                      sum of increments since the
                                                      exporter started (cumulative)
gauge           ``<name>``                            mean of the values set in the
                                                      bucket
distribution    ``<name>_count``, ``<name>_sum``      cumulative count and sum, as a
                                                      Prometheus summary's
                ``<name>{quantile="0.5"}`` (and       the bucket's own percentile
                0.95, 0.99)                           (within alpha), not cumulative
==============  ====================================  =================================

Names are sanitized to Prometheus' alphabet (``api.latency`` becomes
``api_latency``); the series' labels are kept, plus the external labels
(``instance``, ``org`` and any given), which never override a series label
of the same name.  A cumulative series restarts from zero when the exporter
does, which ``rate()``/``increase()`` read as a counter reset.

The wire format is the protocol's: a ``prometheus.WriteRequest`` protobuf,
snappy block-compressed, POSTed with ``Content-Encoding: snappy``,
``Content-Type: application/x-protobuf`` and
``X-Prometheus-Remote-Write-Version: 0.1.0``.  Samples are queued in time
order per series and sent strictly in queue order (a failed batch is
retried before anything after it), because receivers such as Prometheus
2.x reject samples older than the newest they hold for a series.
"""
from __future__ import annotations

import http.client
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections import deque
from typing import Any, Iterable, Mapping

import numpy as np

from .._kernels import Sketch
from ..buckets import BucketBatch, SeriesKey
from ..clock import parse_duration

try:
    import snappy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("RemoteWriteExporter needs python-snappy and protobuf: "
                      "pip install 'wedmetrics[remote]'") from exc
from . import _prompb

__all__ = ["RemoteWriteExporter", "metric_name", "label_name", "OVERFLOW_POLICIES"]

log = logging.getLogger("wedmetrics.export")

OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "wedmetrics"}
_BAD_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    """``name`` in Prometheus' metric-name alphabet ``[a-zA-Z_:][a-zA-Z0-9_:]*``."""
    out = _BAD_NAME.sub("_", name)
    return "_" + out if not out or out[0].isdigit() else out


def label_name(name: str) -> str:
    """``name`` in Prometheus' label-name alphabet ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    out = _BAD_LABEL.sub("_", name)
    return "_" + out if not out or out[0].isdigit() else out


class _Retryable(Exception):
    """A send that may succeed later (5xx, 429, network)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Rejected(Exception):
    """A send the receiver refused for good (4xx other than 429)."""


class RemoteWriteExporter:
    """Pushes an engine's closed buckets to a remote-write receiver.

    Parameters
    ----------
    url : str
        The receiver's endpoint, e.g. ``http://prometheus:9090/api/v1/write``,
        ``http://mimir:8080/api/v1/push``.
    engine : MetricsEngine
        Whose closed buckets are exported (through its own
        :meth:`~wedmetrics.MetricsEngine.closed_feed`, so the storage
        flusher still gets every bucket).
    resolution : str or float
        Which resolution's buckets to export (default ``"1m"``).
    instance, org : str, optional
        External labels ``instance`` and ``org`` (default: the host name and
        the engine's storage org, when it has one).
    external_labels : mapping, optional
        More labels added to every series.
    quantiles : sequence of float
        Percentiles exported for distributions.
    interval : float
        Seconds between pulls from the engine and sends.
    max_samples_per_send : int
        Samples per WriteRequest.
    max_queue_samples : int
        Capacity of the queue; beyond it samples are dropped by ``overflow``
        and counted in ``stats()["dropped"]["queue_full"]``.
    overflow : {"drop_oldest", "drop_newest"}
    timeout : float
        Seconds per HTTP request.
    backoff, max_backoff : float
        First retry delay after a 5xx, a 429 or a network error, and its
        cap; the delay doubles per consecutive failure.  A 429's
        ``Retry-After`` is honoured up to ``max_backoff``.
    headers : mapping, optional
        Extra HTTP headers (``Authorization``, ``X-Scope-OrgID`` for Mimir
        and Cortex tenants).
    thread : bool
        Run in a background thread (``False``: call :meth:`flush` yourself).

    Notes
    -----
    A batch refused with a 4xx other than 429 is dropped, counted in
    ``stats()["dropped"]["rejected"]`` and logged with the receiver's reason:
    sending it again would fail the same way.  Call :meth:`close` after the
    engine's ``close()``, so the last buckets are sent too.
    """

    def __init__(self, url: str, engine: Any, *, resolution="1m", instance: str | None = None,
                 org: str | None = None, external_labels: Mapping[str, str] | None = None,
                 quantiles: Iterable[float] = (0.5, 0.95, 0.99), interval: float = 5.0,
                 max_samples_per_send: int = 2000, max_queue_samples: int = 500_000,
                 overflow: str = "drop_oldest", timeout: float = 10.0, backoff: float = 0.5,
                 max_backoff: float = 30.0, headers: Mapping[str, str] | None = None,
                 thread: bool = True) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        for what, v in (("interval", interval), ("timeout", timeout), ("backoff", backoff),
                        ("max_backoff", max_backoff)):
            if not v > 0:
                raise ValueError(f"{what} must be > 0, got {v!r}")
        if int(max_samples_per_send) < 1 or int(max_queue_samples) < 1:
            raise ValueError("max_samples_per_send and max_queue_samples must be >= 1")
        self.quantiles = tuple(float(q) for q in quantiles)
        if not all(0.0 <= q <= 1.0 for q in self.quantiles):
            raise ValueError(f"quantiles must be in [0, 1], got {self.quantiles!r}")
        self.url = url
        self.engine = engine
        self.width = parse_duration(resolution)
        if self.width not in [w for _, w in engine.resolutions]:
            raise ValueError(f"resolution {resolution!r} is not one of the engine's "
                             f"{[n for n, _ in engine.resolutions]}")
        labels = {"instance": instance if instance is not None else socket.gethostname()}
        storage_org = getattr(getattr(engine, "storage", None), "org_id", None)
        if org is not None or storage_org is not None:
            labels["org"] = org if org is not None else storage_org
        labels.update(external_labels or {})
        self.external_labels = {label_name(k): str(v) for k, v in labels.items()}
        self.interval = float(interval)
        self.max_samples_per_send = int(max_samples_per_send)
        self.max_queue_samples = int(max_queue_samples)
        self.overflow = overflow
        self.timeout = float(timeout)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._headers = dict(_HEADERS, **dict(headers or {}))
        self._scheme, self._netloc = parts.scheme, parts.netloc
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._conn: http.client.HTTPConnection | None = None
        self._feed = engine.closed_feed()
        self._series_labels: dict[tuple, tuple] = {}   # (key, suffix, quantile) -> labels
        self._totals: dict[SeriesKey, list] = {}        # cumulative count and sum
        self._queue: deque[tuple] = deque()             # (labels, ts_ms, value)
        self._lock = threading.Lock()                   # queue and counters
        self._send_lock = threading.Lock()              # one sender at a time
        self._failures = 0
        self._next_attempt = 0.0
        self._stats = {"samples_sent": 0, "batches_sent": 0, "bytes_sent": 0, "retried": 0,
                       "dropped": {"queue_full": 0, "rejected": 0, "close_timeout": 0},
                       "last_error": None}
        self._stop = threading.Event()
        self._closed = False
        self._thread = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="wedmetrics-remote-write",
                                             daemon=True)
            self._thread.start()

    # -- buckets to samples -------------------------------------------------------
    def _labels(self, key: SeriesKey, suffix: str, quantile: str | None = None) -> tuple:
        ident = (key, suffix, quantile)
        labels = self._series_labels.get(ident)
        if labels is None:
            own = {label_name(k): v for k, v in key.labels}
            merged = dict(self.external_labels)
            merged.update(own)                 # a series label wins over an external one
            if quantile is not None:
                merged["quantile"] = quantile
            merged["__name__"] = metric_name(key.name) + suffix
            labels = tuple(sorted(merged.items()))   # the protocol wants labels sorted
            self._series_labels[ident] = labels
        return labels

    def _samples(self, batch: BucketBatch) -> list[tuple]:
        """Rows of the exported width as samples, in time order per series."""
        rows = np.flatnonzero(batch.width == self.width)
        if not len(rows):
            return []
        rows = rows[np.lexsort((batch.start[rows], batch.series[rows]))]
        out: list[tuple] = []
        append = out.append
        qnames = [repr(q) if q != int(q) else str(int(q)) for q in self.quantiles]
        for i in rows.tolist():
            n = int(batch.count[i])
            if n == 0:
                continue
            key = batch.keys[int(batch.series[i])]
            ts = int(round((float(batch.start[i]) + self.width) * 1000.0))
            total = float(batch.sum[i])
            if key.kind == "gauge":
                append((self._labels(key, ""), ts, total / n))
                continue
            acc = self._totals.get(key)
            if acc is None:
                acc = self._totals[key] = [0, 0.0]
            acc[0] += n
            acc[1] += total
            if key.kind == "counter":
                append((self._labels(key, "_total"), ts, acc[1]))
                continue
            append((self._labels(key, "_count"), ts, float(acc[0])))
            append((self._labels(key, "_sum"), ts, acc[1]))
            values = Sketch.from_bytes(batch.sketch[i]).quantiles(self.quantiles)
            for q, v in zip(qnames, values):
                append((self._labels(key, "", q), ts, float(v)))
        return out

    def _pull(self) -> None:
        samples = self._samples(self._feed())
        if not samples:
            return
        with self._lock:
            self._queue.extend(samples)
            excess = len(self._queue) - self.max_queue_samples
            if excess > 0:
                for _ in range(excess):
                    self._queue.popleft() if self.overflow == "drop_oldest" else self._queue.pop()
                self._stats["dropped"]["queue_full"] += excess
        if excess > 0:
            log.warning("wedmetrics remote write: queue full (%d samples), dropped %d (%s)",
                        self.max_queue_samples, excess, self.overflow)

    # -- sending ----------------------------------------------------------------------
    def _encode(self, samples: list[tuple]) -> bytes:
        request = _prompb.WriteRequest()
        by_series: dict[tuple, Any] = {}
        for labels, ts, value in samples:
            series = by_series.get(labels)
            if series is None:
                series = by_series[labels] = request.timeseries.add()
                for name, v in labels:
                    series.labels.add(name=name, value=v)
            series.samples.add(value=value, timestamp=ts)
        return snappy.compress(request.SerializeToString())

    def _post(self, body: bytes) -> None:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else \
                http.client.HTTPConnection
            self._conn = cls(self._netloc, timeout=self.timeout)
        try:
            self._conn.request("POST", self._path, body=body, headers=self._headers)
            response = self._conn.getresponse()
            text = response.read(4096).decode("utf-8", "replace").strip()
            if response.will_close:
                self._drop_connection()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        status = response.status
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            retry_after = response.getheader("Retry-After")
            try:
                after = float(retry_after) if retry_after is not None else None
            except ValueError:
                after = None
            raise _Retryable(f"HTTP {status}: {text[:300]}", after)
        raise _Rejected(f"HTTP {status}: {text[:300]}")

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send_all(self) -> bool:
        """Send the queue until it is empty (True) or a send fails (False)."""
        with self._send_lock:
            while True:
                with self._lock:
                    n = min(len(self._queue), self.max_samples_per_send)
                    chunk = [self._queue.popleft() for _ in range(n)]
                if not chunk:
                    return True
                body = self._encode(chunk)
                try:
                    self._post(body)
                except _Rejected as exc:
                    with self._lock:
                        self._stats["dropped"]["rejected"] += len(chunk)
                        self._stats["last_error"] = str(exc)
                    log.error("wedmetrics remote write: %s refused %d samples: %s", self.url,
                              len(chunk), exc)
                    continue
                except _Retryable as exc:
                    with self._lock:
                        self._queue.extendleft(reversed(chunk))   # retried first, in order
                        self._failures += 1
                        self._stats["retried"] += 1
                        self._stats["last_error"] = str(exc)
                        delay = min(self.max_backoff, self.backoff * 2 ** (self._failures - 1))
                        if exc.retry_after is not None:
                            delay = min(self.max_backoff, max(delay, exc.retry_after))
                        self._next_attempt = time.monotonic() + delay
                    log.warning("wedmetrics remote write: sending %d samples to %s failed "
                                "(%s); retrying in %.3gs", len(chunk), self.url, exc, delay)
                    return False
                with self._lock:
                    self._failures = 0
                    self._stats["samples_sent"] += len(chunk)
                    self._stats["batches_sent"] += 1
                    self._stats["bytes_sent"] += len(body)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._pull()
                if time.monotonic() >= self._next_attempt:
                    self._send_all()
            except Exception:   # reported, never fatal to the thread
                log.exception("wedmetrics remote write: export step failed")

    # -- public ----------------------------------------------------------------------------
    def flush(self) -> bool:
        """Pull what the engine has closed and send everything now, ignoring
        the back-off.  ``True`` when the queue is empty afterwards."""
        self._pull()
        return self._send_all()

    def close(self, timeout: float = 30.0) -> dict:
        """Stop the thread and send what is left, retrying until ``timeout``.

        Samples still unsent at the deadline are counted in
        ``dropped["close_timeout"]``.  Returns :meth:`stats`.
        """
        if self._closed:
            return self.stats()
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + float(timeout)
        self._pull()
        while not self._send_all():
            now = time.monotonic()
            if now >= deadline:
                break
            time.sleep(max(0.0, min(self._next_attempt, deadline) - now))
        with self._lock:
            left = len(self._queue)
            self._stats["dropped"]["close_timeout"] += left
            self._queue.clear()
        if left:
            log.error("wedmetrics remote write: closed with %d samples unsent (%s)", left,
                      self._stats["last_error"])
        self._drop_connection()
        return self.stats()

    def stats(self) -> dict:
        """``samples_sent``, ``batches_sent``, ``bytes_sent``, ``retried``,
        ``queued``, ``dropped`` by reason and ``last_error``."""
        with self._lock:
            out = dict(self._stats)
            out["dropped"] = dict(self._stats["dropped"])
            out["queued"] = len(self._queue)
        return out

    def __enter__(self) -> "RemoteWriteExporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteWriteExporter {self.url} queued={len(self._queue)}>"
