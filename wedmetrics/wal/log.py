"""The write-ahead log directory: segments, series logs, locking, replay and truncation.

Layout of ``wal_dir``::

    LOCK                     flock'd by the live engine (a second one is refused)
    meta.json                {"format": 1, "writer_id": ...}: the storage writer id
    series-<gen>.log         one line per series of that generation:
                             "<crc32 hex> <json [id, name, labels, kind]>"
    seg-<gen>-<seq>.wal      mapped segments (see _format): accepted points

A generation is one engine's life.  At start the engine replays every older
generation (with the log off: those files stay until what they hold is
stored), then starts a new one.  Segments are deleted once the store holds
every 1 s bucket of their points; coarser buckets are rebuilt from the
stored 1 s ones on restart (``storage/resume.py``), so the log never needs
to outlive the finest level.
"""
from __future__ import annotations

import json
import logging
import math
import mmap
import os
import re
import secrets
import threading
import zlib
from dataclasses import dataclass

import numpy as np

from .. import _kernels
from . import _format

__all__ = ["WriteAheadLog", "SYNC_POLICIES"]

log = logging.getLogger("wedmetrics.wal")

SYNC_POLICIES = ("none", "interval")
_SEGMENT = re.compile(r"seg-(\d{8})-(\d{8})\.wal\Z")
_SERIES = re.compile(r"series-(\d{8})\.log\Z")


@dataclass
class _Segment:
    gen: int
    seq: int
    path: str
    max_ts: float = -math.inf      # newest point; -inf while unknown or empty


class WriteAheadLog:
    """The log of one engine (``MetricsEngine(durability="wal", wal_dir=...)``).

    Parameters
    ----------
    path : str or os.PathLike
        Directory of the log (created if missing); one live engine at a time.
    sync : {"none", "interval"}
        ``"none"``: points go to the page cache through the mapping, which a
        ``kill -9`` of the process does not lose (an operating-system crash
        or power cut may).  ``"interval"``: also ``msync``/``fsync`` every
        ``sync_interval`` seconds from the flusher thread, bounding what a
        machine crash loses to that interval.  ``MetricsEngine.sync_wal()``
        forces one at any time (call it before acknowledging to a client).
    sync_interval : float
        Seconds between syncs under ``"interval"``.
    segment_bytes : int
        Size of each mapped segment file (a multiple of the page size is best).
    """

    def __init__(self, path, *, sync: str = "none", sync_interval: float = 1.0,
                 segment_bytes: int = 64 << 20) -> None:
        import fcntl

        if sync not in SYNC_POLICIES:
            raise ValueError(f"wal sync must be one of {SYNC_POLICIES}, got {sync!r}")
        if not sync_interval > 0:
            raise ValueError(f"wal sync_interval must be > 0, got {sync_interval!r}")
        segment_bytes = int(segment_bytes)
        if segment_bytes < _format.HEADER + _format.RECORD:
            raise ValueError(f"wal segment_bytes must be >= {_format.HEADER + _format.RECORD}, "
                             f"got {segment_bytes}")
        self.path = os.fspath(path)
        self.sync = sync
        self.sync_interval = float(sync_interval)
        self.segment_bytes = segment_bytes
        os.makedirs(self.path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise RuntimeError(f"write-ahead log {self.path!r} is held by another live engine "
                               "(one engine per log directory)") from None
        self.writer_id = self._read_meta()
        self._sealed: list[_Segment] = []
        self._gen = 0
        self._seq = 0
        self._active: _Segment | None = None
        self._map: mmap.mmap | None = None
        self._series_fd: int | None = None
        self._core = None
        self._lock = threading.Lock()      # segments: rolled by recorders, cut by the flusher
        self.report = {"segments": 0, "records": 0, "replayed": 0, "already_stored": 0,
                       "torn_segments": 0, "torn_series_lines": 0, "unknown_series": 0,
                       "truncated_segments": 0}

    # -- meta -----------------------------------------------------------------
    def _read_meta(self) -> int | None:
        try:
            with open(os.path.join(self.path, "meta.json"), encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"write-ahead log {self.path!r}: unreadable meta.json ({exc})") \
                from None
        wid = meta.get("writer_id") if isinstance(meta, dict) else None
        if meta.get("format") != 1 or not isinstance(wid, int) or isinstance(wid, bool) \
                or not 0 <= wid < 2 ** 63:
            raise ValueError(f"write-ahead log {self.path!r}: bad meta.json {meta!r:.200}")
        return wid

    def claim(self, writer_id: int) -> None:
        """Remember ``writer_id`` as this log's storage writer (first start only)."""
        if self.writer_id is not None:
            return
        tmp = os.path.join(self.path, "meta.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "writer_id": int(writer_id)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.path, "meta.json"))
        self._fsync_dir()
        self.writer_id = int(writer_id)

    # -- reading what earlier engines left --------------------------------------
    def _files(self):
        segs, series = [], {}
        for name in os.listdir(self.path):
            m = _SEGMENT.match(name)
            if m:
                segs.append(_Segment(int(m[1]), int(m[2]), os.path.join(self.path, name)))
            m = _SERIES.match(name)
            if m:
                series[int(m[1])] = os.path.join(self.path, name)
        segs.sort(key=lambda s: (s.gen, s.seq))
        return segs, series

    def _read_series(self, path: str) -> dict[int, tuple]:
        out: dict[int, tuple] = {}
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for line in lines:
            key = _parse_series_line(line)
            if key is None:
                self.report["torn_series_lines"] += 1
                break          # a torn tail; nothing after it was acknowledged
            out[key[0]] = key[1:]
        return out

    def recorded(self):
        """Yield ``(series key tuples by id, records)`` of each old segment in order:
        ``records`` is a structured array (sid, check, ts, value) of its valid records.
        Torn tails are counted in :attr:`report` and left out."""
        segs, series = self._files()
        known: dict[int, dict] = {}
        for seg in segs:
            if seg.gen not in known:
                p = series.get(seg.gen)
                known[seg.gen] = self._read_series(p) if p else {}
            recs = self._read_segment(seg)
            self._sealed.append(seg)
            self._gen = max(self._gen, seg.gen)
            if recs is not None and len(recs):
                seg.max_ts = float(recs["ts"].max())
                yield known[seg.gen], recs
        self._gen = max([self._gen, *series])

    def _read_segment(self, seg: _Segment):
        with open(seg.path, "rb") as f:
            data = f.read()
        self.report["segments"] += 1
        head = data[:_format.HEADER]
        if not any(head):
            return None        # killed before its header was written: never held a point
        salt, _writer, _seq = _format.decode_header(head)      # ValueError: hostile bytes
        body = memoryview(data)[_format.HEADER:]
        whole = len(body) - len(body) % _format.RECORD
        n, torn = _kernels.wal_scan(body[:whole], salt)
        if torn or any(body[whole:]):
            self.report["torn_segments"] += 1
            log.warning("wedmetrics wal: %s: torn or corrupted tail after %d records, ignored",
                        seg.path, n)
        self.report["records"] += n
        return np.frombuffer(body, dtype=_format.RECORD_DTYPE, count=n)

    # -- writing ----------------------------------------------------------------
    def start(self, core, handles) -> None:
        """Begin a new generation: its series log lists ``handles``, and ``core``
        logs every accepted point from now on."""
        self._gen += 1
        self._core = core
        path = os.path.join(self.path, f"series-{self._gen:08d}.log")
        self._series_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                                  0o644)
        lines = b"".join(_series_line(h.id, h.name, h.labels, h.kind) for h in handles)
        if lines:
            os.write(self._series_fd, lines)
        os.fsync(self._series_fd)
        core.on_wal_full = self._roll
        self._roll()
        self._fsync_dir()

    def log_series(self, sid: int, name: str, labels: dict, kind: str) -> None:
        """Record a new series before any of its points can be logged."""
        if self._series_fd is not None:
            os.write(self._series_fd, _series_line(sid, name, labels, kind))

    def _roll(self) -> None:
        """Seal the active segment (if any) and map a fresh one into the core."""
        with self._lock:
            self._roll_locked()

    def _roll_locked(self) -> None:
        if self._active is not None:
            _, self._active.max_ts = self._core.wal_state()
            self._core.set_wal(None)
            if self.sync != "none":
                self._map.flush()
            self._map.close()
            self._sealed.append(self._active)
        self._seq += 1
        path = os.path.join(self.path, f"seg-{self._gen:08d}-{self._seq:08d}.wal")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, self.segment_bytes)
            self._map = mmap.mmap(fd, self.segment_bytes)
        finally:
            os.close(fd)
        salt = secrets.randbits(32)
        self._map[:_format.HEADER] = _format.encode_header(salt, self.writer_id or 0, self._seq)
        self._active = _Segment(self._gen, self._seq, path)
        self._core.set_wal(self._map, _format.HEADER, salt)

    def sync_now(self) -> None:
        """Write the active segment and the series log to disk (msync + fsync)."""
        with self._lock:
            if self._map is not None:
                self._map.flush()
            if self._series_fd is not None:
                os.fsync(self._series_fd)

    def truncate(self, durable_until: float, width: float) -> int:
        """Delete sealed segments whose every point's ``width`` bucket ends at or
        before ``durable_until`` (the store holds them); returns how many."""
        with self._lock:
            return self._truncate_locked(durable_until, width)

    def _truncate_locked(self, durable_until: float, width: float) -> int:
        keep, gone = [], 0
        for seg in self._sealed:
            end = (math.floor(seg.max_ts / width) + 1) * width if seg.max_ts > -math.inf \
                else -math.inf
            if end <= durable_until:
                _unlink(seg.path)
                gone += 1
            else:
                keep.append(seg)
        self._sealed = keep
        if gone:
            self.report["truncated_segments"] += gone
            self._drop_unused_series_logs()
        return gone

    def _drop_unused_series_logs(self) -> None:
        live = {s.gen for s in self._sealed} | {self._gen}
        for gen, path in self._files()[1].items():
            if gen not in live:
                _unlink(path)

    def close(self, *, everything_stored: bool) -> None:
        """Stop logging; with ``everything_stored`` the log is emptied (a clean stop)."""
        with self._lock:
            self._close_locked(everything_stored)

    def _close_locked(self, everything_stored: bool) -> None:
        if self._core is not None:
            self._core.set_wal(None)
            self._core.on_wal_full = None
        if self._map is not None:
            self._map.flush()
            self._map.close()
            self._map = None
        if self._series_fd is not None:
            os.fsync(self._series_fd)
            os.close(self._series_fd)
            self._series_fd = None
        if everything_stored:
            segs, series = self._files()
            for seg in segs:
                _unlink(seg.path)
            for path in series.values():
                _unlink(path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)      # releases the flock
            self._lock_fd = None

    def _fsync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<WriteAheadLog {self.path!r} sync={self.sync} gen={self._gen}>"


def _series_line(sid: int, name: str, labels: dict, kind: str) -> bytes:
    body = json.dumps([int(sid), name, sorted(labels.items()), kind], ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8", "surrogatepass")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _parse_series_line(line: bytes):
    """``(id, name, labels dict, kind)``, or ``None`` for a torn or corrupted line."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        sid, name, labels, kind = json.loads(body.decode("utf-8", "surrogatepass"))
        labels = {str(k): str(v) for k, v in labels}
    except (ValueError, TypeError):
        return None
    if not isinstance(sid, int) or not isinstance(name, str) or not isinstance(kind, str):
        return None
    return sid, name, labels, kind


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
