"""/metrics: what the engine holds, in both formats, checked by the real parsers and promtool."""
from __future__ import annotations

import gzip
import math
import subprocess
import sys

import httpx
import pytest
from hypothesis import given, settings, strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

import wedmetrics as wm
from wedmetrics.http.exposition import (OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition,
                                        escape_label_value, metric_name, metrics_app,
                                        metrics_wsgi_app, negotiate)

from hubserver import live_server
from peers import promtool_check, wsgi_server

OM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")   # Prometheus 2.42's
HOSTILE = ['a"b', "back\\slash", "line\nfeed", "\\n literally", 'end\\', "ünï ☃", "", "}{,=\""]


def samples(families) -> dict:
    """{(sample name, sorted labels): value} of parsed families."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families for s in f.samples}


def key(name, **labels):
    return name, tuple(sorted(labels.items()))


@pytest.fixture
def populated(engine, clock):
    lat = [engine.series("api.latency", {"route": v, "code": "200"}) for v in HOSTILE]
    for i, h in enumerate(lat):
        for j in range(20 + i):
            h.record(0.01 * (j + 1) * (i + 1))
    req = engine.counter("api.requests", {"route": "/photos"})
    req.inc(3)
    req.inc(4.5)
    depth = engine.gauge("queue.depth")
    depth.set(12.0)
    engine.gauge("never.set")            # no value yet: not exposed
    engine.series("quiet.latency")       # no point in the window: NaN quantiles
    clock.advance(2.0)
    return {"latency": lat, "requests": req, "depth": depth}


@pytest.mark.parametrize("accept", [None, OM_ACCEPT])
def test_every_value_is_what_the_engine_holds(engine, populated, accept):
    body, ctype = Exposition(engine).render(accept)
    text = body.decode("utf-8")
    if accept is None:
        assert ctype == TEXT_CONTENT_TYPE
        got = samples(parse_text(text))
    else:
        assert ctype == OPENMETRICS_CONTENT_TYPE and text.endswith("# EOF\n")
        got = samples(parse_om(text))
    for h in populated["latency"]:
        stats = engine.query(h, last="5m")
        labels = dict(h.labels)
        for q, want in (("0.5", stats.p50), ("0.95", stats.p95), ("0.99", stats.p99)):
            assert got[key("api_latency", quantile=q, **labels)] == want
        assert got[key("api_latency_count", **labels)] == stats.count
        assert got[key("api_latency_sum", **labels)] == stats.sum
    assert got[key("api_requests_total", route="/photos")] == 7.5
    assert got[key("queue_depth")] == 12.0
    assert math.isnan(got[key("quiet_latency", quantile="0.95")])
    assert got[key("quiet_latency_count")] == 0
    assert not any(name == "never_set" for name, _ in got)
    assert got[key("wedmetrics_series")] == engine.series_count()
    assert got[key("wedmetrics_points_accepted_total")] == engine.stats()["accepted"]


def test_promtool_accepts_the_text_format(engine, populated):
    engine.series("2xx.ratio-of/all").record(0.5)          # sanitised to _2xx_ratio_of_all
    body, _ = Exposition(engine).render()
    result = promtool_check(body)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"\n_2xx_ratio_of_all_count 1\n" in body


def test_promtool_is_given_openmetrics_too(engine, populated):
    """promtool 2.42 reads only the text format: on OpenMetrics it may only object to
    HELP lines it does not connect to ``_total`` samples, never fail to parse."""
    body, _ = Exposition(engine).render(OM_ACCEPT)
    result = promtool_check(body)
    problems = [line for line in result.stderr.decode().splitlines() +
                result.stdout.decode().splitlines() if line.strip()]
    assert all(line.endswith("no help text") for line in problems), problems


def test_label_values_round_trip_the_parsers(engine, populated):
    for accept, parse in ((None, parse_text), (OM_ACCEPT, parse_om)):
        body, _ = Exposition(engine).render(accept)
        routes = {s.labels["route"] for f in parse(body.decode()) if f.name == "api_latency"
                  for s in f.samples}
        assert routes == set(HOSTILE)


def test_escaping_and_names_follow_the_spec():
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert metric_name("api.latency") == "api_latency"
    assert metric_name("9lives") == "_9lives"
    assert metric_name("ns:sub-system/x") == "ns:sub_system_x"
    assert negotiate(OM_ACCEPT) is True
    assert negotiate("text/plain;version=0.0.4") is False
    assert negotiate(None) is False
    assert negotiate("application/openmetrics-text;q=0, text/plain") is False
    assert negotiate("text/plain", format="openmetrics") is True
    with pytest.raises(ValueError, match="format"):
        negotiate(None, format="json")


def test_series_that_cannot_be_exposed_are_counted_not_garbled(engine):
    engine.series("api.latency").record(1.0)
    engine.series("api_latency").record(2.0)                 # same Prometheus name
    engine.gauge("api_latency_count").set(1.0)               # a sample name of the summary
    engine.series("odd", {"quantile": "x"}).record(1.0)      # the summary's own label
    engine.series("odd2", {"__name__": "x"}).record(1.0)     # reserved by Prometheus
    engine.series("bad.utf8", {"v": "\udcff"}).record(1.0)   # not encodable as UTF-8
    engine.counter("hits_total").inc(2)                      # counter family "hits"
    body, _ = Exposition(engine).render()
    got = samples(parse_text(body.decode()))
    assert got[key("api_latency_count")] == 1                # the first name keeps it
    assert got[key("hits_total")] == 2.0
    skipped = {dict(labels)["reason"]: v for (name, labels), v in got.items()
               if name == "wedmetrics_exposition_skipped_series"}
    assert skipped == {"name_clash": 2, "reserved_label": 2, "invalid_utf8": 1}
    assert promtool_check(body).returncode == 0


steps = st.lists(st.tuples(st.floats(1.0, 4000.0), st.integers(0, 6), st.booleans()),
                 min_size=1, max_size=12)


@settings(max_examples=25, deadline=None)
@given(steps)
def test_cumulative_count_and_sum_lose_and_repeat_nothing(schedule):
    """Whatever the scrape schedule (gaps past the finest retention, across hours),
    ``_count``/``_sum`` are every point recorded, and never go down."""
    clock = wm.ManualClock(1_700_000_000.0)
    engine = wm.MetricsEngine(clock=clock)
    h = engine.series("x")
    c = engine.counter("c")
    exposition = Exposition(engine, window="1m")
    recorded, total, last = 0, 0.0, 0
    for gap, points, scrape in schedule:
        clock.advance(gap)
        for i in range(points):
            h.record(0.5 + i)
            c.inc(1.0 + i)
            recorded += 1
            total += 0.5 + i
        if scrape:
            got = samples(parse_text(exposition.render()[0].decode()))
            assert got[key("x_count")] >= last
            last = got[key("x_count")]
    got = samples(parse_text(exposition.render()[0].decode()))
    assert got[key("x_count")] == recorded
    assert got[key("x_sum")] == pytest.approx(total, rel=1e-12, abs=1e-12)
    assert got[key("c_total")] == pytest.approx(total + recorded * 0.5, rel=1e-12, abs=1e-12)
    engine.close()


def test_quantiles_cover_the_configured_window(engine, clock):
    h = engine.series("lat")
    h.record(100.0)
    h.record(100.0)
    clock.advance(90.0)
    h.record(1.0)
    for window, want in (("1m", 1.0), ("5m", 100.0)):
        got = samples(parse_text(Exposition(engine, window=window).render()[0].decode()))
        assert got[key("lat", quantile="0.5")] == pytest.approx(want, rel=0.02)
        assert got[key("lat_count")] == 3


def test_cache_answers_identical_scrapes_within_its_ttl(engine, clock):
    h = engine.series("lat")
    h.record(1.0)
    exposition = Exposition(engine, cache_ttl="1h")
    first = exposition.render()[0]
    h.record(2.0)
    assert exposition.render()[0] == first
    assert Exposition(engine).render()[0] != first


def test_metrics_app_is_asgi_without_a_framework(engine, populated):
    app = metrics_app(engine)
    with live_server(app) as base:
        r = httpx.get(base + "/", headers={"Accept": OM_ACCEPT, "Accept-Encoding": "gzip"})
        assert r.status_code == 200
        assert r.headers["content-type"] == OPENMETRICS_CONTENT_TYPE
        assert r.headers["content-encoding"] == "gzip"
        assert r.text.endswith("# EOF\n")
        plain = httpx.get(base + "/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.headers["content-type"] == TEXT_CONTENT_TYPE
        assert "api_requests_total{route=\"/photos\"} 7.5\n" in plain.text
        assert httpx.get(base + "/?format=openmetrics").text.endswith("# EOF\n")
        assert httpx.get(base + "/?format=xml").status_code == 400
        assert httpx.post(base + "/").status_code == 405
        assert httpx.head(base + "/").content == b""


def test_metrics_wsgi_app(engine, populated):
    with wsgi_server(metrics_wsgi_app(engine)) as base:
        r = httpx.get(base + "/metrics", headers={"Accept": OM_ACCEPT,
                                                  "Accept-Encoding": "identity"})
        assert r.status_code == 200
        assert r.headers["content-type"] == OPENMETRICS_CONTENT_TYPE
        got = samples(parse_om(r.text))
        assert got[key("queue_depth")] == 12.0
        with httpx.stream("GET", base + "/?format=text",
                          headers={"Accept-Encoding": "gzip"}) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            body = gzip.decompress(b"".join(zipped.iter_raw()))
        assert b"queue_depth 12.0\n" in body
        assert httpx.put(base + "/").status_code == 405
        assert httpx.get(base + "/?format=nope").status_code == 400


def test_the_exposition_apps_do_not_import_a_web_framework():
    code = ("import sys, wedmetrics as wm; wm.http.metrics_app; wm.http.metrics_wsgi_app; "
            "heavy = [m for m in ('fastapi', 'starlette', 'pydantic_core._pydantic_core') "
            "if m in sys.modules and m != 'pydantic_core._pydantic_core']; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_the_hubs_metrics_route_serves_operators_and_tenants(clock):
    from wedmetrics.http import create_app

    engine = wm.MetricsEngine(clock=clock)
    calendar = wm.WeddingCalendar([wm.Wedding(id="w-rose", org_id="bliss-events",
                                              date="2023-11-18", timezone="UTC",
                                              guest_count=120)])
    engine.series("api.latency", {"org_id": "bliss-events"}).record(1.0)
    engine.series("api.latency", {"wedding_id": "w-rose"}).record(2.0)
    engine.series("api.latency", {"org_id": "other-co"}).record(3.0)
    app = create_app(engine, calendar=calendar,
                     tokens={"tok-bliss-0001": "bliss-events", "tok-ops-00001": "*"})
    with live_server(app) as base:
        assert httpx.get(base + "/metrics").status_code == 401
        ops = httpx.get(base + "/metrics", headers={"Authorization": "Bearer tok-ops-00001"})
        got = samples(parse_text(ops.text))
        assert {dict(l).get("org_id") for n, l in got if n == "api_latency_count"} == \
            {"bliss-events", None, "other-co"}
        assert any(n == "wedmetrics_hub_requests_total" for n, _ in got)
        tenant = httpx.get(base + "/metrics", params={"format": "openmetrics"},
                           headers={"Authorization": "Bearer tok-bliss-0001"})
        assert tenant.headers["content-type"] == OPENMETRICS_CONTENT_TYPE
        got = samples(parse_om(tenant.text))
        counts = {l: v for (n, l), v in got.items() if n == "api_latency_count"}
        assert counts == {(("org_id", "bliss-events"),): 1, (("wedding_id", "w-rose"),): 1}
        assert "other-co" not in tenant.text
        assert "wedmetrics_hub_" not in tenant.text
    engine.close()
