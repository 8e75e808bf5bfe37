"""A tiny, safe templater for alert labels and annotations.

Rules write ``"{{ labels.route }} p95 is {{ value }}"``; the alert engine
fills the placeholders from the alert's context.  There is no expression
language and no ``eval``: a placeholder is a dotted path into the context,
optionally followed by a Python format spec after a colon
(``{{ value:.3f }}``) or a filter after a bar (``{{ value | ms }}``).

Templates are compiled once, when a rule is validated, so a misspelt root
(``{{ lables.route }}``) is an error at load time, not at 3 am.  A label the
series does not carry renders as the empty string, as in Prometheus.

>>> t = Template("{{ labels.route }} p95 is {{ value:.3f }}s (> {{ threshold }})")
>>> t.render({"labels": {"route": "/photos"}, "value": 0.41234, "threshold": 0.3})
'/photos p95 is 0.412s (> 0.3)'
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Template", "TemplateError", "TEMPLATE_ROOTS", "render_all"]

#: Names a placeholder may start with; the alert engine provides each of them.
TEMPLATE_ROOTS = ("labels", "value", "threshold", "rule", "metric", "stat", "window",
                  "severity", "wedding")

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
# no segment may start with "_": dunder attributes are how template engines get escaped
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*\Z")
# Python's format-spec mini language for numbers and strings, nothing else
# (a spec cannot reach attributes: that needs the "{x.attr}" field syntax).
_SPEC = re.compile(r"[<>=^]?[+\- ]?#?0?\d*[,_]?(?:\.\d+)?[bcdeEfFgGnosxX%]?\Z")


def _fmt_number(v: Any) -> str:
    # Shortest round-trip text, but without noise like 0.30000000000000004.
    if isinstance(v, float):
        if not math.isfinite(v):
            return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
        return f"{v:.6g}"
    return str(v)


def _ms(v: Any) -> str:
    return f"{float(v) * 1000.0:.0f}ms" if isinstance(v, (int, float)) else str(v)


def _pct(v: Any) -> str:
    return f"{float(v) * 100.0:.1f}%" if isinstance(v, (int, float)) else str(v)


_FILTERS = {
    "upper": lambda v: str(v).upper(),
    "lower": lambda v: str(v).lower(),
    "ms": _ms,                   # seconds shown as milliseconds
    "pct": _pct,                 # a ratio shown as a percentage
    "int": lambda v: str(int(v)) if isinstance(v, (int, float)) and math.isfinite(v) else str(v),
}


class TemplateError(ValueError):
    """A template that cannot be compiled (unknown root, bad spec or filter)."""


class _Field:
    __slots__ = ("path", "spec", "filter")

    def __init__(self, path: tuple[str, ...], spec: str, filt: str) -> None:
        self.path, self.spec, self.filter = path, spec, filt

    def render(self, ctx: Mapping[str, Any]) -> str:
        v: Any = ctx
        for part in self.path:
            if isinstance(v, Mapping):
                v = v.get(part)
            else:
                v = getattr(v, part, None) if not part.startswith("_") else None
            if v is None:
                return ""
        if self.filter:
            return _FILTERS[self.filter](v)
        if self.spec:
            try:
                return format(v, self.spec)
            except (TypeError, ValueError):
                return _fmt_number(v)
        return _fmt_number(v)


class Template:
    """A compiled template string.

    Parameters
    ----------
    text : str
        Literal text with ``{{ path }}``, ``{{ path:spec }}`` or
        ``{{ path | filter }}`` placeholders.  Roots: see
        :data:`TEMPLATE_ROOTS`; filters: ``upper``, ``lower``, ``ms``,
        ``pct``, ``int``.

    Raises
    ------
    TemplateError
        Naming the offending placeholder.
    """

    __slots__ = ("text", "_parts", "roots")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TemplateError(f"template must be a str, got {type(text).__name__}")
        self.text = text
        parts: list[str | _Field] = []
        roots: set[str] = set()
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            parts.append(text[pos:m.start()])
            parts.append(self._field(m.group(1)))
            roots.add(parts[-1].path[0])
            pos = m.end()
        tail = text[pos:]
        if "{{" in tail or "}}" in tail:
            raise TemplateError(f"unbalanced '{{{{' or '}}}}' in template {text!r}")
        parts.append(tail)
        self._parts = tuple(p for p in parts if p != "")
        self.roots = frozenset(roots)

    @staticmethod
    def _field(inner: str) -> _Field:
        body = inner.strip()
        filt = spec = ""
        if "|" in body:
            body, filt = (s.strip() for s in body.split("|", 1))
            if filt not in _FILTERS:
                raise TemplateError(
                    f"unknown filter {filt!r} in {{{{{inner}}}}}; use one of {', '.join(_FILTERS)}")
        elif ":" in body:
            body, spec = body.split(":", 1)
            body = body.strip()
            if not _SPEC.match(spec):
                raise TemplateError(f"invalid format spec {spec!r} in {{{{{inner}}}}}")
        if not _PATH.match(body):
            raise TemplateError(f"placeholder {{{{{inner}}}}} must be a dotted name like labels.route "
                                f"(no segment may start with '_')")
        path = tuple(body.split("."))
        if path[0] not in TEMPLATE_ROOTS:
            raise TemplateError(
                f"unknown name {path[0]!r} in {{{{{inner}}}}}; use one of {', '.join(TEMPLATE_ROOTS)}")
        return _Field(path, spec, filt)

    @property
    def is_constant(self) -> bool:
        """True when the template has no placeholders."""
        return all(isinstance(p, str) for p in self._parts)

    def render(self, context: Mapping[str, Any]) -> str:
        """The text with every placeholder filled from ``context``."""
        return "".join(p if isinstance(p, str) else p.render(context) for p in self._parts)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def render_all(templates: Mapping[str, Template], context: Mapping[str, Any]) -> dict[str, str]:
    """Render a mapping of compiled templates with one context."""
    return {k: t.render(context) for k, t in templates.items()}
