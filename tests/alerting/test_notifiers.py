"""Notification model and each notifier against real servers on 127.0.0.1."""
from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import math
import socket
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wedmetrics.alerting.notification import Notification, NotificationGroup, Severity, as_group
from wedmetrics.alerting.notifiers import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryError,
    EmailNotifier,
    LogNotifier,
    Secret,
    SlackNotifier,
    RESPONSE_BODY_LIMIT,
    SmsNotifier,
    WebhookNotifier,
    sign_payload,
    verify_signature,
)
from wedmetrics.clock import ManualClock

try:  # package-relative when tests/alerting is a package, flat otherwise
    from .conftest_servers import (  # noqa: F401 - fixtures are used by name
        SMTP_PASSWORD,
        SMTP_USER,
        Reply,
        http_server,
        https_server,
        smtp_server,
        smtp_tls_server,
        smtps_server,
        streaming_server,
        tls_files,
    )
except ImportError:
    from conftest_servers import (  # type: ignore[no-redef]  # noqa: F401
        SMTP_PASSWORD,
        SMTP_USER,
        Reply,
        http_server,
        https_server,
        smtp_server,
        smtp_tls_server,
        smtps_server,
        streaming_server,
        tls_files,
    )

T0 = 1_780_000_000.0  # a Saturday in June 2026, 20:26:40 UTC
HMAC_SECRET = "whsec-7f3a9c-not-for-logs"
SMS_TOKEN = "twilio-auth-token-93b1e"
SLACK_PATH = "/services/T000/B000/slack-token-5d2e"


def alert(**kw) -> Notification:
    base = dict(
        alert_id="a-latency-photos",
        rule="HighLatency",
        status="firing",
        severity="critical",
        summary="p99 latency 2.40 s on /photos",
        description="p99 over the last 5m is above 1.5 s",
        labels={"route": "/photos", "service": "gallery"},
        annotations={"runbook": "https://runbooks.example/latency"},
        value=2.4,
        starts_at=T0,
        wedding_id="w-2026-06-13-smith",
    )
    base.update(kw)
    return Notification(**base)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- model


def test_severity_is_ordered_and_raises_saturating():
    assert Severity.INFO < Severity.WARNING < Severity.CRITICAL < Severity.PAGE
    assert Severity.WARNING.raised() is Severity.CRITICAL
    assert Severity.INFO.raised(2) is Severity.CRITICAL
    assert Severity.CRITICAL.raised(10) is Severity.PAGE
    assert Severity.PAGE.raised(0) is Severity.PAGE
    assert Severity.parse("Warning") is Severity.WARNING
    assert Severity.parse(3) is Severity.PAGE
    with pytest.raises(ValueError, match="severity must be one of info, warning, critical, page"):
        Severity.parse("urgent")
    with pytest.raises(ValueError, match="levels"):
        Severity.INFO.raised(-1)


def test_notification_validates_fields_by_name():
    with pytest.raises(ValueError, match="status"):
        alert(status="open")
    with pytest.raises(ValueError, match="ends_at is required"):
        alert(status="resolved")
    with pytest.raises(ValueError, match="before starts_at"):
        alert(status="resolved", ends_at=T0 - 1)
    with pytest.raises(TypeError, match="labels"):
        alert(labels={"route": 5})
    with pytest.raises(ValueError, match="starts_at must be finite"):
        alert(starts_at=math.inf)
    with pytest.raises(ValueError, match="escalation_level"):
        alert(escalation_level=-1)
    with pytest.raises(ValueError, match="alert_id"):
        alert(alert_id="")


def test_notification_is_immutable_and_copies_its_labels():
    labels = {"route": "/photos"}
    n = alert(labels=labels)
    labels["route"] = "/changed"
    assert n.labels["route"] == "/photos"
    with pytest.raises(TypeError):
        n.labels["route"] = "/x"  # type: ignore[index]
    assert n.group_key == "HighLatency"  # defaults to the rule
    assert hash(n) == hash(alert(labels={"route": "/photos"}))


def test_notification_to_dict_is_strict_json_with_nan_as_null():
    n = alert(value=math.nan)
    d = json.loads(json.dumps(n.to_dict(), allow_nan=False))
    assert d["value"] is None
    assert d["severity"] == "critical"
    assert d["startsAt"] == "2026-05-28T20:26:40Z"
    assert d["startsAtEpoch"] == T0
    assert d["labels"] == {"route": "/photos", "service": "gallery"}
    assert d["weddingId"] == "w-2026-06-13-smith"


def test_group_status_severity_and_common_labels_follow_alertmanager():
    firing = alert(severity="warning")
    resolved = alert(
        alert_id="a-latency-upload",
        status="resolved",
        ends_at=T0 + 60,
        severity="page",
        labels={"route": "/upload", "service": "gallery"},
    )
    g = NotificationGroup((firing, resolved))
    assert g.status == "firing"
    assert g.severity is Severity.PAGE
    assert g.common_labels == {"service": "gallery"}
    assert g.firing == (firing,) and g.resolved == (resolved,)
    assert g.title() == "[FIRING:1] HighLatency (page)"
    d = g.to_dict()
    assert [a["status"] for a in d["alerts"]] == ["firing", "resolved"]
    assert NotificationGroup((resolved,)).status == "resolved"
    assert as_group(firing).alerts == (firing,)
    with pytest.raises(ValueError, match="at least one"):
        NotificationGroup(())
    with pytest.raises(TypeError, match="Notification or NotificationGroup"):
        as_group({"alert": 1})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- email


def test_email_over_plain_smtp_reaches_every_recipient(smtp_server):
    n = EmailNotifier(
        smtp_server.host, smtp_server.port, "alerts@wedmetrics.test", ["ops@example.com", "lead@example.com"],
        timeout=5, local_hostname="localhost", clock=ManualClock(T0),
    )
    n.send(alert())
    (mail,) = smtp_server.wait_for(1)
    assert mail.mail_from == "alerts@wedmetrics.test"
    assert mail.rcpt_tos == ("ops@example.com", "lead@example.com")
    assert not mail.tls and mail.login is None
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert msg["Subject"] == "[FIRING:1] HighLatency (critical)"
    assert msg["X-Wedmetrics-Severity"] == "critical"
    assert msg["Importance"] == "high"
    body = msg.get_content()
    assert "p99 latency 2.40 s on /photos" in body
    assert "route=/photos" in body
    assert "wedding: w-2026-06-13-smith" in body
    assert "runbook: https://runbooks.example/latency" in body


def test_email_with_starttls_and_auth(smtp_tls_server, tls_files):
    n = EmailNotifier(
        smtp_tls_server.host, smtp_tls_server.port, "alerts@wedmetrics.test", "ops@example.com",
        username=SMTP_USER, password=SMTP_PASSWORD, starttls=True, timeout=5,
        ssl_context=tls_files.client_context(), local_hostname="localhost",
    )
    n.send(alert(status="resolved", ends_at=T0 + 300))
    (mail,) = smtp_tls_server.wait_for(1)
    assert mail.tls and mail.login == SMTP_USER
    msg = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert msg["Subject"] == "[RESOLVED:1] HighLatency (critical)"
    assert msg["Importance"] is None  # resolved mail is not urgent
    assert SMTP_PASSWORD not in repr(n) and SMTP_PASSWORD not in str(n)
    assert "password=***" in repr(n)


def test_email_over_implicit_tls_with_auth(smtps_server, tls_files):
    n = EmailNotifier(
        smtps_server.host, smtps_server.port, "alerts@wedmetrics.test", "ops@example.com",
        username=SMTP_USER, password=SMTP_PASSWORD, implicit_tls=True, timeout=5,
        ssl_context=tls_files.client_context(), local_hostname="localhost",
    )
    n.send(alert())
    (mail,) = smtps_server.wait_for(1)
    assert mail.login == SMTP_USER and mail.rcpt_tos == ("ops@example.com",)
    assert b"[FIRING:1] HighLatency (critical)" in mail.content


def test_email_wrong_password_is_permanent_and_does_not_echo_it(smtp_tls_server, tls_files):
    wrong = "wrong-password-0a1b"
    n = EmailNotifier(
        smtp_tls_server.host, smtp_tls_server.port, "alerts@wedmetrics.test", "ops@example.com",
        username=SMTP_USER, password=wrong, starttls=True, timeout=5,
        ssl_context=tls_files.client_context(), local_hostname="localhost",
    )
    with pytest.raises(DeliveryError, match="authentication refused") as info:
        n.send(alert())
    assert info.value.permanent and info.value.status == 535
    assert wrong not in str(info.value)
    assert smtp_tls_server.messages == []


def test_email_untrusted_certificate_is_permanent(smtp_tls_server):
    n = EmailNotifier(
        smtp_tls_server.host, smtp_tls_server.port, "alerts@wedmetrics.test", "ops@example.com",
        starttls=True, timeout=5, local_hostname="localhost",  # default context: self-signed is not trusted
    )
    with pytest.raises(DeliveryError, match="not trusted") as info:
        n.send(alert())
    assert info.value.permanent


def test_email_starttls_against_a_server_without_it_is_permanent(smtp_server):
    n = EmailNotifier(smtp_server.host, smtp_server.port, "a@b.test", "c@d.test", starttls=True, timeout=5,
                      local_hostname="localhost")
    with pytest.raises(DeliveryError, match="(?i)starttls") as info:
        n.send(alert())
    assert info.value.permanent


def test_email_connection_refused_is_transient():
    n = EmailNotifier("127.0.0.1", free_port(), "a@b.test", "c@d.test", timeout=2, local_hostname="localhost")
    with pytest.raises(DeliveryError, match="ConnectionRefusedError") as info:
        n.send(alert())
    assert info.value.transient


def test_email_config_errors_name_the_field():
    with pytest.raises(ValueError, match="not both"):
        EmailNotifier("127.0.0.1", 25, "a@b.test", "c@d.test", starttls=True, implicit_tls=True)
    with pytest.raises(ValueError, match="in clear"):
        EmailNotifier("127.0.0.1", 25, "a@b.test", "c@d.test", username="u", password="p")
    with pytest.raises(ValueError, match="both username and password"):
        EmailNotifier("127.0.0.1", 25, "a@b.test", "c@d.test", username="u", starttls=True)
    with pytest.raises(ValueError, match="EmailNotifier.to"):
        EmailNotifier("127.0.0.1", 25, "a@b.test", ["not-an-address"])
    with pytest.raises(ValueError, match="EmailNotifier.port"):
        EmailNotifier("127.0.0.1", 0, "a@b.test", "c@d.test")
    with pytest.raises(ValueError, match="timeout"):
        EmailNotifier("127.0.0.1", 25, "a@b.test", "c@d.test", timeout=0)


# --------------------------------------------------------------------------- Slack


def test_slack_posts_json_to_the_webhook(http_server):
    n = SlackNotifier(http_server.url(SLACK_PATH), timeout=5)
    n.send(alert(severity="page"))
    (req,) = http_server.wait_for(SLACK_PATH, 1)
    assert req.headers["content-type"] == "application/json"
    payload = json.loads(req.body)
    assert payload["text"] == "[FIRING:1] HighLatency (page)"
    (att,) = payload["attachments"]
    assert att["color"] == "#8B0000"
    assert "p99 latency 2.40 s on /photos" in att["text"]
    assert {"title": "wedding", "value": "w-2026-06-13-smith", "short": True} in att["fields"]


def test_slack_client_error_is_permanent_and_hides_the_webhook_path(http_server):
    http_server.script(SLACK_PATH, Reply(404, b"no_service"))
    n = SlackNotifier(http_server.url(SLACK_PATH), timeout=5)
    with pytest.raises(DeliveryError, match="HTTP 404") as info:
        n.send(alert())
    err = info.value
    assert err.permanent and err.status == 404 and "no_service" in str(err)
    for text in (str(err), repr(n), str(n), repr(vars(n))):
        assert "slack-token-5d2e" not in text
    assert repr(n) == f"SlackNotifier(webhook_url='http://127.0.0.1:{http_server.port}/***', name='slack')"


# --------------------------------------------------------------------------- signed webhook


def test_webhook_signature_verifies_on_the_receiving_server(http_server):
    clock = ManualClock(T0)
    n = WebhookNotifier(http_server.url("/hook"), secret=HMAC_SECRET, headers={"Authorization": "Bearer tok-1"},
                        timeout=5, clock=clock)
    g = as_group(alert())
    n.send(g)
    (req,) = http_server.wait_for("/hook", 1)
    assert req.headers["x-wedmetrics-timestamp"] == str(int(T0))
    assert req.headers["authorization"] == "Bearer tok-1"
    assert verify_signature(HMAC_SECRET, req.body, req.headers, now=T0 + 10)
    # The body is the group's JSON, as documented.
    assert json.loads(req.body) == json.loads(json.dumps(g.to_dict()))
    # Tampering, a wrong key or a replay after the tolerance all fail.
    assert not verify_signature(HMAC_SECRET, req.body.replace(b"critical", b"info"), req.headers, now=T0)
    assert not verify_signature("another-secret", req.body, req.headers, now=T0)
    assert not verify_signature(HMAC_SECRET, req.body, req.headers, now=T0 + 301)
    replayed = dict(req.headers, **{"x-wedmetrics-timestamp": str(int(T0) + 3600)})
    assert not verify_signature(HMAC_SECRET, req.body, replayed, now=T0 + 3600)
    assert not verify_signature(HMAC_SECRET, req.body, {}, now=T0)


def test_webhook_signature_matches_the_documented_scheme():
    import hashlib
    import hmac

    body = b'{"status":"firing"}'
    expected = hmac.new(HMAC_SECRET.encode(), b"1780000000." + body, hashlib.sha256).hexdigest()
    assert sign_payload(HMAC_SECRET, body, 1780000000) == "sha256=" + expected
    headers = {SIGNATURE_HEADER: "sha256=" + expected, TIMESTAMP_HEADER: "1780000000"}
    assert verify_signature(HMAC_SECRET, body, headers, tolerance=None)


def test_webhook_delivery_id_is_stable_across_retries_and_signature_is_fresh():
    clock = ManualClock(T0)
    n = WebhookNotifier("http://127.0.0.1:9/hook", secret=HMAC_SECRET, clock=clock)
    g = as_group(alert())
    body1, h1 = n.build_request(g)
    clock.advance(30)
    body2, h2 = n.build_request(g)
    assert body1 == body2 and h1[DELIVERY_ID_HEADER] == h2[DELIVERY_ID_HEADER]
    assert h1[TIMESTAMP_HEADER] != h2[TIMESTAMP_HEADER] and h1[SIGNATURE_HEADER] != h2[SIGNATURE_HEADER]
    unsigned = WebhookNotifier("http://127.0.0.1:9/hook").build_request(g)[1]
    assert SIGNATURE_HEADER not in unsigned and DELIVERY_ID_HEADER in unsigned


def test_webhook_repr_hides_secret_header_values_and_query_tokens():
    n = WebhookNotifier("https://user:pw-1@hooks.example/alerts?token=q-tok-9", secret=HMAC_SECRET,
                        headers={"Authorization": "Bearer hdr-tok-2"})
    text = repr(n) + str(n) + repr(vars(n))
    for secret in (HMAC_SECRET, "hdr-tok-2", "q-tok-9", "pw-1"):
        assert secret not in text
    assert repr(n) == ("WebhookNotifier(url='https://hooks.example/alerts?***', secret=***, "
                       "headers=['Authorization'], name='webhook')")
    with pytest.raises(ValueError, match="set by the notifier"):
        WebhookNotifier("http://x.test/", headers={"X-Wedmetrics-Signature": "forged"})
    with pytest.raises(ValueError, match="http:// or https://"):
        WebhookNotifier("ftp://x.test/")


def test_webhook_5xx_is_transient_with_retry_after(http_server):
    http_server.script("/hook", Reply(503, b"busy", headers=(("Retry-After", "7"),)))
    n = WebhookNotifier(http_server.url("/hook"), timeout=5)
    with pytest.raises(DeliveryError, match="HTTP 503") as info:
        n.send(alert())
    assert info.value.transient and info.value.status == 503 and info.value.retry_after == 7.0


def test_webhook_redirect_is_not_followed_and_is_permanent(http_server):
    http_server.script("/hook", Reply(302, b"", headers=(("Location", http_server.url("/elsewhere")),)))
    n = WebhookNotifier(http_server.url("/hook"), timeout=5)
    with pytest.raises(DeliveryError, match="HTTP 302") as info:
        n.send(alert())
    assert info.value.permanent
    assert http_server.requests_to("/elsewhere") == []


def test_webhook_stalled_server_times_out_as_transient(http_server):
    http_server.script("/hook", Reply(200, delay=5.0))
    n = WebhookNotifier(http_server.url("/hook"), timeout=0.2)
    with pytest.raises(DeliveryError, match="timed out") as info:
        n.send(alert())
    assert info.value.transient


def test_webhook_to_an_untrusted_https_certificate_is_permanent(https_server):
    n = WebhookNotifier(https_server.url("/hook"), timeout=5)
    with pytest.raises(DeliveryError, match="certificate not trusted") as info:
        n.send(alert())
    assert info.value.permanent
    assert https_server.requests == []


def test_webhook_connection_refused_is_transient():
    n = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", timeout=2)
    with pytest.raises(DeliveryError, match="ConnectionRefusedError") as info:
        n.send(alert())
    assert info.value.transient


# --------------------------------------------------------------------------- SMS


def test_sms_posts_one_form_per_number_with_basic_auth(http_server):
    path = "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json"
    n = SmsNotifier(
        http_server.url("/2010-04-01/Accounts/{account_sid}/Messages.json"), "AC0123456789abcdef", SMS_TOKEN,
        "+15550001111", ["+15552223333", "+447700900123"], timeout=5,
    )
    assert n.targets() == ("+15552223333", "+447700900123")
    n.send(alert(severity="page"))
    reqs = http_server.wait_for(path, 2)
    forms = [urllib.parse.parse_qs(r.body.decode()) for r in reqs]
    assert [f["To"] for f in forms] == [["+15552223333"], ["+447700900123"]]
    assert all(f["From"] == ["+15550001111"] for f in forms)
    assert forms[0]["Body"][0].startswith("[FIRING:1] HighLatency (page)\nF HighLatency @w-2026-06-13-smith:")
    for r in reqs:
        assert r.headers["content-type"] == "application/x-www-form-urlencoded"
        scheme, creds = r.headers["authorization"].split(" ", 1)
        assert scheme == "Basic" and base64.b64decode(creds).decode() == f"AC0123456789abcdef:{SMS_TOKEN}"
    text = repr(n) + str(n) + repr(vars(n))
    assert SMS_TOKEN not in text and "auth_token=***" in repr(n)
    assert "0123456789ab" not in repr(n)  # the account sid is shown masked


def test_sms_gateway_rejection_is_permanent(http_server):
    http_server.script("/sms", Reply(400, b'{"code": 21211, "message": "invalid To"}'))
    n = SmsNotifier(http_server.url("/sms"), "AC1", SMS_TOKEN, "+15550001111", "+15552223333", timeout=5)
    with pytest.raises(DeliveryError, match="HTTP 400") as info:
        n.send(alert())
    assert info.value.permanent and SMS_TOKEN not in str(info.value)


def test_sms_validates_numbers_and_cuts_long_bodies():
    with pytest.raises(ValueError, match="to_numbers.*E.164"):
        SmsNotifier("http://127.0.0.1:9/sms", "AC1", "t", "+15550001111", ["555-1234"])
    with pytest.raises(ValueError, match="from_number"):
        SmsNotifier("http://127.0.0.1:9/sms", "AC1", "t", "15550001111", "+15552223333")
    n = SmsNotifier("http://127.0.0.1:9/sms", "AC1", "t", "+15550001111", "+15552223333", max_length=40)
    text = n.build_text(as_group(alert(summary="x" * 200)))
    assert len(text) == 40 and text.endswith("\u2026")


# --------------------------------------------------------------------------- log


def test_log_notifier_level_follows_severity(caplog):
    n = LogNotifier("wedmetrics.test.alerts")
    with caplog.at_level(logging.DEBUG, logger="wedmetrics.test.alerts"):
        n.send(alert(severity="critical"))
        n.send(alert(severity="page"))
        n.send(alert(severity="warning"))
        n.send(alert(status="resolved", ends_at=T0 + 1, severity="page"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.CRITICAL, logging.WARNING, logging.INFO]
    first = caplog.records[0]
    assert first.getMessage().startswith("[FIRING:1] HighLatency (critical)\nFiring (1):")
    assert first.wedmetrics_notification["alerts"][0]["alertId"] == "a-latency-photos"


def test_secret_wrapper_never_shows_its_value():
    s = Secret("hunter2")
    assert repr(s) == "Secret('***')" and str(s) == "***" and f"{s}" == "***"
    assert s.reveal() == "hunter2" and s == Secret("hunter2") and s != Secret("other")
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(s)
    with pytest.raises(ValueError, match="non-empty"):
        Secret("")


@settings(max_examples=60, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=64),
    body=st.binary(max_size=512),
    timestamp=st.integers(min_value=0, max_value=2**40),
    flip=st.integers(min_value=0),
)
def test_signature_round_trips_and_any_changed_byte_fails(secret, body, timestamp, flip):
    headers = {SIGNATURE_HEADER: sign_payload(secret, body, timestamp), TIMESTAMP_HEADER: str(timestamp)}
    assert verify_signature(secret, body, headers, now=float(timestamp))
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        assert not verify_signature(secret, tampered, headers, now=float(timestamp))
    assert not verify_signature(secret + b"x", body, headers, now=float(timestamp))


# -- every HTTP attempt is bounded: a deadline, a body cap (issue #11 item 12) --------------

HTTP_CHANNELS = {
    "webhook": lambda url, timeout: WebhookNotifier(url, timeout=timeout),
    "slack": lambda url, timeout: SlackNotifier(url, timeout=timeout),
    "sms": lambda url, timeout: SmsNotifier(url, "AC1", SMS_TOKEN, "+15550001111", "+15552223333",
                                            timeout=timeout),
}


@pytest.mark.parametrize("channel", sorted(HTTP_CHANNELS))
def test_a_trickling_server_cannot_hold_an_attempt_past_its_timeout(streaming_server, channel):
    # one byte every 50 ms: each read succeeds well within the timeout, so only
    # a deadline over the whole attempt ends it (the full answer takes ~17 s)
    streaming_server.trickle(0.05)
    n = HTTP_CHANNELS[channel](streaming_server.url("/hook"), 0.5)
    with pytest.raises(DeliveryError, match=r"timed out \(no complete answer within timeout=0.5s\)") as info:
        n.send(alert())
    assert info.value.transient
    assert streaming_server.done.wait(10)
    # about 10 bytes fit in 0.5 s; 100 would mean the attempt ran ten times its timeout
    assert 0 < streaming_server.sent < 100


@pytest.mark.parametrize("channel", sorted(HTTP_CHANNELS))
def test_a_huge_answer_is_read_only_up_to_the_documented_cap(streaming_server, channel):
    size = 100 * 2 ** 20
    streaming_server.huge(size)
    n = HTTP_CHANNELS[channel](streaming_server.url("/hook"), 10)
    n.send(alert())                      # a 200 is a delivery, whatever follows it
    assert streaming_server.done.wait(10)
    # the client read RESPONSE_BODY_LIMIT bytes and hung up; the kernel's socket
    # buffers took a little more, nowhere near the whole body
    assert RESPONSE_BODY_LIMIT == 4096
    assert streaming_server.sent < 10 * 2 ** 20


def _stuck_listener(family, host, port=0):
    """A real listening socket whose accept queue is full: the kernel drops
    further SYNs, so a connect to it hangs (retransmitting) until cut."""
    server = socket.socket(family)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind((host, port))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(8):          # the queue holds backlog + 1 on Linux
        c = socket.socket(family)
        c.setblocking(False)
        c.connect_ex((host, port))
        fillers.append(c)
    return server, fillers


@pytest.mark.parametrize("channel", sorted(HTTP_CHANNELS))
def test_a_name_with_several_stuck_addresses_is_bounded_by_the_timeout(channel):
    # "localhost" is looked up (under the deadline) to ::1 and 127.0.0.1, both
    # stuck: trying them in turn, each with the whole timeout, took twice it
    import time

    if {a[4][0] for a in socket.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM)} \
            != {"::1", "127.0.0.1"}:
        pytest.skip("localhost does not name both ::1 and 127.0.0.1 here")
    v4, fill4 = _stuck_listener(socket.AF_INET, "127.0.0.1")
    port = v4.getsockname()[1]
    try:
        v6, fill6 = _stuck_listener(socket.AF_INET6, "::1", port)
    except OSError:
        v4.close()
        pytest.skip("no IPv6 loopback")
    try:
        time.sleep(0.1)
        n = HTTP_CHANNELS[channel](f"http://localhost:{port}/hook", 0.5)
        began = time.monotonic()
        with pytest.raises(DeliveryError) as info:
            n.send(alert())
        took = time.monotonic() - began
        assert info.value.transient
        assert took < 0.5 + 0.25, f"one attempt took {took:.2f}s with timeout=0.5"
    finally:
        for c in fill4 + fill6 + [v4, v6]:
            c.close()
