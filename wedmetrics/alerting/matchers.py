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
  and hold to the end of their group; ``\\d``, ``\\w``, ``\\s``, ``\\b`` are ASCII-only.
  Perl features RE2 refuses (look-arounds, back-references) are refused here
  too.  With ``google-re2`` installed (``pip install 'wedmetrics[re2]'``) RE2
  itself runs them, in linear time; otherwise a translation to Python's
  engine, which refuses the patterns it could take exponential time on.
  See :func:`compile_re2`.

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

__all__ = ["Matcher", "parse_matchers", "parse_matcher_list", "matches_all", "compile_re2", "OPERATORS",
           "regex_engine", "use_regex_engine"]

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


try:   # Google's RE2 (the ``[re2]`` extra): linear time, the engine Alertmanager's Go regexp is
    import re2 as _re2
except ImportError:   # pragma: no cover - exercised by forcing the engine in the tests
    _re2 = None

#: The regex engine in use: ``"re2"`` (google-re2 installed) or ``"python"`` (the translator).
_ENGINE = ["re2" if _re2 is not None else "python"]
ENGINES = ("re2", "python")


def regex_engine() -> str:
    """The engine matchers compile with: ``"re2"`` when ``google-re2`` is installed, else ``"python"``."""
    return _ENGINE[0]


def use_regex_engine(name: str) -> str:
    """Compile new matchers with ``name`` (``"re2"`` or ``"python"``); returns the previous engine.

    Matchers already made keep their compiled regex.

    Raises
    ------
    ValueError
        For an unknown name, or ``"re2"`` when ``google-re2`` is not installed.
    """
    if name not in ENGINES:
        raise ValueError(f"regex engine must be one of {ENGINES}, got {name!r}")
    if name == "re2" and _re2 is None:
        raise ValueError("the re2 engine needs google-re2: pip install 'wedmetrics[re2]'")
    previous, _ENGINE[0] = _ENGINE[0], name
    return previous


# RE2's error codes in the words of Go's regexp/syntax, which Alertmanager prints.
_GO_ERRORS = {
    "missing ]": "missing closing ]", "missing )": "missing closing )",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "trailing \\": "trailing backslash at end of expression",
}


class _Re2Pattern:
    """A google-re2 regex anchored as Alertmanager anchors (``^(?:...)$``); ``match`` is a full match."""

    __slots__ = ("_regex", "pattern")

    def __init__(self, regex: Any, pattern: str) -> None:
        self._regex = regex
        self.pattern = pattern

    def match(self, text: str) -> Any:
        return self._regex.match(text)

    def __repr__(self) -> str:
        return f"re2({self.pattern!r})"


def compile_re2(pattern: str, *, engine: str | None = None) -> Any:
    """Compile an RE2 regular expression, fully anchored, as Alertmanager does.

    Returns an object whose ``match(text)`` is not None when the whole text
    matches.  With ``google-re2`` installed (the ``[re2]`` extra) this is
    RE2 itself: linear time whatever the pattern and the text.  Without it,
    the pattern is translated to an equivalent Python one: inline flags
    anywhere (``a(?i)b`` scopes ``i`` to the rest of its group) including
    ``(?U)`` (ungreedy: quantifiers swap greediness), ``\\z``, ``\\Q...\\E``,
    ``\\x{...}``, ``(?<name>...)``, ASCII ``\\d \\w \\s \\b``, POSIX classes
    ``[[:alpha:]]``, ``$`` meaning the end of the text outside ``(?m)``, and
    ``{,n}`` as the literal text it is in RE2.  What RE2 refuses raises
    ``ValueError`` with either engine: look-arounds, back-references,
    ``\\Z``, repeat counts over 1000, possessive and nested repetition
    operators (``a**``).  The translator also refuses (where it could take
    exponential time in Python's backtracking engine) a group repeated more
    than once that holds a repetition or alternatives, such as ``(a+)+``,
    ``(a|a)*`` or ``(foo|bar){2,}``, naming the ``[re2]`` extra; and ``\\p``
    classes and ``\\C`` (not supported there).  What it accepts runs in
    polynomial time (``.*.*x`` is quadratic in the text's length).
    ``\\C`` is refused with RE2 too, as Go refuses it.
    """
    if not isinstance(pattern, str):
        raise ValueError(f"regex must be a string, got {pattern!r}")
    engine = engine or _ENGINE[0]
    if engine == "re2" and _re2 is not None:
        if re.search(r"(?<!\\)(?:\\\\)*\\C", pattern):
            raise ValueError(f"error parsing regexp: invalid escape sequence: `\\C`: `{pattern}`")
        options = _re2.Options()
        options.log_errors = False
        try:
            return _Re2Pattern(_re2.compile("^(?:" + pattern + ")$", options), pattern)
        except _re2.error as e:
            detail = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
            code = detail.split(":", 1)[0]
            raise ValueError(f"error parsing regexp: {_GO_ERRORS.get(code, code)}: `{pattern}`") from None
    try:
        return re.compile("(?:" + _translate(pattern) + ")\\Z")
    except re.error as e:
        raise ValueError(f"error parsing regexp: {e}: `{pattern}`") from None


_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_MAX_REPEAT = 1000   # RE2's and Go's limit on a repeat count


def _quantifier(p: str, i: int) -> tuple[int, str, bool, bool] | None:
    """A quantifier at ``p[i]``: (end, text without laziness, lazy, unbounded), or None."""
    c = p[i]
    if c in "*+?":
        end, text, unbounded = i + 1, c, c != "?"
    elif c == "{":
        m = _REPEAT.match(p, i)
        if m is None:
            return None   # RE2 reads '{' that does not start a repeat as a literal
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else (None if m.group(3) == "" else int(m.group(3)))
        if lo > _MAX_REPEAT or (hi is not None and (hi > _MAX_REPEAT or hi < lo)):
            raise ValueError(f"error parsing regexp: invalid repeat count: `{m.group(0)}`: `{p}`")
        end, text, unbounded = m.end(), m.group(0), hi is None or hi > 1
    else:
        return None
    lazy = end < len(p) and p[end] == "?"
    return end + lazy, text, lazy, unbounded


def _translate(p: str) -> str:
    out: list[str] = []
    # One entry per open group: the inline flags opened in it, each as a scoped
    # group that must close with it (and reopen after each '|').
    groups: list[list[str]] = [[]]
    multiline = [False]
    ungreedy = [False]
    repeats = [False]          # per open group: holds an unbounded repetition or an alternation
    last_group_repeats = False  # the atom just closed is a group holding one
    after_atom = False          # a quantifier may follow
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        q = _quantifier(p, i) if after_atom else None
        if q is not None:
            end, text, lazy, unbounded = q
            if last_group_repeats and unbounded:
                raise ValueError(f"error parsing regexp: a repeated group holding a repetition or "
                                 f"alternatives (such as `(a+)+` or `(a|a)*`) can take exponential time "
                                 f"without RE2; install google-re2 (pip install 'wedmetrics[re2]'): `{p}`")
            if end < n and _quantifier(p, end) is not None:
                raise ValueError(f"error parsing regexp: invalid nested repetition operator: `{p[i:end + 1]}`")
            out.append(text + ("?" if lazy != ungreedy[-1] else ""))
            if unbounded and text != "?":
                repeats[-1] = True
            after_atom = last_group_repeats = False
            i = end
            continue
        if c in "*+?" or (c == "{" and _REPEAT.match(p, i)):
            raise ValueError(f"error parsing regexp: missing argument to repetition operator: `{c}`: `{p}`")
        last_group_repeats = False
        after_atom = True
        if c == "\\":
            i, text = _escape(p, i, in_class=False)
            out.append(text)
            after_atom = text not in ("\\A", "\\Z") and not text.startswith("(?a:\\")
            continue
        if c == "[":
            i, text = _char_class(p, i)
            out.append(text)
            continue
        if c == "{":
            out.append("\\{")
            i += 1
            continue
        if c == "(":
            after_atom = False
            if p.startswith("(?", i):
                j = i + 2
                if p.startswith("P<", j) or p.startswith("<", j) and not p.startswith(("<=", "<!"), j):
                    name_start = j + (2 if p[j] == "P" else 1)
                    out.append("(?P<")
                    groups.append([])
                    multiline.append(multiline[-1])
                    ungreedy.append(ungreedy[-1])
                    repeats.append(False)
                    i = name_start
                    continue
                if p.startswith(("=", "!", "<=", "<!"), j):
                    raise ValueError(f"error parsing regexp: invalid or unsupported Perl syntax "
                                     f"(look-arounds are not RE2): `{p}`")
                m = re.match(r"([imsU]*)(?:-([imsU]*))?([:)])", p[j:])
                if m is None:
                    raise ValueError(f"error parsing regexp: invalid or unsupported Perl syntax: `{p}`")
                on, off, end = m.group(1), m.group(2) or "", m.group(3)
                py_on, py_off = on.replace("U", ""), off.replace("U", "")
                flags = py_on + ("-" + py_off if py_off else "")
                ml = True if "m" in on else False if "m" in off else multiline[-1]
                ug = True if "U" in on else False if "U" in off else ungreedy[-1]
                i = j + m.end()
                if end == ":":
                    out.append(f"(?{flags}:" if flags else "(?:")
                    groups.append([])
                    multiline.append(ml)
                    ungreedy.append(ug)
                    repeats.append(False)
                else:
                    if flags:
                        # (?i) holds to the end of the enclosing group: open a scoped group there.
                        out.append(f"(?{flags}:")
                        groups[-1].append(flags)
                    multiline[-1] = ml
                    ungreedy[-1] = ug
                continue
            out.append("(")
            groups.append([])
            multiline.append(multiline[-1])
            ungreedy.append(ungreedy[-1])
            repeats.append(False)
            i += 1
            continue
        if c == ")":
            if len(groups) == 1:
                raise ValueError(f"error parsing regexp: unexpected ): `{p}`")
            out.append(")" * len(groups.pop()) + ")")
            multiline.pop()
            ungreedy.pop()
            last_group_repeats = repeats.pop()
            repeats[-1] = repeats[-1] or last_group_repeats
            i += 1
            continue
        if c == "|":
            repeats[-1] = True   # alternatives may overlap: ambiguous when the group repeats
            # RE2 keeps a flag on across '|': close the scoped groups, then reopen them
            opened = groups[-1]
            out.append(")" * len(opened) + "|" + "".join(f"(?{f}:" for f in opened))
            after_atom = False
            i += 1
            continue
        if c == "^":
            after_atom = False
        if c == "$" and not multiline[-1]:
            out.append("\\Z")
            after_atom = False
            i += 1
            continue
        if c == "$":
            after_atom = False
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
    if e in "bB" and not in_class:
        return i + 2, f"(?a:\\{e})"   # RE2's word boundary is ASCII
    if e in "ZuUNe" or (e == "b" and in_class):
        raise ValueError(f"error parsing regexp: invalid escape sequence: `\\{e}`: `{p}`")
    if e == "x" and p.startswith("{", i + 2):
        m = re.match(r"\{([0-9A-Fa-f]{1,8})\}", p[i + 2:])
        if m is None or int(m.group(1), 16) > 0x10FFFF:
            raise ValueError(f"error parsing regexp: invalid escape sequence: `{p[i:i + 4]}`: `{p}`")
        return i + 2 + m.end(), f"\\U{int(m.group(1), 16):08x}"
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
