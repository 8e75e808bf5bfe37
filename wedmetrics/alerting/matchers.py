"""Label matchers, as in Alertmanager: ``=``, ``!=``, ``=~``, ``!~``.

A matcher tests one label of an alert.  A missing label reads as the empty
string, so ``team!="db"`` matches alerts without a ``team`` label and
``wedding_id=~".+"`` demands one.

Parsing and printing follow Alertmanager's classic matcher syntax
(``pkg/labels/parse.go``), so strings copied from an ``alertmanager.yml``,
from ``amtool`` or from the Alertmanager UI mean the same here:

* ``{a="b", c=~"d"}``, ``a=b,c!=d`` and ``a = "b" ,`` are lists of matchers
  (:func:`parse_matcher_list`); a comma inside quotes stays in the value.
* Values may be quoted; inside, ``\\"``, ``\\\\`` and ``\\n`` are escapes and any
  other backslash is kept literally.  An unescaped quote inside a value is
  an error.
* Regular expressions are RE2's, anchored at both ends: ``.`` does not match
  a newline unless ``(?s)``; inline flags such as ``(?i)`` may appear anywhere
  and hold to the end of their group; ``\\d``, ``\\w``, ``\\s`` are ASCII-only.
  Perl features RE2 refuses (look-arounds, back-references) are refused here
  too.  See :func:`compile_re2`.

>>> m = Matcher.parse('route=~"/photos.*"')
>>> m.matches({"route": "/photos/42"}), m.matches({"route": "/api/photos"})
(True, False)
>>> [str(m) for m in parse_matcher_list('{severity="critical", team=~"db|web"}')]
['severity="critical"', 'team=~"db|web"']
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Matcher", "parse_matchers", "parse_matcher_list", "matches_all", "compile_re2", "OPERATORS"]

OPERATORS = ("=", "!=", "=~", "!~")

# Alertmanager's classic matcher: '=~' before '=' so that '~' is not read into the value.
_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.S)
# Characters that make Alertmanager quote a label name when printing it.
_RESERVED = set("{}!=~,\\\"'`")

# RE2's Perl classes are ASCII; Python's are Unicode.
_PERL_CLASSES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~",
    "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


def compile_re2(pattern: str) -> "re.Pattern[str]":
    """Compile an RE2 regular expression to an equivalent, fully anchored Python one.

    What is translated: inline flags anywhere (``a(?i)b`` scopes ``i`` to the
    rest of its group), ``\\z``, ``\\Q...\\E``, ``(?<name>...)``, ASCII ``\\d \\w \\s``,
    POSIX classes ``[[:alpha:]]``, and ``$`` meaning the end of the text
    outside ``(?m)``.  What RE2 refuses raises ``ValueError``: look-arounds,
    back-references, ``(?U)``, ``\\C``, ``\\p`` classes (not supported here).
    """
    if not isinstance(pattern, str):
        raise ValueError(f"regex must be a string, got {pattern!r}")
    try:
        return re.compile("(?:" + _translate(pattern) + ")\\Z")
    except re.error as e:
        raise ValueError(f"error parsing regexp: {e}: `{pattern}`") from None


def _translate(p: str) -> str:
    out: list[str] = []
    # One entry per open group: the inline flags opened in it, each as a scoped
    # group that must close with it (and reopen after each '|').
    groups: list[list[str]] = [[]]
    multiline = [False]
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "\\":
            i, text = _escape(p, i, in_class=False)
            out.append(text)
            continue
        if c == "[":
            i, text = _char_class(p, i)
            out.append(text)
            continue
        if c == "(":
            if p.startswith("(?", i):
                j = i + 2
                if p.startswith("P<", j) or p.startswith("<", j) and not p.startswith(("<=", "<!"), j):
                    name_start = j + (2 if p[j] == "P" else 1)
                    out.append("(?P<")
                    groups.append([])
                    multiline.append(multiline[-1])
                    i = name_start
                    continue
                if p.startswith(("=", "!", "<=", "<!"), j):
                    raise ValueError(f"error parsing regexp: invalid or unsupported Perl syntax "
                                     f"(look-arounds are not RE2): `{p}`")
                m = re.match(r"([imsU]*)(?:-([imsU]*))?([:)])", p[j:])
                if m is None:
                    raise ValueError(f"error parsing regexp: invalid or unsupported Perl syntax: `{p}`")
                on, off, end = m.group(1), m.group(2) or "", m.group(3)
                if "U" in on + off:
                    raise ValueError(f"error parsing regexp: the ungreedy flag (?U) is not supported: `{p}`")
                flags = on + ("-" + off if off else "")
                if "m" in on:
                    ml = True
                elif "m" in off:
                    ml = False
                else:
                    ml = multiline[-1]
                i = j + m.end()
                if end == ":":
                    out.append(f"(?{flags}:" if flags else "(?:")
                    groups.append([])
                    multiline.append(ml)
                elif flags:
                    # (?i) holds to the end of the enclosing group: open a scoped group there.
                    out.append(f"(?{flags}:")
                    groups[-1].append(flags)
                    multiline[-1] = ml
                continue
            out.append("(")
            groups.append([])
            multiline.append(multiline[-1])
            i += 1
            continue
        if c == ")":
            if len(groups) == 1:
                raise ValueError(f"error parsing regexp: unexpected ): `{p}`")
            out.append(")" * len(groups.pop()) + ")")
            multiline.pop()
            i += 1
            continue
        if c == "|":
            # RE2 keeps a flag on across '|': close the scoped groups, then reopen them
            opened = groups[-1]
            out.append(")" * len(opened) + "|" + "".join(f"(?{f}:" for f in opened))
            i += 1
            continue
        if c == "$" and not multiline[-1]:
            out.append("\\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    if len(groups) > 1:
        raise ValueError(f"error parsing regexp: missing closing ): `{p}`")
    out.append(")" * len(groups[0]))
    return "".join(out)


def _escape(p: str, i: int, *, in_class: bool) -> tuple[int, str]:
    if i + 1 >= len(p):
        raise ValueError(f"error parsing regexp: trailing backslash at end of expression: `{p}`")
    e = p[i + 1]
    if e in _PERL_CLASSES or e.lower() in _PERL_CLASSES:
        body = _PERL_CLASSES[e.lower()]
        if in_class:
            if e.isupper():
                raise ValueError(f"error parsing regexp: negated class \\{e} inside [] is not supported: `{p}`")
            return i + 2, body
        return i + 2, f"[{'^' if e.isupper() else ''}{body}]"
    if e == "z" and not in_class:
        return i + 2, "\\Z"
    if e == "Q" and not in_class:
        end = p.find("\\E", i + 2)
        literal = p[i + 2:] if end < 0 else p[i + 2:end]
        return (len(p) if end < 0 else end + 2), re.escape(literal)
    if e.isdigit() and e != "0":
        raise ValueError(f"error parsing regexp: invalid escape sequence \\{e} (back-references are not RE2): `{p}`")
    if e in "pPC":
        raise ValueError(f"error parsing regexp: \\{e} is not supported here: `{p}`")
    return i + 2, p[i:i + 2]


def _char_class(p: str, i: int) -> tuple[int, str]:
    out = ["["]
    j = i + 1
    if j < len(p) and p[j] == "^":
        out.append("^")
        j += 1
    if j < len(p) and p[j] == "]":
        out.append("\\]")
        j += 1
    while j < len(p) and p[j] != "]":
        if p[j] == "\\":
            j, text = _escape(p, j, in_class=True)
            out.append(text)
        elif p.startswith("[:", j):
            m = re.match(r"\[:(\^?)([a-z]+):\]", p[j:])
            if m is None or m.group(2) not in _POSIX_CLASSES:
                raise ValueError(f"error parsing regexp: invalid character class range: `{p}`")
            if m.group(1):
                raise ValueError(f"error parsing regexp: negated POSIX classes are not supported: `{p}`")
            out.append(_POSIX_CLASSES[m.group(2)])
            j += m.end()
        elif p[j] == "[":
            out.append("\\[")   # literal in RE2; a nested-set warning in Python
            j += 1
        elif p[j] in "&~|-" and p.startswith(p[j] * 2, j):
            out.append("\\" + p[j])   # Python reserves doubled set operators
            j += 1
        else:
            out.append(p[j])
            j += 1
    if j >= len(p):
        raise ValueError(f"error parsing regexp: missing closing ]: `{p[i:]}`")
    out.append("]")
    return j + 1, "".join(out)


@dataclasses.dataclass(frozen=True)
class Matcher:
    """One label test.

    Parameters
    ----------
    name : str
        Label name (any non-empty string, as Alertmanager's ``NewMatcher``;
        the text syntax accepts ``[a-zA-Z_:][a-zA-Z0-9_:]*``).
    op : {"=", "!=", "=~", "!~"}
    value : str
        Literal for ``=`` / ``!=``; an RE2 regular expression (fully
        anchored) for ``=~`` / ``!~``.

    Raises
    ------
    ValueError
        For an empty name, an unknown operator or an invalid regex, naming the matcher.
    """

    name: str
    op: str
    value: str
    _regex: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"matcher label name {self.name!r} is not a valid label name")
        if self.op not in OPERATORS:
            raise ValueError(f"matcher {self.name}{self.op}...: operator must be one of {', '.join(OPERATORS)}")
        if not isinstance(self.value, str):
            raise ValueError(f"matcher {self.name}{self.op}: value must be a string, got {self.value!r}")
        if self.op in ("=~", "!~"):
            try:
                regex = compile_re2(self.value)
            except ValueError as e:
                raise ValueError(f"matcher {self.name}{self.op}{self.value!r}: invalid regex ({e})") from None
            object.__setattr__(self, "_regex", regex)

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        """Parse one ``name<op>value`` (Alertmanager's ``ParseMatcher``)."""
        if not isinstance(text, str):
            raise ValueError(f"matcher must be a string like 'severity=\"critical\"', got {text!r}")
        m = _MATCHER.match(text)
        if m is None:
            raise ValueError(f"bad matcher format: {text} (cannot parse matcher: use name=value, "
                             "name!=value, name=~regex or name!~regex)")
        name, op, raw = m.groups()
        return cls(name, op, _unescape(raw))

    @property
    def regex(self) -> bool:
        return self.op in ("=~", "!~")

    def matches_value(self, got: str) -> bool:
        """True when a label value ``got`` passes this test."""
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = self._regex.match(got) is not None
        return hit if self.op == "=~" else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when ``labels`` pass this test (a missing label reads as ``""``)."""
        return self.matches_value(labels.get(self.name, ""))

    def matches_empty(self) -> bool:
        """True when the empty string passes a positive (``=`` or ``=~``) test."""
        return self.op in ("=", "=~") and self.matches_value("")

    def __str__(self) -> str:
        if any(c in _RESERVED or c.isspace() for c in self.name):
            return f"{_go_quote(self.name)}{self.op}{_go_quote(self.value)}"
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    def to_api(self) -> dict:
        """Alertmanager's v2 API form: ``{"name", "value", "isRegex", "isEqual"}``."""
        return {"name": self.name, "value": self.value, "isRegex": self.regex,
                "isEqual": self.op in ("=", "=~")}

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Matcher":
        """The inverse of :meth:`to_api`; ``isEqual`` defaults to true as in Alertmanager."""
        if not isinstance(data, Mapping) or "name" not in data or "value" not in data:
            raise ValueError(f"a matcher needs name and value, got {data!r}")
        is_regex, is_equal = bool(data.get("isRegex", False)), bool(data.get("isEqual", True))
        op = ("=~" if is_equal else "!~") if is_regex else ("=" if is_equal else "!=")
        return cls(data["name"], op, data["value"])


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _unescape(raw: str) -> str:
    """Alertmanager's value unescaping: optional surrounding quotes, ``\\"``, ``\\\\``, ``\\n``."""
    shown = raw
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in '"\\':
                out.append(ch)
            else:
                out.append("\\" + ch)   # a spurious escape keeps its backslash
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            out.append("\\")
        elif ch == '"':
            if not quoted or i < len(raw) - 1:
                raise ValueError(f"matcher value contains unescaped double quote: {shown} (unbalanced quotes)")
            quoted = False
        else:
            out.append(ch)
    if quoted:
        raise ValueError(f"matcher value contains unescaped double quote: {shown} (unbalanced quotes)")
    return "".join(out)


def parse_matcher_list(text: str) -> tuple[Matcher, ...]:
    """Parse ``{a="b", c=~"d"}`` / ``a=b,c!=d`` into matchers (Alertmanager's ``ParseMatchers``)."""
    if not isinstance(text, str):
        raise ValueError(f"matchers must be a string like '{{a=\"b\"}}', got {text!r}")
    s = text[1:] if text.startswith("{") else text
    s = s[:-1] if s.endswith("}") else s
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for ch in s:
        if ch == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return tuple(Matcher.parse(t) for t in tokens)


def parse_matchers(spec: Any) -> tuple[Matcher, ...]:
    """Matchers from a string list, a list of such strings/Matchers, a mapping (equality) or None.

    Each string may hold several comma-separated matchers, as in an
    ``alertmanager.yml`` ``matchers:`` list.

    >>> [str(m) for m in parse_matchers({"severity": "critical"})]
    ['severity="critical"']
    >>> [str(m) for m in parse_matchers(['a=b,c=~"d|e"'])]
    ['a="b"', 'c=~"d|e"']
    """
    if spec is None:
        return ()
    if isinstance(spec, Matcher):
        return (spec,)
    if isinstance(spec, str):
        return parse_matcher_list(spec)
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
                out.extend(parse_matcher_list(item))
        return tuple(out)
    raise ValueError(f"matchers must be a list of strings or a mapping, got {type(spec).__name__}")


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (vacuously true for none)."""
    return all(m.matches(labels) for m in matchers)
