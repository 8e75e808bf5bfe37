"""Flusher: batching, retries with back-off, bounded buffer policies, close."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from wedmetrics.buckets import BucketBatch, SeriesKey
from wedmetrics.storage import Flusher, MemoryBackend, SQLiteBackend

from .helpers import make_batch, minute_batch

T0 = 1_700_000_040.0
KEY = SeriesKey.of("api.latency", {"route": "/photos"})


class Outbox:
    """What the engine's drain_closed does: hands out each queued batch once."""

    def __init__(self):
        self.queue: list[BucketBatch] = []
        self.lock = threading.Lock()

    def put(self, batch):
        with self.lock:
            self.queue.append(batch)

    def __call__(self):
        with self.lock:
            out, self.queue = BucketBatch.concat(self.queue), []
        return out


class Unreachable(MemoryBackend):
    """A real MemoryBackend behind a switch that makes writes fail like a dead server."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.down = False
        self.calls = 0

    def write_buckets(self, batch):
        self.calls += 1
        if self.down:
            raise ConnectionError("server unreachable")
        return super().write_buckets(batch)


def test_flush_writes_in_batches():
    src, backend = Outbox(), SQLiteBackend(":memory:")
    f = Flusher(src, backend, batch_rows=7, thread=False)
    src.put(minute_batch(KEY, T0, 30, seed=1)[0])
    assert f.flush() is True
    st = f.stats()
    assert (st["written"], st["batches"], st["buffered"], st["retried"]) == (30, 5, 0, 0)
    assert len(backend.read_buckets(KEY, 60.0, 0, 2e9)) == 30


def test_failed_writes_wait_and_arrive_exactly_once():
    src, backend = Outbox(), Unreachable()
    f = Flusher(src, backend, thread=False, backoff=0.01)
    backend.down = True
    batches = [minute_batch(KEY, T0 + 600 * i, 10, seed=i)[0] for i in range(4)]
    for b in batches[:2]:
        src.put(b)
        assert f.flush() is False
    st = f.stats()
    assert st["buffered"] == 20 and st["retried"] == 2
    assert "server unreachable" in st["last_error"]
    backend.down = False
    for b in batches[2:]:
        src.put(b)
    assert f.flush() is True
    got = backend.read_buckets(KEY, 60.0, 0, 2e9)
    np.testing.assert_array_equal(got.start, T0 + 60 * np.arange(40))
    assert f.stats()["written"] == 40 and f.stats()["buffered"] == 0


@pytest.mark.parametrize("policy,kept_first", [("drop_oldest", T0 + 60 * 10),
                                               ("drop_newest", T0)])
def test_overflow_beyond_capacity_is_counted(policy, kept_first):
    src, backend = Outbox(), Unreachable()
    f = Flusher(src, backend, buffer_rows=25, overflow=policy, thread=False)
    backend.down = True
    src.put(minute_batch(KEY, T0, 20, seed=1)[0])
    f.flush()
    src.put(minute_batch(KEY, T0 + 1200, 15, seed=2)[0])
    f.flush()
    assert f.stats()["dropped"]["overflow"] == 10 and f.stats()["buffered"] == 25
    backend.down = False
    assert f.flush()
    got = backend.read_buckets(KEY, 60.0, 0, 2e9)
    assert len(got) == 25 and got.start[0] == kept_first


def test_block_policy_leaves_rows_in_the_engine():
    src, backend = Outbox(), Unreachable()
    f = Flusher(src, backend, buffer_rows=10, overflow="block", thread=False)
    backend.down = True
    src.put(minute_batch(KEY, T0, 12, seed=1)[0])
    f.flush()
    src.put(minute_batch(KEY, T0 + 3600, 5, seed=2)[0])
    f.flush()                       # buffer full: the second batch stays in the source
    assert f.stats()["buffered"] == 12 and len(src.queue) == 1
    backend.down = False
    assert sum(f.close(timeout=5)["dropped"].values()) == 0
    assert len(backend.read_buckets(KEY, 60.0, 0, 2e9)) == 17


def test_unstorable_keys_are_split_off_and_counted():
    src, backend = Outbox(), MemoryBackend()
    f = Flusher(src, backend, thread=False)
    bad = SeriesKey.of("bad\x00name")
    src.put(make_batch([(0, 60.0, T0, [1.0]), (1, 60.0, T0, [2.0]), (1, 60.0, T0 + 60, [3.0])],
                       {0: KEY, 1: bad}))
    assert f.flush()
    st = f.stats()
    assert st["dropped"]["invalid_key"] == 2 and "NUL" in st["last_error"]
    assert len(backend.read_buckets(KEY, 60.0, 0, 2e9)) == 1


def test_close_reports_what_it_could_not_write():
    src, backend = Outbox(), Unreachable()
    f = Flusher(src, backend, thread=False, backoff=0.01, max_backoff=0.02)
    backend.down = True
    src.put(minute_batch(KEY, T0, 8, seed=1)[0])
    st = f.close(timeout=0.1)
    assert st["dropped"]["close_timeout"] == 8 and st["buffered"] == 0
    assert backend.calls >= 2           # it retried before giving up
    assert f.close() == st               # idempotent


def test_background_thread_flushes_and_close_drains():
    src, backend = Outbox(), MemoryBackend()
    f = Flusher(src, backend, interval=0.01)
    src.put(minute_batch(KEY, T0, 5, seed=1)[0])
    deadline = time.monotonic() + 30
    while backend.row_count() < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.row_count() == 5
    src.put(minute_batch(KEY, T0 + 300, 5, seed=2)[0])
    f.close()
    assert backend.row_count() == 10 and f.stats()["written"] == 10


def test_source_errors_are_reported_not_fatal():
    calls = []

    def source():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("engine hiccup")
        return minute_batch(KEY, T0, 3)[0]

    f = Flusher(source, MemoryBackend(), thread=False)
    f.flush()
    assert f.stats()["source_errors"] == 1 and "engine hiccup" in f.stats()["last_error"]
    f.flush()
    assert f.stats()["written"] == 3


@pytest.mark.parametrize("kwargs,match", [({"overflow": "spill"}, "overflow must be"),
                                          ({"interval": 0}, "interval must be"),
                                          ({"buffer_rows": 0}, "buffer_rows")])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Flusher(Outbox(), MemoryBackend(), thread=False, **kwargs)


def test_a_batch_the_backend_refuses_is_counted_not_retried_forever():
    src, backend = Outbox(), MemoryBackend()
    f = Flusher(src, backend, thread=False)
    broken, _ = minute_batch(KEY, T0, 4)
    broken.sketch = broken.sketch[:3]                 # columns disagree
    src.put(broken)
    assert f.flush()
    src.put(minute_batch(KEY, T0 + 600, 2, seed=3)[0])
    assert f.flush()
    st = f.stats()
    assert st["dropped"]["invalid_batch"] == 4 and "sketch has 3 entries" in st["last_error"]
    assert st["written"] == 2 and st["retried"] == 0
