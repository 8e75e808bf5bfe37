"""Instrumentation helpers and the psutil sources, on a real engine."""
from __future__ import annotations

import asyncio
import gc
import sys
import threading

import pytest

from wedmetrics.collect import Collector, InProgress, ProcessSource, SystemSource, Timer
from wedmetrics.collect import counted, timed


def test_timer_records_one_positive_duration_even_when_the_block_raises(engine):
    t = Timer(engine, "db.query", labels={"table": "guests"})
    with t:
        sum(range(1000))
    first = t.elapsed
    with pytest.raises(KeyError):
        with t:
            raise KeyError("guest")
    s = engine.query("db.query", labels={"table": "guests"}, last="1m")
    assert s.count == 2 and first > 0 and t.elapsed > 0
    assert s.sum == pytest.approx(first + t.elapsed, rel=0.02)


def test_engine_timer_and_a_handle_timer_share_the_series(engine):
    h = engine.series("render", kind="distribution")
    with Timer(h):
        pass
    with engine.timer("render"):
        pass
    assert engine.query(h, last="1m").count == 2


def test_timer_refuses_reentry_and_wrong_targets(engine):
    t = Timer(engine, "x")
    with t:
        with pytest.raises(RuntimeError, match="already running"):
            t.__enter__()
    with pytest.raises(ValueError, match="give the metric name"):
        Timer(engine)
    with pytest.raises(ValueError, match="needs a 'distribution' series"):
        Timer(engine.series("hits", kind="counter"))
    with pytest.raises(TypeError, match="already a series handle"):
        Timer(engine.series("x"), "x")


def test_timed_sync_and_async_functions(engine):
    @timed(engine, "photos.resize", labels={"size": "thumb"})
    def resize(n):
        return n * 2

    @timed(engine)
    async def fetch(n):
        await asyncio.sleep(0)
        if n < 0:
            raise ValueError("negative")
        return n

    assert resize(3) == 6 and resize.__name__ == "resize"
    assert asyncio.run(fetch(5)) == 5
    with pytest.raises(ValueError):
        asyncio.run(fetch(-1))
    assert engine.query("photos.resize", labels={"size": "thumb"}, last="1m").count == 1
    name = f"{__name__}.test_timed_sync_and_async_functions.<locals>.fetch"
    assert fetch.series.name == name
    assert engine.query(name, last="1m").count == 2


def test_timed_refuses_generators(engine):
    with pytest.raises(TypeError, match="generator function"):
        @timed(engine, "gen")
        def gen():
            yield 1


def test_counted_counts_calls_and_errors(engine):
    @counted(engine, "rsvp.calls", errors="rsvp.errors")
    def rsvp(ok):
        if not ok:
            raise RuntimeError("full")

    @counted(engine)
    async def ping():
        return "pong"

    rsvp(True)
    rsvp(True)
    with pytest.raises(RuntimeError):
        rsvp(False)
    assert asyncio.run(ping()) == "pong"
    assert engine.query("rsvp.calls", last="1m").sum == 3
    assert engine.query("rsvp.errors", last="1m").sum == 1
    assert engine.query(ping.series, last="1m").sum == 1


def test_in_progress_gauge_tracks_concurrent_blocks(engine):
    gauge = InProgress(engine, "http.inflight")
    inside = threading.Barrier(4)
    leave = threading.Event()

    def request():
        with gauge:
            inside.wait(10)
            leave.wait(10)

    threads = [threading.Thread(target=request) for _ in range(3)]
    for t in threads:
        t.start()
    inside.wait(10)
    assert gauge.level == 3 and gauge.handle.value == 3
    leave.set()
    for t in threads:
        t.join()
    assert gauge.level == 0 and gauge.handle.value == 0
    assert engine.query("http.inflight", last="1m").max == 3


def test_system_and_process_sources_report_real_figures(engine):
    c = Collector(engine, system=True, process=True)
    c.collect_once()
    gc.collect()
    c.collect_once()
    st = c.stats()
    assert st["sources"]["system"]["errors"] == 0, st["sources"]["system"]["last_error"]
    assert st["sources"]["process"]["errors"] == 0, st["sources"]["process"]["last_error"]
    mem = engine.query("system.memory.used_bytes", last="1m")
    assert mem.count == 2 and mem.min > 0
    assert 0 <= engine.query("system.cpu.percent", last="1m").max <= 100
    assert engine.query("process.memory.rss_bytes", last="1m").min > 1_000_000
    assert engine.query("process.threads", last="1m").min >= 1
    assert engine.query("process.open_fds", last="1m").min >= 3
    # the explicit gc.collect() ran a generation-2 collection between the two
    gen2 = engine.query("process.gc.collections", labels={"generation": "2"}, last="1m")
    assert gen2.sum >= 1
    c.stop()


def test_missing_psutil_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)   # what an absent package looks like
    with pytest.raises(ImportError, match=r"pip install 'wedmetrics\[system\]'"):
        SystemSource()
    with pytest.raises(ImportError, match="ProcessSource needs psutil"):
        ProcessSource()
