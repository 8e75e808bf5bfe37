"""Fixtures of the Alertmanager tests (helpers live in ``am_peers.py``), and the count of translated cases.

A translated case is a test row that names its Go test: a ``go_test`` parameter
(``"TestSilenceCanUpdate/expired"``), or a docstring that starts with the Go
test's name.  Rows run with both regex engines count once (passing when every
run passes).  ``WEDMETRICS_AM_COUNT=1 python -m pytest tests/alerting/alertmanager``
prints the count per Go source file, passing, failing, skipped, and the rows
that run in a deliberately different form (see docs/alerting.md, "The
translated test cases").
"""
from __future__ import annotations

import collections
import os
import re

import pytest

from am_peers import Hook

#: Go test -> the upstream file it is in (prometheus/alertmanager).
GO_FILES = {
    "TestMatchers": "pkg/labels/parse_test.go",
    "TestMatcher": "pkg/labels/matcher_test.go", "TestMatcherString": "pkg/labels/matcher_test.go",
    "TestMatcherJSONMarshal": "pkg/labels/matcher_test.go", "TestMatcherJSONUnmarshal": "pkg/labels/matcher_test.go",
    "TestRouteMatch": "dispatch/route_test.go", "TestRouteMatchers": "dispatch/route_test.go",
    "TestRouteMatchersAndMatch": "dispatch/route_test.go", "TestRouteWalk": "dispatch/route_test.go",
    "TestInheritParentGroupByAll": "dispatch/route_test.go",
    "TestAggrGroup": "dispatch/dispatch_test.go", "TestGroupLabels": "dispatch/dispatch_test.go",
    "TestGroupByAllLabels": "dispatch/dispatch_test.go", "TestGroups": "dispatch/dispatch_test.go",
    "TestInhibitRuleHasEqual": "inhibit/inhibit_test.go", "TestInhibitRuleMatches": "inhibit/inhibit_test.go",
    "TestInhibitRuleMatchers": "inhibit/inhibit_test.go", "TestInhibit": "inhibit/inhibit_test.go",
    "TestValidateClassicMatcher": "silence/silence_test.go", "TestValidateSilence": "silence/silence_test.go",
    "TestQState": "silence/silence_test.go", "TestQMatches": "silence/silence_test.go",
    "TestSilenceCanUpdate": "silence/silence_test.go", "TestSilenceExpire": "silence/silence_test.go",
    "TestSilenceSet": "silence/silence_test.go",
    "TestContainsTime": "timeinterval/timeinterval_test.go", "TestParseTimeString": "timeinterval/timeinterval_test.go",
    "TestYamlUnmarshal": "timeinterval/timeinterval_test.go",
    "TestTimeIntervalComplete": "timeinterval/timeinterval_test.go",
    "TestIntervener_Mutes": "timeinterval/timeinterval_test.go",
}
CONFIG_FILE = "config/config_test.go"   # every other Test* name used here (TestLoadEmptyString, ...)

#: The deliberate differences (numbered as in docs/alerting.md) and the rows each one touches.
#: Difference 1 (TestValidateClassicMatcher's invalid UTF-8 row) has no row: it is not translated.
DIFFERENCES = {
    2: lambda go, params: go == "TestAggrGroup",
    3: lambda go, params: go in ("TestRouteMatch", "TestRouteMatchers", "TestRouteMatchersAndMatch"),
    4: lambda go, params: go.startswith("TestValidateSilence") and params.get("error", "") is None,
    5: lambda go, params: go == "TestSilenceCanUpdate/bad arguments",
}


@pytest.fixture
def hook():
    """A webhook receiver on a free 127.0.0.1 port, recording what it is sent."""
    h = Hook()
    yield h
    h.close()


def _go_test(item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    name = params.get("go_test")
    if name is None:
        doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
        m = re.match(r"\s*(Test\w+)", doc)
        name = m.group(1) if m else None
        if name == "TestSilenceCanUpdate" and "bad arguments" in doc.lower():
            name = "TestSilenceCanUpdate/bad arguments"
    if name is None or not (name.startswith("Test") or name.startswith("config.go")):
        return None
    return name


def _source(go: str) -> str:
    base = go.split("/")[0].split(" ")[0].split(":")[0]
    if go.startswith("config.go"):
        return "config/config.go (validation)"
    return GO_FILES.get(base, CONFIG_FILE)


_rows: dict = {}


def pytest_collection_modifyitems(items):
    for item in items:
        go = _go_test(item)
        if go is None:
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec else {}
        row_id = callspec.id if callspec else ""
        engine = params.get("regex_engine")
        if engine is not None:     # the same row run with each regex engine counts once
            row_id = row_id.replace(f"{engine}-", "", 1) if row_id.startswith(f"{engine}-") else row_id
        key = (str(item.path), item.originalname, row_id)
        row = _rows.setdefault(key, {"go": go, "source": _source(go), "outcomes": [],
                                     "differences": [n for n, f in DIFFERENCES.items() if f(go, params)]})
        item.stash[_ROW] = row


_ROW = pytest.StashKey[dict]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    row = item.stash.get(_ROW, None)
    if row is not None and (report.when == "call" or report.outcome != "passed"):
        row["outcomes"].append(report.outcome)


def pytest_terminal_summary(terminalreporter):
    if not os.environ.get("WEDMETRICS_AM_COUNT") or not _rows:
        return
    per = collections.defaultdict(collections.Counter)
    differences: set = set()
    for row in _rows.values():
        c = per[row["source"]]
        c["rows"] += 1
        outs = row["outcomes"]
        state = ("failed" if "failed" in outs else "passed" if outs and all(o == "passed" for o in outs)
                 else "skipped" if outs and "skipped" in outs and "failed" not in outs and "passed" not in outs
                 else "passed" if "passed" in outs else "not run")
        c[state] += 1
        if row["differences"]:
            c["different"] += 1
            differences.update(row["differences"])
    w = terminalreporter.write_line
    w("")
    w("translated Alertmanager test cases (rows naming their Go test)")
    w(f"{'Go source file':40} {'rows':>5} {'passed':>7} {'failed':>7} {'skipped':>8} {'different':>10}")
    total = collections.Counter()
    for source in sorted(per):
        c = per[source]
        total.update(c)
        w(f"{source:40} {c['rows']:5} {c['passed']:7} {c['failed']:7} {c['skipped']:8} {c['different']:10}")
    w(f"{'total':40} {total['rows']:5} {total['passed']:7} {total['failed']:7} {total['skipped']:8} "
      f"{total['different']:10}")
    w(f"deliberate differences: {len(differences | {1})} (numbered 1-{max(differences | {1})} in docs/alerting.md; "
      f"1 has no row: it is not translated), touching {total['different']} of the rows above")
