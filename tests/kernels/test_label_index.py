"""LabelIndex: per-call label resolution for ``engine.record(name, v, labels=...)``."""
from __future__ import annotations

import gc
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import REFERENCE


def test_finds_what_was_added_in_any_label_order(impl):
    index = impl.LabelIndex()
    index.add("api.latency", {"route": "/a", "method": "GET"}, "A")
    index.add("api.latency", None, "bare")
    index.add("db.latency", {"route": "/a", "method": "GET"}, "D")
    assert index.find("api.latency", {"method": "GET", "route": "/a"}) == "A"
    assert index.find("db.latency", {"route": "/a", "method": "GET"}) == "D"
    assert index.find("api.latency", None) == "bare"
    assert index.find("api.latency", {}) == "bare"
    assert len(index) == 3


def test_misses_on_any_difference(impl):
    index = impl.LabelIndex()
    index.add("m", {"a": "1", "b": "2"}, "H")
    assert index.find("m", {"a": "1"}) is None                  # subset
    assert index.find("m", {"a": "1", "b": "2", "c": "3"}) is None
    assert index.find("m", {"a": "1", "b": "3"}) is None        # other value
    assert index.find("m", {"a": "1", "c": "2"}) is None        # other name, same value
    assert index.find("n", {"a": "1", "b": "2"}) is None
    assert index.find("m", None) is None


def test_bad_input_is_a_miss_not_an_error(impl):
    index = impl.LabelIndex()
    index.add("m", {"a": "1"}, "H")
    assert index.find("m", {"a": ["unhashable"]}) is None
    assert index.find(["unhashable name"], None) is None
    assert index.find("m", [("a", "1")]) is None                # not a dict
    assert index.find("m", {1: "1"}) is None


def test_add_replaces_an_equal_key_and_keeps_a_copy(impl):
    index = impl.LabelIndex()
    labels = {"a": "1"}
    index.add("m", labels, "old")
    index.add("m", {"a": "1"}, "new")
    labels["a"] = "2"                  # the caller's dict changing later changes nothing
    assert index.find("m", {"a": "1"}) == "new"
    assert index.find("m", labels) is None
    assert len(index) == 1


def test_grows_past_many_entries(impl):
    index = impl.LabelIndex()
    for i in range(5000):
        index.add("m", {"i": str(i), "parity": str(i & 1)}, i)
    assert len(index) == 5000
    assert all(index.find("m", {"parity": str(i & 1), "i": str(i)}) == i for i in range(5000))
    assert index.find("m", {"i": "5000", "parity": "0"}) is None


def test_compiled_holds_its_references_and_releases_them(compiled):
    handle = object()
    before = sys.getrefcount(handle)
    index = compiled.LabelIndex()
    index.add("m", {"a": "1"}, handle)
    index.add("m", {"a": "1"}, handle)         # replaced entry is released
    assert sys.getrefcount(handle) == before + 1
    del index
    gc.collect()
    assert sys.getrefcount(handle) == before


label_sets = st.dictionaries(st.sampled_from(["a", "b", "c", "route"]),
                             st.sampled_from(["", "1", "2", "/x"]), max_size=4)
operations = st.lists(st.tuples(st.booleans(), st.sampled_from(["m", "n"]), label_sets),
                      max_size=60)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_compiled_matches_reference(compiled, ops):
    ours, ref = compiled.LabelIndex(), REFERENCE.LabelIndex()
    for i, (is_add, name, labels) in enumerate(ops):
        if is_add:
            ours.add(name, labels, i)
            ref.add(name, labels, i)
        else:
            assert ours.find(name, labels) == ref.find(name, labels)
    assert len(ours) == len(ref)


def test_an_eq_that_regrows_the_table_mid_lookup_is_safe(impl):
    index = impl.LabelIndex()
    index.add("m", {"a": "1"}, "H")

    class Hostile:
        """Hashes like "1" and, when compared, fills the index until it regrows."""
        def __hash__(self):
            return hash("1")

        def __eq__(self, other):
            for i in range(200):
                index.add("m", {"a": f"x{i}"}, i)
            index.add("m", {"a": "1"}, "H2")
            return False

    assert index.find("m", {"a": Hostile()}) is None
    assert index.find("m", {"a": "1"}) == "H2"
    assert len(index) == 201
