"""Prometheus exposition of an engine: text format 0.0.4, or OpenMetrics 1.0 on request.

What each series becomes
------------------------
- a distribution: a *summary* ``name{quantile="0.5|0.95|0.99"}`` over the
  last ``window`` (default 5 minutes), plus ``name_count`` / ``name_sum``
  cumulative since the exposition started reading (every point the engine
  still held then included);
- a counter: ``name_total``, the sum of its increments since then;
- a gauge: its last value.

Names are sanitised to ``[a-zA-Z_:][a-zA-Z0-9_:]*`` (``api.latency`` ->
``api_latency``); label values are escaped as both formats specify
(backslash, double quote, line feed).  A series that cannot be exposed
faithfully (its sanitised name clashes with another metric, it carries a
label the format reserves, a value is not valid UTF-8) is left out and
counted in ``wedmetrics_exposition_skipped_series{reason=...}``.

Speed: every window of every series is read in one batch call
(:meth:`wedmetrics.AggregationEngine.read_windows`), and each series' line
prefixes are built once, when the series is first seen.

This module imports no web framework: :func:`metrics_app` (ASGI) and
:func:`metrics_wsgi_app` (WSGI) serve it alone, and the hub's ``/metrics``
route renders it too.
"""
from __future__ import annotations

import asyncio
import gzip
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..clock import parse_duration

__all__ = ["Exposition", "Family", "TEXT_CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE",
           "negotiate", "metric_name", "escape_label_value", "format_value",
           "metrics_app", "metrics_wsgi_app"]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

DEFAULT_QUANTILES = (0.5, 0.95, 0.99)

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")
SKIP_REASONS = ("name_clash", "reserved_label", "invalid_utf8")


@dataclass
class Family:
    """One metric family given by its samples: ``(sample name, labels, value)``,
    the sample name already suffixed (``_total``, ``_count``, ``_sum``).  The
    hub's own metrics come in this shape; :class:`Exposition` renders them
    after the engine's series."""

    name: str
    type: str                    # "counter", "gauge" or "summary"
    help: str
    samples: list = field(default_factory=list)


# -- the format's primitives -------------------------------------------------------
def metric_name(name: str) -> str:
    """A Prometheus metric name for an engine name: every character outside
    ``[a-zA-Z0-9_:]`` becomes ``_``, and a leading digit gets a ``_`` before it."""
    out = _NAME_BAD.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out


def escape_label_value(value: str) -> str:
    r"""Backslash, double quote and line feed escaped (``\\``, ``\"``, ``\n``), as
    the text format 0.0.4 and OpenMetrics 1.0 both require."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    # 0.0.4 knows only \\ and \n in HELP; OpenMetrics' escaped-string also \"
    return text.replace('"', '\\"') if openmetrics else text


def format_value(x: float) -> str:
    """A sample value: shortest round-trip decimal, ``NaN``, ``+Inf``, ``-Inf``."""
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


def _format_column(values: np.ndarray) -> list[str]:
    """:func:`format_value` of a column.  ``repr`` of the whole list is one C
    loop over the floats (no Python call per value); a float's repr never
    contains ``", "``, so splitting recovers each value's text."""
    if len(values) == 0:
        return []
    out = repr(values.tolist())[1:-1].split(", ")
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        out[i] = format_value(float(values[i]))
    return out


def negotiate(accept: str | None, format: str | None = None) -> bool:
    """Whether the ``Accept`` header asks for OpenMetrics (over text 0.0.4).

    OpenMetrics wins when it is listed with a q-value above zero that is not
    below the text format's (Prometheus asks for it first, at q=1).  An
    explicit ``format`` (``"text"`` or ``"openmetrics"``, the ``?format=``
    query parameter) overrides the header.
    """
    if format is not None:
        if format not in ("text", "openmetrics"):
            raise ValueError(f"format must be 'text' or 'openmetrics', got {format!r}")
        return format == "openmetrics"
    if not accept:
        return False
    om_q = text_q = -1.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == "application/openmetrics-text":
            om_q = max(om_q, q)
        elif media in ("text/plain", "text/*", "*/*"):
            text_q = max(text_q, q)
    return om_q > 0 and om_q >= text_q


def _labels_text(labels: dict) -> str:
    return ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(labels.items()))


def _braced(inner: str) -> str:
    return "{" + inner + "}" if inner else ""


# -- the per-series layout, built once per series ------------------------------------
class _Layout:
    """Which series go into which family, with their line prefixes.

    Rebuilt (incrementally: only new series are looked at) when the engine
    has more series than at the last scrape; series are never removed.
    """

    def __init__(self, quantiles) -> None:
        self.quantile_labels = [f'quantile="{q:g}"' for q in quantiles]
        self.seen = 0
        self.claimed: dict[str, tuple[str, str]] = {}   # sample/family name -> (engine name, kind)
        self.families: dict[str, dict] = {}             # family name -> its parts
        self.skipped = dict.fromkeys(SKIP_REASONS, 0)
        self.skipped_ids: set[int] = set()
        self.handles: dict[int, object] = {}
        self._reserve_self_names()

    def _reserve_self_names(self) -> None:
        for name in _SELF_NAMES:
            self.claimed[name] = ("", "self")

    def update(self, handles: list) -> None:
        for h in handles[self.seen:]:
            self._add(h)
        self.seen = len(handles)

    def _add(self, h) -> None:
        kind = h.kind
        base = metric_name(h.name)
        if kind == "counter" and base.endswith("_total"):
            base = base[: -len("_total")]
        reason = self._reason(h, base, kind)
        if reason is not None:
            self.skipped[reason] += 1
            self.skipped_ids.add(h.id)
            return
        fam = self.families.get(base)
        if fam is None:
            fam = self.families[base] = {"kind": kind, "engine_name": h.name, "ids": [],
                                         "prefixes": [], "select": []}
            for n in _sample_names(base, kind):
                self.claimed[n] = (h.name, kind)
        labels = _labels_text(h.labels)
        fam["ids"].append(h.id)
        fam["select"].append(h)
        self.handles[h.id] = h
        if kind == "distribution":
            sep = "," if labels else ""
            fam["prefixes"].append(
                tuple(f"{base}{{{labels}{sep}{q}}} " for q in self.quantile_labels)
                + (f"{base}_count{_braced(labels)} ", f"{base}_sum{_braced(labels)} "))
        elif kind == "counter":
            fam["prefixes"].append((f"{base}_total{_braced(labels)} ",))
        else:
            fam["prefixes"].append((f"{base}{_braced(labels)} ",))

    def _reason(self, h, base: str, kind: str) -> str | None:
        for n in _sample_names(base, kind):
            owner = self.claimed.get(n)
            if owner is not None and owner != (h.name, kind):
                return "name_clash"
        for k in h.labels:
            if k.startswith("__") or (kind == "distribution" and k == "quantile"):
                return "reserved_label"
        try:
            h.name.encode("utf-8")
            for k, v in h.labels.items():
                v.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_utf8"
        return None


def _sample_names(base: str, kind: str) -> tuple[str, ...]:
    if kind == "distribution":
        return (base, base + "_count", base + "_sum")
    if kind == "counter":
        return (base, base + "_total")
    return (base,)


# -- cumulative totals since the exposition began ------------------------------------
class _Totals:
    """Count and sum of every point of each series since the first scrape.

    A total is ``base`` (everything before ``horizon``) plus a read of
    ``[horizon, now]``; ``horizon`` is a boundary of the coarsest resolution that only moves to
    buckets already closed.  Because the horizon is aligned to every
    resolution, a window starting there is exact at whichever resolution
    still holds it: the totals stay exact as long as two scrapes are less
    than the coarsest resolution's in-memory retention apart (7 days by
    default).
    """

    def __init__(self, engine) -> None:
        w0 = engine.resolutions[0][1]
        coarse_name, coarse = engine.resolutions[-1]
        self.ratio = max(1, int(round(coarse / w0)))
        self.horizon: int | None = None
        self.oldest_back = (engine.retention[coarse_name] + 2) * self.ratio
        self.count = np.zeros(0, dtype=np.int64)
        self.sum = np.zeros(0, dtype=np.float64)

    def grow(self, n: int) -> None:
        if n > len(self.count):
            self.count = np.concatenate([self.count, np.zeros(n - len(self.count), np.int64)])
            self.sum = np.concatenate([self.sum, np.zeros(n - len(self.sum), np.float64)])

    def start(self, now_idx: int) -> int:
        if self.horizon is None:
            # everything the engine still holds: older buckets are evicted
            self.horizon = (now_idx // self.ratio) * self.ratio - self.oldest_back
        return self.horizon

    def next_horizon(self, closed_idx: int) -> int:
        """The newest coarse boundary with only closed buckets before it."""
        return (closed_idx // self.ratio) * self.ratio


_SELF_NAMES = ("wedmetrics_points_accepted_total", "wedmetrics_points_accepted",
               "wedmetrics_points_dropped_total", "wedmetrics_points_dropped",
               "wedmetrics_series", "wedmetrics_memory_bytes",
               "wedmetrics_exposition_skipped_series")


class Exposition:
    """Renders an engine (and optional extra families) for Prometheus.

    Parameters
    ----------
    engine : MetricsEngine, optional
        Whose series are exposed (``None``: only ``extra``).
    window : float or str
        Length of the window the summaries' quantiles cover (default ``"5m"``).
    quantiles : sequence of float
        The quantiles of each summary (default 0.5, 0.95, 0.99).
    extra : callable, optional
        Returns more :class:`Family` objects to append (the hub's own metrics).
    cache_ttl : float or str
        Answer identical scrapes within this time from the last rendering
        (``0``, the default, renders every scrape).  Useful when several
        Prometheus replicas scrape one process.

    Examples
    --------
    >>> import wedmetrics as wm
    >>> from wedmetrics.http.exposition import Exposition
    >>> engine = wm.MetricsEngine(clock=wm.ManualClock(1000.0))
    >>> engine.series("api.latency", {"route": "/photos"}).record(0.25)
    >>> body, content_type = Exposition(engine).render()
    >>> [line for line in body.decode().splitlines() if "_count" in line][0]
    'api_latency_count{route="/photos"} 1'
    """

    def __init__(self, engine=None, *, window="5m", quantiles: Iterable[float] = DEFAULT_QUANTILES,
                 extra: Callable[[], list] | None = None, cache_ttl=0) -> None:
        self.engine = engine
        self.window = parse_duration(window)
        if not self.window > 0:
            raise ValueError(f"window must be > 0, got {window!r}")
        self.quantiles = tuple(float(q) for q in quantiles)
        for q in self.quantiles:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantiles must be in [0, 1], got {q!r}")
        self.extra = extra
        self.cache_ttl = parse_duration(cache_ttl) if cache_ttl else 0.0
        self._layout = _Layout(self.quantiles)
        self._totals = _Totals(engine) if engine is not None else None
        self._lock = threading.Lock()
        self._cache: dict = {}
        self._window_text = _duration_text(self.window)

    # -- public -----------------------------------------------------------------------
    def render(self, accept: str | None = None, *, format: str | None = None,
               select: Callable | None = None, cache_key=None,
               include_extra: bool = True) -> tuple[bytes, str]:
        """The exposition body and its content type for a scraper's ``Accept``
        (or an explicit ``format``: ``"text"`` or ``"openmetrics"``).

        ``select(handle) -> bool`` keeps only some series (the hub's tenants);
        give such a call a ``cache_key`` naming the selection if caching is on.
        """
        openmetrics = negotiate(accept, format)
        key = (openmetrics, cache_key, include_extra)
        if self.cache_ttl:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.cache_ttl:
                return hit[1], hit[2]
        with self._lock:
            parts = self._engine_text(openmetrics, select) if self.engine is not None else []
        if include_extra and self.extra is not None:
            parts.extend(render_family(f, openmetrics) for f in self.extra())
        if openmetrics:
            parts.append("# EOF\n")
        body = "".join(parts).encode("utf-8")
        ctype = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        if self.cache_ttl:
            self._cache[key] = (time.monotonic(), body, ctype)
        return body, ctype

    # -- the engine's series ---------------------------------------------------------
    def _engine_text(self, openmetrics: bool, select) -> list[str]:
        engine = self.engine
        engine.advance()
        layout = self._layout
        handles = engine.series_list()
        layout.update(handles)
        stats = self._read(engine, len(handles))
        out = []
        for base in sorted(layout.families):
            fam = layout.families[base]
            rows = range(len(fam["ids"]))
            if select is not None:
                rows = [i for i, h in enumerate(fam["select"]) if select(h)]
                if not rows:
                    continue
            out.append(self._family_text(base, fam, rows, stats, openmetrics))
        out.append(self._self_text(engine, openmetrics))
        return out

    def _read(self, engine, n: int) -> dict:
        """Window quantiles and cumulative counts and sums of every series, in one
        batch read: per series the summary window, ``[horizon, now]``, and, when
        the horizon moves, ``[old horizon, new horizon)`` for the base."""
        totals = self._totals
        totals.grow(n)
        w0 = engine.resolutions[0][1]
        now = engine.now()
        hi = math.floor(now / w0) + 1
        lo = hi - max(1, math.ceil(self.window / w0 - 1e-9))
        closed = math.floor((now - engine.lateness) / w0) - 1
        ids = np.array([i for fam in self._layout.families.values()
                        if fam["kind"] != "gauge" for i in fam["ids"]], dtype=np.int64)
        m = len(ids)
        nq = len(self.quantiles)
        horizon = totals.start(hi)
        new_horizon = totals.next_horizon(closed)
        moving = new_horizon > horizon
        full = np.zeros(n, np.int64)
        full_sum = np.zeros(n)
        q = np.full((n, nq), np.nan)
        if m == 0:
            totals.horizon = max(horizon, new_horizon)
            return {"count": full, "sum": full_sum, "quantiles": q}
        singles = [[i] for i in ids.tolist()]
        since = new_horizon if moving else horizon
        spans = [(lo, hi, self.quantiles), (since, hi, ())]
        if moving:
            spans.append((horizon, new_horizon, ()))
        groups = singles * len(spans)
        qs = [s[2] for s in spans for _ in range(m)]
        los = np.repeat(np.array([s[0] for s in spans], dtype=np.int64), m)
        his = np.repeat(np.array([s[1] for s in spans], dtype=np.int64), m)
        count, total, _, _, quants = engine.aggregation.read_windows(
            groups, los, his, np.full(len(groups), now), qs)
        if moving:
            totals.count[ids] += count[2 * m:]
            totals.sum[ids] += total[2 * m:]
            totals.horizon = new_horizon
        full[ids] = totals.count[ids] + count[m:2 * m]
        full_sum[ids] = totals.sum[ids] + total[m:2 * m]
        if nq:
            q[ids] = quants.reshape(m, nq)
        return {"count": full, "sum": full_sum, "quantiles": q}

    def _family_text(self, base: str, fam: dict, rows, stats: dict, openmetrics: bool) -> str:
        kind = fam["kind"]
        ids = np.asarray(fam["ids"], dtype=np.int64)
        if not isinstance(rows, range):
            ids = ids[np.asarray(rows, dtype=np.int64)] if rows else ids[:0]
        prefixes = fam["prefixes"]
        pick = list(rows)
        name = fam["engine_name"]
        if kind == "distribution":
            help_text = (f"{name}: quantiles over the last {self._window_text}; "
                         f"count and sum since start")
            type_name = base
        elif kind == "counter":
            help_text = f"{name}: total of its increments since start"
            type_name = base if openmetrics else base + "_total"
        else:
            help_text = f"{name}: last value"
            type_name = base
        head = _head(type_name, "summary" if kind == "distribution" else kind, help_text,
                     openmetrics)
        if kind == "distribution":
            qcols = [_format_column(stats["quantiles"][ids, j]) for j in range(len(self.quantiles))]
            counts = stats["count"][ids].tolist()
            sums = _format_column(stats["sum"][ids])
            if len(qcols) == 3:       # the default quantiles: one f-string per series
                q0, q1, q2 = qcols
                lines = [f"{p[0]}{q0[r]}\n{p[1]}{q1[r]}\n{p[2]}{q2[r]}\n"
                         f"{p[3]}{counts[r]}\n{p[4]}{sums[r]}\n"
                         for r, p in enumerate([prefixes[i] for i in pick])]
                return head + "".join(lines)
            lines = []
            for r, i in enumerate(pick):
                p = prefixes[i]
                for j, col in enumerate(qcols):
                    lines.append(f"{p[j]}{col[r]}\n")
                lines.append(f"{p[-2]}{counts[r]}\n{p[-1]}{sums[r]}\n")
            return head + "".join(lines)
        if kind == "counter":
            sums = _format_column(stats["sum"][ids])
            return head + "".join(f"{prefixes[i][0]}{sums[r]}\n" for r, i in enumerate(pick))
        handles = fam["select"]
        lines = []
        for i in pick:
            v = handles[i].value
            if v == v:   # a gauge never set has no value to show
                lines.append(f"{prefixes[i][0]}{format_value(v)}\n")
        return head + "".join(lines)

    def _self_text(self, engine, openmetrics: bool) -> str:
        stats = engine.stats()
        fams = [
            Family("wedmetrics_points_accepted", "counter", "Points the engine accepted",
                   [("wedmetrics_points_accepted_total", {}, float(stats["accepted"]))]),
            Family("wedmetrics_points_dropped", "counter",
                   "Points the engine refused or dropped, by reason",
                   [("wedmetrics_points_dropped_total", {"reason": r}, float(n))
                    for r, n in sorted(stats["dropped"].items())]),
            Family("wedmetrics_series", "gauge", "Series the engine holds",
                   [("wedmetrics_series", {}, float(stats["series"]))]),
            Family("wedmetrics_memory_bytes", "gauge", "Bytes the engine's buckets take",
                   [("wedmetrics_memory_bytes", {}, float(stats["memory_bytes"]))]),
            Family("wedmetrics_exposition_skipped_series", "gauge",
                   "Series left out of this exposition, by reason (see docs/http.md)",
                   [("wedmetrics_exposition_skipped_series", {"reason": r}, float(n))
                    for r, n in self._layout.skipped.items()]),
        ]
        return "".join(render_family(f, openmetrics) for f in fams)


def _head(name: str, kind: str, help_text: str, openmetrics: bool) -> str:
    help_line = f"# HELP {name} {_escape_help(help_text, openmetrics)}\n"
    type_line = f"# TYPE {name} {kind}\n"
    # OpenMetrics wants TYPE first; 0.0.4 readers are used to HELP first
    return type_line + help_line if openmetrics else help_line + type_line


def render_family(fam, openmetrics: bool) -> str:
    """Text of one :class:`Family` (or any object with ``name``, ``type``,
    ``help`` and ``samples``)."""
    type_name = fam.name
    if fam.type == "counter" and not openmetrics:
        type_name = fam.name + "_total"
    lines = [_head(type_name, fam.type, fam.help, openmetrics)]
    for sample, labels, value in fam.samples:
        lines.append(f"{sample}{_braced(_labels_text(labels))} {format_value(value)}\n")
    return "".join(lines)


def _duration_text(seconds: float) -> str:
    for unit, width in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= width and seconds % width == 0:
            return f"{int(seconds // width)}{unit}"
    return f"{seconds:g}s"


# -- standalone apps ------------------------------------------------------------------
async def off_loop(fn):
    """``fn()`` on a thread of its own, awaited: a scrape of many series must not
    hold the event loop, and a thread that ends with its scrape leaves nothing
    behind when the server stops (pooled executors keep idle threads alive)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(error, value) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting coroutine, raised there
            loop.call_soon_threadsafe(settle, exc, None)
        else:
            loop.call_soon_threadsafe(settle, None, value)

    threading.Thread(target=run, name="wedmetrics-exposition", daemon=True).start()
    return await done


def _wants_gzip(accept_encoding: str | None) -> bool:
    return bool(accept_encoding) and "gzip" in accept_encoding.lower()


def _format_param(query_string: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(query_string).get("format")
    return values[-1] if values else None


def _body_for(exposition: Exposition, accept, accept_encoding, query_string=""):
    body, ctype = exposition.render(accept, format=_format_param(query_string))
    headers = [("Content-Type", ctype), ("Cache-Control", "no-store")]
    if _wants_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=1)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(body))))
    return body, headers


def metrics_app(engine, **options):
    """A tiny ASGI app answering every GET (or HEAD) with the exposition of ``engine``.

    No web framework is needed: mount it in any ASGI server or framework
    (``starlette_app.mount("/metrics", metrics_app(engine))``), like
    prometheus_client's ``make_asgi_app``.  ``options`` go to
    :class:`Exposition` (``window``, ``quantiles``, ``cache_ttl``...).
    Rendering runs on a thread of its own, so the event loop keeps serving.
    """
    exposition = options.pop("exposition", None) or Exposition(engine, **options)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, b"only GET and HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", ())}
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            body, out = await off_loop(lambda: _body_for(
                exposition, headers.get("accept"), headers.get("accept-encoding"), query))
        except ValueError as exc:       # a bad ?format=
            await _plain(send, 400, f"{exc}\n".encode())
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in out]})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    app.exposition = exposition
    return app


async def _plain(send, status: int, body: bytes, headers=()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def metrics_wsgi_app(engine, **options):
    """The WSGI twin of :func:`metrics_app` (like prometheus_client's ``make_wsgi_app``)."""
    exposition = options.pop("exposition", None) or Exposition(engine, **options)

    def app(environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed",
                           [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")])
            return [b"only GET and HEAD\n"]
        try:
            body, headers = _body_for(exposition, environ.get("HTTP_ACCEPT"),
                                      environ.get("HTTP_ACCEPT_ENCODING"),
                                      environ.get("QUERY_STRING", ""))
        except ValueError as exc:       # a bad ?format=
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{exc}\n".encode()]
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]

    app.exposition = exposition
    return app
