"""Alertmanager's silence tests, translated (silence/silence_test.go), and persistence across a restart."""
from __future__ import annotations

import pydantic
import pytest

import wedmetrics as wm
from wedmetrics.alerting.matchers import Matcher
from wedmetrics.alerting.silences import Silence, SilenceStore, can_update

NOW = 1_700_000_000.0
MIN, HOUR, SEC = 60.0, 3600.0, 1.0
AB = ['a="b"']


def sil(starts, ends, matchers=AB, **kw):
    return Silence(matchers=matchers, starts_at=starts, ends_at=ends, created_by="ana", **kw)


# TestValidateClassicMatcher: (name, op, pattern) -> error fragment or None
MATCHER = [
    ("TestValidateClassicMatcher", "a", "=", "b", None),
    ("TestValidateClassicMatcher", "a", "!=", "b", None),
    ("TestValidateClassicMatcher", "a", "=~", "b", None),
    ("TestValidateClassicMatcher", "a", "!~", "b", None),
    ("TestValidateClassicMatcher", "00", "=", "a", "invalid label name"),
    ("TestValidateClassicMatcher", "\U0001F642", "=", "a", "invalid label name"),
    ("TestValidateClassicMatcher", "a", "=~", "((", "invalid regex"),
    ("TestValidateClassicMatcher", "a", "!~", "))", "invalid regex"),
    ("TestValidateClassicMatcher", "a", "=", "\U0001F642", None),
    ("TestValidateClassicMatcher", "a", "<>", "b", "operator must be one of"),
]


@pytest.mark.parametrize("go_test,name,op,pattern,error", MATCHER)
def test_validate_classic_matcher(go_test, name, op, pattern, error):
    if error is None:
        # beside it a matcher that does not match "", so only this one is judged
        sil(NOW, NOW + HOUR, matchers=[Matcher(name, op, pattern), Matcher("z", "=", "1")])
    else:
        with pytest.raises((pydantic.ValidationError, ValueError), match=error):
            sil(NOW, NOW + HOUR, matchers=[Matcher(name, op, pattern), Matcher("z", "=", "1")])


# TestValidateSilence
VALIDATE = [
    ("TestValidateSilence/valid", dict(matchers=AB, starts_at=NOW, ends_at=NOW), None),
    ("TestValidateSilence/empty", dict(matchers=[], starts_at=NOW, ends_at=NOW), "at least one matcher"),
    ("TestValidateSilence/invalid label name", dict(matchers=['a="b"', Matcher("00", "=", "b")],
                                                    starts_at=NOW, ends_at=NOW), "invalid label name"),
    ("TestValidateSilence/all match empty", dict(matchers=['a=""', 'b=~".*"'], starts_at=NOW, ends_at=NOW),
     "at least one matcher must not match the empty string"),
    ("TestValidateSilence/ends before start", dict(matchers=AB, starts_at=NOW, ends_at=NOW - SEC),
     "end time must not be before start time"),
    ("TestValidateSilence/zero start", dict(matchers=AB, ends_at=NOW), "starts_at"),
    ("TestValidateSilence/zero end", dict(matchers=AB, starts_at=NOW), "ends_at"),
]


@pytest.mark.parametrize("go_test,kw,error", VALIDATE)
def test_validate_silence(go_test, kw, error):
    if error is None:
        # starts_at == ends_at is valid; here it is expired at once (Alertmanager: active for that instant)
        assert Silence(created_by="ana", **kw).state(NOW) == "expired"
    else:
        with pytest.raises(pydantic.ValidationError, match=error):
            Silence(created_by="ana", **kw)


# TestQState: a silence starting in a minute is pending only
QSTATE = [
    ("TestQState", ("active", "expired"), False),
    ("TestQState", ("pending",), True),
    ("TestQState", ("expired", "pending"), True),
]


@pytest.mark.parametrize("go_test,states,keep", QSTATE)
def test_qstate(go_test, states, keep):
    assert (sil(NOW + MIN, NOW + HOUR).state(NOW) in states) is keep


# TestSilenceCanUpdate: a (stored) -> b (wanted)
CAN_UPDATE = [
    ("TestSilenceCanUpdate/expired", (NOW - HOUR, NOW - SEC), (NOW, NOW), False),
    ("TestSilenceCanUpdate/pending, start in the past", (NOW + HOUR, NOW + 2 * HOUR), (NOW - MIN, NOW + HOUR), False),
    ("TestSilenceCanUpdate/pending", (NOW + HOUR, NOW + 2 * HOUR), (NOW + MIN, NOW + MIN), True),
    ("TestSilenceCanUpdate/pending, start now", (NOW + HOUR, NOW + 2 * HOUR), (NOW, NOW + 2 * HOUR), True),
    ("TestSilenceCanUpdate/active, start moved", (NOW - HOUR, NOW + 2 * HOUR), (NOW - MIN, NOW + 2 * HOUR), False),
    ("TestSilenceCanUpdate/active, end in the past", (NOW - HOUR, NOW + 2 * HOUR), (NOW - HOUR, NOW - SEC), False),
    ("TestSilenceCanUpdate/active, end now", (NOW - HOUR, NOW + 2 * HOUR), (NOW - HOUR, NOW), True),
    ("TestSilenceCanUpdate/active, end later", (NOW - HOUR, NOW + 2 * HOUR), (NOW - HOUR, NOW + 3 * HOUR), True),
]


@pytest.mark.parametrize("go_test,a,b,ok", CAN_UPDATE)
def test_silence_can_update(go_test, a, b, ok):
    assert can_update(sil(*a), sil(*b), NOW) is ok
    # different matchers never update in place
    assert not can_update(sil(*a), sil(*b, matchers=['a="c"']), NOW)


def test_silence_can_update_bad_arguments():
    """TestSilenceCanUpdate, row "Bad arguments": b ends before it starts.  Go's CanUpdate answers
    false; here such a silence cannot be made at all (nor stored through set())."""
    go_test = "TestSilenceCanUpdate/bad arguments"
    with pytest.raises(pydantic.ValidationError, match="end"):
        sil(NOW, NOW - MIN)
    store = SilenceStore()
    first = store.set({"matchers": AB, "starts_at": NOW, "ends_at": NOW + HOUR, "created_by": "ana"}, NOW)
    with pytest.raises(ValueError):
        store.set({"id": first.id, "matchers": AB, "starts_at": NOW, "ends_at": NOW - MIN, "created_by": "ana"}, NOW)
    assert store.get(first.id).ends_at == NOW + HOUR, go_test


# TestQMatches: does a silence with these matchers mute the label set (the query keeps it)?
QM_LABELS = {"job": "test", "instance": "web-1", "path": "/user/profile", "method": "GET"}
QMATCHES = [
    ("TestQMatches", ['job="test"'], True),
    ("TestQMatches", ['job!="test"'], False),
    ("TestQMatches", ['job="test"', 'method="POST"'], False),
    ("TestQMatches", ['job="test"', 'method!="POST"'], True),
    ("TestQMatches", ['path=~"/user/.+"'], True),
    ("TestQMatches", ['path!~"/user/.+"'], False),
    ("TestQMatches", ['path=~"/user/.+"', 'path=~"/nothing/.+"'], False),
]


@pytest.mark.parametrize("go_test,matchers,drop", QMATCHES)
def test_qmatches(go_test, matchers, drop):
    s = sil(NOW - MIN, NOW + HOUR, matchers=matchers)
    assert s.mutes(QM_LABELS, NOW) is drop
    assert (SilenceStore([s]).silenced_by(QM_LABELS, NOW) == [s.id]) is drop


def test_silence_expire():
    """TestSilenceExpire: pending -> starts=ends=now (expired from then on), active -> ends now, expired unchanged."""
    store = SilenceStore([sil(NOW + MIN, NOW + HOUR, id="pending", updated_at=NOW - HOUR),
                          sil(NOW - MIN, NOW + HOUR, id="active", updated_at=NOW - HOUR),
                          sil(NOW - HOUR, NOW - MIN, id="expired", updated_at=NOW - HOUR)])
    states = [s.state(NOW) for s in store]
    assert sorted(states) == ["active", "expired", "pending"]
    for sid in ("pending", "active", "expired"):
        store.expire(sid, NOW)
    p, a, e = store.get("pending"), store.get("active"), store.get("expired")
    assert (p.starts_at, p.ends_at, p.updated_at) == (NOW, NOW, NOW)
    assert (a.starts_at, a.ends_at, a.updated_at) == (NOW - MIN, NOW, NOW)
    assert (e.starts_at, e.ends_at, e.updated_at) == (NOW - HOUR, NOW - MIN, NOW - HOUR)
    assert [s.state(NOW + SEC) for s in (p, a, e)] == ["expired"] * 3
    assert [s.state(NOW) for s in (p, a, e)] == ["expired"] * 3      # at once, on a manual clock too


def test_set_updates_in_place_or_expires_and_makes_a_new_id():
    """TestSilenceSet: an allowed change keeps the id; another expires the old one and makes a new id."""
    store = SilenceStore()
    first = store.set({"matchers": AB, "starts_at": NOW - MIN, "ends_at": NOW + HOUR, "created_by": "ana"}, NOW)
    assert first.starts_at == NOW     # a new silence starts no earlier than now
    longer = store.set({"id": first.id, "matchers": AB, "starts_at": NOW, "ends_at": NOW + 2 * HOUR,
                        "created_by": "ana"}, NOW + MIN)
    assert longer.id == first.id and longer.ends_at == NOW + 2 * HOUR
    other = store.set({"id": first.id, "matchers": ['a="c"'], "starts_at": NOW, "ends_at": NOW + 2 * HOUR,
                       "created_by": "ana"}, NOW + 2 * MIN)
    assert other.id != first.id
    assert store.get(first.id).ends_at == NOW + 2 * MIN and store.get(first.id).state(NOW + 3 * MIN) == "expired"
    with pytest.raises(KeyError, match="nope"):
        store.set({"id": "nope", "matchers": AB, "starts_at": NOW, "ends_at": NOW + 1, "created_by": "x"}, NOW)


def test_silences_survive_a_restart(tmp_path):
    clock = wm.ManualClock(NOW)
    storage = wm.SQLiteBackend(tmp_path / "m.db")
    engine = wm.MetricsEngine(clock=clock, storage=storage)
    alerts = wm.AlertEngine(engine, config="route: {receiver: x}\nreceivers: [{name: x}]\n")
    s = alerts.silence(['venue="kew"'], until="2h", by="ana", comment="wifi")
    gone = alerts.dispatcher.silences.set({"matchers": ['venue="ely"'], "starts_at": NOW + HOUR,
                                           "ends_at": NOW + 2 * HOUR, "created_by": "bo"}, NOW)
    alerts.dispatcher.silences.expire(gone.id, NOW + 1)
    alerts.close()
    engine.close()
    storage.close()

    storage = wm.SQLiteBackend(tmp_path / "m.db")
    engine = wm.MetricsEngine(clock=clock, storage=storage)
    alerts = wm.AlertEngine(engine, config="route: {receiver: x}\nreceivers: [{name: x}]\n")
    try:
        again = {x.id: x for x in alerts.dispatcher.silences}
        assert again[s.id].matchers == s.matchers and again[s.id].comment == "wifi"
        assert again[gone.id].state(NOW + 2) == "expired"
        assert alerts.dispatcher.silences.silenced_by({"venue": "kew"}, NOW + 60) == [s.id]
    finally:
        alerts.close()
        engine.close()
        storage.close()
