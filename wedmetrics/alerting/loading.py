"""Load alert rules from YAML or JSON files (or already-parsed data).

The file holds a list of rules, or a mapping with a ``rules`` list::

    rules:
      - name: SlowPhotos
        kind: threshold
        metric: api.latency
        match: {route: /photos}
        stat: p95
        window: 5m
        op: ">"
        threshold: 0.5
        for: 2m

Every error names the file, the rule (position and name) and the field:
``rules.yaml: rules[1] 'SlowPhotos': window: must be > 0, got '0s'``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml

from .rules import AlertRule, RuleError

__all__ = ["load_rules", "parse_rules", "rule_from_dict"]


def _field_errors(e: pydantic.ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = list(err["loc"])
        # the discriminated union puts the kind first: ("threshold", "window")
        if loc and isinstance(loc[0], str) and loc[0] in ("threshold", "rate_of_change", "absence",
                                                          "anomaly", "composite"):
            loc = loc[1:]
        kind = err["loc"][0] if len(err["loc"]) > len(loc) else None
        where = ".".join(str(x) for x in loc) or "kind"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = f"missing; a {kind} rule needs it" if kind else "missing"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def rule_from_dict(data: Mapping, where: str | None = None) -> AlertRule:
    """Validate one rule given as a dict.

    Raises
    ------
    RuleError
        Naming ``where`` (default: the rule by its name) and each field
        that is wrong or missing, in place of pydantic's raw report.
    """
    if where is None:
        name = data.get("name")
        where = "rule" + (f" {name!r}" if isinstance(name, str) else "")
    try:
        return AlertRule.model_validate(dict(data))
    except pydantic.ValidationError as e:
        raise RuleError(f"{where}: {_field_errors(e)}") from None


def parse_rules(data: Any, source: str = "rules") -> list[AlertRule]:
    """Validate parsed data (a list of rule dicts, or ``{"rules": [...]}``).

    Raises
    ------
    RuleError
        Naming the source, the rule and the field; duplicate names too.
    """
    if isinstance(data, Mapping):
        extra = sorted(set(data) - {"rules"})
        if extra:
            raise RuleError(f"{source}: unknown top-level keys {extra}; expected 'rules'")
        data = data.get("rules")
    if not isinstance(data, list):
        raise RuleError(f"{source}: expected a list of rules (or a mapping with a 'rules' list), "
                        f"got {type(data).__name__}")
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        name = item.get("name") if isinstance(item, Mapping) else None
        where = f"{source}: rules[{i}]" + (f" {name!r}" if isinstance(name, str) else "")
        if not isinstance(item, Mapping):
            raise RuleError(f"{where}: a rule must be a mapping, got {type(item).__name__}")
        rule = rule_from_dict(item, where)
        if rule.name in seen:
            raise RuleError(f"{where}: name: {rule.name!r} is already used by rules[{seen[rule.name]}]")
        seen[rule.name] = i
        rules.append(rule)
    return rules


def load_rules(source: str | os.PathLike) -> list[AlertRule]:
    """Rules from a ``.yaml`` / ``.yml`` / ``.json`` file, or from YAML/JSON text.

    Parameters
    ----------
    source : path or str
        A path to an existing file, or the text itself (a string holding a
        newline, or starting with ``[`` or ``{``).

    Raises
    ------
    RuleError
        For unparsable text or an invalid rule, naming the field.
    FileNotFoundError
        For a path that does not exist.
    """
    text, name = _read(source)
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise RuleError(f"{name}: cannot parse: {e}") from None
    return parse_rules(data, name)


def _read(source: str | os.PathLike) -> tuple[str, str]:
    if isinstance(source, str) and ("\n" in source or source.lstrip()[:1] in ("[", "{")):
        return source, "rules"
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no rules file at {str(path)!r}")
    return path.read_text(encoding="utf-8"), path.name
