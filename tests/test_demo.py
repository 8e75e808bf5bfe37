"""The README's main command, end to end, short and in a temporary directory."""
from __future__ import annotations

import io
import sqlite3

from wedmetrics.cli import main
from wedmetrics.demo import run_demo


def test_demo_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    code = run_demo(duration=3.0, weddings=4, seed=3, speed=600.0, rate_scale=5.0,
                    db="demo.db", out=out)
    text = out.getvalue()
    assert code == 0
    assert "== wedmetrics demo summary" in text
    assert "dropped         0" in text, text[-1500:]
    assert "injected incidents caught" in text
    # the per-series table: every latency series with a rate and three percentiles
    table = text[text.index("latency, last 5 simulated minutes:"):].splitlines()
    assert table[1].split() == ["series", "rate/s", "p50", "s", "p95", "s", "p99", "s"]
    rows = [line.split() for line in table[2:] if line.startswith("  api.latency{route=")]
    assert len(rows) >= 3
    for name, rate, p50, p95, p99 in rows:
        assert float(rate) > 0 and 0 < float(p50) <= float(p95) <= float(p99), name
    db = sqlite3.connect(tmp_path / "demo.db")
    buckets = db.execute("SELECT COUNT(*), SUM(count) FROM wm_buckets").fetchone()
    db.close()
    assert buckets[0] > 0 and buckets[1] > 0


def test_demo_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--duration", "1", "--quiet", "--speed", "300", "--db", "x.db"]) == 0
    assert "points" in capsys.readouterr().out
    assert (tmp_path / "x.db").exists()
