"""The sketch wire format: versioned, bounds-checked, no pickle.

Layout (all integers little-endian)::

    b"WMSK"  u8 version=1
    f64 base_alpha   u32 max_bins   u8 collapses
    u64 count  f64 sum  f64 min  f64 max
    body

``body`` is also what the compiled core keeps for each closed bucket, so
that an idle bucket costs a few bytes instead of a dense array::

    varint zero_count
    store(negative) store(positive)
    store := varint n_bins, then n_bins x (varint key_step, varint count)

The first ``key_step`` of a store is the zig-zag encoded key itself; later
ones are the (positive) distance to the previous key, so keys are strictly
increasing by construction.  Decoding checks every length, rejects counts
of zero, trailing bytes and totals that disagree with the header, and
raises ``ValueError`` on anything it does not accept.
"""
from __future__ import annotations

import math
import struct

MAGIC = b"WMSK"
VERSION = 1
_HEADER = struct.Struct("<4sBdIBQddd")
HEADER_SIZE = _HEADER.size

#: Largest accepted bins bound and collapse level: far beyond any real use,
#: small enough that hostile headers cannot ask for absurd allocations.
MAX_BINS_LIMIT = 1 << 20
MAX_COLLAPSES = 40
#: Smallest accepted alpha: below it keys of finite doubles (|key| up to
#: 709 / log(gamma)) would outgrow KEY_LIMIT and a sketch could not round-trip.
MIN_ALPHA = 1e-6
#: Keys of finite doubles at the smallest alpha we accept stay far below this.
KEY_LIMIT = 1 << 40


def zigzag(n: int) -> int:
    return (n << 1) if n >= 0 else ((-n << 1) - 1)


def unzigzag(z: int) -> int:
    return (z >> 1) if not (z & 1) else -((z + 1) >> 1)


def put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    for _ in range(10):
        if pos >= end:
            raise ValueError("sketch bytes end inside a varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            if result >= 1 << 64:
                raise ValueError("sketch varint overflows 64 bits")
            return result, pos
        shift += 7
    raise ValueError("sketch varint longer than 10 bytes")


def encode_store(out: bytearray, keys: list[int], counts: list[int]) -> None:
    put_varint(out, len(keys))
    prev = None
    for k, c in zip(keys, counts):
        put_varint(out, zigzag(k) if prev is None else k - prev)
        put_varint(out, c)
        prev = k


def decode_store(buf: bytes, pos: int, limit: int) -> tuple[list[int], list[int], int]:
    n, pos = get_varint(buf, pos)
    if n > limit:
        raise ValueError(f"sketch store claims {n} bins, more than its bound {limit}")
    keys: list[int] = []
    counts: list[int] = []
    prev = None
    for _ in range(n):
        step, pos = get_varint(buf, pos)
        c, pos = get_varint(buf, pos)
        if prev is None:
            k = unzigzag(step)
        else:
            if step == 0:
                raise ValueError("sketch keys must be strictly increasing")
            k = prev + step
        if abs(k) > KEY_LIMIT:
            raise ValueError(f"sketch key {k} out of range")
        if c == 0:
            raise ValueError("sketch bin with a zero count")
        keys.append(k)
        counts.append(c)
        prev = k
    return keys, counts, pos


def encode_body(zero: int, neg: tuple[list[int], list[int]],
                pos: tuple[list[int], list[int]]) -> bytes:
    out = bytearray()
    put_varint(out, zero)
    encode_store(out, *neg)
    encode_store(out, *pos)
    return bytes(out)


def decode_body(buf: bytes, start: int, max_bins: int):
    """Return ``(zero, neg_keys, neg_counts, pos_keys, pos_counts, end)``."""
    zero, p = get_varint(buf, start)
    nk, nc, p = decode_store(buf, p, max_bins)
    pk, pc, p = decode_store(buf, p, max_bins)
    return zero, nk, nc, pk, pc, p


def encode_header(base_alpha: float, max_bins: int, collapses: int, count: int,
                  total: float, lo: float, hi: float) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, base_alpha, max_bins, collapses, count, total, lo, hi)


def decode_header(buf: bytes):
    """Validate and unpack the fixed header; return its fields."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"sketch bytes must be bytes-like, got {type(buf).__name__}")
    if len(buf) < HEADER_SIZE:
        raise ValueError(f"sketch bytes too short: {len(buf)} < {HEADER_SIZE}")
    magic, version, alpha, max_bins, collapses, count, total, lo, hi = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ValueError("not a wedmetrics sketch (bad magic)")
    if version != VERSION:
        raise ValueError(f"unsupported sketch format version {version}")
    if not (0.0 < alpha < 1.0) or alpha != alpha:
        raise ValueError(f"sketch alpha {alpha!r} out of (0, 1)")
    if not (16 <= max_bins <= MAX_BINS_LIMIT):
        raise ValueError(f"sketch max_bins {max_bins} out of [16, {MAX_BINS_LIMIT}]")
    if collapses > MAX_COLLAPSES:
        raise ValueError(f"sketch collapse level {collapses} out of range")
    if count:
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError("sketch min/max are not finite and ordered")
        if math.isnan(total):
            raise ValueError("sketch sum is NaN")
    return alpha, max_bins, collapses, count, total, lo, hi
