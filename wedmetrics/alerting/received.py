"""Alerts that arrive from outside (Prometheus, another Alertmanager client) over the v2 API.

Alertmanager's model: a client posts alerts with ``labels``, ``annotations``,
``startsAt``, ``endsAt`` and ``generatorURL``; the alert's identity is the
fingerprint of its labels.  An alert without ``endsAt`` resolves
``resolve_timeout`` after it was last received; one with ``endsAt`` resolves
then.  Clients (Prometheus) re-send firing alerts to keep them alive.

:class:`ReceivedAlerts` keeps them and turns them into
:class:`~wedmetrics.alerting.notification.Notification` updates for the
dispatcher; it reads no clock (every call takes ``now``).
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .notification import FIRING, RESOLVED, Notification, Severity

__all__ = ["ReceivedAlerts", "MalformedAlert", "InvalidAlerts", "parse_time", "format_time"]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ZERO_TIME = ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z")


def parse_time(value: Any, field: str) -> Optional[float]:
    """RFC 3339 text (what Alertmanager's API carries) to epoch seconds; empty or Go's zero time is None."""
    if value in (None, "") or value in _ZERO_TIME:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be an RFC 3339 date-time string, got {value!r}")
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python before 3.11 reads at most 6 fraction digits; Go writes up to 9.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = re.match(r"\d*", rest).group(0)
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        t = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} must be an RFC 3339 date-time, got {value!r}") from None
    if t.tzinfo is None:
        raise ValueError(f"{field} needs a time zone (e.g. 'Z'), got {value!r}")
    if t.year < 1970:
        return None
    return t.timestamp()


def format_time(ts: Optional[float]) -> Optional[str]:
    if ts is None:
        return None
    t = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MalformedAlert(ValueError):
    """A posted alert without the API's shape (not an object, no ``labels``, a non-string value,
    an unreadable time): Alertmanager's OpenAPI layer refuses the whole request for it.

    ``status`` is what that layer (go-swagger) answers: 422 for a missing
    required field, 400 where the JSON does not decode into the API's types.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InvalidAlerts(ValueError):
    """Some posted alerts were invalid; the valid ones were taken.

    ``errors`` holds Alertmanager's messages, ``taken`` how many updates were routed.
    """

    def __init__(self, errors: list[str], taken: int) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)
        self.taken = taken


class ReceivedAlerts:
    """The externally posted alerts, by fingerprint.

    Parameters
    ----------
    resolve_timeout : float
        Seconds after the last receipt at which an alert without ``endsAt`` resolves.
    """

    def __init__(self, resolve_timeout: float = 300.0) -> None:
        if not isinstance(resolve_timeout, (int, float)) or not resolve_timeout > 0:
            raise ValueError(f"resolve_timeout must be > 0 seconds, got {resolve_timeout!r}")
        self.resolve_timeout = float(resolve_timeout)
        self._alerts: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.counts = {"received": 0, "invalid": 0, "resolved": 0}

    @staticmethod
    def validate(item: Any, now: Optional[float] = None) -> tuple[dict, dict, Optional[float], Optional[float], str]:
        """Check one ``postableAlert``; returns labels, annotations, starts, ends, generatorURL.

        As Alertmanager's ``postAlertsHandler``: labels with an empty value are
        removed first (``removeEmptyLabels``), then the alert is validated
        (``Alert.Validate``): the end not before the start, valid label and
        annotation names (``[a-zA-Z_][a-zA-Z0-9_]*``), at least one label.
        Raises :class:`MalformedAlert` (a ``ValueError``) where the body does
        not have the API's shape (Alertmanager's OpenAPI layer refuses the
        whole request then), ``ValueError`` with Alertmanager's message
        otherwise.  ``now`` fills in a missing ``startsAt`` (the end, when one
        is given, as Alertmanager does) before the check.
        """
        if not isinstance(item, Mapping):
            raise MalformedAlert(f"an alert must be an object, got {type(item).__name__}")
        if "labels" not in item:
            raise MalformedAlert("labels in body is required", status=422)
        labels = item.get("labels")
        annotations = item.get("annotations")
        if annotations is None:
            annotations = {}
        for what, m in (("labels", labels), ("annotations", annotations)):
            if not isinstance(m, Mapping):
                raise MalformedAlert(f"{what} must be an object of strings")
            for k, v in m.items():
                if not isinstance(k, str) or not isinstance(v, str):
                    raise MalformedAlert(f"{what}: {k!r}: {v!r} is not a string pair")
        url = item.get("generatorURL") or ""
        if not isinstance(url, str):
            raise MalformedAlert("generatorURL must be a string")
        try:
            starts = parse_time(item.get("startsAt"), "startsAt")
            ends = parse_time(item.get("endsAt"), "endsAt")
        except ValueError as e:
            raise MalformedAlert(str(e)) from None
        labels = {k: v for k, v in labels.items() if v != ""}   # removeEmptyLabels
        if starts is None:
            starts = ends if ends is not None else now
        if starts is None:
            raise ValueError("start time missing")
        if ends is not None and ends < starts:
            raise ValueError("start time must be before end time")
        for k in labels:
            if not _LABEL_NAME.match(k):
                raise ValueError(f'invalid label set: invalid name "{k}"')
        if not labels:
            raise ValueError("at least one label pair required")
        for k in annotations:
            if not _LABEL_NAME.match(k):
                raise ValueError(f'invalid annotations: invalid name "{k}"')
        return dict(labels), dict(annotations), starts, ends, url

    def receive(self, items: Iterable[Any], now: float) -> tuple[list[Notification], list[str]]:
        """Take posted alerts, as Alertmanager's ``postAlertsHandler`` does.

        The valid alerts are stored, the invalid ones counted; returns the
        updates for the dispatcher and the errors (Alertmanager answers 400
        with them, joined by ``"; "``, after storing the valid alerts).

        Raises
        ------
        MalformedAlert
            When an item does not have the API's shape; then nothing is taken.
        """
        from .alertmanager_config import label_fingerprint

        items = list(items)
        parsed, errors = [], []
        for i, item in enumerate(items):
            try:
                parsed.append(self.validate(item, now))
            except MalformedAlert as e:
                raise MalformedAlert(f"alert {i}: {e}", e.status) from None
            except ValueError as e:
                self.counts["invalid"] += 1
                errors.append(str(e))
        out = []
        with self._lock:
            for labels, annotations, starts, ends, url in parsed:
                fp = label_fingerprint(labels)
                old = self._alerts.get(fp)
                if old is not None and old["status"] == FIRING and old["starts_at"] <= starts:
                    starts = old["starts_at"]   # Alertmanager merges: the earlier start stays
                timeout = ends is None
                if timeout:
                    ends = now + self.resolve_timeout
                status = RESOLVED if ends <= now else FIRING
                self._alerts[fp] = {"labels": labels, "annotations": annotations, "starts_at": starts,
                                    "ends_at": ends, "timeout": timeout, "generator_url": url,
                                    "updated_at": now, "status": status}
                self.counts["received"] += 1
                out.append(self._notification(fp))
        return out, errors

    def expire(self, now: float) -> list[Notification]:
        """Alerts whose ``ends_at`` passed since the last call: their resolved updates."""
        out = []
        with self._lock:
            for fp, a in self._alerts.items():
                if a["status"] == FIRING and a["ends_at"] <= now:
                    a["status"] = RESOLVED
                    self.counts["resolved"] += 1
                    out.append(self._notification(fp))
        return out

    def next_expiry(self) -> Optional[float]:
        with self._lock:
            times = [a["ends_at"] for a in self._alerts.values() if a["status"] == FIRING]
        return min(times) if times else None

    def prune(self, now: float, retention: float = 3600.0) -> int:
        """Forget resolved alerts older than ``retention``."""
        with self._lock:
            old = [fp for fp, a in self._alerts.items()
                   if a["status"] == RESOLVED and a["ends_at"] + retention <= now]
            for fp in old:
                del self._alerts[fp]
        return len(old)

    def notification(self, fp: str) -> Notification:
        """The current :class:`Notification` of one received alert (``KeyError`` if unknown)."""
        with self._lock:
            return self._notification(fp)

    def get(self, fp: str) -> Optional[dict]:
        with self._lock:
            a = self._alerts.get(fp)
            return None if a is None else dict(a, fingerprint=fp)

    def all(self) -> list[dict]:
        with self._lock:
            return [dict(a, fingerprint=fp) for fp, a in sorted(self._alerts.items())]

    def _notification(self, fp: str) -> Notification:
        a = self._alerts[fp]
        labels = a["labels"]
        try:
            severity = Severity.parse(labels.get("severity", "warning"))
        except ValueError:
            severity = Severity.WARNING   # a label like "sev1": kept as a label, shown as warning
        annotations = dict(a["annotations"])
        ends = a["ends_at"] if a["status"] == RESOLVED else None
        if ends is not None and not math.isfinite(ends):
            ends = None
        return Notification(
            alert_id=fp, rule=labels.get("alertname") or "alert", status=a["status"], severity=severity,
            summary=annotations.get("summary", ""), description=annotations.get("description", ""),
            labels=labels, annotations=annotations, starts_at=a["starts_at"],
            ends_at=max(ends, a["starts_at"]) if ends is not None else None,
            wedding_id=labels.get("wedding_id") or None, generator_url=a["generator_url"])
