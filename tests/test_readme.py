"""The README's snippets run on their own, as a new user pastes them."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(heading: str) -> str:
    """The first ```python block after ``heading``."""
    text = README.read_text()
    after = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_the_alerting_snippet_runs_on_its_own():
    code = snippet("### Alerting, wedding-aware")
    namespace: dict = {}
    exec(compile(code, "README.md (alerting)", "exec"), namespace)
    engine, alerts = namespace["engine"], namespace["alerts"]
    try:
        # the rule added before its series found the series recorded after it
        assert engine.query("api.latency", last="1m").count == 1
        assert [r.name for r in alerts.rules()] == ["SlowPhotos"]
    finally:
        engine.close()
