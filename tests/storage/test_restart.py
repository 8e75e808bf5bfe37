"""A new engine on an existing store: it knows the stored series and resumes their buckets."""
from __future__ import annotations

import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.storage import MemoryBackend, SQLiteBackend

T0 = 1_699_999_200.0          # a whole hour


def _engine(store, clock, **kw):
    return wm.MetricsEngine(clock=clock, storage=store, flush_options={"thread": False}, **kw)


@pytest.fixture(params=["sqlite", "memory"])
def reopen(request, tmp_path):
    """``reopen(writer_id=None)`` -> a backend on the same data, as a new process opens it."""
    shared = MemoryBackend.shared_store()

    def make(writer_id=None):
        if request.param == "sqlite":
            return SQLiteBackend(tmp_path / "m.db", org_id="org-1", writer_id=writer_id)
        return MemoryBackend("org-1", store=shared, writer_id=writer_id)
    return make


def test_a_new_engine_knows_the_stored_series_by_name(reopen):
    clock = wm.ManualClock(T0)
    first = _engine(reopen(), clock)
    orders = first.counter("orders", {"shop": "a"})
    latency = first.series("latency")
    for i in range(600):
        orders.inc(1.0, ts=T0 + i)
        latency.record(0.1 + i / 1000, ts=T0 + i)
    first.close()

    second = _engine(reopen(), wm.ManualClock(T0 + 3 * 3600))
    # no record first: every read works by name
    assert sorted(second.names()) == ["latency", "orders"]
    (h,) = second.series_list("orders")
    assert h.kind == "counter" and h.labels == {"shop": "a"}
    hist = second.history("orders", "1m", T0, T0 + 600)
    assert int(hist.count.sum()) == 600 and float(hist.sum.sum()) == 600.0
    assert int(second.history("latency", "1h", T0, T0 + 3600).count.sum()) == 600
    assert second.query("orders", last="1m").count == 0        # nothing recent in memory
    assert len(second.buckets("orders", "1m", T0, T0 + 600)) == 0
    assert second.stats()["restart"]["series"] == {"series": 2, "skipped": 0, "error": None}
    # recording again uses the adopted series, with its kind
    assert second.counter("orders", {"shop": "a"}) is h
    with pytest.raises(ValueError, match="counter"):
        second.series("orders", {"shop": "a"})
    second.record("orders", 2.0, labels={"shop": "a"})
    assert second.series_count() == 2
    second.close()


def test_adopted_ids_never_collide_with_live_series(reopen):
    clock = wm.ManualClock(T0)
    first = _engine(reopen(), clock)
    for name in ("a", "b", "c"):
        first.series(name).record(1.0, ts=T0)
    first.close()
    second = _engine(reopen(), wm.ManualClock(T0 + 7200))
    fresh = second.series("d")
    ids = [h.id for h in second.series_list()]
    assert len(set(ids)) == 4 and fresh.id not in {h.id for h in second.series_list("a")}
    fresh.record(5.0, ts=T0 + 7200)
    assert second.query(fresh, last="1m", end=T0 + 7201).count == 1
    assert second.query("a", last="1m", end=T0 + 7201).count == 0
    second.close()


def test_stored_series_beyond_the_cardinality_cap_are_reported_not_fatal(reopen):
    first = _engine(reopen(), wm.ManualClock(T0))
    for i in range(5):
        first.series("hits", {"n": str(i)}).record(1.0, ts=T0)
    first.close()
    second = _engine(reopen(), wm.ManualClock(T0 + 7200), max_series_per_name=3)
    assert len(second.series_list("hits")) == 3
    assert second.stats()["restart"]["series"]["skipped"] == 2
    assert second.stats()["dropped"]["cardinality"] == 0
    # the history by name still covers every stored label set
    assert int(second.history("hits", "1h", T0, T0 + 3600).count.sum()) == 5
    second.close()
