"""Exporters: an engine's closed buckets pushed to other systems.

:class:`RemoteWriteExporter` speaks the Prometheus remote-write 1.0 protocol
(Prometheus, Mimir, Cortex, Thanos Receive, VictoriaMetrics).  It needs the
``[remote]`` extra (protobuf, python-snappy) and loads on first use.
"""
from __future__ import annotations

__all__ = ["RemoteWriteExporter"]


def __getattr__(name: str):
    if name == "RemoteWriteExporter":
        from .remote_write import RemoteWriteExporter

        return RemoteWriteExporter
    raise AttributeError(f"module 'wedmetrics.export' has no attribute {name!r}")
