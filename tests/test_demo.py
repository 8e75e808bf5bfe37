"""The README's main command, end to end, short and in a temporary directory."""
from __future__ import annotations

import io
import sqlite3

import pytest

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


def _writers_and_overlaps(path) -> tuple[int, int]:
    """(writers in the file, 1 s bucket starts stored by more than one writer)."""
    db = sqlite3.connect(path)
    try:
        writers = db.execute("SELECT COUNT(DISTINCT writer_id) FROM wm_buckets").fetchone()[0]
        shared = db.execute("SELECT COUNT(*) FROM (SELECT series_id, start FROM wm_buckets "
                            "WHERE width = 1.0 GROUP BY series_id, start "
                            "HAVING COUNT(*) > 1)").fetchone()[0]
    finally:
        db.close()
    return writers, shared


def test_a_second_run_starts_a_fresh_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--duration", "1", "--quiet", "--speed", "300", "--db", "x.db"]
    assert main(args) == 0
    assert main(args) == 0
    assert "a fresh file" in capsys.readouterr().out
    # one run's rows only: merged reads do not count two runs of the same minutes
    assert _writers_and_overlaps(tmp_path / "x.db") == (1, 0)


def test_continue_extends_the_simulated_day_without_doubling_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--duration", "1", "--quiet", "--speed", "300", "--db", "x.db"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args + ["--continue"]) == 0
    assert "continued the file's simulated day at +" in capsys.readouterr().out
    assert _writers_and_overlaps(tmp_path / "x.db") == (2, 0)


def test_a_file_the_demo_did_not_write_is_refused_and_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.db").write_bytes(b"precious")
    with pytest.raises(SystemExit):
        main(["demo", "--duration", "1", "--quiet", "--db", "mine.db"])
    assert "was not written by the demo" in capsys.readouterr().err
    assert (tmp_path / "mine.db").read_bytes() == b"precious"
