"""Several hosts (processes), each with its own engine, writing one PostgreSQL store under one org.

The fleet view comes from the stored sketches: counts and sums exact,
percentiles within alpha of the percentiles of every host's points, per
hour from the roll-up query (the plain layout's GROUP BY here; the
continuous aggregates where TimescaleDB is installed), and for one host by
its label.  A host of another org never shows.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import wedmetrics as wm
from tests.fleet.host_writer import HOURS, points
from tests.storage.conftest import PG_DSN, drop_schema, require_pg

T0 = 1_699_923_600.0          # 01:00 UTC: the hours fall in one day
HOSTS = {"h1": 1, "h2": 2, "h3": 3}


def _within_alpha(estimate: float, values: np.ndarray, q: float, alpha: float) -> bool:
    exact = float(np.quantile(values, q, method="lower"))
    return abs(estimate - exact) <= alpha * exact * (1 + 1e-9)


@pytest.fixture
def fleet_schema():
    require_pg()
    schema = f"wm_t_{uuid.uuid4().hex[:12]}"
    wm.TimescaleBackend(PG_DSN, "acme", schema=schema, layout="plain").close()
    yield schema
    drop_schema(schema)


def test_hosts_into_one_postgres_org(fleet_schema):
    script = Path(__file__).with_name("host_writer.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(wm.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    writers = {**HOSTS, "intruder": 4}
    procs = [subprocess.Popen([sys.executable, str(script), PG_DSN, fleet_schema,
                               "other" if host == "intruder" else "acme", host, str(seed),
                               str(T0)], env=env, stderr=subprocess.PIPE, text=True)
             for host, seed in writers.items()]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    per_host = {host: points(seed, T0) for host, seed in HOSTS.items()}
    ts = np.concatenate([t for t, _ in per_host.values()])
    values = np.concatenate([v for _, v in per_host.values()])

    storage = wm.TimescaleBackend(PG_DSN, "acme", schema=fleet_schema, layout="plain")
    reader = wm.MetricsEngine(storage=storage)
    try:
        end = T0 + HOURS * 3600
        assert {dict(k.labels)["host"] for k in storage.series_keys("api.latency")} == set(HOSTS)
        for resolution in ("1s", "1m", "1h"):
            cols = reader.history("api.latency", resolution, T0, end)
            assert int(cols["count"].sum()) == len(values), resolution
            assert float(cols["sum"].sum()) == pytest.approx(values.sum(), rel=1e-9)
        whole = storage.read_merged("api.latency", 60.0, T0, end)
        assert whole.count == len(values) and whole.max == values.max()
        for q in (0.5, 0.95, 0.99):
            assert _within_alpha(whole.sketch.quantile(q), values, q, whole.alpha)

        hourly = storage.read_rollup("api.latency", "hour", T0, end)
        np.testing.assert_array_equal(hourly.start, T0 + 3600 * np.arange(HOURS))
        hour_of = ((ts - T0) // 3600).astype(int)
        for i in range(HOURS):
            mine = values[hour_of == i]
            assert hourly.count[i] == len(mine)
            assert hourly.sum[i] == pytest.approx(mine.sum(), rel=1e-9)
            assert (hourly.min[i], hourly.max[i]) == (mine.min(), mine.max())
            for q, col in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
                assert _within_alpha(hourly[col][i], mine, q, whole.alpha)

        h2_ts, h2_values = per_host["h2"]
        daily = storage.read_rollup("api.latency", "day", T0 - 86400, end, labels={"host": "h2"})
        assert daily.count.tolist() == [len(h2_values)]
        assert _within_alpha(daily.p95[0], h2_values, 0.95, whole.alpha)
        assert storage.read_rollup("api.latency", "hour", T0, end,
                                   labels={"host": "intruder"}).count.size == 0
    finally:
        reader.close()
