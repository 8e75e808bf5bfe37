"""BoundedBuffer: overflow policies and exact accounting."""
from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wedmetrics.collect.buffer import BoundedBuffer, Sample


def _accounted(buf: BoundedBuffer) -> bool:
    st = buf.stats()
    return st["offered"] == st["taken"] + sum(st["dropped"].values()) + st["pending"]


def test_drop_newest_keeps_the_first_items_and_counts_the_rest():
    buf = BoundedBuffer(capacity=5, policy="drop_newest")
    assert buf.put_many(range(12)) == 5
    assert buf.get_batch(100) == [0, 1, 2, 3, 4]
    assert buf.stats()["dropped"]["drop_newest"] == 7
    assert _accounted(buf)


def test_drop_oldest_keeps_the_last_items_and_counts_evictions():
    buf = BoundedBuffer(capacity=5, policy="drop_oldest")
    assert buf.put_many(range(12)) == 12
    assert buf.get_batch(100) == [7, 8, 9, 10, 11]
    assert buf.stats()["dropped"]["drop_oldest"] == 7
    assert _accounted(buf)


def test_block_without_consumer_times_out_and_counts():
    buf = BoundedBuffer(capacity=3, policy="block", block_timeout=0.01)
    assert buf.put_many(range(5)) == 3
    assert buf.stats()["dropped"]["block_timeout"] == 2
    assert buf.get_batch(10) == [0, 1, 2]
    assert _accounted(buf)


def test_block_waits_for_a_consumer_and_loses_nothing():
    buf = BoundedBuffer(capacity=4, policy="block", block_timeout=30.0)
    got: list = []

    def consume():
        while len(got) < 1000:
            got.extend(buf.get_batch(3, timeout=5.0))

    t = threading.Thread(target=consume)
    t.start()
    assert buf.put_many(range(1000)) == 1000
    t.join()
    assert got == list(range(1000))
    assert sum(buf.stats()["dropped"].values()) == 0
    assert _accounted(buf)


def test_closed_buffer_refuses_and_counts_but_hands_out_what_it_holds():
    buf = BoundedBuffer(capacity=10, policy="block")
    buf.put_many([1, 2])
    buf.close()
    assert buf.put(3) is False
    assert buf.stats()["dropped"]["closed"] == 1
    assert buf.get_batch(10, timeout=None) == [1, 2]
    assert buf.get_batch(10, timeout=None) == []   # closed and empty: returns at once
    assert _accounted(buf)


def test_close_releases_a_blocked_producer():
    buf = BoundedBuffer(capacity=1, policy="block", block_timeout=60.0)
    buf.put(0)
    result: list = []
    t = threading.Thread(target=lambda: result.append(buf.put_many([1, 2])))
    t.start()
    buf.close()
    t.join(10.0)
    assert not t.is_alive()
    assert result == [0]
    assert buf.stats()["dropped"]["closed"] == 2
    assert _accounted(buf)


@pytest.mark.parametrize("kwargs, match", [
    ({"capacity": 0}, "capacity"),
    ({"capacity": 2.5}, "capacity"),
    ({"policy": "drop_random"}, "drop_random"),
    ({"block_timeout": -1}, "block_timeout"),
])
def test_bad_configuration_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BoundedBuffer(**kwargs)


def test_sample_of_validates_and_sorts_labels():
    s = Sample.of("a.b", 2, {"z": 1, "a": "x"}, "counter", ts=5)
    assert s == Sample("a.b", 2.0, (("a", "x"), ("z", "1")), "counter", 5.0)
    with pytest.raises(ValueError, match="kind"):
        Sample.of("a", 1, kind="histogram")
    with pytest.raises(ValueError, match="name"):
        Sample.of("", 1)
    with pytest.raises(TypeError, match="'a'.*value must be a number"):
        Sample.of("a", "fast")

_ops = st.lists(st.one_of(st.tuples(st.just("put"), st.integers(0, 12)),
                          st.tuples(st.just("get"), st.integers(1, 12))), max_size=40)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 8), ops=_ops)
def test_drop_policies_match_the_obvious_model(capacity, ops):
    """drop_oldest is a deque(maxlen); drop_newest refuses when full."""
    oldest = BoundedBuffer(capacity, "drop_oldest")
    newest = BoundedBuffer(capacity, "drop_newest")
    m_old: deque = deque(maxlen=capacity)
    m_new: list = []
    counter = 0
    for op, n in ops:
        if op == "put":
            items = list(range(counter, counter + n))
            counter += n
            oldest.put_many(items)
            newest.put_many(items)
            m_old.extend(items)
            m_new.extend(items[:max(0, capacity - len(m_new))])
        else:
            assert oldest.get_batch(n) == [m_old.popleft() for _ in range(min(n, len(m_old)))]
            assert newest.get_batch(n) == m_new[:n]
            del m_new[:n]
        assert _accounted(oldest) and _accounted(newest)
    assert oldest.stats()["offered"] == newest.stats()["offered"] == counter
