"""The write-ahead log's on-disk format: the spec, and the pure-Python twin of csrc/wal.h.

A segment file is a 64-byte header and then 24-byte records, little-endian::

    header: magic b"WMWAL\\x00\\x00\\x01" | u32 version | u32 salt | u64 writer id
            | u64 sequence | 28 reserved zero bytes | u32 header check
    record: u32 series id | u32 check | f64 timestamp | f64 value

``check`` mixes the segment's random salt with the record's words
(:func:`record_check`) and is never 0, so the zero-filled unused end of a
segment, a record torn by a kill in the middle of its stores, and a record
left over from another segment all fail it.  The first record that fails
ends the segment: :func:`scan` says where, and whether non-zero bytes
follow (a torn or corrupted tail, counted when the log is replayed).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["MAGIC", "VERSION", "HEADER", "RECORD", "record_check", "scan", "encode_header",
           "decode_header", "SegmentWriter", "RECORD_DTYPE"]

MAGIC = b"WMWAL\x00\x00\x01"
VERSION = 1
HEADER = 64
RECORD = 24
WAL_FULL = -4           # the core's answer when a segment has no room left (wal.h)
_M64 = (1 << 64) - 1
_HEAD = struct.Struct("<8sIIQQ28x")
_REC = struct.Struct("<IIdd")
_BITS = struct.Struct("<QQ")
RECORD_DTYPE = np.dtype([("sid", "<u4"), ("check", "<u4"), ("ts", "<f8"), ("value", "<f8")])


def record_check(salt: int, sid: int, ts: float, value: float) -> int:
    """The check word of one record (``wm_wal_check``)."""
    tbits, vbits = _BITS.unpack(struct.pack("<dd", ts, value))
    h = (((salt << 32) | sid) * 0x9E3779B97F4A7C15) & _M64
    h ^= tbits
    h = (h * 0xBF58476D1CE4E5B9) & _M64
    h ^= h >> 31
    h ^= vbits
    h = (h * 0x94D049BB133111EB) & _M64
    h ^= h >> 29
    return (h >> 32) or 1


def _checks(salt: int, recs: np.ndarray) -> np.ndarray:
    """record_check of every record, vectorized (uint64 arithmetic wraps as C's)."""
    with np.errstate(over="ignore"):
        h = ((np.uint64(salt) << np.uint64(32)) | recs["sid"].astype(np.uint64)) \
            * np.uint64(0x9E3779B97F4A7C15)
        h ^= recs["ts"].view(np.uint64)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
        h ^= recs["value"].view(np.uint64)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    c = (h >> np.uint64(32)).astype(np.uint32)
    c[c == 0] = 1
    return c


def scan(data, salt: int) -> tuple[int, bool]:
    """``(valid records, torn)`` of ``data``, the bytes after a segment header."""
    if not 0 <= salt < 2 ** 32:
        raise ValueError(f"salt must be a u32, got {salt!r}")
    buf = memoryview(data).cast("B")
    n = len(buf) // RECORD
    recs = np.frombuffer(buf, dtype=RECORD_DTYPE, count=n)
    bad = np.flatnonzero(_checks(salt, recs) != recs["check"])
    valid = int(bad[0]) if len(bad) else n
    rest = np.frombuffer(buf, dtype=np.uint8)[valid * RECORD:]
    return valid, bool(rest.any())


def encode_header(salt: int, writer_id: int, seq: int) -> bytes:
    head = _HEAD.pack(MAGIC, VERSION, salt, writer_id, seq)
    return head + struct.pack("<I", zlib.crc32(head))


def decode_header(data: bytes) -> tuple[int, int, int]:
    """``(salt, writer id, sequence)``; ``ValueError`` for anything but a good header."""
    if len(data) < HEADER:
        raise ValueError(f"write-ahead log header truncated ({len(data)} of {HEADER} bytes)")
    head, (check,) = data[:HEADER - 4], struct.unpack("<I", data[HEADER - 4:HEADER])
    if zlib.crc32(head) != check:
        raise ValueError("write-ahead log header fails its checksum")
    magic, version, salt, writer_id, seq = _HEAD.unpack(head)
    if magic != MAGIC:
        raise ValueError(f"not a wedmetrics write-ahead log segment (magic {magic!r})")
    if version != VERSION:
        raise ValueError(f"write-ahead log format version {version} is not supported "
                         f"(this wedmetrics reads version {VERSION})")
    return salt, writer_id, seq


class SegmentWriter:
    """Appends records into a mapped segment: the pure twin of ``wm_wal_append``."""

    __slots__ = ("buf", "cap", "pos", "salt", "max_ts")

    def __init__(self, buffer, pos: int, salt: int) -> None:
        self.buf = memoryview(buffer).cast("B")
        if self.buf.readonly:
            raise TypeError("the segment buffer must be writable")
        self.cap = len(self.buf)
        if not 0 <= pos <= self.cap or not self.cap:
            raise ValueError(f"pos {pos} outside the segment of {self.cap} bytes")
        self.pos = int(pos)
        self.salt = int(salt) & 0xFFFFFFFF
        self.max_ts = float("-inf")

    def append(self, sid: int, ts: float, value: float) -> bool:
        """Write one record; ``False`` (nothing written) when the segment is full."""
        p = self.pos
        if p + RECORD > self.cap:
            return False
        sid &= 0xFFFFFFFF
        # the check last, as the C writer: valid only once all of it is there
        self.buf[p + 8:p + 24] = struct.pack("<dd", ts, value)
        self.buf[p:p + 4] = struct.pack("<I", sid)
        self.buf[p + 4:p + 8] = struct.pack("<I", record_check(self.salt, sid, ts, value))
        self.pos = p + RECORD
        if ts > self.max_ts:
            self.max_ts = ts
        return True

    def release(self) -> None:
        self.buf.release()
