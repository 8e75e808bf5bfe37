"""Query parameters: durations, instants, resolutions and label matchers, checked hard.

Every parser raises :class:`~wedmetrics.http.errors.ApiError` (400) naming the
parameter, so bad input never reaches the engine.
"""
from __future__ import annotations

import datetime as _dt
import math

from ..alerting.matchers import Matcher
from ..clock import parse_duration
from .errors import ApiError

__all__ = ["duration", "instant", "matchers", "MAX_MATCHERS", "MAX_REGEX", "EARLIEST", "LATEST"]

MAX_MATCHERS = 20
MAX_REGEX = 256            # characters of one regular expression
EARLIEST = 0.0             # instants outside [EARLIEST, LATEST] are refused as absurd
LATEST = 4_102_444_800.0   # 2100-01-01T00:00:00Z


def duration(value: str, parameter: str, *, least: float, most: float) -> float:
    """Seconds of a duration such as ``"5m"`` or ``"90"``, within ``[least, most]``."""
    try:
        seconds = parse_duration(value.strip())
    except (TypeError, ValueError) as exc:
        raise ApiError(400, parameter, str(exc)) from None
    if not least <= seconds <= most:
        raise ApiError(400, parameter, f"{parameter} must be between {least:g} s and {most:g} s, "
                                       f"got {value!r}")
    return seconds


def instant(value: str | None, parameter: str, default: float) -> float:
    """Epoch seconds from a number or an ISO 8601 date-time (UTC without an offset)."""
    if value is None or value == "":
        return default
    text = value.strip()
    try:
        ts = float(text)
    except ValueError:
        try:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, parameter, f"{parameter} must be epoch seconds or an ISO 8601 "
                                           f"date-time, got {value[:80]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        ts = parsed.timestamp()
    if not math.isfinite(ts) or not EARLIEST <= ts <= LATEST:
        raise ApiError(400, parameter, f"{parameter} must be a time between 1970 and 2100, "
                                       f"got {value[:80]!r}")
    return ts


def matchers(values: list[str] | None, parameter: str = "match") -> tuple[Matcher, ...]:
    """Label matchers from ``match`` values: each ``route="/photos"`` or a selector
    ``{route="/photos",status=~"5.."}``.  Regular expressions are refused when a
    repeated group holds a quantifier or an alternation (the shapes of
    catastrophic backtracking, e.g. ``(a+)+``) or when they are over
    :data:`MAX_REGEX` characters."""
    out: list[Matcher] = []
    for raw in values or ():
        text = raw.strip()
        if text.startswith("{") and text.endswith("}"):
            parts = _split_selector(text[1:-1], parameter)
        else:
            parts = [text]
        for part in parts:
            if not part:
                continue
            try:
                m = Matcher.parse(part)
            except ValueError as exc:
                raise ApiError(400, parameter, str(exc)[:300]) from None
            if m.op in ("=~", "!~"):
                _check_regex(m.value, parameter)
            out.append(m)
            if len(out) > MAX_MATCHERS:
                raise ApiError(400, parameter, f"at most {MAX_MATCHERS} matchers per request")
    return tuple(out)


def _split_selector(body: str, parameter: str) -> list[str]:
    """Split ``a="x,y", b=~"z"`` at the commas outside double quotes."""
    parts, current, quoted, escaped = [], [], False, False
    for ch in body:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ApiError(400, parameter, "unbalanced quotes in the selector")
    parts.append("".join(current).strip())
    return parts


def _check_regex(pattern: str, parameter: str) -> None:
    if len(pattern) > MAX_REGEX:
        raise ApiError(400, parameter, f"regular expressions are limited to {MAX_REGEX} characters")
    # scan groups: a group that holds a quantifier or "|" may not be repeated
    stack: list[bool] = []          # per open group: does it hold a quantifier or "|"?
    i, n = 0, len(pattern)
    risky_group = False             # the group just closed was risky
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < n and pattern[i + 1].isdigit():
                raise ApiError(400, parameter, "back-references are not allowed in matchers")
            i += 2
            risky_group = False
            continue
        if ch == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            risky_group = False
            continue
        if ch == "(":
            stack.append(False)
            i = _after_group_prefix(pattern, i + 1)
            risky_group = False
            continue
        elif ch == ")":
            risky_group = stack.pop() if stack else False
            i += 1
            if i < n and pattern[i] in "*+{" and risky_group:
                raise ApiError(400, parameter, "a repeated group may not hold a quantifier or "
                                               "an alternation (catastrophic backtracking)")
            if risky_group and stack:
                stack[-1] = True
            continue
        elif ch in "*+?{|":
            if stack:
                stack[-1] = True
        risky_group = False
        i += 1


def _after_group_prefix(pattern: str, i: int) -> int:
    """Index past a group's ``?:``, ``?P<name>``, ``?=``, ``?<!`` or ``?i`` prefix."""
    if i >= len(pattern) or pattern[i] != "?":
        return i
    j = i + 1
    if pattern.startswith("P<", j):
        end = pattern.find(">", j)
        return len(pattern) if end < 0 else end + 1
    if pattern.startswith(("<=", "<!"), j):
        return j + 2
    while j < len(pattern) and pattern[j] not in ":=!)":
        j += 1
    return j + 1 if j < len(pattern) and pattern[j] != ")" else j
