"""Label matchers, as in Alertmanager: ``=``, ``!=``, ``=~``, ``!~``.

A matcher tests one label of an alert.  A missing label reads as the empty
string, so ``team!="db"`` matches alerts without a ``team`` label and
``wedding_id=~".+"`` demands one.  Regular expressions are anchored at both
ends, like Prometheus and Alertmanager.

Matchers are written as strings (``'severity="critical"'``,
``route=~"/photos.*"``; quotes are optional around simple values) or as
mappings ``{"severity": "critical"}`` meaning equality.

>>> m = Matcher.parse('route=~"/photos.*"')
>>> m.matches({"route": "/photos/42"}), m.matches({"route": "/api/photos"})
(True, False)
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Matcher", "parse_matchers", "matches_all", "OPERATORS"]

OPERATORS = ("=", "!=", "=~", "!~")

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Longest operators first so that "=~" is not read as "=" followed by "~...".
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)


@dataclasses.dataclass(frozen=True)
class Matcher:
    """One label test.

    Parameters
    ----------
    name : str
        Label name.
    op : {"=", "!=", "=~", "!~"}
    value : str
        Literal for ``=`` / ``!=``; a regular expression (fully anchored) for
        ``=~`` / ``!~``.

    Raises
    ------
    ValueError
        For a bad label name, an unknown operator or an invalid regex,
        naming the matcher.
    """

    name: str
    op: str
    value: str
    _regex: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _LABEL.fullmatch(self.name):
            raise ValueError(f"matcher label name {self.name!r} is not a valid label name")
        if self.op not in OPERATORS:
            raise ValueError(f"matcher {self.name}{self.op}...: operator must be one of {', '.join(OPERATORS)}")
        if not isinstance(self.value, str):
            raise ValueError(f"matcher {self.name}{self.op}: value must be a string, got {self.value!r}")
        if self.op in ("=~", "!~"):
            try:
                regex = re.compile(rf"(?:{self.value})\Z", re.S)
            except re.error as e:
                raise ValueError(f"matcher {self.name}{self.op}{self.value!r}: invalid regex ({e})") from None
            object.__setattr__(self, "_regex", regex)

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        """Parse ``name<op>value``; the value may be double-quoted (with ``\\"`` escapes)."""
        if not isinstance(text, str):
            raise ValueError(f"matcher must be a string like 'severity=\"critical\"', got {text!r}")
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(f"cannot parse matcher {text!r}: use name=value, name!=value, name=~regex or name!~regex")
        name, op, raw = m.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r'\\(.)', r"\1", raw[1:-1])
        elif '"' in raw:
            raise ValueError(f"cannot parse matcher {text!r}: unbalanced quotes in the value")
        return cls(name, op, raw)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` pass this test (a missing label reads as ``""``)."""
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = self._regex.match(got) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matchers(spec: Any) -> tuple[Matcher, ...]:
    """Matchers from a list of strings/Matchers, a mapping (equality) or None.

    >>> [str(m) for m in parse_matchers({"severity": "critical"})]
    ['severity="critical"']
    """
    if spec is None:
        return ()
    if isinstance(spec, Matcher):
        return (spec,)
    if isinstance(spec, str):
        return (Matcher.parse(spec),)
    if isinstance(spec, Mapping):
        out = []
        for k, v in spec.items():
            if not isinstance(v, str):
                raise ValueError(f"matcher {k!r}: value must be a string, got {v!r}")
            out.append(Matcher(str(k), "=", v))
        return tuple(out)
    if isinstance(spec, Iterable):
        out = []
        for item in spec:
            if isinstance(item, Matcher):
                out.append(item)
            else:
                out.append(Matcher.parse(item))
        return tuple(out)
    raise ValueError(f"matchers must be a list of strings or a mapping, got {type(spec).__name__}")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (vacuously true for none)."""
    return all(m.matches(labels) for m in matchers)
