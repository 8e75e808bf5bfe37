"""Wedding-platform traffic for demos, benchmarks and alert tests.

:class:`WeddingTraffic` simulates a wedding platform: a calendar of weddings
(mostly on Saturdays), guests uploading photos in bursts during receptions
(first dance, cake, bouquet), guests following the day online, platform API
requests per route with their latencies and errors, calls to outside vendor
APIs, backup jobs -- and injected incidents (latency spikes, error bursts, a
vendor going silent) whose ground-truth windows come back with the data.

Output is columnar, ready for ``engine.record_many``: ``ids`` (indices into
``series``, the list of :class:`SeriesDef`), ``ts`` and ``values``, sorted
by time.  :meth:`WeddingTraffic.register` maps the ids onto an engine.

Determinism: time is cut into fixed blocks of :data:`BLOCK_SECONDS`, and a
block's points depend only on the seed and the block's index (its own
``numpy.random.Generator``).  So a seed gives the same points whether they
are produced at once (:meth:`WeddingTraffic.window`) or chunk by chunk
(:meth:`WeddingTraffic.stream`), and generation is vectorised per block
(Poisson counts per second, then every event at once).

>>> import wedmetrics as wm
>>> traffic = WeddingTraffic(seed=7, start=DEFAULT_START)
>>> batch = traffic.window(traffic.start, traffic.start + 600)
>>> engine = wm.MetricsEngine(clock=wm.ManualClock(batch.end))
>>> ids = traffic.register(engine)
>>> result = engine.record_many(ids[batch.ids], batch.ts, batch.values)
>>> result.accepted == len(batch)
True
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..clock import parse_duration
from ..weddings import Wedding, WeddingCalendar
from .buffer import Sample
from .sources import Source

__all__ = ["WeddingTraffic", "TrafficBatch", "SeriesDef", "Incident", "TrafficSource", "generate",
           "register_series", "wedding_calendar", "BLOCK_SECONDS", "DEFAULT_START", "INCIDENT_KINDS"]

#: Points of a block depend only on (seed, block index); see the module docs.
BLOCK_SECONDS = 60
#: Saturday 2026-06-13 12:00 UTC: a wedding Saturday afternoon.
DEFAULT_START = _dt.datetime(2026, 6, 13, 12, tzinfo=_dt.timezone.utc).timestamp()
INCIDENT_KINDS = ("latency_spike", "error_burst", "vendor_silent")

# name: (requests/s at the platform's quiet baseline, median latency s,
#        requests per uploaded photo or per unit of wedding activity)
ROUTES = {
    "/photos/upload": (3.0, 0.35, 1.0),
    "/guests": (5.0, 0.06, 0.4),
    "/rsvp": (2.0, 0.08, 0.0),
    "/timeline": (4.0, 0.05, 0.6),
    "/vendors/search": (1.5, 0.15, 0.0),
}
VENDORS = {
    "payments": (0.4, 0.40, 0.02),
    "sms": (0.8, 0.20, 0.15),
    "email": (1.2, 0.12, 0.10),
    "maps": (1.5, 0.08, 0.05),
    "printlab": (0.2, 0.90, 0.05),
}
LATENCY_SIGMA = 0.45      # log-space spread of request latencies
BASE_ERROR_RATE = 0.002   # fraction of requests failing on a quiet day
BACKUPS = {"database": (3600.0, 300.0, 90.0), "photos": (86400.0, 3 * 3600.0, 1800.0)}
# job: (period s, offset into the period s, median duration s)

# Seed-sequence stream tags: independent generators per purpose.
_CALENDAR, _BLOCK, _INCIDENTS, _WEDDING, _BACKUP = 0xCA1E, 0xB10C, 0x1C1D, 0x7ED, 0xBAC


@dataclass(frozen=True, eq=True)
class SeriesDef:
    """One simulated series: ``id`` indexes :attr:`WeddingTraffic.series`."""

    id: int
    name: str
    labels: dict
    kind: str


@dataclass(frozen=True, eq=True)
class Incident:
    """Ground truth of one injected incident.

    ``kind``: ``"latency_spike"`` (latencies of the series multiplied by
    ``magnitude``), ``"error_burst"`` (fraction ``magnitude`` of the
    route's requests fail) or ``"vendor_silent"`` (no calls reach the
    vendor: the series has no points).  The window is ``[start, end)``.
    """

    kind: str
    name: str
    labels: dict
    start: float
    end: float
    magnitude: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"incident kind must be one of {INCIDENT_KINDS}, got {self.kind!r}")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and self.end > self.start):
            raise ValueError(f"incident window must be finite with end > start, got "
                             f"[{self.start!r}, {self.end!r})")

    def overlaps(self, t0: float, t1: float) -> bool:
        return self.start < t1 and self.end > t0


@dataclass
class TrafficBatch:
    """Points of ``[start, end)``, sorted by time, plus what explains them."""

    ids: np.ndarray               # int64, index into ``series``
    ts: np.ndarray                # float64, epoch seconds
    values: np.ndarray            # float64
    series: list                  # list[SeriesDef], all series of the simulation
    incidents: list               # list[Incident] overlapping [start, end)
    start: float
    end: float
    _by_key: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def series_ids(self, name: str, labels: "Mapping[str, str] | None" = None) -> np.ndarray:
        """Ids of the series named ``name`` whose labels include ``labels``."""
        want = dict(labels or {})
        return np.array([s.id for s in self.series if s.name == name
                         and all(s.labels.get(k) == v for k, v in want.items())],
                        dtype=np.int64)

    def mask(self, name: str, labels: "Mapping[str, str] | None" = None) -> np.ndarray:
        """Boolean mask of the points of those series."""
        return np.isin(self.ids, self.series_ids(name, labels))

    def feed(self, engine, id_map: "np.ndarray | None" = None):
        """Record the batch into ``engine``; returns what ``record_many`` returns.

        ``id_map`` is :meth:`WeddingTraffic.register`'s result (computed here
        when not given).
        """
        if id_map is None:
            id_map = register_series(engine, self.series)
        return engine.record_many(id_map[self.ids], self.ts, self.values)


def register_series(engine, series: Sequence[SeriesDef]) -> np.ndarray:
    """Create the series in ``engine``; array mapping simulated id -> engine id."""
    return np.array([engine.series(s.name, labels=s.labels, kind=s.kind).id for s in series],
                    dtype=np.int64)


def wedding_calendar(seed: int = 0, start: float = DEFAULT_START, days: int = 7, *,
                     weddings_per_saturday: float = 12.0, timezone: str = "UTC",
                     org_ids: Sequence[str] = ("bliss-events", "forever-planners", "rose-hall")
                     ) -> WeddingCalendar:
    """A plausible calendar: mostly Saturdays, some Fridays and Sundays.

    Weddings start between 12:00 and 16:30 local time and last ten hours
    (ceremony, cocktails, reception past midnight); guest counts are
    log-normal around 120 (between 12 and 450).
    """
    _check_seed(seed)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be an int >= 1, got {days!r}")
    if not weddings_per_saturday >= 0:
        raise ValueError(f"weddings_per_saturday must be >= 0, got {weddings_per_saturday!r}")
    rng = np.random.default_rng([seed, _CALENDAR])
    share = {5: 1.0, 4: 0.35, 6: 0.3}          # Saturday, Friday, Sunday; weekdays 0.05
    first = _dt.datetime.fromtimestamp(start, tz=_dt.timezone.utc).date()
    weddings = []
    for d in range(days):
        date = first + _dt.timedelta(days=d)
        n = int(rng.poisson(weddings_per_saturday * share.get(date.weekday(), 0.05)))
        for i in range(n):
            begin = 12 * 60 + 30 * int(rng.integers(0, 10))
            guests = int(np.clip(rng.lognormal(math.log(120), 0.45), 12, 450))
            weddings.append(Wedding(
                id=f"w{date:%Y%m%d}-{i:02d}", org_id=str(org_ids[int(rng.integers(len(org_ids)))]),
                date=date, timezone=timezone, guest_count=guests,
                venue=f"venue-{int(rng.integers(1, 60)):02d}",
                start_time=_dt.time(begin // 60, begin % 60),
                end_time=_dt.time((begin // 60 + 10) % 24, begin % 60)))
    return WeddingCalendar(weddings)


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


class _WeddingPlan:
    """What the simulator needs of one wedding, with its own burst times."""

    __slots__ = ("sid_uploads", "sid_guests", "start", "end", "guests", "bursts")

    def __init__(self, w: Wedding, index: int, seed: int, sid_uploads: int,
                 sid_guests: int) -> None:
        self.sid_uploads, self.sid_guests = sid_uploads, sid_guests
        self.start, self.end, self.guests = w.event_start, w.event_end, w.guest_count
        rng = np.random.default_rng([seed, _WEDDING, index])
        # first dance ~3 h in, cake ~4 h, bouquet ~5 h; each a little early or late
        self.bursts = [(3 * 3600 + rng.uniform(-900, 900), 600.0, 5.0),
                       (4 * 3600 + rng.uniform(-900, 900), 600.0, 4.0),
                       (5 * 3600 + rng.uniform(-900, 900), 300.0, 3.0)]

    def _at(self, t: float, t0: float, n: int) -> int:
        """Index of the first second of the block starting at or after ``t``."""
        return int(min(max(math.ceil(t - t0), 0), n))

    def upload_rate(self, t0: float, n: int) -> np.ndarray:
        """Photos per second uploaded by the whole wedding, for seconds t0 .. t0+n-1."""
        at, st = self._at, self.start
        rate = np.zeros(n)
        c, k, e = at(st + 2700, t0, n), at(st + 7200, t0, n), at(self.end, t0, n)
        rate[at(st, t0, n):c] = 0.002       # ceremony: photographers, a few guests
        rate[c:k] = 0.006                   # cocktails: everyone takes pictures
        rate[k:e] = 0.004                   # reception
        for off, dur, mult in self.bursts:
            rate[at(st + off, t0, n):at(st + off + dur, t0, n)] *= mult
        self._thin_out(rate, t0, n)
        return rate * self.guests

    def online_share(self, t0: float, n: int) -> np.ndarray:
        """Share of guests following the day in the app, an hour before to the end."""
        at, st = self._at, self.start
        share = np.zeros(n)
        a, s, c, k, e = (at(st - 3600, t0, n), at(st, t0, n), at(st + 2700, t0, n),
                         at(st + 7200, t0, n), at(self.end, t0, n))
        share[a:s] = 0.15 + 0.25 * (t0 + np.arange(a, s) - (st - 3600)) / 3600
        share[s:c] = 0.75                   # the ceremony livestream
        share[c:k] = 0.45
        share[k:e] = 0.35
        for off, dur, _ in self.bursts:
            share[at(st + off, t0, n):at(st + off + dur, t0, n)] += 0.25
        self._thin_out(share, t0, n)
        return share

    def _thin_out(self, x: np.ndarray, t0: float, n: int) -> None:
        # the last two hours thin out as guests leave
        a, e = self._at(self.end - 7200, t0, n), self._at(self.end, t0, n)
        if a < e:
            x[a:e] *= np.clip((self.end - (t0 + np.arange(a, e))) / 7200.0, 0.2, 1.0)


class WeddingTraffic:
    """A seeded simulation of a wedding platform's metrics.

    Parameters
    ----------
    seed : int
        Everything follows from it (``numpy.random.Generator`` per block).
    weddings : WeddingCalendar, iterable of Wedding, or None
        The weddings; ``None`` builds :func:`wedding_calendar` for ``days``
        days from ``start`` with the same seed.
    start : float
        Epoch seconds where the simulation begins (default
        :data:`DEFAULT_START`, a Saturday noon UTC).  Random incidents
        start at or after it.
    days : int
        Days of generated calendar when ``weddings`` is None.
    incidents : sequence of Incident, or None
        Exactly these incidents; ``None`` draws random ones at
        ``incident_rate`` per hour.
    incident_rate : float
        Expected random incidents per hour (0 for none).
    rate_scale : float
        Multiplies every event rate: ``rate_scale=10`` gives about ten times
        the points, for load tests.

    Notes
    -----
    Series: ``api.latency`` (distribution, label ``route``), ``api.requests`` and
    ``api.errors`` (counters, one point per route per second),
    ``vendor.latency`` (distribution, label ``vendor``),
    ``backup.duration`` (distribution, label ``job``; one point when a run
    ends), and per wedding (label ``wedding_id``) ``photos.uploaded``
    (counter, one point per second during the event) and ``guests.online``
    (gauge, every 10 s from an hour before to the end).
    """

    def __init__(self, seed: int = 0, weddings: "WeddingCalendar | Iterable[Wedding] | None" = None,
                 start: float = DEFAULT_START, *, days: int = 7,
                 incidents: "Sequence[Incident] | None" = None, incident_rate: float = 0.5,
                 rate_scale: float = 1.0) -> None:
        _check_seed(seed)
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start):
            raise ValueError(f"start must be finite epoch seconds, got {start!r}")
        if not (isinstance(rate_scale, (int, float)) and 0 < rate_scale < math.inf):
            raise ValueError(f"rate_scale must be a positive number, got {rate_scale!r}")
        if not (isinstance(incident_rate, (int, float)) and 0 <= incident_rate < math.inf):
            raise ValueError(f"incident_rate must be >= 0 per hour, got {incident_rate!r}")
        self.seed = int(seed)
        self.start = float(start)
        self.rate_scale = float(rate_scale)
        self.incident_rate = float(incident_rate)
        if weddings is None:
            weddings = wedding_calendar(self.seed, self.start, days)
        self.weddings: list[Wedding] = sorted(weddings, key=lambda w: (w.event_start, w.id))
        self.series: list[SeriesDef] = []
        self._route_ids = [self._add("api.latency", {"route": r}, "distribution") for r in ROUTES]
        self._request_ids = [self._add("api.requests", {"route": r}, "counter") for r in ROUTES]
        self._error_ids = [self._add("api.errors", {"route": r}, "counter") for r in ROUTES]
        self._vendor_ids = [self._add("vendor.latency", {"vendor": v}, "distribution")
                            for v in VENDORS]
        self._backup_ids = [self._add("backup.duration", {"job": j}, "distribution")
                            for j in BACKUPS]
        self._plans = [_WeddingPlan(w, i, self.seed,
                                    self._add("photos.uploaded", {"wedding_id": w.id}, "counter"),
                                    self._add("guests.online", {"wedding_id": w.id}, "gauge"))
                       for i, w in enumerate(self.weddings)]
        self._fixed_incidents = None
        if incidents is not None:
            self._fixed_incidents = [self._checked(i) for i in incidents]
        self._cache: dict[int, tuple] = {}
        self._runs: dict[tuple, tuple] = {}

    def _add(self, name: str, labels: dict, kind: str) -> int:
        sid = len(self.series)
        self.series.append(SeriesDef(sid, name, labels, kind))
        return sid

    def _checked(self, inc: Incident) -> Incident:
        if not isinstance(inc, Incident):
            raise TypeError(f"incidents must be Incident objects, got {inc!r}")
        targets = {"latency_spike": ("api.latency", "vendor.latency"),
                   "error_burst": ("api.errors",), "vendor_silent": ("vendor.latency",)}
        if inc.name not in targets[inc.kind]:
            raise ValueError(f"a {inc.kind} incident targets {targets[inc.kind]}, got {inc.name!r}")
        if self._sid(inc.name, inc.labels) is None:
            raise ValueError(f"incident target {inc.name} {inc.labels} is not a simulated series")
        if inc.kind == "latency_spike" and not inc.magnitude > 1:
            raise ValueError(f"a latency_spike needs magnitude > 1 (a factor), got {inc.magnitude!r}")
        if inc.kind == "error_burst" and not 0 < inc.magnitude <= 1:
            raise ValueError(f"an error_burst needs 0 < magnitude <= 1 (an error rate), got "
                             f"{inc.magnitude!r}")
        return inc

    def _sid(self, name: str, labels: Mapping[str, str]) -> "int | None":
        for s in self.series:
            if s.name == name and s.labels == dict(labels):
                return s.id
        return None

    # ------------------------------------------------------------------ public

    def register(self, engine) -> np.ndarray:
        """Create every series in ``engine``; array mapping simulated id -> engine id."""
        return register_series(engine, self.series)

    def incidents(self, t0: float, t1: float) -> list[Incident]:
        """Incidents overlapping ``[t0, t1)``, by start."""
        if self._fixed_incidents is not None:
            found = [i for i in self._fixed_incidents if i.overlaps(t0, t1)]
        else:
            found = []
            # random incidents last at most 30 min, so the hour before may reach in
            for hour in range(int(math.floor(t0 / 3600)) - 1, int(math.floor(t1 / 3600)) + 1):
                found += [i for i in self._random_incidents(hour) if i.overlaps(t0, t1)]
        return sorted(found, key=lambda i: (i.start, i.name, sorted(i.labels.items())))

    def window(self, t0: float, t1: float) -> TrafficBatch:
        """Every point with ``t0 <= ts < t1``, sorted by time."""
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 >= t0):
            raise ValueError(f"window needs finite t0 <= t1, got [{t0!r}, {t1!r})")
        parts = [self._block(b) for b in range(int(t0 // BLOCK_SECONDS),
                                               int(math.ceil(t1 / BLOCK_SECONDS)))]
        if parts:
            # slice each block before joining: a short window of a big block
            # must not copy the whole block
            cut = []
            for p_ids, p_ts, p_vals in parts:
                lo, hi = np.searchsorted(p_ts, t0, "left"), np.searchsorted(p_ts, t1, "left")
                cut.append((p_ids[lo:hi], p_ts[lo:hi], p_vals[lo:hi]))
            if len(cut) == 1:
                ids, ts, values = (a.copy() for a in cut[0])
            else:
                ids = np.concatenate([c[0] for c in cut])
                ts = np.concatenate([c[1] for c in cut])
                values = np.concatenate([c[2] for c in cut])
        else:
            ids, ts, values = (np.empty(0, np.int64), np.empty(0), np.empty(0))
        return TrafficBatch(ids, ts, values, self.series, self.incidents(t0, t1), t0, t1)

    def generate(self, duration: "float | str") -> TrafficBatch:
        """The first ``duration`` (seconds or ``"6h"``) from ``start``."""
        return self.window(self.start, self.start + parse_duration(duration))

    def stream(self, chunk_seconds: "float | str" = 1.0, start: "float | None" = None,
               end: "float | None" = None) -> Iterator[TrafficBatch]:
        """Consecutive batches of ``chunk_seconds`` from ``start`` (default
        :attr:`start`) until ``end`` (default: forever).

        Yields as fast as it is consumed; a live demo waits until its clock
        reaches ``batch.end`` before recording each batch.
        """
        step = parse_duration(chunk_seconds)
        if step <= 0:
            raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds!r}")
        t = self.start if start is None else float(start)
        k = 0
        while end is None or t < end:
            t_next = (self.start if start is None else float(start)) + (k + 1) * step
            if end is not None:
                t_next = min(t_next, float(end))
            yield self.window(t, t_next)
            t, k = t_next, k + 1

    # --------------------------------------------------------------- generation

    def _random_incidents(self, hour: int) -> list[Incident]:
        if self.incident_rate == 0:
            return []
        rng = np.random.default_rng([self.seed, _INCIDENTS, hour])
        out = []
        for _ in range(min(int(rng.poisson(self.incident_rate)), 3)):
            kind = INCIDENT_KINDS[int(rng.choice(3, p=[0.45, 0.35, 0.2]))]
            begin = hour * 3600.0 + float(rng.uniform(0, 3600))
            if kind == "latency_spike":
                if rng.random() < 0.6:
                    name, labels = "api.latency", {"route": list(ROUTES)[int(rng.integers(5))]}
                else:
                    name, labels = "vendor.latency", {"vendor": list(VENDORS)[int(rng.integers(5))]}
                dur, mag = rng.uniform(300, 1200), float(rng.uniform(4, 8))
            elif kind == "error_burst":
                name, labels = "api.errors", {"route": list(ROUTES)[int(rng.integers(5))]}
                dur, mag = rng.uniform(180, 900), float(rng.uniform(0.15, 0.35))
            else:
                name, labels = "vendor.latency", {"vendor": list(VENDORS)[int(rng.integers(5))]}
                dur, mag = rng.uniform(600, 1800), 0.0
            if begin >= self.start:
                out.append(Incident(kind, name, labels, begin, begin + float(dur), mag))
        return out

    def _block(self, b: int) -> tuple:
        hit = self._cache.get(b)
        if hit is None:
            hit = self._cache[b] = self._make_block(b)
            # streams revisit the block or two a chunk straddles; nothing older
            while len(self._cache) > 4:
                self._cache.pop(next(iter(self._cache)))
        return hit

    def _make_block(self, b: int) -> tuple:
        rng = np.random.default_rng([self.seed, _BLOCK, b])
        n_sec = BLOCK_SECONDS
        t0 = float(b * n_sec)
        t1 = t0 + n_sec
        sec = t0 + np.arange(n_sec, dtype=np.float64)
        load = self._platform_load(sec)
        incidents = self.incidents(t0, t1)
        routes, n_routes = list(ROUTES), len(ROUTES)

        # Whole-second points (counters, gauges) as (ids, second index, values).
        whole: list[tuple] = []
        activity = np.zeros(n_sec)          # expected uploads/s over live weddings
        for plan in self._plans:
            if plan.end <= t0 or plan.start - 3600 >= t1:
                continue
            lam = plan.upload_rate(t0, n_sec) * self.rate_scale
            live = np.flatnonzero((sec >= plan.start) & (sec < plan.end))
            if len(live):
                activity += lam
                whole.append(_points(plan.sid_uploads, live,
                                     rng.poisson(lam[live]).astype(np.float64)))
            share = plan.online_share(t0, n_sec)
            ticks = np.flatnonzero((sec % 10 == 0) & (sec >= plan.start - 3600)
                                   & (sec < plan.end))
            if len(ticks):
                online = plan.guests * share[ticks] * (1 + 0.05 * rng.standard_normal(len(ticks)))
                whole.append(_points(plan.sid_guests, ticks,
                                     np.clip(np.round(online), 0, plan.guests)))

        # Event rates per second and series: API routes, then vendors.
        scale = self.rate_scale
        table = list(ROUTES.values()) + list(VENDORS.values())
        base = np.array([r[0] for r in table])
        per_activity = np.array([r[2] for r in table])
        lam = (base[None, :] * (load * scale)[:, None]
               + per_activity[None, :] * activity[:, None])          # (seconds, series)
        for inc in incidents:
            if inc.kind == "vendor_silent":
                v = n_routes + list(VENDORS).index(inc.labels["vendor"])
                lam[(sec + 1 > inc.start) & (sec < inc.end), v] = 0.0
        ev_sids = np.array(self._route_ids + self._vendor_ids, dtype=np.int64)
        medians = np.array([r[1] for r in table])
        ids, ts, values, counts = _events(rng, lam, sec, ev_sids, medians, 1.0 + 0.15 * load)
        for inc in incidents:
            if inc.kind == "latency_spike":
                hit = ((ids == self._sid(inc.name, inc.labels)) & (ts >= inc.start)
                       & (ts < inc.end))
                values[hit] *= inc.magnitude

        # Requests and errors per route and second, from the events themselves.
        requests = counts[:, :n_routes]
        error_p = np.repeat((BASE_ERROR_RATE * (0.5 + load))[:, None], n_routes, axis=1)
        for inc in incidents:
            if inc.kind == "error_burst":
                r = routes.index(inc.labels["route"])
                error_p[(sec + 1 > inc.start) & (sec < inc.end), r] = inc.magnitude
        errors = rng.binomial(requests, np.clip(error_p, 0.0, 1.0))
        every = np.arange(n_sec)
        for r in range(n_routes):
            whole.append(_points(self._request_ids[r], every, requests[:, r].astype(np.float64)))
            whole.append(_points(self._error_ids[r], every, errors[:, r].astype(np.float64)))

        ids, ts, values = _merge_whole_seconds(whole, sec, ids, ts, values, counts.sum(axis=1))
        bids, bts, bvalues = self._backups(t0, t1)
        if len(bids):
            at = np.searchsorted(ts, bts, side="right")
            ids, ts, values = (np.insert(ids, at, bids), np.insert(ts, at, bts),
                               np.insert(values, at, bvalues))
        return ids, ts, values

    def _platform_load(self, sec: np.ndarray) -> np.ndarray:
        """Relative platform load: daily curve (quiet 04:00, busy 16:00 UTC)
        times a weekday factor (Saturday 2.2, Friday and Sunday 1.4)."""
        hour = (sec % 86400.0) / 3600.0
        daily = 0.2 + 0.8 * (0.5 - 0.5 * np.cos(2 * np.pi * (hour - 4.0) / 24.0))
        weekday = ((sec // 86400.0).astype(np.int64) + 3) % 7   # 1970-01-01 was a Thursday
        factor = np.select([weekday == 5, (weekday == 4) | (weekday == 6)], [2.2, 1.4], 1.0)
        return daily * factor

    def _backup_run(self, j: int, k: int, period: float, offset: float,
                    median: float) -> tuple:
        """Start and duration of run ``k`` of job ``j``; longer after a busy day."""
        run = self._runs.get((j, k))
        if run is None:
            began = k * period + offset
            rng = np.random.default_rng([self.seed, _BACKUP, j, k])
            day_load = float(self._platform_load(np.array([began - 43200.0]))[0])
            took = min(median * day_load * float(rng.lognormal(0.0, 0.25)), 6 * median)
            run = self._runs[(j, k)] = (began, took)
            if len(self._runs) > 4096:
                self._runs.pop(next(iter(self._runs)))
        return run

    def _backups(self, t0: float, t1: float) -> tuple:
        """Runs of each backup job that end inside ``[t0, t1)``, one point each."""
        ids, ts, values = [], [], []
        for j, (job, (period, offset, median)) in enumerate(BACKUPS.items()):
            # a run lasts at most ~6 medians (the log-normal is clipped there)
            first = int(math.floor((t0 - offset - 6 * median) / period))
            last = int(math.floor((t1 - offset) / period))
            for k in range(first, last + 1):
                began, took = self._backup_run(j, k, period, offset, median)
                if t0 <= began + took < t1 and began + took >= self.start:
                    ids.append(self._backup_ids[j])
                    ts.append(began + took)
                    values.append(took)
        return (np.asarray(ids, dtype=np.int64), np.asarray(ts, dtype=np.float64),
                np.asarray(values, dtype=np.float64))


def _points(sid: int, at: np.ndarray, values: np.ndarray) -> tuple:
    return np.full(len(at), sid, dtype=np.int64), at, values


def _events(rng: np.random.Generator, lam: np.ndarray, sec: np.ndarray, sids: np.ndarray,
            medians: np.ndarray, slow: np.ndarray) -> tuple:
    """Poisson events for a (seconds, series) rate matrix, already in time order.

    Instead of drawing counts per cell and sorting the events, draw the
    count per second from the summed rate and give each event its series
    by the rates' proportions (splitting a Poisson process; the two are the
    same distribution).  Times inside a second are sorted uniforms, made
    from normalised cumulative sums of exponentials (Devroye, *Non-Uniform
    Random Variate Generation*, 1986, ch. V.2), so no sort is needed.

    Returns ids, ts, values (one log-normal latency per event around the
    series median, times ``slow`` of its second) and the counts per
    (second, series).
    """
    n_sec, n_series = lam.shape
    total = lam.sum(axis=1)
    per_sec = rng.poisson(total)
    n = int(per_sec.sum())
    col = np.repeat(np.arange(n_sec), per_sec)
    # slot of event i in the exponentials: i + its second (one spare per second)
    spans = np.concatenate(([0.0], np.cumsum(rng.standard_exponential(n + n_sec))))
    first = np.concatenate(([0], np.cumsum(per_sec + 1)[:-1]))
    base, width = spans[first], spans[first + per_sec + 1] - spans[first]
    offset = (spans[np.arange(n) + col + 1] - base[col]) / width[col]
    ts = sec[col] + offset
    # series of each event: search the per-second cumulative shares, laid
    # end to end as t + share so that one searchsorted serves all seconds
    share = np.cumsum(lam, axis=1) / np.where(total > 0, total, 1.0)[:, None]
    share[:, -1] = 1.0
    share[total <= 0] = 1.0
    edges = (np.arange(n_sec)[:, None] + share).ravel()
    cell = np.searchsorted(edges, col + rng.random(n), side="right")
    series = cell - col * n_series
    scale = (slow[:, None] * medians[None, :]).ravel()
    values = scale[cell] * np.exp(LATENCY_SIGMA * rng.standard_normal(n))
    counts = np.bincount(cell, minlength=n_sec * n_series).reshape(n_sec, n_series)
    return sids[series], ts, values, counts


def _merge_whole_seconds(whole: list, sec: np.ndarray, ids: np.ndarray, ts: np.ndarray,
                         values: np.ndarray, events_per_sec: np.ndarray) -> tuple:
    """Interleave whole-second points (stamped at the second's start) with
    time-ordered events: each second holds its whole-second points first."""
    w_ids = np.concatenate([w[0] for w in whole])
    w_at = np.concatenate([w[1] for w in whole])
    w_values = np.concatenate([w[2] for w in whole])
    order = np.argsort(w_at, kind="stable")
    w_ids, w_at, w_values = w_ids[order], w_at[order], w_values[order]
    whole_per_sec = np.bincount(w_at, minlength=len(sec))
    events_before = np.concatenate(([0], np.cumsum(events_per_sec)[:-1]))
    whole_through = np.cumsum(whole_per_sec)
    size = len(ids) + len(w_ids)
    out_ids = np.empty(size, np.int64)
    out_ts = np.empty(size)
    out_values = np.empty(size)
    pos = np.arange(len(w_ids)) + events_before[w_at]
    out_ids[pos], out_ts[pos], out_values[pos] = w_ids, sec[w_at], w_values
    col = np.repeat(np.arange(len(sec)), events_per_sec)
    pos = np.arange(len(ids)) + whole_through[col]
    out_ids[pos], out_ts[pos], out_values[pos] = ids, ts, values
    return out_ids, out_ts, out_values


def generate(duration: "float | str" = "1h", seed: int = 0, start: float = DEFAULT_START,
             **kwargs) -> TrafficBatch:
    """One-shot form of :class:`WeddingTraffic`: ``duration`` of traffic from ``start``.

    Keyword arguments go to :class:`WeddingTraffic` (``weddings``,
    ``incidents``, ``incident_rate``, ``rate_scale``, ``days``).
    """
    return WeddingTraffic(seed, start=start, **kwargs).generate(duration)


class TrafficSource(Source):
    """The simulator as a :class:`~wedmetrics.collect.Collector` source.

    Each collection returns, as samples with their own timestamps, the
    simulated points from where the previous collection stopped up to the
    clock's now (at most ``max_seconds`` of traffic at a time, so starting
    far behind the clock catches up gradually instead of flooding the
    buffer at once).  The first collection starts at ``traffic.start``.

    Parameters
    ----------
    traffic : WeddingTraffic
        The simulation.
    clock : Clock
        Usually the engine's clock (``engine.clock``).
    max_seconds : float
        Most simulated seconds returned by one collection.
    """

    def __init__(self, traffic: WeddingTraffic, clock, *, name: str = "simulator",
                 max_seconds: float = 60.0, **kwargs) -> None:
        super().__init__(name, **kwargs)
        if not (isinstance(max_seconds, (int, float)) and 0 < max_seconds < math.inf):
            raise ValueError(f"max_seconds must be a positive number, got {max_seconds!r}")
        self.traffic, self.clock, self.max_seconds = traffic, clock, float(max_seconds)
        self.position = traffic.start
        self._meta = [(d.name, tuple(sorted(d.labels.items())), d.kind) for d in traffic.series]

    def collect(self) -> list[Sample]:
        now = float(self.clock.now())
        if now <= self.position:
            return []
        upto = min(now, self.position + self.max_seconds)
        batch = self.traffic.window(self.position, upto)
        self.position = upto
        meta = self._meta
        return [Sample(meta[i][0], v, meta[i][1], meta[i][2], t)
                for i, t, v in zip(batch.ids.tolist(), batch.ts.tolist(), batch.values.tolist())]
