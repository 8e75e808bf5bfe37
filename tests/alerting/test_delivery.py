"""DeliveryQueue: retries, dead letters, isolation of stalled channels, bounded queues."""
from __future__ import annotations

import json
import logging
import random

import pytest

from wedmetrics.alerting.delivery import (
    REASON_CLOSED,
    REASON_PERMANENT,
    REASON_QUEUE_FULL,
    REASON_RETRIES_EXHAUSTED,
    DeadLetter,
    DeliveryQueue,
    RetryPolicy,
)
from wedmetrics.alerting.notification import Notification, NotificationGroup
from wedmetrics.alerting.notifiers import (
    EmailNotifier,
    LogNotifier,
    Notifier,
    SlackNotifier,
    SmsNotifier,
    WebhookNotifier,
)
from wedmetrics.clock import ManualClock

try:  # package-relative when tests/alerting is a package, flat otherwise
    from .conftest_servers import Reply, http_server, smtp_server, wedmetrics_threads  # noqa: F401
except ImportError:
    from conftest_servers import Reply, http_server, smtp_server, wedmetrics_threads  # type: ignore[no-redef]  # noqa: F401

T0 = 1_780_000_000.0
FAST = RetryPolicy(max_attempts=3, base=0.01, cap=0.02, jitter=0.0)
HMAC_SECRET = "whsec-delivery-secret-41"
SMS_TOKEN = "sms-token-77c0"
SLACK_TOKEN = "slack-path-token-6e1"


def alert(alert_id: str = "a1", **kw) -> Notification:
    base = dict(alert_id=alert_id, rule="HighLatency", status="firing", severity="critical",
                summary=f"latency high ({alert_id})", starts_at=T0)
    base.update(kw)
    return Notification(**base)


@pytest.fixture
def make_queue():
    """Build queues; at teardown close them and check every thread ended."""
    made: list[DeliveryQueue] = []

    def make(notifiers, **kw) -> DeliveryQueue:
        kw.setdefault("retry", FAST)
        kw.setdefault("clock", ManualClock(T0))
        kw.setdefault("rng", random.Random(7))
        q = DeliveryQueue(notifiers, **kw)
        made.append(q)
        return q

    yield make
    for q in made:
        assert q.close(timeout=5.0)
        assert not any(t.is_alive() for t in q.threads)
    assert wedmetrics_threads() == []


def channel_stats(q: DeliveryQueue, name: str) -> dict:
    return q.stats()["channels"][name]


# --------------------------------------------------------------------------- retry policy


def test_retry_policy_backs_off_exponentially_up_to_the_cap():
    p = RetryPolicy(max_attempts=6, base=0.5, cap=4.0, jitter=0.0)
    rng = random.Random(0)
    assert [p.delay(k, rng) for k in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert p.delay(3, rng, retry_after=3.5) == 3.5  # server asked for longer
    assert p.delay(3, rng, retry_after=100.0) == 4.0  # but never past the cap
    assert p.delay(2000, rng) == 4.0  # no float overflow


def test_retry_policy_jitter_is_bounded_and_reproducible():
    p = RetryPolicy(base=1.0, cap=8.0, jitter=0.5)
    a = [p.delay(k, random.Random(42)) for k in (1, 2, 3)]
    b = [p.delay(k, random.Random(42)) for k in (1, 2, 3)]
    assert a == b
    for k, d in zip((1, 2, 3), a):
        nominal = min(8.0, 2.0 ** (k - 1))
        assert nominal * 0.5 <= d <= nominal
    many = {p.delay(1, r) for r in (random.Random(s) for s in range(20))}
    assert len(many) > 1  # jitter actually varies


def test_retry_policy_rejects_bad_settings_by_name():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="cap"):
        RetryPolicy(base=2.0, cap=1.0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=float("nan"))


# --------------------------------------------------------------------------- delivery


def test_503_then_200_is_retried_and_delivered(http_server, make_queue):
    http_server.script("/hook", 503)
    q = make_queue([WebhookNotifier(http_server.url("/hook"), timeout=5)])
    assert q.submit(alert()) == 1
    assert q.flush(5.0)
    assert len(http_server.requests_to("/hook")) == 2
    st = channel_stats(q, "webhook")
    assert st == {"submitted": 1, "sent": 1, "failed_attempts": 1, "retried": 1, "dead_lettered": 0,
                  "dropped": 0, "pending": 0}
    assert q.dead_letters() == []
    # Both attempts carried the same delivery id: the receiver can de-duplicate.
    ids = {r.headers["x-wedmetrics-delivery"] for r in http_server.requests_to("/hook")}
    assert len(ids) == 1


def test_always_500_ends_as_a_dead_letter_after_max_attempts(http_server, make_queue):
    http_server.script("/hook", then=500)
    persisted: list[DeadLetter] = []
    clock = ManualClock(T0 + 42)
    q = make_queue([WebhookNotifier(http_server.url("/hook"), timeout=5)], on_dead_letter=persisted.append,
                   clock=clock)
    q.submit(alert())
    assert q.flush(5.0)
    assert len(http_server.requests_to("/hook")) == FAST.max_attempts
    (dead,) = q.dead_letters()
    assert dead.reason == REASON_RETRIES_EXHAUSTED
    assert dead.attempts == 3 and dead.channel == "webhook" and dead.time == T0 + 42
    assert "HTTP 500" in dead.error
    assert dead.message.alerts[0].alert_id == "a1"
    assert persisted == [dead]
    json.dumps(dead.to_dict(), allow_nan=False)
    st = channel_stats(q, "webhook")
    assert (st["failed_attempts"], st["retried"], st["dead_lettered"], st["sent"]) == (3, 2, 1, 0)


def test_client_error_goes_to_dead_letters_without_retry(http_server, make_queue):
    http_server.script("/slack", then=Reply(403, b"invalid_token"))
    q = make_queue([SlackNotifier(http_server.url("/slack"), timeout=5)])
    q.submit(alert())
    assert q.flush(5.0)
    assert len(http_server.requests_to("/slack")) == 1
    (dead,) = q.dead_letters("slack")
    assert dead.reason == REASON_PERMANENT and dead.attempts == 1 and "HTTP 403" in dead.error
    assert channel_stats(q, "slack")["retried"] == 0


def test_stalled_channel_times_out_and_dead_letters_while_another_keeps_delivering(http_server, make_queue):
    http_server.script("/slow", then=Reply(200, delay=10.0))  # every request stalls past the timeout
    slow = WebhookNotifier(http_server.url("/slow"), timeout=1.0, name="slow")
    fast = WebhookNotifier(http_server.url("/fast"), timeout=5, name="fast")
    q = make_queue([slow, fast], retry=RetryPolicy(max_attempts=2, base=0.01, cap=0.01, jitter=0.0))
    q.submit(alert("first"))
    http_server.wait_for("/slow", 1)  # the slow channel is now stuck in its first attempt
    q.submit(alert("second"), channels=["fast"])
    q.submit(alert("third"), channels=["fast"])
    fast_reqs = http_server.wait_for("/fast", 3)
    # All fast deliveries got through while the slow channel was still stuck in its first attempt.
    assert [json.loads(r.body)["alerts"][0]["alertId"] for r in fast_reqs] == ["first", "second", "third"]
    assert channel_stats(q, "slow")["failed_attempts"] == 0
    assert q.flush(10.0)
    (dead,) = q.dead_letters("slow")
    assert dead.reason == REASON_RETRIES_EXHAUSTED and dead.attempts == 2 and "timed out" in dead.error
    assert channel_stats(q, "fast")["sent"] == 3 and channel_stats(q, "fast")["dead_lettered"] == 0


def test_full_queue_drops_are_counted_and_submit_never_blocks(http_server, make_queue):
    http_server.script("/hook", Reply(200, delay=30.0))  # holds the first delivery until released
    q = make_queue([WebhookNotifier(http_server.url("/hook"), timeout=60)], capacity=2, dead_letter_capacity=2)
    assert q.submit(alert("a1")) == 1
    http_server.wait_for("/hook", 1)  # a1 in flight, still counted as pending
    queued = [q.submit(alert(f"a{i}")) for i in range(2, 7)]
    assert queued == [1, 0, 0, 0, 0]  # returned at once although the channel is stuck
    st = channel_stats(q, "webhook")
    assert st["dropped"] == 4 and st["dead_lettered"] == 4 and st["pending"] == 2
    # The in-memory list is bounded: the oldest drops are evicted and counted.
    kept = q.dead_letters()
    assert [d.message.alerts[0].alert_id for d in kept] == ["a5", "a6"]
    assert all(d.reason == REASON_QUEUE_FULL and d.attempts == 0 for d in kept)
    assert q.stats()["dead_letters_evicted"] == 2
    http_server.release.set()
    assert q.flush(5.0)
    assert channel_stats(q, "webhook")["sent"] == 2


def test_sms_retries_only_the_number_that_failed(http_server, make_queue):
    http_server.script("/sms", 200, 503)  # first number ok, second fails once
    sms = SmsNotifier(http_server.url("/sms"), "AC1", SMS_TOKEN, "+15550001111", ["+15552223333", "+15554445555"],
                      timeout=5)
    q = make_queue([sms])
    assert q.submit(alert()) == 2
    assert q.flush(5.0)
    to = [r.body.decode().split("&")[0] for r in http_server.requests_to("/sms")]
    assert to == ["To=%2B15552223333", "To=%2B15554445555", "To=%2B15554445555"]
    assert channel_stats(q, "sms")["sent"] == 2


def test_close_interrupts_back_off_and_dead_letters_the_waiting_retry(http_server, make_queue):
    http_server.script("/hook", then=503)
    q = make_queue([WebhookNotifier(http_server.url("/hook"), timeout=5)],
                   retry=RetryPolicy(max_attempts=5, base=60.0, cap=60.0, jitter=0.0))
    q.submit(alert())
    http_server.wait_for("/hook", 1)
    assert not q.flush(0.2)  # now waiting 60 s for its retry
    assert q.close(timeout=2.0)  # returns without waiting for the back-off
    assert wedmetrics_threads() == []
    (dead,) = q.dead_letters()
    assert dead.reason == REASON_CLOSED and dead.attempts == 1 and "HTTP 503" in dead.error
    # After close, submissions are counted drops, not errors on the caller's path.
    assert q.submit(alert("late")) == 0
    assert q.dead_letters()[-1].reason == REASON_CLOSED
    assert channel_stats(q, "webhook")["dropped"] == 1
    assert q.close()  # idempotent


def test_email_through_the_queue(smtp_server, make_queue):
    mail = EmailNotifier(smtp_server.host, smtp_server.port, "alerts@wedmetrics.test", "ops@example.com",
                         timeout=5, local_hostname="localhost")
    q = make_queue([mail, LogNotifier("wedmetrics.test.delivery")])
    group = NotificationGroup((alert("a1"), alert("a2", status="resolved", ends_at=T0 + 5)))
    assert q.submit(group, channels=["email"]) == 1
    assert q.flush(5.0)
    (received,) = smtp_server.wait_for(1)
    assert b"[FIRING:1] HighLatency (critical)" in received.content
    assert b"Resolved (1):" in received.content
    assert channel_stats(q, "log")["submitted"] == 0


class _BuggyNotifier(Notifier):
    """A notifier with a bug on its first call: the channel must survive it."""

    kind = "buggy"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def deliver(self, group, target=None) -> None:
        self.calls.append(group.alerts[0].alert_id)
        if len(self.calls) == 1:
            raise KeyError("template field")


def test_unexpected_notifier_exception_is_a_permanent_dead_letter_and_the_worker_survives(make_queue):
    buggy = _BuggyNotifier()
    q = make_queue([buggy])
    q.submit(alert("a1"))
    q.submit(alert("a2"))
    assert q.flush(5.0)
    assert buggy.calls == ["a1", "a2"]
    (dead,) = q.dead_letters()
    assert dead.reason == REASON_PERMANENT and "unexpected KeyError" in dead.error
    assert channel_stats(q, "buggy")["sent"] == 1


def test_dead_letter_callback_errors_are_counted_not_fatal(http_server, make_queue):
    http_server.script("/hook", then=400)

    def broken_store(dead: DeadLetter) -> None:
        raise RuntimeError("database is down")

    q = make_queue([WebhookNotifier(http_server.url("/hook"), timeout=5)], on_dead_letter=broken_store)
    q.submit(alert("a1"))
    q.submit(alert("a2"))
    assert q.flush(5.0)
    assert q.stats()["callback_errors"] == 2
    assert len(q.dead_letters()) == 2


def test_secrets_never_reach_logs_or_dead_letters(http_server, make_queue, caplog):
    http_server.script(f"/services/T/B/{SLACK_TOKEN}", then=500)
    http_server.script("/hook", then=503)
    http_server.script("/sms", then=401)
    notifiers = [
        SlackNotifier(http_server.url(f"/services/T/B/{SLACK_TOKEN}"), timeout=5),
        WebhookNotifier(http_server.url("/hook?token=query-secret-5"), secret=HMAC_SECRET,
                        headers={"Authorization": "Bearer header-secret-9"}, timeout=5),
        SmsNotifier(http_server.url("/sms"), "AC1", SMS_TOKEN, "+15550001111", "+15552223333", timeout=5),
    ]
    with caplog.at_level(logging.DEBUG):
        q = make_queue(notifiers)
        q.submit(alert())
        assert q.flush(5.0)
        text = caplog.text + repr(q) + json.dumps([d.to_dict() for d in q.dead_letters()])
        text += "".join(repr(n) for n in notifiers)
    assert len(q.dead_letters()) == 3
    assert {r.query for r in http_server.requests_to("/hook")} == {"token=query-secret-5"}  # it was really sent
    assert "retrying" in caplog.text and "giving up" in caplog.text
    for secret in (SLACK_TOKEN, HMAC_SECRET, SMS_TOKEN, "query-secret-5", "header-secret-9"):
        assert secret not in text


def test_submit_and_construction_errors_are_clear(make_queue):
    log = LogNotifier()
    with pytest.raises(ValueError, match="two channels named 'log'"):
        DeliveryQueue([log, LogNotifier()])
    with pytest.raises(ValueError, match="capacity"):
        DeliveryQueue([log], capacity=0)
    with pytest.raises(ValueError, match="at least one notifier"):
        DeliveryQueue([])
    q = make_queue([log])
    with pytest.raises(ValueError, match="unknown channel 'pager'"):
        q.submit(alert(), channels=["pager"])
    with pytest.raises(TypeError, match="Notification or NotificationGroup"):
        q.submit("disk full")  # type: ignore[arg-type]


def test_close_timeout_dead_letters_queued_work_and_reports_a_stuck_worker(http_server, make_queue):
    http_server.script("/hook", Reply(200, delay=30.0))  # first delivery hangs until released
    notifier = WebhookNotifier(http_server.url("/hook"), timeout=60)
    q = DeliveryQueue([notifier], retry=FAST, clock=ManualClock(T0))
    try:
        q.submit(alert("a1"))
        http_server.wait_for("/hook", 1)
        q.submit(alert("a2"))
        q.submit(alert("a3"))
        assert q.close(timeout=0.2) is False  # the worker is still inside a network call
        dead = q.dead_letters()
        assert [(d.message.alerts[0].alert_id, d.reason, d.attempts) for d in dead] == [
            ("a2", REASON_CLOSED, 0),
            ("a3", REASON_CLOSED, 0),
        ]
        assert channel_stats(q, "webhook")["pending"] == 1  # a1, in flight
    finally:
        http_server.release.set()
        for t in q.threads:
            t.join(5.0)
    assert not any(t.is_alive() for t in q.threads)
    st = channel_stats(q, "webhook")
    assert (st["sent"], st["dead_lettered"], st["pending"]) == (1, 2, 0)  # a1 finished: nothing lost
