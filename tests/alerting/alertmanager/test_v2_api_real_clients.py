"""wedmetrics as Alertmanager: real Prometheus 2.42 and amtool against the v2 API router."""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi import FastAPI  # noqa: E402

import wedmetrics as wm  # noqa: E402
from wedmetrics.http.alertmanager_api import alertmanager_router  # noqa: E402

from am_peers import free_port, require_binary, serve, wait_until  # noqa: E402


def config_for(hook_url: str) -> str:
    return textwrap.dedent(f"""
        route:
          receiver: hook
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1s
        receivers:
          - name: hook
            webhook_configs:
              - url: {hook_url}/alerts
    """)


@pytest.fixture
def am_app(hook):
    engine = wm.MetricsEngine()
    alerts = wm.AlertEngine(engine, config=config_for(hook.url), interval=0.1)
    app = FastAPI()
    app.include_router(alertmanager_router(alerts))
    alerts.start()
    yield alerts, app
    alerts.close()
    engine.close()


@pytest.mark.parametrize("front", ["router", "hub with a token"])
def test_prometheus_delivers_its_alert_which_wedmetrics_routes_to_the_webhook(am_app, hook, tmp_path, front):
    prometheus = require_binary("prometheus")
    alerts, app = am_app
    auth = ""
    if front == "hub with a token":
        # the hub's create_app answers the v2 API to operator tokens only: Prometheus sends
        # its token with the alertmanagers entry's `authorization:` setting
        from wedmetrics.http.app import create_app

        app = create_app(alerts.engine, alerts=alerts, tokens={"prom-token": "*", "org-token": "acme"})
        auth = "authorization: {type: Bearer, credentials: prom-token}"
    with serve(app) as base:
        port = base.rsplit(":", 1)[1]
        (tmp_path / "rules.yml").write_text(textwrap.dedent("""
            groups:
              - name: wedding
                interval: 1s
                rules:
                  - alert: TooManyGuests
                    expr: wedding_guests > 100
                    labels: {severity: critical}
                    annotations: {summary: "{{ $value }} guests"}
        """))
        (tmp_path / "prometheus.yml").write_text(textwrap.dedent(f"""
            global: {{scrape_interval: 1s, evaluation_interval: 1s}}
            rule_files: [rules.yml]
            alerting:
              alertmanagers:
                - static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
                  {auth}
            scrape_configs:
              - job_name: venue
                static_configs: [{{targets: ["127.0.0.1:{hook.server.server_port}"]}}]
        """))
        log = open(tmp_path / "prometheus.log", "w")
        proc = subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{free_port()}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=log)
        try:
            bodies = wait_until(lambda: [b for b in hook.bodies
                                         if any(a["labels"].get("alertname") == "TooManyGuests"
                                                for a in b["alerts"])], timeout=60,
                                info=lambda: (alerts.received.all(), alerts.stats(),
                                              (tmp_path / "prometheus.log").read_text()[-2000:]))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
        body = bodies[0]
        assert body["version"] == "4" and body["receiver"] == "hook" and body["status"] == "firing"
        assert body["groupLabels"] == {"alertname": "TooManyGuests"}
        (a,) = body["alerts"]
        assert a["labels"]["severity"] == "critical" and a["labels"]["job"] == "venue"
        assert a["annotations"] == {"summary": "150 guests"}       # generatorURL is not an annotation
        assert a["generatorURL"].startswith("http://") and "graph" in a["generatorURL"]
        assert "wedding_severity" not in a["labels"]   # plain config, no calendar: Alertmanager's labels


def test_amtool_lists_alerts_and_adds_queries_and_expires_a_silence(am_app):
    amtool = require_binary("amtool")
    alerts, app = am_app
    alerts.receive_alerts([{"labels": {"alertname": "VenueWifiDown", "venue": "kew"},
                            "annotations": {"summary": "wifi"}}])
    with serve(app) as base:
        def run(*args):
            out = subprocess.run([amtool, f"--alertmanager.url={base}", *args], capture_output=True,
                                 text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            return out.stdout

        listed = run("alert", "query", "-o", "json")
        assert [a["labels"]["alertname"] for a in json.loads(listed)] == ["VenueWifiDown"]
        silence_id = run("silence", "add", "venue=kew", "--comment=wifi swap", "--author=ana",
                         "--duration=2h").strip()
        assert len(silence_id) == 36
        queried = json.loads(run("silence", "query", "-o", "json"))
        assert [(s["id"], s["status"]["state"], s["createdBy"]) for s in queried] == [
            (silence_id, "active", "ana")]
        assert json.loads(run("alert", "query", "-o", "json")) == []      # silenced: hidden by default
        shown = json.loads(run("alert", "query", "-s", "-o", "json"))
        assert shown[0]["status"]["silencedBy"] == [silence_id]
        run("silence", "expire", silence_id)
        after = json.loads(run("silence", "query", "--expired", "-o", "json"))
        assert [(s["id"], s["status"]["state"]) for s in after] == [(silence_id, "expired")]
