"""Bad input gets a clear error or a counted drop, the same on every path (issue #11).

Items 1, 3, 7, 8 and 9: the ``max_future`` bound on handles, recording after
``close()``, ``record_many``'s types, overflow/NaT/bad timestamps, and one
meaning of "now".  Each runs against the active core (compiled, or pure under
``WEDMETRICS_PUREPYTHON=1``); tests/kernels/test_parity.py checks the two
handles against each other on the same inputs.
"""
from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import pytest

import wedmetrics as wm

T0 = 1_700_000_000.0


def counts(engine, kind: str) -> dict:
    """Non-zero counts of ``stats()[kind]`` ("dropped" or "refused")."""
    return {k: v for k, v in engine.stats()[kind].items() if v}


# -- item 1: max_future on handles ----------------------------------------------


def test_a_handle_refuses_a_year_ahead_and_other_series_keep_recording():
    eng = wm.MetricsEngine()                         # wall clock: max_future is 5 minutes
    a, b = eng.series("a"), eng.series("b")
    with pytest.raises(wm.InvalidPointError, match="max_future=300s ahead"):
        a.record(1.0, ts=time.time() + 365 * 86400)
    assert counts(eng, "refused") == {"invalid_timestamp": 1}
    assert eng.now() < time.time() + 300             # "now" did not jump
    b.record(2.0)
    a.record(3.0)
    assert eng.stats()["accepted"] == 2 and counts(eng, "dropped") == {}
    assert eng.query("b", last="1m").count == 1
    eng.close()


@pytest.mark.parametrize("ts", [T0 + 3600, int(T0) + 3600, np.float64(T0 + 3600),
                                np.datetime64(int(T0) + 3600, "s")])
def test_handle_and_engine_record_share_the_future_policy(ts):
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock, max_future="1m", invalid="drop")
    h = eng.series("x")
    h.record(1.0, ts=ts)
    eng.record("x", 1.0, ts=ts)
    eng.record_many([h.id], [float(T0 + 3600)], [1.0])
    h.record(1.0, ts=T0 + 30)                        # within max_future: fine
    assert eng.stats()["accepted"] == 1
    assert counts(eng, "dropped") == {"invalid_timestamp": 3}


def test_a_point_ahead_of_the_clock_but_within_max_future_is_accepted():
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock, max_future="1m")
    h = eng.series("x")
    h.record(1.0, ts=T0 + 50)
    h.record(2.0, ts=T0 + 47)       # behind the newest, within the lateness
    assert eng.query(h, last="1m").count == 2


# -- item 3: recording after close() ---------------------------------------------------


def test_recording_after_close_raises_and_counts(tmp_path):
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock, storage=wm.SQLiteBackend(tmp_path / "m.db"))
    h = eng.series("x")
    h.record(1.0)
    eng.close()
    with pytest.raises(wm.EngineClosedError, match="closed"):
        h.record(2.0)
    with pytest.raises(wm.EngineClosedError):
        eng.record("x", 3.0)
    with pytest.raises(wm.EngineClosedError):
        eng.record_many([h.id, h.id], [T0, T0], [1.0, 2.0])
    clock.advance(7200)                       # an hour later: still refused, not "late"
    with pytest.raises(wm.EngineClosedError):
        h.record(4.0)
    st = eng.stats()
    assert st["accepted"] == 1
    assert counts(eng, "refused") == {"closed": 5} and counts(eng, "dropped") == {}
    assert eng.query(h, last="3h").count == 1      # reads still answer


def test_recording_after_close_is_a_counted_drop_under_invalid_drop():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), invalid="drop")
    h = eng.series("x")
    h.record(1.0)
    eng.close()
    h.record(2.0)
    res = eng.record_many([h.id] * 3, [T0] * 3, [1.0] * 3)
    assert res.closed == 3 and res.accepted == 0
    assert eng.stats()["accepted"] == 1
    assert counts(eng, "dropped") == {"closed": 4}


# -- item 7: record_many's types ----------------------------------------------------------


class FloatLike:
    def __float__(self):
        return 1.5


@pytest.mark.parametrize("ids, values, reason", [
    ([0.7], [1.0], "unknown_series"),
    (["0"], [1.0], "unknown_series"),
    ([True], [1.0], "unknown_series"),
    ([0], ["1.5"], "invalid_value"),
    ([0], [1 + 2j], "invalid_value"),
    ([0], [FloatLike()], "invalid_value"),
    ([0], [Fraction(1, 2)], "invalid_value"),
    ([0], [True], "invalid_value"),
    ([0], [10 ** 400], "invalid_value"),
])
def test_record_many_refuses_what_handle_record_refuses(ids, values, reason):
    strict = wm.MetricsEngine(clock=wm.ManualClock(T0))
    strict.series("x")
    with pytest.raises(wm.InvalidPointError, match="nothing was recorded"):
        strict.record_many(ids, [T0], values)
    assert strict.stats()["accepted"] == 0
    assert counts(strict, "refused") == {reason: 1}
    lenient = wm.MetricsEngine(clock=wm.ManualClock(T0), invalid="drop")
    lenient.series("x")
    res = lenient.record_many(ids, [T0], values)
    assert res.accepted == 0 and getattr(res, reason) == 1
    assert counts(lenient, "dropped") == {reason: 1}


def test_record_many_refuses_string_timestamps_and_takes_integer_ones():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), invalid="drop")
    h = eng.series("x")
    assert eng.record_many([h.id], ["1700000000"], [1.0]).invalid_timestamp == 1
    assert eng.record_many(np.array([h.id], dtype=np.uint32), [int(T0)],
                           np.array([2], dtype=np.int16)).accepted == 1


# -- item 8: overflow, NaT, bad timestamps, counting under "raise" ----------------------


@pytest.mark.parametrize("value, ts, reason", [
    (10 ** 400, None, "invalid_value"),
    (1, 10 ** 400, "invalid_timestamp"),
    (1.0, np.datetime64("NaT"), "invalid_timestamp"),
    (1.0, "soon", "invalid_timestamp"),
    (1.0, math.nan, "invalid_timestamp"),
    (1 + 0j, None, "invalid_value"),
    (Fraction(1, 2), None, "invalid_value"),
    (np.float32(np.inf), None, "invalid_value"),
])
def test_bad_points_on_a_handle_are_counted_under_the_right_reason(value, ts, reason):
    strict = wm.MetricsEngine(clock=wm.ManualClock(T0))
    with pytest.raises(wm.InvalidPointError):
        strict.series("x").record(value, ts)
    assert counts(strict, "refused") == {reason: 1} and counts(strict, "dropped") == {}
    lenient = wm.MetricsEngine(clock=wm.ManualClock(T0), invalid="drop")
    lenient.series("x").record(value, ts)
    assert counts(lenient, "dropped") == {reason: 1}


def test_engine_record_with_a_bad_timestamp_is_a_clear_counted_error():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0))
    with pytest.raises(wm.InvalidPointError, match="timestamp must be epoch seconds"):
        eng.record("d", 1, ts="x")
    assert counts(eng, "refused") == {"invalid_timestamp": 1}


def test_nat_in_record_many_is_an_invalid_timestamp_not_late():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), invalid="drop")
    h = eng.series("x")
    ts = np.array(["2023-11-14T22:13:19", "NaT"], dtype="datetime64[s]")
    res = eng.record_many([h.id, h.id], ts, [1.0, 2.0])
    assert (res.accepted, res.late, res.invalid_timestamp) == (1, 0, 1)


def test_record_many_under_raise_counts_every_bad_point_and_records_none():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), max_future="1m")
    h = eng.series("x")
    c = eng.counter("c")
    ids = np.array([h.id, 99, h.id, h.id, c.id, h.id])
    ts = np.array([T0, T0, T0, T0 + 3600, T0, math.inf])
    values = np.array([1.0, 1.0, math.nan, 1.0, -1.0, 1.0])
    with pytest.raises(wm.InvalidPointError) as info:
        eng.record_many(ids, ts, values)
    assert str(info.value).startswith("point 1: unknown series id 99 (5 bad point(s) of 6)")
    assert eng.stats()["accepted"] == 0
    assert counts(eng, "refused") == {"unknown_series": 1, "invalid_value": 1,
                                      "invalid_timestamp": 2, "negative_increment": 1}
    assert counts(eng, "dropped") == {}


def test_nan_under_the_default_policy_raises_and_is_not_also_a_drop():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0))
    with pytest.raises(wm.InvalidPointError, match="finite"):
        eng.series("x").record(math.nan)
    st = eng.stats()
    assert st["refused"]["invalid_value"] == 1 and st["dropped"]["invalid_value"] == 0


def test_messages_carry_plain_numbers_not_numpy_reprs():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), max_future="1m")
    h = eng.series("x")
    for ts, values in (([T0], np.array([np.nan])), (np.array([np.inf]), [1.0]),
                       (np.array([T0 + 3600]), [1.0])):
        with pytest.raises(wm.InvalidPointError) as info:
            eng.record_many(np.array([h.id]), ts, values)
        assert "np." not in str(info.value) and "float64" not in str(info.value)
    with pytest.raises(wm.InvalidPointError) as info:
        h.record(np.float64(np.nan))
    assert "np." not in str(info.value)


# -- item 9: one "now" -----------------------------------------------------------------------


def test_late_raise_holds_before_the_first_point():
    eng = wm.MetricsEngine(clock=wm.ManualClock(T0), late="raise")
    with pytest.raises(wm.LatePointError, match="too old"):
        eng.series("x").record(1.0, ts=T0 - 3600)
    assert counts(eng, "refused") == {"late": 1}
    lenient = wm.MetricsEngine(clock=wm.ManualClock(T0))
    lenient.series("x").record(1.0, ts=T0 - 3600)
    assert counts(lenient, "dropped") == {"late": 1}


def test_a_point_without_ts_lands_at_the_engines_now_after_a_replay():
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock)
    h = eng.series("x")
    ts = T0 + np.arange(0, 3600, 1.0)
    eng.record_many(np.full(ts.size, h.id), ts, np.ones(ts.size))
    assert eng.now() == ts[-1]
    g = eng.gauge("queue.depth")
    g.set(5.0)
    h.record(2.0)
    assert g.value == 5.0
    assert eng.query(g, last="1m").max == 5.0
    assert eng.query(h, last="1s").sum == 3.0
    assert eng.stats()["dropped"]["late"] == 0


def test_the_late_message_says_too_old():
    clock = wm.ManualClock(T0)
    eng = wm.MetricsEngine(clock=clock, late="raise")
    h = eng.series("x")
    h.record(1.0)
    clock.advance(60)
    h.record(2.0)                       # at the engine's now: a minute on
    with pytest.raises(wm.LatePointError) as info:
        h.record(1.0, ts=T0)
    text = str(info.value)
    assert "too old" in text and "later than" not in text
