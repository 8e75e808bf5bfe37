"""Alertmanager's inhibition tests, translated (inhibit/inhibit_test.go).

Source alerts go through a real :class:`Dispatcher` (firing or resolved) and
targets are judged by ``Dispatcher.muted_by``, the path notifications take.
"""
from __future__ import annotations

import pytest

from wedmetrics.alerting.notification import Notification
from wedmetrics.alerting.routing import Dispatcher

T0 = 1_700_000_000.0


def dispatcher(rules):
    return Dispatcher({"route": {"receiver": "r"}, "inhibit_rules": rules, "alertmanager": True})


def alert(labels, status="firing", fp=None):
    fp = fp or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return Notification(fp, labels.get("alertname", "A"), status, "warning", labels=labels, starts_at=T0 - 60,
                        ends_at=T0 - 1 if status == "resolved" else None)


def inhibited(d, labels) -> bool:
    return bool(d.muted_by(alert(labels, fp="target"), T0)["inhibited_by"])


# TestInhibitRuleHasEqual: the equal-labels test.  Go calls hasEqual directly with
# matcher-less rules; here the rule has source `src="1"` / target `tgt="1"` matchers
# that the sources / the input carry, which leaves the equal-label facts unchanged.
HAS_EQUAL = [
    ("TestInhibitRuleHasEqual/no source alerts", [], [], {"a": "b"}, False),
    ("TestInhibitRuleHasEqual/no equal labels, any source alert", [({}, "firing")], [], {"a": "b"}, True),
    ("TestInhibitRuleHasEqual/matching but already resolved",
     [({"a": "b", "b": "f"}, "resolved"), ({"a": "b", "b": "c"}, "resolved")], ["a", "b"], {"a": "b", "b": "c"}, False),
    ("TestInhibitRuleHasEqual/matching and unresolved",
     [({"a": "b", "c": "d"}, "resolved"), ({"a": "b", "c": "f"}, "firing")], ["a"], {"a": "b"}, True),
    ("TestInhibitRuleHasEqual/equal label does not match",
     [({"a": "c", "c": "d"}, "resolved"), ({"a": "c", "c": "f"}, "resolved")], ["a"], {"a": "b"}, False),
]


@pytest.mark.parametrize("go_test,sources,equal,target,want", HAS_EQUAL)
def test_inhibit_rule_has_equal(go_test, sources, equal, target, want):
    d = dispatcher([{"source_matchers": ['src="1"'], "target_matchers": ['tgt="1"'], "equal": equal}])
    for i, (labels, status) in enumerate(sources):
        d.update(alert(dict(labels, src="1"), "firing", fp=f"s{i}"), T0 - 30)
        if status == "resolved":
            d.update(alert(dict(labels, src="1"), "resolved", fp=f"s{i}"), T0 - 1)
    assert inhibited(d, dict(target, tgt="1")) is want


SOURCE_1 = {"s1": "1", "t1": "2", "e": "1"}   # matches rule 1's source side only
SOURCE_2 = {"s2": "1", "t2": "1", "e": "1"}   # matches both sides of rule 2

# TestInhibitRuleMatches (source_match / target_match)
MATCHES = [
    ("TestInhibitRuleMatches", {"t1": "1", "e": "1"}, True),
    ("TestInhibitRuleMatches", {"t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatches", {"t1": "1", "t3": "1", "e": "1"}, True),
    ("TestInhibitRuleMatches", {"t1": "1", "t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatches", {"t1": "0", "e": "1"}, False),
    ("TestInhibitRuleMatches", {"s1": "1", "t1": "1", "e": "1"}, True),
    ("TestInhibitRuleMatches", {"s2": "1", "t2": "1", "e": "1"}, False),   # both match both sides
    ("TestInhibitRuleMatches", {"t1": "1", "e": "0"}, False),
]


@pytest.mark.parametrize("go_test,target,want", MATCHES)
def test_inhibit_rule_matches(go_test, target, want):
    d = dispatcher([{"source_matchers": ['s1="1"'], "target_matchers": ['t1="1"'], "equal": ["e"]},
                    {"source_matchers": ['s2="1"'], "target_matchers": ['t2="1"'], "equal": ["e"]}])
    d.update([alert(SOURCE_1), alert(SOURCE_2)], T0)
    assert inhibited(d, target) is want


# TestInhibitRuleMatchers (source_matchers / target_matchers, rule 1 with t1!="1")
MATCHERS = [
    ("TestInhibitRuleMatchers", {"t1": "1", "e": "1"}, False),
    ("TestInhibitRuleMatchers", {"t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatchers", {"t1": "1", "t3": "1", "e": "1"}, False),
    ("TestInhibitRuleMatchers", {"t1": "1", "t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatchers", {"t1": "0", "e": "1"}, True),
    ("TestInhibitRuleMatchers", {"s1": "1", "t1": "1", "e": "1"}, False),
    ("TestInhibitRuleMatchers", {"s2": "1", "t2": "1", "e": "1"}, True),
    ("TestInhibitRuleMatchers", {"t1": "1", "e": "0"}, False),
]


@pytest.mark.parametrize("go_test,target,want", MATCHERS)
def test_inhibit_rule_matchers(go_test, target, want):
    d = dispatcher([{"source_matchers": ['s1="1"'], "target_matchers": ['t1!="1"'], "equal": ["e"]},
                    {"source_matchers": ['s2="1"'], "target_matchers": ['t2="1"'], "equal": ["e"]}])
    d.update([alert(SOURCE_1), alert(SOURCE_2)], T0)
    assert inhibited(d, target) is want


ONE = {"t": "1", "e": "f"}
TWO = {"s": "1", "e": "f"}

# TestInhibit: alertOne is muted by alertTwo while alertTwo fires
INHIBIT = [
    ("TestInhibit/alertTwo has not fired", [("one", "firing")], {"one": False}),
    ("TestInhibit/alertTwo active", [("one", "firing"), ("two", "firing")], {"one": True, "two": False}),
    ("TestInhibit/alertTwo resolved", [("one", "firing"), ("two", "firing"), ("two", "resolved")],
     {"one": False, "two": False}),
]


@pytest.mark.parametrize("go_test,updates,want", INHIBIT)
def test_inhibit(go_test, updates, want):
    d = dispatcher([{"source_matchers": ['s="1"'], "target_matchers": ['t="1"'], "equal": ["e"]}])
    labels = {"one": ONE, "two": TWO}
    for name, status in updates:
        d.update(alert(labels[name], status, fp=name), T0)
    got = {name: bool(d.muted_by(alert(labels[name], fp=name), T0)["inhibited_by"]) for name in want}
    assert got == want
