"""Storage counts live in one place, ``stats()["storage"]``, and are true ."""
from __future__ import annotations

import wedmetrics as wm
from wedmetrics.storage.flusher import Flusher

from .helpers import minute_batch

T0 = 1_700_000_040.0
KEY = wm.SeriesKey.of("api.latency", {"route": "/photos"})


class AckLost(wm.SQLiteBackend):
    """A real SQLite backend whose connection fails after a commit (the
    acknowledgement is lost), or before any write while it is ``down``.

    A subclass on purpose: losing the answer *after* the COMMIT reached the
    database, and not before, is a window of microseconds on a real
    connection (a ``pg_terminate_backend`` lands before or after the COMMIT
    by chance).  Only here is the order certain; the store itself is real.
    """

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lose_next_ack = False
        self.down = False

    def write_buckets(self, batch, **kw):
        if self.down:
            raise ConnectionError("server unreachable")
        new = super().write_buckets(batch, **kw)
        if self.lose_next_ack:
            self.lose_next_ack = False
            raise ConnectionError("connection lost after COMMIT")
        return new


class Outbox:
    def __init__(self):
        self.batches = []

    def __call__(self):
        out, self.batches = wm.BucketBatch.concat(self.batches), []
        return out


def test_a_retried_write_whose_first_attempt_committed_counts_its_rows_as_written():
    src, backend = Outbox(), AckLost(":memory:")
    f = Flusher(src, backend, thread=False, backoff=0.001)
    src.batches.append(minute_batch(KEY, T0, 30, seed=1)[0])
    backend.lose_next_ack = True
    assert f.flush() is False                     # committed, but the caller saw an error
    assert backend.row_count() == 30 and f.stats()["written"] == 0
    assert f.flush() is True                      # the retry inserts nothing new
    st = f.stats()
    assert (st["written"], st["duplicates"], st["retried"], st["buffered"]) == (30, 30, 1, 0)
    assert st["written"] == backend.row_count()


def test_engine_storage_counts_are_rows_in_one_place(tmp_path):
    clock = wm.ManualClock(T0)
    backend = AckLost(tmp_path / "m.db")
    eng = wm.MetricsEngine(clock=clock, storage=backend,
                           flush_options={"thread": False, "buffer_rows": 50})
    h = eng.series("x")
    backend.down = True
    for i in range(120):                          # 120 one-second buckets and their roll-ups
        h.record(1.0, ts=T0 + i)
    clock.advance(200)
    assert eng._flusher.flush() is False
    st = eng.stats()
    assert st["storage"]["buffered"] == 50 and st["storage"]["dropped"]["overflow"] > 0
    assert "overflow" not in st["dropped"]        # point counts and row counts stay apart
    backend.down = False
    eng.close()
    st = eng.stats()["storage"]
    # every row the points made is written or counted as dropped, once
    twin = wm.MetricsEngine(clock=wm.ManualClock(T0), storage=wm.SQLiteBackend(":memory:"),
                            flush_options={"thread": False})
    for i in range(120):
        twin.series("x").record(1.0, ts=T0 + i)
    twin.close()
    made = twin.stats()["storage"]["written"]
    assert st["written"] == 50 and st["written"] + st["dropped"]["overflow"] == made
    reader = wm.SQLiteBackend(tmp_path / "m.db")
    assert reader.row_count() == st["written"]
    reader.close()
