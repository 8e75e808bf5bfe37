"""RemoteWriteExporter against a real Prometheus 2.x receiver and a scripted local HTTP server."""
from __future__ import annotations

import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

import wedmetrics as wm
from tests.peers import Prometheus, require_binary

snappy = pytest.importorskip("snappy")
from wedmetrics.export import _prompb  # noqa: E402
from wedmetrics.export.remote_write import RemoteWriteExporter, metric_name  # noqa: E402


def _record_second(engine, handles, rng, t):
    lat_a, lat_b, sent, depth = handles
    for v in rng.lognormal(-3, 0.6, size=int(rng.integers(1, 20))):
        lat_a.record(float(v), t + 0.5)
    if rng.random() < 0.7:      # some seconds have no point: no sample either
        lat_b.record(float(rng.lognormal(-2, 0.3)), t + 0.25)
    sent.inc(float(rng.integers(0, 5)), t + 0.1)
    depth.set(float(rng.integers(0, 100)), t + 0.9)


def _expected(engine, t0, t1, quantiles=("0.5", "0.95", "0.99")):
    """What the engine holds at 1 s, in the exporter's documented mapping."""
    out = {}
    ext = (("instance", "test-host"), ("org", "acme"))
    for h in engine.series_list():
        cols = engine.buckets(h, "1s", t0, t1)
        keep = cols["count"] > 0
        ts = cols["start"][keep] + 1.0
        count, total = cols["count"][keep], cols["sum"][keep]
        base = tuple(sorted(h.labels.items())) + ext
        name = metric_name(h.name)

        def put(suffix, values, extra=()):
            labels = tuple(sorted(base + extra + (("__name__", name + suffix),)))
            out[labels] = [(float(a), float(b)) for a, b in zip(ts, values)]
        if h.kind == "counter":
            put("_total", np.cumsum(total))
        elif h.kind == "gauge":
            put("", total / count)
        else:
            put("_count", np.cumsum(count).astype(float))
            put("_sum", np.cumsum(total))
            for q, col in zip(quantiles, ("p50", "p95", "p99")):
                put("", cols[col][keep], (("quantile", q),))
    return out


def test_prometheus_holds_what_the_engine_holds_across_a_restart(tmp_path):
    prom = Prometheus(require_binary("prometheus"), tmp_path).start()
    t0 = math.floor(time.time()) - 900.0        # recent: inside Prometheus' head block
    clock = wm.ManualClock(t0)
    engine = wm.MetricsEngine(clock=clock, lateness="1s")
    handles = (engine.series("api.latency", {"route": "/rsvp"}),
               engine.series("api.latency", {"route": "/photos/{id}"}),
               engine.counter("rsvp.sent"), engine.gauge("queue.depth"))
    exporter = RemoteWriteExporter(prom.url + "/api/v1/write", engine, resolution="1s",
                                   instance="test-host", org="acme", thread=False,
                                   max_samples_per_send=97, backoff=0.01, max_backoff=0.05)
    rng = np.random.default_rng(7)
    try:
        for second in range(150):
            t = t0 + second
            _record_second(engine, handles, rng, t)
            clock.set(t + 1.0)
            if second % 10 == 9:
                if second == 59:
                    prom.stop()                 # receiver down mid-stream
                if second == 99:
                    prom.start()                # same data directory: its WAL is replayed
                ok = exporter.flush()
                assert ok == (not 59 <= second < 99)
        engine.close()
        stats = exporter.close(timeout=10)
        assert stats["retried"] >= 4
        assert stats["dropped"] == {"queue_full": 0, "rejected": 0, "close_timeout": 0}
        expected = _expected(engine, t0, t0 + 160)
        assert stats["samples_sent"] == sum(len(v) for v in expected.values())
        got = prom.samples('{__name__=~"api_latency.*|rsvp_sent_total|queue_depth"}',
                           at=t0 + 200)
        assert got.keys() == expected.keys()
        for labels, samples in expected.items():
            assert got[labels] == samples, labels   # nothing lost, nothing twice
    finally:
        prom.stop()


# -- protocol, retries, drops against a scripted receiver ------------------------------
class _Receiver(ThreadingHTTPServer):
    """Answers POSTs with the next scripted status (200 once the script is used up)."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1/write"

    def shut(self):
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = _prompb.WriteRequest()
        request.ParseFromString(snappy.uncompress(body))
        self.server.requests.append((dict(self.headers), request))
        status = self.server.script.pop(0) if self.server.script else 200
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *args):
        pass


def _engine():
    return wm.MetricsEngine(clock=wm.ManualClock(1_700_000_000.0), lateness="1s")


def _record(engine, n_seconds=5):
    """One point a second; closed buckets reach feeds made before they close."""
    t0 = engine.clock.now()
    h = engine.series("web.latency", {"route": "/"})
    for s in range(n_seconds):
        h.record(0.1 * (s + 1), t0 + s)
    engine.clock.set(t0 + n_seconds + 2)


def test_wire_format_headers_and_sorted_labels():
    server = _Receiver([])
    engine = _engine()
    try:
        exporter = RemoteWriteExporter(server.url, engine, resolution="1s", thread=False,
                                       instance="i-1", org="o", external_labels={"dc": "ams"})
        _record(engine)
        assert exporter.flush()
        exporter.close()
    finally:
        engine.close()
        server.shut()
    headers, request = server.requests[0]
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    names = set()
    for series in request.timeseries:
        labels = [(lab.name, lab.value) for lab in series.labels]
        assert labels == sorted(labels)
        d = dict(labels)
        assert (d["instance"], d["org"], d["dc"], d["route"]) == ("i-1", "o", "ams", "/")
        names.add(d["__name__"])
        stamps = [s.timestamp for s in series.samples]
        assert stamps == sorted(stamps) and len(stamps) == 5
    assert names == {"web_latency_count", "web_latency_sum", "web_latency"}


def test_retries_5xx_and_429_in_order_and_drops_4xx_without_retry():
    server = _Receiver([503, 429, 200, 400])
    engine = _engine()
    try:
        exporter = RemoteWriteExporter(server.url, engine, resolution="1s", thread=False,
                                       max_samples_per_send=6, backoff=0.01)
        _record(engine, n_seconds=4)
        assert not exporter.flush()            # 503: kept, back-off
        assert not exporter.flush()            # 429: kept again
        assert exporter.flush()                # 200 for the first batch, 400 for the second
        stats = exporter.close()
    finally:
        engine.close()
        server.shut()
    bodies = [r.SerializeToString() for _, r in server.requests]
    assert bodies[0] == bodies[1] == bodies[2]       # the same head batch, retried
    # 4 buckets x 5 samples in batches of 6: the first tried three times, the
    # second refused (400) and not sent again, the last two accepted
    assert len(bodies) == 6 and bodies[3] != bodies[2]
    assert stats["retried"] == 2
    assert stats["samples_sent"] == 6 + 6 + 2
    assert stats["dropped"]["rejected"] == 6
    assert "HTTP 400" in stats["last_error"]


def test_bounded_queue_counts_drops_while_the_receiver_is_down():
    engine = _engine()
    try:
        exporter = RemoteWriteExporter("http://127.0.0.1:9/api/v1/write", engine,
                                       resolution="1s", thread=False, max_queue_samples=10,
                                       timeout=1.0)
        _record(engine, n_seconds=6)
        assert not exporter.flush()
        stats = exporter.close(timeout=0.05)
    finally:
        engine.close()
    assert stats["dropped"]["queue_full"] == 6 * 5 - 10
    assert stats["dropped"]["close_timeout"] == 10
    assert stats["samples_sent"] == 0 and "ConnectionRefusedError" in stats["last_error"]


def test_storage_and_exporter_both_get_every_bucket():
    server = _Receiver([])
    t0 = 1_700_000_000.0
    clock = wm.ManualClock(t0)
    storage = wm.MemoryBackend("acme")
    engine = wm.MetricsEngine(clock=clock, storage=storage, lateness="1s", flush_interval=0.01)
    exporter = RemoteWriteExporter(server.url, engine, resolution="1s", thread=False)
    h = engine.series("web.latency")
    for s in range(30):
        h.record(0.01 * s, t0 + s)
        clock.set(t0 + s + 1)
        if s % 7 == 0:
            exporter.flush()
    engine.close()
    exporter.close()
    server.shut()
    stored = storage.read_buckets(wm.SeriesKey.of("web.latency"), 1.0, t0, t0 + 60)
    counts = [s.value for _, r in server.requests for ts in r.timeseries
              if dict((lab.name, lab.value) for lab in ts.labels)["__name__"] ==
              "web_latency_count" for s in ts.samples]
    assert len(stored) == 30 and int(stored.count.sum()) == 30
    assert counts == [float(i) for i in range(1, 31)]


def test_bad_arguments_are_refused():
    engine = wm.MetricsEngine(clock=wm.ManualClock(0.0))
    try:
        with pytest.raises(ValueError, match="http"):
            RemoteWriteExporter("ftp://x/y", engine, thread=False)
        with pytest.raises(ValueError, match="resolution"):
            RemoteWriteExporter("http://127.0.0.1:9/w", engine, resolution="10s", thread=False)
        with pytest.raises(ValueError, match="quantiles"):
            RemoteWriteExporter("http://127.0.0.1:9/w", engine, quantiles=(1.5,), thread=False)
    finally:
        engine.close()


def test_metric_names_are_sanitized():
    assert metric_name("api.latency") == "api_latency"
    assert metric_name("9lives-x") == "_9lives_x"
    assert metric_name("ns:sub_total") == "ns:sub_total"


def test_an_exporter_drain_never_lets_the_wal_forget_unstored_points(tmp_path):
    t0 = 1_700_000_000.0
    clock = wm.ManualClock(t0)
    engine = wm.MetricsEngine(clock=clock, storage=wm.SQLiteBackend(tmp_path / "m.db"),
                              durability="wal", wal_dir=tmp_path / "wal", lateness="1s",
                              flush_options={"thread": False})
    feed = engine.closed_feed()
    h = engine.series("web.latency")
    for s in range(5):
        h.record(0.1, t0 + s)
    clock.set(t0 + 10)
    assert len(feed()) == 5 * 1                  # the exporter took its share ...
    assert engine._pulled_until == -math.inf      # ... the flusher has pulled nothing yet
    assert len(engine.drain_closed()) == 5       # its own share waited in its feed
    assert engine._pulled_until == t0 + 9
    engine.close()
