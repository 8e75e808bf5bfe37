"""The dashboard page in headless Chromium (Playwright) over a live hub with the demo's data.

It must load without a console error, show the demo's series, today's
weddings and, after an injected incident, the alert; the stream must change
what is on screen (screenshots before and after differ, pixel for pixel and
in the DOM); Ack and Silence must reach the alert engine.
"""
from __future__ import annotations

import io
import logging
import os
import threading

import httpx
import numpy as np
import pytest

import wedmetrics as wm
from wedmetrics.alerting import AlertEngine, LogNotifier
from wedmetrics.collect.simulate import DEFAULT_START, WeddingTraffic, wedding_calendar
from wedmetrics.demo import DEMO_RULES
from wedmetrics.http import create_app

from hubserver import live_server
from peers import require_binary

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class Demo:
    """The demo's pipeline on a manual clock, stepped by a thread: a simulated
    second of traffic every 0.25 s, then one alert evaluation (a one-minute
    alert window lasts 15 s on screen)."""

    def __init__(self) -> None:
        self.calendar = wedding_calendar(7, days=2, weddings_per_saturday=6.0)
        self.traffic = WeddingTraffic(7, self.calendar, incident_rate=0.0, rate_scale=2.0)
        self.clock = wm.ManualClock(DEFAULT_START)
        self.engine = wm.MetricsEngine(clock=self.clock)
        self.ids = self.traffic.register(self.engine)
        self.alerts = AlertEngine(self.engine, calendar=self.calendar, rules=DEMO_RULES,
                                  notifiers=[LogNotifier(logging.getLogger("test.dashboard"))])
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sim = DEFAULT_START
        self.step(600.0)                       # ten minutes of history before the page opens
        self.thread = threading.Thread(target=self._run, name="test-demo", daemon=True)

    def step(self, seconds: float) -> None:
        with self.lock:
            batch = self.traffic.window(self.sim, self.sim + seconds)
            self.engine.record_many(self.ids[batch.ids], batch.ts, batch.values)
            self.sim += seconds
            self.clock.set(self.sim)
            self.alerts.evaluate()

    def incident(self) -> None:
        """An error burst and slow uploads on /photos/upload, right now."""
        with self.lock:
            now = self.clock.now()
            errors = self.engine.series("api.errors", {"route": "/photos/upload"}, kind="counter")
            for i in range(40):
                errors.inc(10.0, ts=now - 0.5 - i * 0.01)
            slow = self.engine.series("api.latency", {"route": "/photos/upload"})
            for i in range(400):
                slow.record(4.0 + (i % 7) * 0.5, ts=now - 0.5)
            self.alerts.evaluate()

    def _run(self) -> None:
        for _ in range(1200):                  # bounded: five minutes of wall time at most
            if self.stop.wait(0.25):
                return
            self.step(1.0)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
        self.alerts.close()
        self.engine.close()


@pytest.fixture
def demo():
    d = Demo()
    yield d
    d.close()


def changed_fraction(before: bytes, after: bytes, box=None) -> float:
    """Share of pixels that differ visibly, in ``box`` (x, y, width, height) or everywhere."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(before)).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(after)).convert("RGB"), dtype=np.int16)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w], b[:h, :w]
    if box is not None:
        x, y, bw, bh = (int(round(v)) for v in box)
        a, b = a[y:y + bh, x:x + bw], b[y:y + bh, x:x + bw]
    diff = np.abs(a - b).sum(axis=2) > 30
    return float(diff.mean())


def test_the_dashboard_shows_the_demo_live(demo, tmp_path):
    chromium = require_binary("/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    app = create_app(demo.engine, alerts=demo.alerts, calendar=demo.calendar, cache_ttl=0)
    problems: list[str] = []
    demo.thread.start()
    with live_server(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(base + "/")
            page.wait_for_selector("#status[data-state='live']", timeout=15000)
            page.wait_for_selector("tr[data-series='api.latency']", timeout=15000)
            # the demo's series, each with both sparklines drawn once a few events came
            names = set(page.eval_on_selector_all("tr[data-series]",
                                                  "rows => rows.map(r => r.dataset.series)"))
            assert {"api.latency", "api.requests", "api.errors", "vendor.latency",
                    "photos.uploaded", "guests.online"} <= names
            page.wait_for_function(
                "() => [...document.querySelectorAll('svg.spark.p95 polyline')]"
                ".some(p => p.getAttribute('points').split(' ').length >= 3)", timeout=15000)
            # today's weddings of the simulated Saturday, with their priority
            today = {w.id for w in demo.calendar if w.date == w.local(demo.clock.now()).date()}
            assert today
            page.wait_for_selector("li[data-wedding]", timeout=10000)
            shown = set(page.eval_on_selector_all("li[data-wedding]",
                                                  "els => els.map(e => e.dataset.wedding)"))
            assert shown == today
            levels = set(page.eval_on_selector_all("li[data-wedding]",
                                                   "els => els.map(e => e.dataset.priority)"))
            assert levels <= {"wedding_day", "saturday"}
            assert page.locator("li[data-alert]").count() == 0
            shot = os.environ.get("WEDMETRICS_DASHBOARD_SCREENSHOT")
            if shot:                           # docs/dashboard.png is made this way
                page.wait_for_timeout(15000)   # longer sparklines
            before = page.screenshot(full_page=True)

            demo.incident()
            burst = page.locator("li[data-alert][data-state='firing']",
                                 has=page.locator(".rule", has_text="ErrorBurst"))
            burst.first.wait_for(timeout=10000)
            alert_id = burst.first.get_attribute("data-alert")
            page.wait_for_timeout(2000)        # a few more events move the sparklines
            after = page.screenshot(full_page=True)
            (tmp_path / "before.png").write_bytes(before)
            (tmp_path / "after.png").write_bytes(after)
            box = page.locator("#alerts-section").bounding_box()
            alerts_area = (box["x"], box["y"], box["width"], box["height"])
            # the alert list grew and the numbers and sparklines moved
            assert changed_fraction(before, after, alerts_area) > 0.02
            assert changed_fraction(before, after) > 0.002

            if shot:
                page.screenshot(path=shot)

            # Ack and Silence go through the hub to the alert engine
            page.locator(f"li[data-alert='{alert_id}'] button[data-action='ack']").click()
            page.wait_for_selector(f"li[data-alert='{alert_id}'] .badge.acked", timeout=10000)
            acked = {a.id: a.acked_by for a in demo.alerts.active()}
            assert acked[alert_id] == "dashboard"
            page.locator(f"li[data-alert='{alert_id}'] button[data-action='silence']").click()
            page.wait_for_selector(f"li[data-alert='{alert_id}'] .badge.silenced", timeout=10000)
            silences = httpx.get(base + "/api/metrics/silences").json()["silences"]
            assert any('route="/photos/upload"' in s["matchers"] for s in silences)
        finally:
            browser.close()
    assert problems == []


def test_the_page_and_its_files_are_served_offline_with_a_strict_policy(demo):
    app = create_app(demo.engine, alerts=demo.alerts, calendar=demo.calendar)
    with live_server(app) as base:
        page = httpx.get(base + "/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert '<base href="/">' in page.text
        assert "http://" not in page.text and "https://" not in page.text
        for name, ctype in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            r = httpx.get(f"{base}/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
            assert "https://" not in r.text and "//cdn" not in r.text
        missing = httpx.get(base + "/static/../app.py")
        assert missing.status_code == 404
        assert httpx.get(base + "/static/nothing.js").json()["error"]["parameter"] == "path"


def test_a_mounted_hub_links_under_its_prefix(demo):
    from fastapi import FastAPI

    parent = FastAPI()
    parent.mount("/monitoring", create_app(demo.engine, alerts=demo.alerts))
    with live_server(parent) as base:
        page = httpx.get(base + "/monitoring/")
        assert '<base href="/monitoring/">' in page.text
        assert httpx.get(base + "/monitoring/static/dashboard.js").status_code == 200
