"""wedmetrics in front of an Alertmanager: post alerts to its v2 API.

:class:`AlertmanagerNotifier` is a notifier channel whose deliveries are
``POST /api/v2/alerts`` calls, each alert in Alertmanager's ``postableAlert``
form: ``labels``, ``annotations``, ``startsAt``, ``endsAt`` and
``generatorURL``.  The labels are the alert's own plus, where they have
none, ``alertname`` (the rule) and ``severity`` (the alert's severity); a
rule alert of an :class:`~wedmetrics.alerting.AlertEngine` already carries
them (``severity`` as the rule configures it) and, with a calendar,
``wedding_severity``: the wedding-aware level reaches Alertmanager as a
label of its own, and a user's ``severity`` is never overwritten.  A resolved alert is sent with its
``endsAt``, which resolves it in Alertmanager at once.

A firing alert is sent with ``endsAt = now + resend_window`` when
``resend_window`` is set (what Prometheus does), otherwise without
``endsAt``, and Alertmanager resolves it after its ``resolve_timeout``
(default 5 min) unless it is sent again.  Route the channel with a
``repeat_interval`` shorter than that window so that long incidents stay open.

>>> n = AlertmanagerNotifier("http://127.0.0.1:9093", generator_url="http://wedmetrics.local/alerts")
>>> n.name
'alertmanager'
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from typing import Any, Optional

from .notification import FIRING, NotificationGroup
from .notifiers import _HttpNotifier

__all__ = ["AlertmanagerNotifier"]


def _rfc3339(ts: float) -> str:
    t = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertmanagerNotifier(_HttpNotifier):
    """Posts wedmetrics alerts to an Alertmanager (``url`` is its base URL).

    Parameters
    ----------
    url : str
        Alertmanager's base URL, e.g. ``http://alertmanager:9093``
        (``/api/v2/alerts`` is appended).
    generator_url : str
        Where a person can see the alert in wedmetrics; an alert's own
        ``generator_url`` wins.
    resend_window : float, optional
        Seconds a firing alert stays open in Alertmanager without being
        sent again (``endsAt``); None leaves it to Alertmanager's
        ``resolve_timeout``.
    clock : callable, optional
        Returns epoch seconds for ``endsAt`` of firing alerts (default ``time.time``).
    timeout : float
    name : str, optional
    """

    kind = "alertmanager"

    def __init__(self, url: str, *, generator_url: str = "", resend_window: Optional[float] = None,
                 clock: Any = None, timeout: float = 10.0, name: Optional[str] = None) -> None:
        super().__init__(name=name, timeout=timeout)
        self._set_url(str(url).rstrip("/") + "/api/v2/alerts", "AlertmanagerNotifier.url", keep_path=True)
        if not isinstance(generator_url, str):
            raise ValueError(f"generator_url must be a str, got {generator_url!r}")
        if resend_window is not None and not (isinstance(resend_window, (int, float)) and resend_window > 0):
            raise ValueError(f"resend_window must be > 0 seconds or None, got {resend_window!r}")
        self.generator_url = generator_url
        self.resend_window = resend_window
        self._clock = clock if clock is not None else time.time

    def build_payload(self, group: NotificationGroup) -> list[dict]:
        """The JSON list posted for ``group``."""
        now = float(self._clock() if callable(self._clock) else self._clock.now())
        out = []
        for a in group.alerts:
            labels = dict(a.labels)
            labels.setdefault("alertname", a.rule)
            labels.setdefault("severity", a.severity.label)
            annotations = dict(a.annotations)
            if a.summary:
                annotations.setdefault("summary", a.summary)
            if a.description:
                annotations.setdefault("description", a.description)
            item = {"labels": labels, "annotations": annotations, "startsAt": _rfc3339(a.starts_at),
                    "generatorURL": a.generator_url or self.generator_url}
            if a.status != FIRING:
                item["endsAt"] = _rfc3339(a.ends_at if a.ends_at is not None else now)
            elif self.resend_window is not None:
                item["endsAt"] = _rfc3339(now + self.resend_window)
            out.append(item)
        return out

    def deliver(self, group: NotificationGroup, target: Optional[str] = None) -> None:
        body = json.dumps(self.build_payload(group), separators=(",", ":")).encode("utf-8")
        self._post(body, {"Content-Type": "application/json"})

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(name={self.name!r})"
