"""Collector: sources that work, fail, hang and flood, on a real engine."""
from __future__ import annotations

import asyncio
import threading

import pytest

import wedmetrics as wm
from wedmetrics.collect import Collector, CollectorSelfSource, Sample, Source


def accounted(c: Collector) -> dict:
    """Stats after checking that every collected sample is accounted for."""
    st = c.stats()
    assert st["collected"] == st["delivered"] + sum(st["dropped"].values()) + st["pending"]
    return st


def engine_total(engine) -> int:
    st = engine.stats()
    return st["accepted"] + sum(st["dropped"].values())


def wait_for(predicate, what: str, limit: float = 20.0) -> None:
    """Wait (without asserting on time) until ``predicate()`` holds."""
    ev = threading.Event()
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        ev.wait(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def test_numbers_mappings_and_samples_reach_the_engine_at_the_clock(engine, clock):
    c = Collector(engine)
    c.add(lambda: 7, name="queue.depth", labels={"queue": "mail"})
    c.add(lambda: {"used": 3, "free": 5}, name="pool")
    c.add(lambda: [Sample.of("orders", 2, {"shop": "a"}, "counter"),
                   Sample.of("orders", 1, {"shop": "a"}, "counter", ts=clock.now() - 1)],
          name="shop")
    assert c.collect_once() == 5
    assert engine.query("queue.depth", labels={"queue": "mail"}, last="1m").max == 7
    assert engine.query("pool.used", last="1m").sum == 3
    assert engine.query("pool.free", last="1m").sum == 5
    orders = engine.series("orders", labels={"shop": "a"}, kind="counter")
    assert engine.query(orders, last="1m").sum == 3
    assert engine.query(orders, last="0.5s").sum == 2   # stamped with the clock: the newest
    st = accounted(c)
    assert st["delivered"] == 5 == engine_total(engine) == engine.stats()["accepted"]
    assert st["sources"]["shop"]["ok"] == 1
    c.stop()


def test_a_failing_source_is_counted_and_the_others_go_on(engine):
    def broken():
        raise OSError("sensor unplugged")

    c = Collector(engine)
    c.add(broken, name="sensor")
    c.add(lambda: "fast", name="wrong.shape")
    c.add(lambda: 1.5, name="fine")
    for _ in range(3):
        c.collect_once()
    st = accounted(c)
    assert st["sources"]["sensor"]["errors"] == 3
    assert "OSError: sensor unplugged" in st["sources"]["sensor"]["last_error"]
    assert st["sources"]["wrong.shape"]["errors"] == 3
    assert "'wrong.shape' returned 'fast'" in st["sources"]["wrong.shape"]["last_error"]
    assert st["sources"]["fine"]["ok"] == 3
    assert engine.query("fine", last="1m").count == 3
    c.stop()


def test_a_hanging_sync_source_times_out_holds_up_only_itself_and_its_late_result_is_counted(
        engine):
    release = threading.Event()
    entered = threading.Event()

    def stuck():
        entered.set()
        release.wait(30)
        return {"a": 1, "b": 2}

    c = Collector(engine, timeout=30)
    c.add(stuck, name="stuck", timeout=0.05)
    c.add(lambda: 1.0, name="fine")
    c.collect_once()
    assert entered.is_set()
    c.collect_once()            # still stuck: skipped, not started a second time
    st = accounted(c)
    assert st["sources"]["stuck"]["timeouts"] == 1
    assert st["sources"]["stuck"]["skipped_busy"] == 1
    assert st["sources"]["stuck"]["runs"] == 1
    assert "timed out" in st["sources"]["stuck"]["last_error"]
    assert engine.query("fine", last="1m").count == 2
    release.set()
    wait_for(lambda: c.stats()["dropped"]["late_result"] == 2, "the late result")
    c.collect_once()            # free again: runs and delivers
    st = accounted(c)
    assert st["sources"]["stuck"]["late_samples_discarded"] == 2
    assert st["sources"]["stuck"]["ok"] == 1
    assert engine.query("stuck.a", last="1m").count == 1
    c.stop()
    assert c.stats()["hung_sources"] == []


def test_a_hanging_async_source_is_cancelled_and_runs_again_next_time(engine):
    cancelled = []

    async def stuck():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def fine():
        await asyncio.sleep(0)
        return 4.0

    c = Collector(engine, timeout=30)
    c.add(stuck, name="stuck", timeout=0.05)
    c.add(fine, name="fine")
    c.collect_once()
    c.collect_once()
    st = accounted(c)
    assert st["sources"]["stuck"]["timeouts"] == 2     # cancelled, so not busy the 2nd time
    assert st["sources"]["stuck"]["skipped_busy"] == 0
    wait_for(lambda: len(cancelled) == 2, "both cancellations to reach the coroutine")
    assert engine.query("fine", last="1m").sum == 8.0
    c.stop()


@pytest.mark.parametrize("policy, lo, hi", [("drop_newest", 0, 99), ("drop_oldest", 900, 999)])
def test_a_flooding_source_under_a_drop_policy_keeps_the_right_end(engine, policy, lo, hi):
    c = Collector(engine, buffer_size=100, overflow=policy)
    c.add(lambda: [Sample.of("flood", i, kind="distribution") for i in range(1000)],
          name="flood")
    assert c.collect_once() == 100
    s = engine.query("flood", last="1m")
    assert (s.count, s.min, s.max) == (100, lo, hi)
    st = accounted(c)
    assert st["collected"] == 1000
    assert st["dropped"][policy] == 900
    assert engine_total(engine) == st["delivered"] == 100
    c.stop()


def test_a_flooding_source_under_block_loses_nothing_while_the_drain_runs(engine):
    c = Collector(engine, interval=3600, buffer_size=10, overflow="block", block_timeout=30,
                  batch_size=7)
    c.add(lambda: [Sample.of("flood", i, kind="distribution") for i in range(500)],
          name="flood")
    with c:
        wait_for(lambda: c.stats()["delivered"] == 500, "the flood to drain")
    st = accounted(c)
    assert sum(st["dropped"].values()) == 0
    assert engine.query("flood", last="1m").count == 500
    assert engine.stats()["accepted"] == 500


def test_block_without_a_running_drain_times_out_and_counts(engine):
    c = Collector(engine, buffer_size=10, overflow="block", block_timeout=0.01)
    c.add(lambda: list(Sample.of("flood", i) for i in range(15)), name="flood")
    assert c.collect_once() == 10
    st = accounted(c)
    assert st["dropped"]["block_timeout"] == 5
    c.stop()


def test_background_collection_repeats_and_stop_is_immediate(engine):
    runs = []
    c = Collector(engine, interval=0.01)
    c.add(lambda: runs.append(1) or float(len(runs)), name="ticks")
    slow_ran = threading.Event()
    c.add(lambda: slow_ran.set() or 1.0, name="hourly", interval=3600)
    c.start()
    wait_for(lambda: len(runs) >= 5 and slow_ran.is_set(), "five ticks")
    # the hourly source is due again only in an hour: stop() must not wait for it
    c.stop()
    assert not c.running
    alive = [t.name for t in threading.enumerate() if t.name.startswith("wedmetrics-collector")]
    assert alive == []
    st = accounted(c)
    assert st["pending"] == 0
    # a tick caught mid-run by stop() is abandoned: its sample is a counted late result
    assert st["delivered"] + st["dropped"]["late_result"] == len(runs) + 1
    assert st["delivered"] == engine.stats()["accepted"]
    assert st["sources"]["hourly"]["runs"] == 1


def test_stop_abandons_a_hung_source_and_reports_it(engine):
    release = threading.Event()
    entered = threading.Event()
    c = Collector(engine, interval=3600, timeout=3600)
    c.add(lambda: entered.set() or release.wait(30) and 1.0, name="stuck")
    c.start()
    entered.wait(10)
    c.stop(join_timeout=0.05)
    st = accounted(c)
    assert st["hung_sources"] == ["stuck"]
    release.set()              # let the daemon worker finish so nothing leaks
    wait_for(lambda: c.stats()["dropped"]["late_result"] == 1, "the hung worker to end")
    assert engine.stats()["accepted"] == 0


def test_invalid_values_and_engine_refusals_are_counted_drops(clock):
    engine = wm.MetricsEngine(clock=clock, max_series_per_name=2)
    c = Collector(engine)
    c.add(lambda: [Sample.of("hosts", 1, {"host": h}) for h in "abc"], name="hosts")
    c.add(lambda: [Sample.of("temp", float("nan")), Sample.of("temp", 20.0),
                   Sample.of("retries", -1, kind="counter")], name="mixed")
    assert c.collect_once() == 3
    st = accounted(c)
    assert st["dropped"]["rejected"] == 1        # the third host is over the cap
    assert st["dropped"]["invalid"] == 2         # NaN and a negative increment
    assert any("host" in e for e in st["engine_errors"])
    assert engine.stats()["accepted"] == 3
    c.stop()
    engine.close()


def test_submit_goes_through_the_buffer_and_is_counted(engine):
    c = Collector(engine, buffer_size=2, overflow="drop_newest")
    assert c.submit("signups", 1, kind="counter") is True
    assert c.submit("signups", 1, kind="counter") is True
    assert c.submit("signups", 1, kind="counter") is False
    c.collect_once()
    st = accounted(c)
    assert (st["collected"], st["delivered"], st["dropped"]["drop_newest"]) == (3, 2, 1)
    c.stop()


class Countdown(Source):
    """A Source subclass: returns its own samples."""

    def __init__(self) -> None:
        super().__init__("countdown", labels={"team": "ops"})
        self.left = 3

    def collect(self):
        self.left -= 1
        return self.left


def test_source_subclasses_and_registration_errors(engine):
    c = Collector(engine)
    src = c.add(Countdown())
    with pytest.raises(ValueError, match="'countdown' is already registered"):
        c.add(Countdown())
    with pytest.raises(TypeError, match="only apply when registering a callable"):
        c.add(Countdown(), interval=3)
    with pytest.raises(ValueError, match="name the source"):
        c.add(lambda: 1)
    with pytest.raises(ValueError, match="interval"):
        c.add(lambda: 1, name="x", interval=0)
    with pytest.raises(ValueError, match="overflow policy"):
        Collector(engine, overflow="drop_all")
    c.collect_once()
    assert engine.query("countdown", labels={"team": "ops"}, last="1m").max == 2
    assert c.sources == [src]
    c.remove("countdown")
    with pytest.raises(KeyError, match="no source named 'countdown'"):
        c.remove("countdown")
    c.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        c.add(lambda: 1, name="late")
    with pytest.raises(RuntimeError, match="start once"):
        c.start()


def test_self_metrics_are_increments_of_the_collector_counters(engine):
    def broken():
        raise RuntimeError("no")

    c = Collector(engine, buffer_size=5, overflow="drop_newest")
    c.add(broken, name="broken")
    c.add(lambda: [Sample.of("flood", i) for i in range(8)], name="flood")
    me = CollectorSelfSource(c)
    c.collect_once()

    def figures():
        return {(s.name, s.labels): s.value for s in me.collect()}

    first = figures()
    assert first[("wedmetrics.collector.source_errors", (("source", "broken"),))] == 1
    assert first[("wedmetrics.collector.dropped", (("reason", "drop_newest"),))] == 3
    assert first[("wedmetrics.collector.collected", ())] == 8
    assert first[("wedmetrics.collector.delivered", ())] == 5
    assert first[("wedmetrics.collector.pending", ())] == 0
    c.collect_once()
    c.collect_once()
    second = figures()     # only what happened since the first reading
    assert second[("wedmetrics.collector.source_errors", (("source", "broken"),))] == 2
    assert second[("wedmetrics.collector.dropped", (("reason", "drop_newest"),))] == 6
    assert ("wedmetrics.collector.dropped", (("reason", "drop_oldest"),)) not in second
    c.stop()


def test_self_metrics_option_registers_the_source_and_it_reaches_the_engine(engine):
    c = Collector(engine, self_metrics=True)
    c.add(lambda: 1.0, name="one")
    c.collect_once()
    c.collect_once()
    assert "wedmetrics.collector" in c.stats()["sources"]
    assert engine.query("wedmetrics.collector.delivered", last="1m").sum >= 2
    c.stop()


def test_a_source_added_while_running_starts_without_waiting_for_the_old_schedule(engine):
    c = Collector(engine, interval=3600)
    c.add(lambda: 1.0, name="hourly")
    added_ran = threading.Event()
    with c:
        wait_for(lambda: c.stats()["sources"]["hourly"]["runs"] == 1, "the first run")
        c.add(lambda: added_ran.set() or 2.0, name="late.comer")
        assert added_ran.wait(20)
    assert accounted(c)["delivered"] == 2


def test_in_the_background_a_hung_source_is_timed_out_skipped_and_the_others_go_on(engine):
    release = threading.Event()

    async def stuck_async():
        await asyncio.sleep(3600)

    c = Collector(engine, interval=0.02, timeout=30)
    c.add(lambda: release.wait(30) and 1.0, name="stuck", timeout=0.05)
    c.add(stuck_async, name="stuck.async", timeout=0.05)
    c.add(lambda: 1.0, name="fine")
    with c:
        wait_for(lambda: c.stats()["sources"]["stuck"]["skipped_busy"] >= 3
                 and c.stats()["sources"]["stuck.async"]["timeouts"] >= 3
                 and c.stats()["sources"]["fine"]["ok"] >= 10, "timeouts and ticks")
        release.set()
    st = accounted(c)
    stuck, stuck_async = st["sources"]["stuck"], st["sources"]["stuck.async"]
    # the sync one stayed busy (skipped) until released, then its result came too late
    assert stuck["timeouts"] >= 1 and stuck["late_samples_discarded"] >= 1
    # the async one was cancelled each time and so ran, and timed out, again and again
    assert stuck_async["timeouts"] >= 3 and stuck_async["errors"] == 0
    assert engine.query("fine", last="1m").count == st["sources"]["fine"]["ok"] >= 10
    assert st["hung_sources"] == []
