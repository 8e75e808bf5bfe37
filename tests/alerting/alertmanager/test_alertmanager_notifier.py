"""wedmetrics in front of a real Alertmanager 0.25: AlertmanagerNotifier posts, amtool sees, the webhook gets it."""
from __future__ import annotations

import json
import subprocess
import textwrap
import time
import urllib.request

import pytest

from wedmetrics.alerting.alertmanager_config import label_fingerprint
from wedmetrics.alerting.alertmanager_notifier import AlertmanagerNotifier
from wedmetrics.alerting.notification import Notification, NotificationGroup

from am_peers import free_port, require_binary, wait_until  # noqa: E402


@pytest.fixture
def alertmanager(tmp_path, hook):
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    (tmp_path / "am.yml").write_text(textwrap.dedent(f"""
        route:
          receiver: hook
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1s
        receivers:
          - name: hook
            webhook_configs: [{{url: "{hook.url}/am", send_resolved: true}}]
    """))
    log = open(tmp_path / "alertmanager.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return proc.poll() is not None and pytest.fail("alertmanager exited")
    try:
        wait_until(ready, timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_alert_reaches_alertmanager_amtool_and_its_webhook_then_resolves(alertmanager, hook):
    amtool = require_binary("amtool")
    started = time.time() - 60
    notifier = AlertmanagerNotifier(alertmanager, generator_url="http://wedmetrics.local/alerts/a1")
    firing = Notification("a1", "GuestUploadsSlow", "firing", "critical", summary="uploads slow",
                          labels={"wedding_id": "w1", "severity": "critical"}, starts_at=started)
    notifier.send(NotificationGroup((firing,), group_key="g"))

    def amtool_query():
        out = subprocess.run([amtool, f"--alertmanager.url={alertmanager}", "alert", "query", "-o", "json"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    (seen,) = wait_until(amtool_query)
    assert seen["labels"] == {"alertname": "GuestUploadsSlow", "wedding_id": "w1", "severity": "critical"}
    assert seen["generatorURL"] == "http://wedmetrics.local/alerts/a1"
    assert seen["fingerprint"] == label_fingerprint(seen["labels"])   # Alertmanager's own fingerprint
    assert seen["annotations"]["summary"] == "uploads slow"
    body = wait_until(lambda: [b for b in hook.bodies if b["status"] == "firing"])[0]
    assert body["alerts"][0]["labels"]["alertname"] == "GuestUploadsSlow"

    resolved = Notification("a1", "GuestUploadsSlow", "resolved", "critical", summary="uploads slow",
                            labels={"wedding_id": "w1", "severity": "critical"}, starts_at=started,
                            ends_at=time.time() - 1)
    notifier.send(NotificationGroup((resolved,), group_key="g"))
    done = wait_until(lambda: [b for b in hook.bodies if b["status"] == "resolved"])[0]
    assert done["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    wait_until(lambda: amtool_query() == [])


def test_firing_alert_carries_ends_at_of_its_resend_window():
    n = AlertmanagerNotifier("http://127.0.0.1:1", resend_window=120, clock=lambda: 1_000_000.0)
    a = Notification("a1", "R", "firing", "warning", labels={"x": "y"}, starts_at=999_000.0)
    (item,) = n.build_payload(NotificationGroup((a,), group_key="g"))
    assert item["startsAt"] == "1970-01-12T13:30:00.000Z" and item["endsAt"] == "1970-01-12T13:48:40.000Z"
    assert item["labels"] == {"x": "y", "alertname": "R", "severity": "warning"}
    plain = AlertmanagerNotifier("http://127.0.0.1:1")
    assert "endsAt" not in plain.build_payload(NotificationGroup((a,), group_key="g"))[0]
