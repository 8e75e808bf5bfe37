"""Storage backends for closed buckets, alert events and rule state.

``MemoryBackend`` and ``SQLiteBackend`` need only the standard library;
``TimescaleBackend`` needs the ``[timescale]`` extra (psycopg 3) and is
imported on first use.
"""
from __future__ import annotations

from .base import AlertEvent, InvalidKeyError, RuleState, StorageBackend
from .flusher import Flusher
from .memory import MemoryBackend
from .sqlite import SQLiteBackend

__all__ = ["StorageBackend", "AlertEvent", "RuleState", "InvalidKeyError", "MemoryBackend",
           "SQLiteBackend", "TimescaleBackend", "Flusher"]


def __getattr__(name: str):
    if name == "TimescaleBackend":
        from .timescale import TimescaleBackend

        globals()[name] = TimescaleBackend
        return TimescaleBackend
    raise AttributeError(f"module 'wedmetrics.storage' has no attribute {name!r}")
