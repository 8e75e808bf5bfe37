"""durability="wal": a child process recording is killed with SIGKILL at random moments.

Each child first reports what it holds after its restart (memory merged with
the store, at every resolution), then records point after point, each value
its own index, acknowledging every 50 over a pipe.  Nothing acknowledged may
be missing and nothing may be counted twice: what a restarted engine holds
is exactly the points 0 .. n-1 for some n at or above the last acknowledged
count (the sum tells a doubled or missing point).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

KILLS = 20
#: extra kills during start-up (opening the log, resuming, replaying), before
#: the child acknowledges anything
STARTUP_KILLS = 6
BATCH = 50

CHILD = textwrap.dedent("""
    import os, sys, time
    import wedmetrics as wm
    from wedmetrics.storage import SQLiteBackend

    where, mode = sys.argv[1], sys.argv[2]
    engine = wm.MetricsEngine(storage=SQLiteBackend(os.path.join(where, "m.db")),
                              durability="wal", wal_dir=os.path.join(where, "wal"),
                              wal_options={"segment_bytes": 1 << 14}, flush_interval=0.02)
    lo, hi = time.time() - 4 * 3600, time.time() + 3600

    def held(read):
        out = []
        for res in ("1s", "1m", "5m", "1h"):
            cols = read(res)
            out += [int(cols.count.sum()), float(cols.sum.sum())]
        return " ".join(map(repr, out))

    line = held(lambda r: engine.history("p", r, lo, hi)) if "p" in engine.names() \
        else " ".join(["0", "0.0"] * 4)
    print("held", line, flush=True)
    if mode == "close":
        engine.close()
        store = SQLiteBackend(os.path.join(where, "m.db"))
        stored = []
        for w in (1.0, 60.0, 300.0, 3600.0):
            s = store.read_merged("p", w, lo, hi)
            stored += [s.count, s.sum]
        print("stored", " ".join(map(repr, stored)), flush=True)
        print("left", sorted(os.listdir(os.path.join(where, "wal"))), flush=True)
        sys.exit(0)
    h = engine.series("p")
    i = int(line.split()[0])        # on from what this engine holds
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for _ in range(%d):
            h.record(float(i))
            i += 1
        print("ack", i, flush=True)
        time.sleep(0.0002)        # a service's pace, not a tight loop: keeps the log small
""" % BATCH)


def _spawn(where, mode):
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", CHILD, str(where), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _check_held(line: str, acked: int) -> int:
    """The count the restarted child holds; asserts it is 0..n-1 exactly, n >= acked."""
    word, *nums = line.split()
    assert word in ("held", "stored"), line
    counts = [int(float(x)) for x in nums[0::2]]
    sums = [float(x) for x in nums[1::2]]
    n = counts[0]
    assert counts == [n] * 4, f"resolutions disagree: {line}"
    assert acked <= n <= acked + BATCH, f"acknowledged {acked}, holds {n}"
    assert sums == [n * (n - 1) / 2] * 4, f"a point is doubled or missing: {line}"
    return n


def test_kill_9_at_random_moments_loses_no_acknowledged_point(tmp_path):
    rng = random.Random(20261202)
    acked = 0
    figures = {"kills": 0, "startup_kills": 0, "acknowledged": 0, "recovered": 0}
    for k in range(KILLS + STARTUP_KILLS):
        child = _spawn(tmp_path, "record")
        if k % 4 == 3 and figures["startup_kills"] < STARTUP_KILLS:
            # killed while it starts: the log it replays must survive a second replay
            time.sleep(rng.uniform(0.05, 0.6))
            child.send_signal(signal.SIGKILL)
            out, _err = child.communicate(timeout=30)
            figures["startup_kills"] += 1
            held = [x for x in out.split("\n")[:-1] if x.startswith("held")]
            if held:
                _check_held(held[0], acked)
            acks = [int(x.split()[1]) for x in out.split("\n")[:-1] if x.startswith("ack ")]
            acked = max([acked, *acks])
            continue
        try:
            figures["recovered"] = _check_held(child.stdout.readline(), acked)
            # kill it at a random moment once it is recording
            first = child.stdout.readline()
            assert first.startswith("ack"), first + child.stderr.read()
            time.sleep(rng.uniform(0.0, 0.12))
            child.send_signal(signal.SIGKILL)
            out, _err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        # only whole lines acknowledge: the kill may cut the last one short
        lines = (first + out).split("\n")[:-1]
        acks = [int(x.split()[1]) for x in lines if x.startswith("ack ")]
        acked = max(acks)
        figures["kills"] += 1
        figures["acknowledged"] = acked
    last = _spawn(tmp_path, "close")
    out, err = last.communicate(timeout=60)
    assert last.returncode == 0, err
    held_line, stored_line, left_line = out.splitlines()
    recovered = _check_held(held_line, acked)
    # after a clean close the store holds exactly that, at every resolution, and the log is empty
    assert _check_held(stored_line, recovered) == recovered
    assert left_line == "left ['LOCK', 'meta.json']"
    figures["recovered"] = recovered
    print(f"\nwal kill test: {figures}")
    assert figures["kills"] == KILLS and recovered >= acked > KILLS * BATCH
    assert figures["startup_kills"] == STARTUP_KILLS
