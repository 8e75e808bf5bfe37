"""Alert lifecycle on a ManualClock: for, keep_firing_for, hysteresis, no data, rule kinds,
composites, feedback, and the pure state machine against a plain-Python oracle."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wedmetrics as wm
from wedmetrics.alerting import AlertEngine, AlertRule
from wedmetrics.alerting.evaluation import (FIRING, INACTIVE, PENDING, RESOLVED, StateTable,
                                            step)

T0 = 1_700_000_000.0  # a Tuesday, 22:13:20 UTC


@pytest.fixture
def clock():
    return wm.ManualClock(T0)


@pytest.fixture
def engine(clock):
    eng = wm.MetricsEngine(clock=clock)
    yield eng
    eng.close()


@pytest.fixture
def alerts(engine):
    a = AlertEngine(engine)
    yield a
    a.close()


def states(alerts, rule):
    """fingerprint -> state name of one rule's instances at the last tick."""
    return {fp: s for fp, s, _ in alerts.last_tick.of(rule)}


def only_state(alerts, rule):
    (s,) = states(alerts, rule).values()
    return s


def tick(alerts, clock, dt=1.0):
    clock.advance(dt)
    return alerts.evaluate()


# --------------------------------------------------------------------------- for / keep_firing_for


def test_for_holds_pending_until_the_condition_has_held_long_enough(engine, alerts, clock):
    h = engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="threshold", name="Slow", metric="api.latency", stat="max",
                              window="10s", op=">", threshold=1.0, **{"for": "30s"}))
    h.record(5.0)
    alerts.evaluate()
    assert only_state(alerts, "Slow") == "pending"
    for _ in range(29):
        h.record(5.0)
        tick(alerts, clock)
        assert only_state(alerts, "Slow") == "pending"
    h.record(5.0)
    tick(alerts, clock)          # 30 s after it started holding
    assert only_state(alerts, "Slow") == "firing"
    assert [e.status for e in alerts.history(rule="Slow")][:1] == ["firing"]
    assert alerts.history(status="firing")[0].ts == T0 + 30


def test_pending_drops_back_when_the_condition_breaks(engine, alerts, clock):
    h = engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="threshold", name="Slow", metric="api.latency", stat="max",
                              window="1s", op=">", threshold=1.0, **{"for": "10s"}))
    h.record(5.0)
    alerts.evaluate()
    assert only_state(alerts, "Slow") == "pending"
    clock.advance(2)              # the 1 s window covers its two overlapping buckets
    h.record(0.5)
    alerts.evaluate()
    assert only_state(alerts, "Slow") == "inactive"
    # a fresh breach starts the `for` clock again
    for _ in range(9):
        clock.advance(1)
        h.record(5.0)
        alerts.evaluate()
    assert only_state(alerts, "Slow") == "pending"
    assert alerts.history() == []


def test_keep_firing_for_holds_a_cleared_alert(engine, alerts, clock):
    h = engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="threshold", name="Slow", metric="api.latency", stat="max",
                              window="1s", op=">", threshold=1.0, keep_firing_for="20s"))
    h.record(5.0)
    alerts.evaluate()
    assert only_state(alerts, "Slow") == "firing"
    seen = []
    for _ in range(25):
        clock.advance(1)
        h.record(0.1)
        seen.append(alerts.evaluate().of("Slow")[0][1])
    # the window (T0, T0+1] still overlaps T0's bucket: cleared from T0+2, and
    # resolved once 20 s passed since it last held (T0+1)
    assert seen[:20] == ["firing"] * 20
    assert seen[20] == "resolved"
    assert seen[21:] == ["inactive"] * 4
    (resolved,) = alerts.history(status="resolved")
    assert resolved.ts == T0 + 21


def test_hysteresis_needs_the_recovery_threshold_to_resolve(engine, alerts, clock):
    h = engine.series("queue.depth", kind="gauge")
    alerts.add_rule(AlertRule(kind="threshold", name="Deep", metric="queue.depth", stat="max",
                              window="1s", op=">", threshold=100, recovery_threshold=50))
    seen = []
    for v in (120, 80, 60, 90, 40, 80, 99, 101):
        h.set(v)
        seen.append(alerts.evaluate().of("Deep")[0][1])
        clock.advance(2)          # readings 2 s apart: each 1 s window sees one
    assert seen == ["firing", "firing", "firing", "firing", "resolved", "inactive", "inactive",
                    "firing"]


def test_below_threshold_rules_and_their_hysteresis(engine, alerts, clock):
    h = engine.series("orders.rate", kind="gauge")
    alerts.add_rule(AlertRule(kind="threshold", name="Few", metric="orders.rate", stat="min",
                              window="1s", op="<", threshold=10, recovery_threshold=20))
    seen = []
    for v in (5, 15, 25, 15):
        h.set(v)
        seen.append(alerts.evaluate().of("Few")[0][1])
        clock.advance(2)
    assert seen == ["firing", "firing", "resolved", "inactive"]


# --------------------------------------------------------------------------- no data


@pytest.mark.parametrize("policy, expected", [
    ("ok", ["firing", "resolved", "inactive"]),
    ("alert", ["firing", "firing", "firing"]),
    ("keep", ["firing", "firing", "firing"]),
])
def test_no_data_policy_on_a_firing_alert(engine, alerts, clock, policy, expected):
    h = engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="threshold", name="Slow", metric="api.latency", stat="p95",
                              window="5s", op=">", threshold=1.0, no_data=policy))
    h.record(3.0)
    seen = [alerts.evaluate().of("Slow")[0][1]]
    clock.advance(10)             # the window is empty now
    seen.append(alerts.evaluate().of("Slow")[0][1])
    clock.advance(10)
    seen.append(alerts.evaluate().of("Slow")[0][1])
    assert seen == expected
    assert math.isnan(alerts.last_tick.of("Slow")[0][2])


def test_no_data_alert_fires_on_an_empty_window_and_keep_does_not(engine, alerts, clock):
    engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="threshold", name="A", metric="api.latency", stat="mean",
                              window="5s", threshold=1.0, no_data="alert"))
    alerts.add_rule(AlertRule(kind="threshold", name="K", metric="api.latency", stat="mean",
                              window="5s", threshold=1.0, no_data="keep"))
    alerts.evaluate()
    assert only_state(alerts, "A") == "firing"
    assert only_state(alerts, "K") == "inactive"


def test_keep_freezes_a_pending_alert_until_data_returns(engine, alerts, clock):
    h = engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="threshold", name="K", metric="api.latency", stat="max",
                              window="1s", threshold=1.0, no_data="keep", **{"for": "5s"}))
    h.record(2.0)
    alerts.evaluate()
    clock.advance(3)              # no data: stays pending, pending since T0
    alerts.evaluate()
    assert only_state(alerts, "K") == "pending"
    clock.advance(3)
    h.record(2.0)
    alerts.evaluate()             # held since T0 (6 s >= 5 s)
    assert only_state(alerts, "K") == "firing"


# --------------------------------------------------------------------------- instances, kinds


def test_one_instance_per_matching_series_with_templated_text(engine, alerts, clock):
    photos = engine.series("api.latency", labels={"route": "/photos", "org": "acme"})
    guests = engine.series("api.latency", labels={"route": "/guests", "org": "acme"})
    engine.series("api.latency", labels={"route": "/admin", "org": "other"}).record(9.0)
    alerts.add_rule(AlertRule(
        kind="threshold", name="SlowRoute", metric="api.latency", match=['org="acme"'],
        stat="p95", window="1m", op=">", threshold=0.5, labels={"team": "{{ labels.org }}-web"},
        annotations={"summary": "{{ labels.route }} p95 is {{ value:.2f }}s (> {{ threshold }})"}))
    photos.record(0.9)
    guests.record(0.1)
    alerts.evaluate()
    assert sorted(states(alerts, "SlowRoute").values()) == ["firing", "inactive"]
    (a,) = alerts.active()
    assert a.labels == {"route": "/photos", "org": "acme", "team": "acme-web"}
    assert a.annotations["summary"] == "/photos p95 is 0.90s (> 0.5)"
    # a series created later gets its own instance at the next tick
    engine.series("api.latency", labels={"route": "/new", "org": "acme"}).record(2.0)
    alerts.evaluate()
    assert sorted(a.labels["route"] for a in alerts.active()) == ["/new", "/photos"]


def test_merged_rule_reads_every_matching_series_as_one(engine, alerts, clock):
    a = engine.series("api.errors", labels={"route": "/a"}, kind="counter")
    b = engine.series("api.errors", labels={"route": "/b"}, kind="counter")
    alerts.add_rule(AlertRule(kind="threshold", name="Errors", metric="api.errors",
                              per_series=False, stat="sum", window="1m", op=">=", threshold=10))
    a.inc(6)
    b.inc(3)
    alerts.evaluate()
    assert only_state(alerts, "Errors") == "inactive"
    b.inc(1)
    alerts.evaluate()
    assert only_state(alerts, "Errors") == "firing"
    assert alerts.last_tick.of("Errors")[0][2] == 10.0


def test_rate_stat_is_sum_per_second(engine, alerts, clock):
    c = engine.series("uploads", kind="counter")
    alerts.add_rule(AlertRule(kind="threshold", name="Busy", metric="uploads", stat="rate",
                              window="10s", op=">", threshold=2.0))
    for _ in range(10):
        c.inc(3)
        clock.advance(1)
    clock.set(T0 + 9)
    alerts.evaluate()
    assert alerts.last_tick.of("Busy")[0][1:] == ("firing", 3.0)


def test_absence_fires_when_a_series_goes_quiet(engine, alerts, clock):
    h = engine.series("heartbeat", labels={"venue": "kew"})
    h.record(1.0)
    alerts.add_rule(AlertRule(kind="absence", name="Silent", metric="heartbeat", window="30s"))
    alerts.evaluate()
    assert only_state(alerts, "Silent") == "inactive"
    clock.advance(29)
    alerts.evaluate()
    assert only_state(alerts, "Silent") == "inactive"
    clock.advance(1)              # (T0, T0+30] still overlaps T0's bucket
    alerts.evaluate()
    assert only_state(alerts, "Silent") == "inactive"
    clock.advance(1)
    alerts.evaluate()
    assert only_state(alerts, "Silent") == "firing"
    assert alerts.active()[0].labels == {"venue": "kew"}
    h.record(1.0)
    alerts.evaluate()
    assert only_state(alerts, "Silent") == "resolved"


def test_rate_of_change_compares_with_the_previous_window(engine, alerts, clock):
    h = engine.series("api.latency")
    alerts.add_rule(AlertRule(kind="rate_of_change", name="Jump", metric="api.latency",
                              stat="mean", window="10s", change="relative", op=">", threshold=0.5))
    for i in range(20):                   # 1.0 for T0..T0+9, then 2.0 for T0+10..T0+19
        clock.set(T0 + i)
        h.record(1.0 if i < 10 else 2.0)
        if i == 9:
            alerts.evaluate()             # no previous window yet: no data, policy "ok"
            (_, state, value) = alerts.last_tick.of("Jump")[0]
            assert state == "inactive" and math.isnan(value)
        if i == 14:
            # (T0+4, T0+14] covers buckets T0+4..T0+14: six 1.0s and five 2.0s,
            # against the ten whole buckets before it (all 1.0)
            alerts.evaluate()
            (_, state, value) = alerts.last_tick.of("Jump")[0]
            assert state == "inactive" and value == pytest.approx(16 / 11 - 1)
    alerts.evaluate()
    (_, state, value) = alerts.last_tick.of("Jump")[0]
    assert state == "firing" and value == pytest.approx(21 / 11 - 1)


def test_anomaly_rule_fires_on_a_spike_after_learning_a_baseline(engine, alerts, clock):
    h = engine.series("checkout.latency")
    rng = random.Random(42)
    for _ in range(40):                           # history the rule warms up on
        h.record(1.0 + rng.uniform(-0.05, 0.05))
        clock.advance(1)
    alerts.add_rule(AlertRule(kind="anomaly", name="Odd", metric="checkout.latency", step="1s",
                              stat="mean", baseline=30, min_points=10, threshold=6.0))
    alerts.evaluate()
    assert only_state(alerts, "Odd") == "inactive"
    for _ in range(10):
        h.record(1.0 + rng.uniform(-0.05, 0.05))
        clock.advance(1)
        alerts.evaluate()
        assert only_state(alerts, "Odd") == "inactive"
    h.record(5.0)                                  # the spike
    seen = []
    for _ in range(10):                            # its bucket closes after the lateness
        clock.advance(1)
        h.record(1.0 + rng.uniform(-0.05, 0.05))
        seen.append(alerts.evaluate().of("Odd")[0][1])
    assert "firing" in seen
    assert alerts.history(status="firing")[0].value > 6.0


def test_composite_fires_while_all_or_any_components_fire(engine, alerts, clock):
    lat = engine.series("api.latency", kind="gauge")
    err = engine.series("api.errors", kind="gauge")
    alerts.add_rule(AlertRule(kind="threshold", name="Slow", metric="api.latency", stat="max",
                              window="1s", threshold=1.0))
    alerts.add_rule(AlertRule(kind="threshold", name="Failing", metric="api.errors", stat="max",
                              window="1s", threshold=5))
    alerts.add_rule(AlertRule(kind="composite", name="Both", rules=["Slow", "Failing"], op="all",
                              severity="critical"))
    alerts.add_rule(AlertRule(kind="composite", name="Either", rules=["Slow", "Failing"], op="any"))
    lat.set(2.0)
    err.set(1)
    alerts.evaluate()
    assert (only_state(alerts, "Both"), only_state(alerts, "Either")) == ("inactive", "firing")
    clock.advance(2)
    lat.set(2.0)
    err.set(9)
    alerts.evaluate()
    assert only_state(alerts, "Both") == "firing"
    clock.advance(2)
    lat.set(0.1)
    err.set(0)
    alerts.evaluate()
    assert (only_state(alerts, "Both"), only_state(alerts, "Either")) == ("resolved", "resolved")


# --------------------------------------------------------------------------- feedback


def test_false_positive_feedback_moves_the_threshold_within_bounds(engine, alerts, clock):
    h = engine.series("api.latency", kind="gauge")
    rule = alerts.add_rule(AlertRule(
        kind="threshold", name="Slow", metric="api.latency", stat="max", window="1s", op=">",
        threshold=1.0, feedback={"step": 0.1, "max_threshold": 1.25}))
    h.set(1.05)
    alerts.evaluate()
    (a,) = alerts.active()
    state = alerts.feedback(a.id, false_positive=True, by="ana", note="deploy noise")
    assert state == {"threshold": pytest.approx(1.1), "declared_threshold": 1.0,
                     "false_positives": 1, "confirmed": 0}
    clock.advance(2)
    h.set(1.05)
    alerts.evaluate()
    assert only_state(alerts, "Slow") == "resolved"     # 1.05 is under the moved threshold
    for expected in (1.21, 1.25, 1.25):
        assert alerts.feedback(a.id, false_positive=True)["threshold"] == pytest.approx(expected)
    assert alerts.feedback(a.id, false_positive=False)["confirmed"] == 1
    assert alerts.rule_state("Slow")["threshold"] == pytest.approx(1.25)
    assert rule.threshold == 1.0                          # the declared rule is unchanged
    events = alerts.history(status="feedback")
    first = events[0].annotations
    assert (first["verdict"], first["threshold_before"], first["threshold_after"], first["by"],
            first["note"]) == ("false_positive", "1.0", "1.1", "ana", "deploy noise")
    assert events[-1].annotations["verdict"] == "confirmed"


def test_feedback_lowers_below_thresholds_and_is_recorded_without_a_policy(engine, alerts, clock):
    h = engine.series("orders", kind="gauge")
    alerts.add_rule(AlertRule(kind="threshold", name="Few", metric="orders", stat="min",
                              window="1s", op="<", threshold=10,
                              feedback={"step": 3, "mode": "absolute", "min_threshold": 5}))
    alerts.add_rule(AlertRule(kind="threshold", name="Plain", metric="orders", stat="min",
                              window="1s", op="<", threshold=10))
    h.set(1)
    alerts.evaluate()
    ids = {a.rule: a.id for a in alerts.active()}
    assert alerts.feedback(ids["Few"], false_positive=True)["threshold"] == 7
    assert alerts.feedback(ids["Few"], false_positive=True)["threshold"] == 5
    assert alerts.feedback(ids["Plain"], false_positive=True) == {
        "threshold": 10, "declared_threshold": 10, "false_positives": 1, "confirmed": 0}
    with pytest.raises(KeyError, match="nope"):
        alerts.feedback("nope", false_positive=True)


# --------------------------------------------------------------------------- the state machine


def _oracle(events, for_s, keep_s, no_data):
    """Obviously-correct, one-instance, plain-Python lifecycle."""
    state, since, last_true, out = "inactive", None, None, []
    for now, cond, recovered, has in events:
        if not has:
            if no_data == "keep":
                out.append(state)
                continue
            cond = recovered_false = no_data == "alert"
            recovered = not recovered_false
        holds = (not recovered) if state == "firing" else cond
        if holds:
            last_true = now
            if state == "inactive":
                since = now
            if state == "firing" or now - since >= for_s:
                state = "firing"
            else:
                state = "pending"
            out.append(state)
        elif state == "pending":
            state, since = "inactive", None
            out.append(state)
        elif state == "firing" and not (now - last_true < keep_s):
            state, since = "inactive", None
            out.append("resolved")
        else:
            out.append(state)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.integers(1, 5)),
                min_size=1, max_size=40),
       st.sampled_from([0.0, 2.0, 5.0]), st.sampled_from([0.0, 3.0]),
       st.sampled_from(["ok", "alert", "keep"]))
def test_step_matches_a_plain_python_oracle(ticks, for_s, keep_s, no_data):
    now, events = T0, []
    for cond, rec_flip, has, dt in ticks:
        now += dt
        # recovered is "not cond", except in the hysteresis band (cond false, not recovered)
        recovered = (not cond) and not rec_flip
        events.append((now, cond, recovered, has))
    table = StateTable(capacity=1)
    row = table.add(for_s, keep_s, no_data)
    rows = np.array([row])
    got = []
    for now, cond, recovered, has in events:
        code = step(table, rows, np.array([cond]), np.array([recovered]), np.array([has]), now)[0]
        got.append(("inactive", "pending", "firing", "resolved")[code])
    assert got == _oracle(events, for_s, keep_s, no_data)


def test_step_moves_many_rows_independently():
    table = StateTable(capacity=2)
    rows = np.array([table.add(0.0, 0.0, "ok") for _ in range(5)])
    assert table.n == 5
    cond = np.array([True, False, True, False, True])
    codes = step(table, rows, cond, ~cond, np.ones(5, dtype=bool), T0)
    assert list(codes) == [FIRING, INACTIVE, FIRING, INACTIVE, FIRING]
    codes = step(table, rows, ~cond, cond, np.ones(5, dtype=bool), T0 + 1)
    assert list(codes) == [RESOLVED, FIRING, RESOLVED, FIRING, RESOLVED]
    assert list(table.view("state")) == [INACTIVE, FIRING, INACTIVE, FIRING, INACTIVE]
    assert PENDING not in codes


def test_cooldown_holds_a_new_onset_in_pending_until_it_has_passed():
    import numpy as np

    from wedmetrics.alerting.evaluation import FIRING, PENDING, RESOLVED, StateTable, step

    table = StateTable()
    row = np.array([table.add(0.0, 0.0, "ok", cooldown_s=30.0)])
    seen = []
    for t, cond in [(0, True), (10, False), (20, True), (35, True), (40, False), (50, True)]:
        c = np.array([cond])
        seen.append(int(step(table, row, c, ~c, np.array([True]), float(t))[0]))
    # fires at 0, resolves at 10; holds again at 20 but waits (pending) until
    # the cooldown since the onset at 0 has passed (fires at 35); at 50 the
    # cooldown since 35 has not passed: pending again
    assert seen == [FIRING, RESOLVED, PENDING, FIRING, RESOLVED, PENDING]


def test_pulse_rows_fire_for_one_evaluation_per_onset():
    import numpy as np

    from wedmetrics.alerting.evaluation import FIRING, INACTIVE, PENDING, RESOLVED, StateTable, step

    table = StateTable()
    row = np.array([table.add(0.0, 0.0, "ok", cooldown_s=100.0, pulse=True)])
    conds = [True, True, True, False, True, False, False]
    seen = [int(step(table, row, np.array([c]), np.array([not c]), np.array([True]),
                     float(10 * t))[0]) for t, c in enumerate(conds)]
    # one firing row, then held off by the cooldown while the condition repeats
    assert seen == [FIRING, RESOLVED, PENDING, INACTIVE, PENDING, INACTIVE, INACTIVE]
    assert seen.count(FIRING) == 1
