"""The write-ahead log of ``MetricsEngine(durability="wal")``: format (``_format``) and
the log directory with its replay (``log``).  See docs/storage.md, "Write-ahead log"."""
