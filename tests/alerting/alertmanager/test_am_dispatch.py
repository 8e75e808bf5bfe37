"""Alertmanager's routing and dispatch tests, translated (dispatch/route_test.go, dispatch/dispatch_test.go).

Routes are loaded from the Go tests' YAML through ``load_alertmanager_config``,
the path an ``alertmanager.yml`` takes.
"""
from __future__ import annotations

import textwrap

import pytest

from wedmetrics.alerting.alertmanager_config import label_fingerprint, load_alertmanager_config
from wedmetrics.alerting.notification import Notification
from wedmetrics.alerting.routing import Dispatcher

RECEIVERS = ["notify-def", "notify-A", "notify-testing", "notify-productionA", "notify-productionB", "notify-BC"]


def config(route_yaml: str) -> str:
    receivers = "".join(f"  - name: {r}\n" for r in RECEIVERS)
    return "route:\n" + textwrap.indent(textwrap.dedent(route_yaml), "  ") + "receivers:\n" + receivers


MATCH_TREE = """\
receiver: 'notify-def'
routes:
- match:
    owner: 'team-A'
  receiver: 'notify-A'
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    group_by: [...]
  - match:
      env: "production"
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - match_re:
      env: "produ.*"
      job: ".*"
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- match_re:
    owner: 'team-(B|C)'
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- match:
    group_by: 'role'
  group_by: ['role']
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    routes:
    - match:
        wait: 'long'
      group_wait: 2m
"""
MATCHERS_TREE = """\
receiver: 'notify-def'
routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']
  receiver: 'notify-A'
  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']
    receiver: 'notify-testing'
    group_by: [...]
  - matchers: ['{env="production"}']
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - matchers: [ env=~"produ.*", job=~".*"]
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- matchers: [owner=~"team-(B|C)"]
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- matchers: [group_by="role"]
  group_by: ['role']
  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"""
MIXED_TREE = (MATCHERS_TREE
              .replace("""  - matchers: ['{env="production"}']""", """  - match:\n      env: "production\"""")
              .replace("""- matchers: [owner=~"team-(B|C)"]""", """- match_re:\n    owner: 'team-(B|C)'"""))
TREES = {"TestRouteMatch": MATCH_TREE, "TestRouteMatchers": MATCHERS_TREE, "TestRouteMatchersAndMatch": MIXED_TREE}

D = (30.0, 300.0, 4 * 3600.0)   # DefaultRouteOpts: group_wait, group_interval, repeat_interval

# input labels -> [(receiver, group_by, group_by_all, group_wait, group_interval, repeat_interval)]
CASES = [
    ({"owner": "team-A"}, [("notify-A", (), False, *D)]),
    ({"owner": "team-A", "env": "unset"}, [("notify-A", (), False, *D)]),
    ({"owner": "team-C"}, [("notify-BC", ("bar", "foo"), False, 120.0, D[1], D[2])]),
    ({"owner": "team-A", "env": "testing"}, [("notify-testing", (), True, *D)]),
    ({"owner": "team-A", "env": "production"}, [("notify-productionA", (), False, 60.0, D[1], D[2]),
                                                ("notify-productionB", ("job",), False, 30.0, 300.0, 3600.0)]),
    ({"group_by": "role"}, [("notify-def", ("role",), False, *D)]),
    ({"env": "testing", "group_by": "role"}, [("notify-testing", ("role",), False, *D)]),
    ({"env": "testing", "group_by": "role", "wait": "long"}, [("notify-testing", ("role",), False, 120.0, D[1], D[2])]),
]
ROWS = [(go, labels, want) for go in TREES for labels, want in CASES]


@pytest.mark.parametrize("go_test,labels,want", ROWS, ids=[f"{r[0]}:{sorted(r[1].items())}" for r in ROWS])
def test_route_match(go_test, labels, want):
    d = Dispatcher(load_alertmanager_config(config(TREES[go_test])).routing)
    got = [(n.receiver, tuple(sorted(g for g in n.group_by if g != "...")), n.group_by == ("...",),
            n.group_wait, n.group_interval, n.repeat_interval) for n in d.routes_for(labels)]
    assert got == want


def test_route_walk():
    """TestRouteWalk: the route tree walked depth first, parents before children."""
    root = Dispatcher(load_alertmanager_config(config(MATCH_TREE)).routing).root

    def walk(node):
        yield node.receiver
        for child in node.children:
            yield from walk(child)
    assert list(walk(root)) == ["notify-def", "notify-A", "notify-testing", "notify-productionA",
                                "notify-productionB", "notify-BC", "notify-def", "notify-testing", "notify-testing"]


def test_inherit_parent_group_by_all():
    """TestInheritParentGroupByAll"""
    cfg = config("""\
receiver: notify-def
routes:
- match:
    env: 'parent'
  group_by: ['...']
  routes:
  - match:
      env: 'child1'
  - match:
      env: 'child2'
    group_by: ['foo']
""")
    root = Dispatcher(load_alertmanager_config(cfg).routing).root
    parent = root.children[0]
    assert parent.group_by == ("...",) and parent.children[0].group_by == ("...",)
    assert parent.children[1].group_by == ("foo",)


def test_route_mute_intervals_are_not_inherited():
    """issue #12 (Alertmanager's newRoute sets MuteTimeIntervals from the route's own config only)."""
    cfg = config("""\
receiver: notify-def
routes:
- match: {team: a}
  mute_time_intervals: [always]
  active_time_intervals: [always]
  routes:
  - match: {env: x}
""") + "time_intervals:\n  - name: always\n    time_intervals: [{}]\n"
    root = Dispatcher(load_alertmanager_config(cfg).routing).root
    parent, child = root.children[0], root.children[0].children[0]
    assert parent.mute_time_intervals == ("always",) and child.mute_time_intervals == ()
    assert parent.active_time_intervals == ("always",) and child.active_time_intervals == ()


# TestGroupLabels, TestGroupByAllLabels
GROUP_LABELS = [
    ("TestGroupLabels", ["a", "b"], {"a": "v1", "b": "v2"}),
    ("TestGroupByAllLabels", ["..."], {"a": "v1", "b": "v2", "c": "v3"}),
]


@pytest.mark.parametrize("go_test,group_by,want", GROUP_LABELS)
def test_group_labels(go_test, group_by, want):
    d = Dispatcher({"route": {"receiver": "n1", "group_by": group_by}, "alertmanager": True})
    assert d.root.group_labels({"a": "v1", "b": "v2", "c": "v3"}) == want


T0 = 1_700_000_000.0


def am_alert(c, starts, status="firing", ends=None):
    labels = {"a": "v1", "b": "v2", "c": c}
    return Notification(c, "A", status, "warning", labels=labels, starts_at=starts, ends_at=ends)


def test_aggr_group_timers():
    """TestAggrGroup: first flush after group_wait, changes after group_interval, resolved alerts
    sent once and then removed, the group empties.  Go's loop re-inserting an unchanged a3
    three times is left out: Alertmanager's notification pipeline (DedupStage) sends nothing
    for an unchanged group, which the Dispatcher (grouping and dedup in one) does too.
    Go starts a1 and a3 a minute in the future and resolves them now; a Notification may not
    end before it starts, so here they start at T0 (no effect on the timers)."""
    d = Dispatcher({"route": {"receiver": "n1", "group_by": ["a", "b"], "group_wait": 1,
                              "group_interval": 0.3, "repeat_interval": 3600}, "alertmanager": True})

    def flush(at):
        out = d.tick(at)
        return [(a.alert_id, a.status) for n in out for a in n.alerts]

    a1, a3 = am_alert("v3", T0), am_alert("v5", T0)
    d.update(a1, T0)
    assert d.next_due() == T0 + 1 and flush(T0 + 0.99) == []
    assert flush(T0 + 1) == [("v3", "firing")]
    d.update(a3, T0 + 1.1)
    assert flush(T0 + 1.2) == [] and flush(T0 + 1.3) == [("v3", "firing"), ("v5", "firing")]

    # a new group: a2 (started an hour ago) arrives after a1 created it, so it waits group_wait too
    d = Dispatcher(d.config)
    a1, a2, a3 = am_alert("v3", T0), am_alert("v4", T0 - 3600), am_alert("v5", T0)
    d.update([a1, a2], T0)
    assert d.next_due() == T0 + 1
    assert flush(T0 + 1) == [("v4", "firing"), ("v3", "firing")]
    d.update(a3, T0 + 1.1)
    assert flush(T0 + 1.3) == [("v4", "firing"), ("v3", "firing"), ("v5", "firing")]
    d.update(am_alert("v3", T0, "resolved", T0 + 1.4), T0 + 1.4)
    assert flush(T0 + 1.6) == [("v4", "firing"), ("v5", "firing"), ("v3", "resolved")]
    d.update([am_alert("v4", T0 - 3600, "resolved", T0 + 1.7), am_alert("v5", T0, "resolved", T0 + 1.7)],
             T0 + 1.7)
    assert flush(T0 + 1.9) == [("v4", "resolved"), ("v5", "resolved")]
    assert d.groups() == []


def test_alert_creating_a_group_that_waited_group_wait_flushes_at_once():
    """dispatch.go (0.30+): only the alert that creates a group skips group_wait."""
    d = Dispatcher({"route": {"receiver": "n1", "group_by": ["a"], "group_wait": 30}, "alertmanager": True})
    d.update(am_alert("old", T0 - 3600), T0)
    assert d.next_due() == T0


def test_groups():
    """TestGroups: the dispatcher's groups (labels, receiver, alerts) and each alert's receivers."""
    cfg = load_alertmanager_config("""
receivers:
- name: 'kafka'
- name: 'prod'
- name: 'testing'

route:
  group_by: ['alertname']
  group_wait: 10ms
  group_interval: 10ms
  receiver: 'prod'
  routes:
  - match:
      env: 'testing'
    receiver: 'testing'
    group_by: ['alertname', 'service']
  - match:
      env: 'prod'
    receiver: 'prod'
    group_by: ['alertname', 'service', 'cluster']
    continue: true
  - match:
      kafka: 'yes'
    receiver: 'kafka'
    group_by: ['alertname', 'service', 'cluster']
""")
    inputs = [
        {"alertname": "OtherAlert", "cluster": "cc", "service": "dd"},
        {"env": "testing", "alertname": "TestingAlert", "service": "api", "instance": "inst1"},
        {"env": "prod", "alertname": "HighErrorRate", "cluster": "aa", "service": "api", "instance": "inst1"},
        {"env": "prod", "alertname": "HighErrorRate", "cluster": "aa", "service": "api", "instance": "inst2"},
        {"env": "prod", "alertname": "HighErrorRate", "cluster": "bb", "service": "api", "instance": "inst1"},
        {"env": "prod", "alertname": "HighLatency", "cluster": "bb", "service": "db", "kafka": "yes",
         "instance": "inst3"},
    ]
    fps = [label_fingerprint(labels) for labels in inputs]
    d = Dispatcher(cfg.routing)
    d.update([Notification(fp, labels["alertname"], "firing", "warning", labels=labels, starts_at=T0)
              for fp, labels in zip(fps, inputs)], T0)
    sent = d.tick(T0 + 0.01)
    assert sum(len(n.alerts) for n in sent) == 7           # the recorder's 7 alerts
    got = sorted((g["receiver"], sorted(g["labels"].items()), sorted(g["alerts"])) for g in d.groups())
    want = [
        ("prod", {"alertname": "OtherAlert"}, [fps[0]]),
        ("testing", {"alertname": "TestingAlert", "service": "api"}, [fps[1]]),
        ("prod", {"alertname": "HighErrorRate", "service": "api", "cluster": "aa"}, sorted(fps[2:4])),
        ("prod", {"alertname": "HighErrorRate", "service": "api", "cluster": "bb"}, [fps[4]]),
        ("kafka", {"alertname": "HighLatency", "service": "db", "cluster": "bb"}, [fps[5]]),
        ("prod", {"alertname": "HighLatency", "service": "db", "cluster": "bb"}, [fps[5]]),
    ]
    assert got == sorted((r, sorted(labels.items()), a) for r, labels, a in want)
    receivers = {fp: sorted(n.receiver for n in d.routes_for(labels)) for fp, labels in zip(fps, inputs)}
    assert receivers == {fps[0]: ["prod"], fps[1]: ["testing"], fps[2]: ["prod"], fps[3]: ["prod"],
                         fps[4]: ["prod"], fps[5]: ["kafka", "prod"]}
