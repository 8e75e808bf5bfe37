"""The wedding-traffic simulator: determinism, shape, and incidents that show."""
from __future__ import annotations

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.collect import simulate as sim
from wedmetrics.collect.simulate import Incident, WeddingTraffic
from wedmetrics.weddings import Wedding

START = sim.DEFAULT_START          # Saturday 2026-06-13 12:00 UTC


def one_wedding(guests: int = 150) -> Wedding:
    return Wedding(id="w-kew", org_id="acme", date="2026-06-13", timezone="UTC",
                   guest_count=guests, venue="Kew", start_time="13:00", end_time="23:00")


def test_same_seed_same_points_other_seed_other_points():
    a = sim.generate("20m", seed=11)
    b = sim.generate("20m", seed=11)
    c = sim.generate("20m", seed=12)
    for x, y in ((a.ids, b.ids), (a.ts, b.ts), (a.values, b.values)):
        np.testing.assert_array_equal(x, y)
    assert a.incidents == b.incidents
    assert len(a) != len(c) or not np.array_equal(a.values, c.values)


def test_stream_chunks_concatenate_to_the_window():
    traffic = WeddingTraffic(seed=3, incident_rate=1.0)
    whole = traffic.window(START, START + 1500)
    chunks = list(WeddingTraffic(seed=3, incident_rate=1.0).stream(7.5, end=START + 1500))
    assert chunks[0].start == START and chunks[-1].end == START + 1500
    assert all(a.end == b.start for a, b in zip(chunks, chunks[1:]))
    np.testing.assert_array_equal(np.concatenate([c.ids for c in chunks]), whole.ids)
    np.testing.assert_array_equal(np.concatenate([c.ts for c in chunks]), whole.ts)
    np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]), whole.values)


def test_points_are_sorted_inside_the_window_and_well_formed():
    b = sim.generate("30m", seed=1)
    assert b.ids.dtype == np.int64 and b.ts.dtype == np.float64 and b.values.dtype == np.float64
    assert np.all(np.diff(b.ts) >= 0)
    assert b.ts.min() >= START and b.ts.max() < START + 1800
    assert np.isfinite(b.values).all()
    kinds = np.array([s.kind for s in b.series])[b.ids]
    assert (b.values[kinds == "counter"] >= 0).all()
    assert (b.values[kinds == "distribution"] > 0).all()
    names = {s.name for s in b.series}
    assert {"api.latency", "api.requests", "api.errors", "vendor.latency", "backup.duration",
            "photos.uploaded", "guests.online"} <= names
    per_wedding = [s for s in b.series if s.name in ("photos.uploaded", "guests.online")]
    assert per_wedding and all(set(s.labels) == {"wedding_id"} for s in per_wedding)


def test_requests_counter_matches_the_latency_events_second_by_second():
    b = sim.generate("10m", seed=4)
    route = {"route": "/guests"}
    events = b.ts[b.mask("api.latency", route)]
    req = b.mask("api.requests", route)
    per_second = np.bincount((events - START).astype(np.int64), minlength=600)
    np.testing.assert_array_equal(b.values[req], per_second)
    np.testing.assert_array_equal(b.ts[req], START + np.arange(600))


def test_photo_uploads_burst_in_the_reception_and_follow_guest_count():
    def uploads(guests, t0, t1):
        t = WeddingTraffic(seed=2, weddings=[one_wedding(guests)], incident_rate=0)
        b = t.window(t0, t1)
        return b.values[b.mask("photos.uploaded")].sum()

    ceremony = uploads(150, START + 3600, START + 3600 + 1800)      # 13:00-13:30
    w = WeddingTraffic(seed=2, weddings=[one_wedding(150)], incident_rate=0)
    first_dance = w._plans[0].bursts[0][0] + w._plans[0].start
    dancing = uploads(150, first_dance, first_dance + 600)
    assert dancing / 600 > 4 * ceremony / 1800        # a burst, not a trickle
    assert uploads(300, START + 3600, START + 5400) > 1.6 * ceremony
    assert uploads(150, START - 3600, START) == 0     # nothing before the event


def test_saturday_traffic_is_higher_than_tuesday():
    sat = sim.generate("1h", seed=5, start=START, incident_rate=0)
    tue = sim.generate("1h", seed=5, start=START + 3 * 86400, incident_rate=0)
    assert sat.mask("api.latency").sum() > 1.8 * tue.mask("api.latency").sum()


def test_calendar_puts_most_weddings_on_saturdays():
    cal = sim.wedding_calendar(seed=9, start=START, days=28)
    days = [w.date.weekday() for w in cal]
    assert days.count(5) > 0.45 * len(days)
    assert days.count(5) > 1.5 * max(days.count(d) for d in range(7) if d != 5)
    assert all(12 <= w.guest_count <= 450 for w in cal)
    assert all(w.start_time.hour >= 12 for w in cal)


def test_injected_latency_spike_shows_in_the_data():
    spike = Incident("latency_spike", "api.latency", {"route": "/rsvp"},
                     START + 600, START + 900, magnitude=6.0)
    b = sim.generate("30m", seed=6, incidents=[spike])
    assert b.incidents == [spike]
    rsvp = b.mask("api.latency", {"route": "/rsvp"})
    inside = rsvp & (b.ts >= spike.start) & (b.ts < spike.end)
    outside = rsvp & ~inside
    assert np.median(b.values[inside]) > 4 * np.median(b.values[outside])
    other = b.mask("api.latency", {"route": "/guests"})
    other_in = other & (b.ts >= spike.start) & (b.ts < spike.end)
    assert np.median(b.values[other_in]) < 1.5 * np.median(b.values[other & ~other_in])


def test_injected_error_burst_and_silent_vendor_show_in_the_data():
    burst = Incident("error_burst", "api.errors", {"route": "/timeline"},
                     START + 300, START + 600, magnitude=0.3)
    silent = Incident("vendor_silent", "vendor.latency", {"vendor": "sms"},
                      START + 700, START + 1300)
    b = sim.generate("30m", seed=7, incidents=[burst, silent])
    route = {"route": "/timeline"}
    err, req = b.mask("api.errors", route), b.mask("api.requests", route)
    during = (b.ts >= burst.start) & (b.ts < burst.end)
    rate_in = b.values[err & during].sum() / b.values[req & during].sum()
    rate_out = b.values[err & ~during].sum() / b.values[req & ~during].sum()
    assert rate_in > 0.2 and rate_out < 0.02
    sms = b.mask("vendor.latency", {"vendor": "sms"})
    assert not (sms & (b.ts >= silent.start) & (b.ts < silent.end)).any()
    assert (sms & (b.ts < silent.start)).sum() > 100


def test_random_incidents_are_deterministic_valid_and_not_before_start():
    t = WeddingTraffic(seed=8, incident_rate=3.0)
    found = t.incidents(START, START + 6 * 3600)
    assert found == WeddingTraffic(seed=8, incident_rate=3.0).incidents(START, START + 6 * 3600)
    assert len(found) >= 6
    assert all(i.start >= START for i in found)
    assert {i.kind for i in found} <= set(sim.INCIDENT_KINDS)
    assert WeddingTraffic(seed=8, incident_rate=0).incidents(START, START + 6 * 3600) == []


def test_feeding_a_real_engine_accepts_every_point():
    traffic = WeddingTraffic(seed=10, incident_rate=0)
    engine = wm.MetricsEngine(clock=wm.ManualClock(START))
    ids = traffic.register(engine)
    total = 0
    for chunk in traffic.stream("1m", end=START + 600):
        engine.clock.set(chunk.end)
        chunk.feed(engine, ids)
        total += len(chunk)
    st = engine.stats()
    assert st["accepted"] == total and sum(st["dropped"].values()) == 0
    b = traffic.window(START, START + 600)
    want = b.values[b.mask("api.latency", {"route": "/rsvp"})]
    got = engine.query("api.latency", labels={"route": "/rsvp"}, last="20m")
    assert got.count == len(want)
    assert got.max == pytest.approx(want.max())
    engine.close()


@pytest.mark.parametrize("kwargs, match", [
    ({"seed": -1}, "seed"),
    ({"rate_scale": 0}, "rate_scale"),
    ({"incident_rate": -1}, "incident_rate"),
    ({"start": float("nan")}, "start"),
])
def test_bad_configuration_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeddingTraffic(**kwargs)


def test_bad_incidents_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="incident kind"):
        Incident("outage", "api.latency", {"route": "/rsvp"}, START, START + 1)
    with pytest.raises(ValueError, match="end > start"):
        Incident("latency_spike", "api.latency", {"route": "/rsvp"}, START, START)
    with pytest.raises(ValueError, match="not a simulated series"):
        WeddingTraffic(incidents=[Incident("latency_spike", "api.latency", {"route": "/x"},
                                           START, START + 60, 5.0)])
    with pytest.raises(ValueError, match="targets"):
        WeddingTraffic(incidents=[Incident("error_burst", "api.latency", {"route": "/rsvp"},
                                           START, START + 60, 0.2)])
    with pytest.raises(ValueError, match="magnitude > 1"):
        WeddingTraffic(incidents=[Incident("latency_spike", "api.latency", {"route": "/rsvp"},
                                           START, START + 60, 0.5)])
    with pytest.raises(ValueError, match="chunk_seconds"):
        next(WeddingTraffic().stream(0))


def test_backups_run_on_schedule():
    b = sim.generate("6h", seed=12, incident_rate=0)
    db = b.mask("backup.duration", {"job": "database"})
    assert db.sum() == 6                    # one run an hour, at :05, ending minutes later
    minutes = ((b.ts[db] - START) % 3600) / 60
    assert ((minutes > 5) & (minutes < 35)).all()
    assert np.allclose(b.ts[db] - b.values[db] - START, 300 + 3600 * np.arange(6))


def test_event_times_inside_a_second_are_uniform_and_series_follow_the_rates():
    """The sort-free generator: sorted uniform offsets, rate-proportional series."""
    rng = np.random.default_rng(0)
    lam = np.tile([30.0, 10.0, 0.0], (400, 1))          # 400 seconds, three series
    sec = 1000.0 + np.arange(400)
    ids, ts, values, counts = sim._events(rng, lam, sec, np.array([7, 8, 9]),
                                          np.array([1.0, 2.0, 3.0]), np.ones(400))
    assert np.all(np.diff(ts) >= 0) and ts.min() >= 1000 and ts.max() < 1400
    offsets = ts - np.floor(ts)
    deciles = np.bincount((offsets * 10).astype(int), minlength=10) / len(offsets)
    assert np.abs(deciles - 0.1).max() < 0.01           # ~16,000 events: 3+ sigma margin
    assert len(ids) == counts.sum() and 9 not in ids    # a zero rate gets nothing
    assert abs((ids == 7).mean() - 0.75) < 0.01
    np.testing.assert_array_equal(counts[:, 0], np.bincount((ts[ids == 7] - 1000).astype(int),
                                                            minlength=400))
    assert abs(np.median(values[ids == 8]) / np.median(values[ids == 7]) - 2.0) < 0.1


def test_traffic_source_feeds_a_collector_up_to_the_clock():
    clock = wm.ManualClock(START)
    engine = wm.MetricsEngine(clock=clock)
    traffic = WeddingTraffic(seed=13, incident_rate=0)
    collector = wm.Collector(engine, buffer_size=100_000)
    source = collector.add(sim.TrafficSource(traffic, clock, max_seconds=45))
    assert collector.collect_once() == 0           # the clock has not moved yet
    clock.advance(60)
    first = collector.collect_once()               # capped at 45 simulated seconds
    second = collector.collect_once()              # the remaining 15
    assert source.position == START + 60
    assert first == len(traffic.window(START, START + 45))
    assert second == len(traffic.window(START + 45, START + 60))
    st = collector.stats()
    assert st["delivered"] == first + second == engine.stats()["accepted"]
    assert engine.query("api.requests", last="5m").count == 5 * 60
    collector.stop()
    engine.close()
