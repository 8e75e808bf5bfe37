"""AlertEngine wiring: wedding policy, routing (escalation, silences, inhibition, mute
intervals, ack), add_rule errors, replay determinism, the background thread, and the path
engine -> AlertEngine -> webhook received by a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

import wedmetrics as wm
from wedmetrics.alerting import (AlertEngine, AlertRule, LogNotifier, RuleError,
                                 WebhookNotifier)
from wedmetrics.weddings import Wedding, WeddingCalendar

try:  # package-relative when tests/alerting is a package, flat otherwise
    from .conftest_servers import http_server  # noqa: F401 - fixture used by name
except ImportError:
    from conftest_servers import http_server  # type: ignore[no-redef]  # noqa: F401

SATURDAY = dt.datetime(2026, 6, 13, 13, 0, tzinfo=dt.timezone.utc).timestamp()  # w1's day
TUESDAY = dt.datetime(2026, 6, 16, 13, 0, tzinfo=dt.timezone.utc).timestamp()
LATER = dt.datetime(2026, 7, 1, 13, 0, tzinfo=dt.timezone.utc).timestamp()      # a Wednesday


@pytest.fixture
def calendar():
    return WeddingCalendar([
        Wedding(id="w1", org_id="acme", date="2026-06-13", timezone="Europe/London",
                guest_count=200, venue="Kew Gardens", start_time="14:00", end_time="23:00"),
        Wedding(id="w2", org_id="acme", date="2026-06-16", timezone="Europe/London",
                guest_count=50, venue="Registry office"),
    ])


@pytest.fixture
def made():
    """Engines and alert engines made by a test, closed at teardown."""
    out = []
    yield out
    for thing in reversed(out):
        thing.close()


def setup(made, t, **kw):
    clock = wm.ManualClock(t)
    engine = wm.MetricsEngine(clock=clock)
    made.append(engine)
    alerts = AlertEngine(engine, **kw)
    made.append(alerts)
    return clock, engine, alerts


def webhooks(server, *names):
    return [WebhookNotifier(server.url(f"/{n}"), name=n, timeout=5.0) for n in names]


def notified(alerts, **kw):
    return [(e.ts, e.annotations["receivers"], e.annotations["reason"],
             int(e.annotations["escalation_level"]), e.rule)
            for e in alerts.history(**kw) if e.status in ("notified", "escalated")]


ONCALL = [{"name": "oncall", "levels": [{"receivers": ["primary"], "delay": "10m"},
                                        {"receivers": ["secondary"], "delay": "10m"},
                                        {"receivers": ["lead"]}]}]
ROUTE = {"receiver": "primary", "group_by": ["..."], "group_wait": 0, "group_interval": "1s",
         "escalation": "oncall"}
SLOW = dict(kind="threshold", name="Slow", metric="api.latency", stat="max", window="1h",
            op=">", threshold=1.0)


# --------------------------------------------------------------------------- escalation


@pytest.mark.parametrize("t0, first_step", [(TUESDAY, 600.0), (SATURDAY, 300.0)])
def test_escalation_levels_and_saturday_halving(made, http_server, calendar, t0, first_step):
    clock, engine, alerts = setup(made, t0, calendar=calendar,
                                  notifiers=webhooks(http_server, "primary", "secondary", "lead"),
                                  route=ROUTE, escalation=ONCALL)
    engine.series("api.latency", labels={"route": "/photos"}).record(3.0)
    alerts.add_rule(SLOW)
    alerts.evaluate()
    assert notified(alerts) == [(t0, "primary", "initial", 0, "Slow")]
    clock.set(t0 + first_step - 1)
    alerts.evaluate()
    assert len(notified(alerts)) == 1
    clock.set(t0 + first_step)
    alerts.evaluate()
    clock.set(t0 + 2 * first_step)
    alerts.evaluate()
    assert notified(alerts)[1:] == [(t0 + first_step, "secondary", "escalation", 1, "Slow"),
                                    (t0 + 2 * first_step, "lead", "escalation", 2, "Slow")]
    # the real receivers got them
    (body,) = [json.loads(r.body) for r in http_server.wait_for("/lead", 1)]
    assert body["escalationLevel"] == 2 and body["alerts"][0]["labels"]["route"] == "/photos"
    http_server.wait_for("/secondary", 1)
    http_server.wait_for("/primary", 1)


def test_ack_stops_escalation(made, http_server):
    clock, engine, alerts = setup(made, TUESDAY,
                                  notifiers=webhooks(http_server, "primary", "secondary", "lead"),
                                  route=ROUTE, escalation=ONCALL)
    engine.series("api.latency").record(3.0)
    alerts.add_rule(SLOW)
    alerts.evaluate()
    (a,) = alerts.active()
    clock.advance(60)
    view = alerts.ack(a.id, by="ana")
    assert view.acked_by == "ana"
    clock.advance(1800)                          # three delays later: nobody else paged
    alerts.evaluate()
    assert [n[2] for n in notified(alerts)] == ["initial"]
    (ack,) = alerts.history(status="acknowledged")
    assert (ack.annotations["by"], ack.ts, ack.alert_id) == ("ana", TUESDAY + 60, a.id)
    with pytest.raises(KeyError, match="no alert with id 'nope'"):
        alerts.ack("nope", by="ana")
    with pytest.raises(ValueError, match="by must name"):
        alerts.ack(a.id, by="")


# --------------------------------------------------------------------------- wedding policy


def test_wedding_day_raises_severity_one_level(made, calendar, http_server):
    for t, expected in ((SATURDAY, "critical"), (LATER, "warning")):
        clock, engine, alerts = setup(made, t, calendar=calendar,
                                      notifiers=webhooks(http_server, "ops"),
                                      route={"receiver": "ops", "group_wait": 0,
                                             "group_by": ["..."]})
        engine.series("api.latency", labels={"wedding_id": "w1"}).record(3.0)
        alerts.add_rule(dict(SLOW, severity="warning",
                             annotations={"summary": "{{ wedding.venue }}: {{ severity }}"}))
        alerts.evaluate()
        (a,) = alerts.active()
        assert (a.severity, a.wedding_id, a.annotations["summary"]) == (
            expected, "w1", f"Kew Gardens: {expected}")
        assert alerts.history(status="firing")[0].severity == expected
    bodies = [json.loads(r.body) for r in http_server.wait_for("/ops", 2)]
    assert sorted(b["alerts"][0]["severity"] for b in bodies) == ["critical", "warning"]
    assert {b["alerts"][0]["weddingId"] for b in bodies} == {"w1"}


def test_guest_count_scales_thresholds_per_wedding(made, calendar):
    clock, engine, alerts = setup(made, LATER, calendar=calendar)
    big = engine.series("checkins", labels={"wedding_id": "w1"}, kind="gauge")     # 200 guests
    small = engine.series("checkins", labels={"wedding_id": "w2"}, kind="gauge")   # 50 guests
    plain = engine.series("checkins", labels={"wedding_id": "nope"}, kind="gauge")
    alerts.add_rule(AlertRule(kind="threshold", name="Queue", metric="checkins", stat="max",
                              window="1s", op=">", threshold=50, scale_by="guest_count",
                              annotations={"summary": "over {{ threshold }}"}))
    big.set(80)        # under 100
    small.set(30)      # over 25
    plain.set(60)      # unknown wedding: unscaled 50
    alerts.evaluate()
    firing = {a.wedding_id: a.annotations["summary"] for a in alerts.active()}
    assert firing == {"w2": "over 25", "nope": "over 50"}
    clock.advance(1)
    big.set(120)
    alerts.evaluate()
    assert {a.wedding_id for a in alerts.active(include_pending=False)} == {"w1", "w2", "nope"}
    assert calendar.stats()["unknown_wedding_ids"]["nope"] >= 1


# --------------------------------------------------------------------------- silences, inhibition, mutes


def test_silence_keeps_matching_alerts_quiet(made, http_server):
    clock, engine, alerts = setup(made, TUESDAY, notifiers=webhooks(http_server, "ops"),
                                  route={"receiver": "ops", "group_wait": 0, "group_by": ["..."]})
    engine.series("api.latency", labels={"route": "/photos"}).record(3.0)
    engine.series("api.latency", labels={"route": "/guests"}).record(3.0)
    s = alerts.silence(['route="/photos"'], until="2h", by="ana", comment="CDN swap")
    assert s.ends_at == TUESDAY + 7200
    alerts.add_rule(SLOW)
    alerts.evaluate()
    told = [e.labels["route"] for e in alerts.history(status="notified")]
    assert told == ["/guests"]
    views = {a.labels["route"]: a for a in alerts.active()}
    assert views["/photos"].silenced_by == (s.id,) and views["/guests"].silenced_by == ()
    (body,) = [json.loads(r.body) for r in http_server.wait_for("/ops", 1)]
    assert [a["labels"]["route"] for a in body["alerts"]] == ["/guests"]
    assert alerts.stats()["dispatcher"]["silenced"] >= 1


def test_critical_wedding_alert_inhibits_its_warnings(made, calendar):
    clock, engine, alerts = setup(made, LATER, calendar=calendar,
                                  notifiers=[LogNotifier(name="ops")],
                                  route={"receiver": "ops", "group_wait": 0, "group_by": ["..."]})
    engine.series("api.latency", labels={"wedding_id": "w1"}).record(3.0)
    engine.series("api.latency", labels={"wedding_id": "w2"}).record(3.0)
    alerts.add_rule(dict(SLOW, name="Down", severity="critical", match={"wedding_id": "w1"}))
    alerts.add_rule(dict(SLOW, name="Slowish", severity="warning"))
    alerts.evaluate()
    told = sorted((e.rule, e.wedding_id) for e in alerts.history(status="notified"))
    # w1's warning is inhibited by w1's critical alert; w2's warning is not
    assert told == [("Down", "w1"), ("Slowish", "w2")]
    down = next(a for a in alerts.active() if a.rule == "Down")
    muted = next(a for a in alerts.active() if a.rule == "Slowish" and a.wedding_id == "w1")
    assert muted.inhibited_by == (down.id,)


def test_mute_interval_holds_notifications_until_it_ends(made):
    night = dt.datetime(2026, 6, 16, 3, 0, tzinfo=dt.timezone.utc).timestamp()
    clock, engine, alerts = setup(
        made, night, notifiers=[LogNotifier(name="ops")],
        route={"receiver": "ops", "group_wait": 0, "group_interval": "1m", "group_by": ["..."],
               "mute_time_intervals": ["nights"]},
        mute_intervals=[{"name": "nights", "times": [{"start_time": "00:00", "end_time": "06:00"}]}])
    engine.series("api.latency").record(3.0)
    alerts.add_rule(dict(SLOW, window="6h"))
    alerts.evaluate()
    assert notified(alerts) == [] and alerts.stats()["dispatcher"]["muted"] == 1
    clock.set(night + 3 * 3600)                 # 06:00: the window is over
    alerts.evaluate()
    assert [(ts, r) for ts, _, r, _, _ in notified(alerts)] == [(night + 3 * 3600, "initial")]


def test_resolution_is_notified(made):
    clock, engine, alerts = setup(made, TUESDAY, notifiers=[LogNotifier(name="ops")])
    h = engine.series("api.latency", kind="gauge")
    alerts.add_rule(dict(SLOW, window="1s"))
    h.set(3.0)
    alerts.evaluate()
    clock.advance(2)
    h.set(0.1)
    alerts.evaluate()
    (resolved,) = alerts.history(status="resolved")
    assert resolved.ts == TUESDAY + 2
    # the default route tells a change at most every 10 s per alert, as Alertmanager's
    # group_interval does: this resolve follows the firing message 10 s later
    clock.set(TUESDAY + 9.5)
    alerts.evaluate()
    assert len(alerts.history(status="notified")) == 1
    clock.set(TUESDAY + 10)
    alerts.evaluate()
    assert [(e.ts, e.annotations["reason"], e.annotations["alert_status"])
            for e in alerts.history(status="notified")] == [(TUESDAY, "initial", "firing"),
                                                            (TUESDAY + 10, "resolved", "resolved")]


# --------------------------------------------------------------------------- add_rule and config errors


def test_add_rule_errors_name_the_field(made):
    clock, engine, alerts = setup(made, TUESDAY)
    engine.series("api.latency")
    alerts.add_rule(SLOW)
    with pytest.raises(RuleError, match=r"^rule 'NoLimit': threshold: missing; a threshold rule "
                                        r"needs it$"):
        alerts.add_rule({k: v for k, v in dict(SLOW, name="NoLimit").items() if k != "threshold"})
    with pytest.raises(RuleError, match=r"^rule 'Loose': op: Input should be '>', '>=', '<' or "
                                        r"'<='$"):
        alerts.add_rules([dict(SLOW, name="Loose", op="~")])
    with pytest.raises(RuleError, match=r"rule 'Slow': name: a rule with this name already exists"):
        alerts.add_rule(SLOW)
    with pytest.raises(RuleError, match=r"rules: unknown rule 'Ghost'"):
        alerts.add_rule({"kind": "composite", "name": "C", "rules": ["Slow", "Ghost"]})
    with pytest.raises(RuleError, match=r"rule 'Odd': step: no 7.0 resolution"):
        alerts.add_rule({"kind": "anomaly", "name": "Odd", "metric": "api.latency", "step": "7s"})
    with pytest.raises(ValueError, match="window"):
        alerts.add_rule(dict(SLOW, name="Neg", window="-5m"))
    with pytest.raises(TypeError, match="AlertRule or a dict"):
        alerts.add_rule("Slow")
    assert [r.name for r in alerts.rules()] == ["Slow"]


def test_add_rules_orders_composites_after_their_parts(made):
    clock, engine, alerts = setup(made, TUESDAY)
    engine.series("api.latency")
    added = alerts.add_rules([{"kind": "composite", "name": "C", "rules": ["Slow"]}, SLOW])
    assert [r.name for r in added] == ["Slow", "C"]
    with pytest.raises(RuleError, match="used by composite rules"):
        alerts.remove_rule("Slow")
    alerts.remove_rule("C")
    alerts.remove_rule("Slow")
    assert alerts.rules() == []


def test_removing_a_firing_rule_resolves_its_alerts(made):
    clock, engine, alerts = setup(made, TUESDAY, notifiers=[LogNotifier(name="ops")])
    engine.series("api.latency").record(3.0)
    alerts.add_rule(SLOW)
    alerts.evaluate()
    alerts.remove_rule("Slow")
    assert alerts.active() == []
    (resolved,) = alerts.history(status="resolved")
    assert resolved.annotations["reason"] == "rule removed"
    assert alerts.evaluate().rule.tolist() == []


def test_configuration_errors(made, http_server):
    engine = wm.MetricsEngine(clock=wm.ManualClock(TUESDAY))
    made.append(engine)
    with pytest.raises(ValueError, match=r"route.receiver: receiver 'pager' is not a notifier channel"):
        AlertEngine(engine, notifiers=webhooks(http_server, "ops"), route={"receiver": "pager"})
    with pytest.raises(ValueError, match=r"escalation 'oncall' levels.1.receivers: receiver "
                                         r"'secondary'"):
        AlertEngine(engine, notifiers=webhooks(http_server, "primary", "lead"), route=ROUTE,
                    escalation=ONCALL)
    with pytest.raises(ValueError, match="interval must be >= 0.05"):
        AlertEngine(engine, interval=0.01)
    with pytest.raises(ValueError, match="not both"):
        AlertEngine(engine, routing={"route": {"receiver": "all"}}, route={"receiver": "all"})


# --------------------------------------------------------------------------- replay, per-tick results


def _replay(made, step_s):
    clock, engine, alerts = setup(made, TUESDAY)
    h = engine.series("api.latency", labels={"route": "/photos"})
    alerts.add_rule(dict(SLOW, window="5s", **{"for": "3s"}))
    spans = []
    for i in range(60):
        clock.set(TUESDAY + i * step_s)
        h.record(3.0 if 10 <= i < 30 else 0.2)
        r = alerts.evaluate()
        spans.append((r.now, *r.rows()[0][2:]))
    return spans


def test_evaluation_is_a_function_of_the_data_and_the_time(made):
    a, b = _replay(made, 1.0), _replay(made, 1.0)
    assert a == b
    states = [s for _, s, _ in a]
    assert states[9:15] == ["inactive", "pending", "pending", "pending", "firing", "firing"]
    assert "resolved" in states and states[-1] == "inactive"


def test_evaluate_at_an_explicit_time(made):
    clock, engine, alerts = setup(made, TUESDAY)
    h = engine.series("api.latency")
    alerts.add_rule(dict(SLOW, window="10s"))
    h.record(3.0, ts=TUESDAY + 100)
    assert alerts.evaluate(TUESDAY + 50).count("firing") == 0
    assert alerts.evaluate(TUESDAY + 105).count("firing") == 1
    assert alerts.evaluate(TUESDAY + 200).count("resolved") == 1
    with pytest.raises(ValueError, match="finite"):
        alerts.evaluate(float("nan"))


# --------------------------------------------------------------------------- background thread, end to end


def test_start_ticks_on_a_thread_and_stop_joins_it(made):
    clock, engine, alerts = setup(made, TUESDAY, interval=0.05)
    engine.series("api.latency").record(3.0)
    alerts.add_rule(SLOW)
    done = threading.Event()
    alerts.start()
    assert alerts.start() is alerts              # idempotent
    for _ in range(200):
        if alerts.stats()["ticks"] >= 2:
            done.set()
            break
        done.wait(0.05)
    alerts.stop()
    assert done.is_set() and alerts.stats()["errors"] == 0
    assert alerts.active()[0].state == "firing"


def test_engine_to_webhook_end_to_end_on_the_wall_clock(http_server):
    with wm.MetricsEngine() as engine:
        h = engine.series("api.latency", labels={"route": "/photos", "wedding_id": "w9"})
        with AlertEngine(engine, notifiers=[WebhookNotifier(http_server.url("/hook"), secret="s3")],
                         interval=0.05) as alerts:
            alerts.add_rule(AlertRule(
                kind="threshold", name="SlowPhotos", metric="api.latency", stat="max",
                window="1s", op=">", threshold=0.5, severity="critical",
                annotations={"summary": "{{ labels.route }} max is {{ value }}s"}))
            alerts.start()
            h.record(0.9)
            (req,) = http_server.wait_for("/hook", 1, timeout=10.0)
    body = json.loads(req.body)
    assert body["status"] == "firing"
    (a,) = body["alerts"]
    assert (a["rule"], a["severity"], a["weddingId"], a["summary"]) == (
        "SlowPhotos", "critical", "w9", "/photos max is 0.9s")
    assert req.headers["x-wedmetrics-signature"].startswith("sha256=")


# --------------------------------------------------------------------------- storage


def test_history_and_learnt_thresholds_live_in_sqlite_across_restarts(made, tmp_path):
    from wedmetrics.storage import SQLiteBackend

    rule = dict(SLOW, window="1s", feedback={"step": 0.5, "max_threshold": 3.0})
    clock = wm.ManualClock(TUESDAY)
    engine = wm.MetricsEngine(clock=clock, storage=SQLiteBackend(tmp_path / "wm.db"))
    made.append(engine)
    h = engine.series("api.latency", kind="gauge")
    with AlertEngine(engine, notifiers=[LogNotifier(name="ops")]) as alerts:
        alerts.add_rule(rule)
        h.set(3.0)
        alerts.evaluate()
        (a,) = alerts.active()
        clock.advance(1)
        alerts.feedback(a.id, false_positive=True, by="ana")
        clock.advance(1)
        h.set(0.1)
        alerts.evaluate()
        clock.set(TUESDAY + 10)
        alerts.evaluate()           # the resolve message (default group_interval)
    engine.close()

    engine = wm.MetricsEngine(clock=wm.ManualClock(TUESDAY + 11),
                              storage=SQLiteBackend(tmp_path / "wm.db"))
    made.append(engine)
    engine.series("api.latency", kind="gauge")
    with AlertEngine(engine) as alerts:
        alerts.add_rule(rule)
        # storage orders events by (ts, alert_id, status)
        assert [(e.ts, e.status) for e in alerts.history(rule="Slow")] == [
            (TUESDAY, "firing"), (TUESDAY, "notified"), (TUESDAY + 1, "feedback"),
            (TUESDAY + 2, "resolved"), (TUESDAY + 10, "notified")]
        assert alerts.history(status="feedback")[0].annotations["by"] == "ana"
        assert alerts.rule_state("Slow")["threshold"] == 1.5        # learnt, then restored
        assert alerts.stats()["history"]["store_errors"] == 0
    engine.close()
    # a re-declared threshold starts learning over
    engine = wm.MetricsEngine(clock=wm.ManualClock(TUESDAY + 20),
                              storage=SQLiteBackend(tmp_path / "wm.db"))
    made.append(engine)
    engine.series("api.latency", kind="gauge")
    with AlertEngine(engine) as alerts:
        alerts.add_rule(dict(rule, threshold=2.0))
        assert alerts.rule_state("Slow")["threshold"] == 2.0
    engine.close()


# --------------------------------------------------------------------------- against the obvious computation


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grouped_tick_matches_one_query_per_rule(made, seed):
    """Hundreds of random rules, evaluated grouped, agree with asking the engine per rule."""
    import random

    rng = random.Random(seed)
    clock, engine, alerts = setup(made, TUESDAY)
    handles = [engine.series("api.latency", labels={"route": f"/r{i}", "tier": f"t{i % 3}"})
               for i in range(12)]
    for k in range(90):
        clock.set(TUESDAY + k)
        for h in handles:
            if rng.random() < 0.7:                      # gaps: some windows are empty
                for _ in range(rng.randint(1, 4)):
                    h.record(rng.lognormvariate(-2, 1))
    clock.set(TUESDAY + 89.5)
    stats = ["count", "sum", "min", "max", "mean", "rate", "p50", "p90", "p99"]
    rules = []
    for n in range(300):
        h = rng.choice(handles)
        rules.append(dict(kind="threshold", name=f"r{n}", metric="api.latency",
                          match={"route": h.labels["route"]}, stat=rng.choice(stats),
                          window=rng.choice([1, 5, 30, 60]), op=rng.choice([">", ">=", "<", "<="]),
                          threshold=rng.choice([0.05, 0.1, 0.2, 0.5, 2.0, 5.0])))
    alerts.add_rules(rules)
    got = {rule: state for rule, _, state, _ in alerts.evaluate().rows()}

    by_route = {h.labels["route"]: h for h in handles}
    for r in rules:
        ws = engine.query(by_route[r["match"]["route"]], last=r["window"] + 1)
        value = ws.sum / r["window"] if r["stat"] == "rate" else ws.get(r["stat"])
        breach = {">": value > r["threshold"], ">=": value >= r["threshold"],
                  "<": value < r["threshold"], "<=": value <= r["threshold"]}[r["op"]]
        assert got[r["name"]] == ("firing" if breach else "inactive"), r


def test_a_rule_missing_its_threshold_gets_a_clear_message_everywhere(made):
    clock, engine, alerts = setup(made, TUESDAY)
    no_limit = {k: v for k, v in SLOW.items() if k != "threshold"}
    for add in (alerts.add_rule, lambda r: alerts.add_rules([r]),
                lambda r: AlertEngine(engine, rules=[r])):
        with pytest.raises(RuleError) as info:
            add(no_limit)
        assert str(info.value) == "rule 'Slow': threshold: missing; a threshold rule needs it"
        assert "pydantic" not in str(info.value) and "http" not in str(info.value)


def test_a_rule_waits_for_its_series_as_prometheus_rules_do(made):
    clock, engine, alerts = setup(made, TUESDAY)
    alerts.add_rule(dict(SLOW, window="1m"))           # no series named api.latency yet
    assert alerts.evaluate().rule.tolist() == []       # nothing to evaluate, nothing raised
    h = engine.series("api.latency", labels={"route": "/photos"})
    h.record(5.0, ts=TUESDAY + 1)
    clock.set(TUESDAY + 2)
    assert [(a.rule, a.state, dict(a.labels)) for a in (alerts.evaluate(), alerts.active())[1]] \
        == [("Slow", "firing", {"route": "/photos"})]
