"""Real child processes killed with SIGKILL: what the next engine on the store holds.

* Default configuration (random writer id, no log): the next engine adopts
  the dead writer's lease and resumes its open minute, five minutes and hour
  from its stored seconds, so every resolution holds what the 1 s level holds.
* ``durability="wal"`` with a store that goes away (the SQLite file locked by
  another connection) while the flusher's buffer is far too small: no row is
  dropped (the log forces ``overflow="block"``), so the log never forgets an
  acknowledged point that the store does not hold.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import wedmetrics as wm

from .conftest import PG_DSN, drop_schema, require_pg

WIDTHS = (1.0, 60.0, 300.0, 3600.0)


def _spawn(code: str, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _kill(child: subprocess.Popen) -> str:
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    return out


RECORDER = textwrap.dedent("""
    import sys, time
    import wedmetrics as wm
    kind, where = sys.argv[1], sys.argv[2]
    store = (wm.SQLiteBackend(where) if kind == "sqlite"
             else wm.TimescaleBackend(sys.argv[3], schema=where, layout="plain"))
    engine = wm.MetricsEngine(storage=store, lateness="1s", flush_interval=0.05)
    print("writer", store.writer_id, flush=True)
    h = engine.series("orders")
    i = 0
    while True:
        for _ in range(20):
            h.record(1.0)
            i += 1
        print("ack", i, flush=True)
        time.sleep(0.01)
""")


@pytest.fixture(params=["sqlite", "postgres"])
def store_args(request, tmp_path):
    if request.param == "sqlite":
        yield ("sqlite", tmp_path / "m.db"), lambda: wm.SQLiteBackend(tmp_path / "m.db")
        return
    require_pg()
    schema = f"wm_t_{uuid.uuid4().hex[:12]}"
    yield (("pg", schema, PG_DSN),
           lambda: wm.TimescaleBackend(PG_DSN, schema=schema, layout="plain"))
    drop_schema(schema)


def test_kill_9_in_the_default_configuration_loses_only_unflushed_seconds(store_args):
    args, open_store = store_args
    child = _spawn(RECORDER, *args)
    writer = int(child.stdout.readline().split()[1])
    acked = 0
    began = time.monotonic()
    deadline = began + 60
    while time.monotonic() < began + 4.0:     # seconds closed and flushed, and more open
        assert time.monotonic() < deadline, child.stderr.read()
        line = child.stdout.readline()
        if line.startswith("ack "):
            acked = int(line.split()[1])
    out = _kill(child)
    rate = acked / (time.monotonic() - began)
    acked = max([acked] + [int(x.split()[1]) for x in out.split("\n")[:-1]
                           if x.startswith("ack ")])
    # a new engine in another process: the dead writer's lease is adopted
    after = wm.MetricsEngine(storage=open_store(), flush_options={"thread": False})
    restart = after.stats()["restart"]
    assert restart["writer"]["adopted"] == writer == after.storage.writer_id
    assert restart["resumed"]["series"] == 1, restart
    after.close()
    reader = open_store()
    now = time.time()
    counts = {w: reader.read_merged("orders", w, now - 7200, now + 3600).count for w in WIDTHS}
    reader.close()
    # the open minute, five minutes and hour hold every stored second: only the
    # unflushed seconds (lateness + flush interval) are lost
    assert counts == dict.fromkeys(WIDTHS, counts[1.0]), counts
    lost = acked - counts[1.0]
    # lateness 1 s + flush interval 0.05 s (+ the second in progress and scheduling)
    assert 0 <= lost <= rate * 2.5, (acked, counts)


WAL_CHILD = textwrap.dedent("""
    import json, os, sys
    import wedmetrics as wm
    where, T0 = sys.argv[1], float(sys.argv[2])
    clock = wm.ManualClock(T0)
    engine = wm.MetricsEngine(
        clock=clock, storage=wm.SQLiteBackend(os.path.join(where, "m.db"), timeout=0.05),
        durability="wal", wal_dir=os.path.join(where, "wal"), flush_interval=0.02,
        flush_options={"buffer_rows": 100, "backoff": 0.02, "max_backoff": 0.05})
    print("ready", flush=True)
    sys.stdin.readline()                      # the store has gone away
    h = engine.series("orders")
    for i in range(1200):
        clock.set(T0 + i)
        h.record(1.0, ts=T0 + i)
    print("ack", 1200, flush=True)
    for line in sys.stdin:                   # report the flusher until killed
        print(json.dumps(engine.stats()["storage"]), flush=True)
""")


def test_wal_keeps_what_a_full_buffer_could_not_take_while_the_store_was_away(tmp_path):
    T0 = 1_700_000_000.0
    wm.SQLiteBackend(tmp_path / "m.db").close()
    child = _spawn(WAL_CHILD, tmp_path, T0)
    assert child.stdout.readline() == "ready\n", child.stderr.read()
    # the store goes away: another connection holds the write lock
    lock = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline() == "ack 1200\n", child.stderr.read()
    time.sleep(0.5)                           # writes fail; far more rows than the buffer holds
    child.stdin.write("stats\n")
    child.stdin.flush()
    st = json.loads(child.stdout.readline())
    assert st["retried"] > 0 and st["written"] == 0
    assert st["dropped"]["overflow"] == 0     # under the log nothing is dropped
    lock.execute("ROLLBACK")                  # the store is back
    lock.close()
    deadline = time.monotonic() + 30
    while st["buffered"] or not st["written"]:  # until the flusher has caught up
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
        child.stdin.write("stats\n")
        child.stdin.flush()
        st = json.loads(child.stdout.readline())
    _kill(child)
    after = wm.MetricsEngine(clock=wm.ManualClock(T0 + 1200),
                             storage=wm.SQLiteBackend(tmp_path / "m.db"), durability="wal",
                             wal_dir=tmp_path / "wal", flush_options={"thread": False})
    after.close()
    reader = wm.SQLiteBackend(tmp_path / "m.db")
    counts = {w: reader.read_merged("orders", w, T0 - 3600, T0 + 7200).count for w in WIDTHS}
    reader.close()
    assert counts == dict.fromkeys(WIDTHS, 1200), counts
