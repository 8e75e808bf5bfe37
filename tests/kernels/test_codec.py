"""Hostile sketch bytes: ValueError from both implementations, never a crash."""
from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wedmetrics._kernels import _codec

from .conftest import REFERENCE

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def header(alpha=0.01, max_bins=2048, collapses=0, count=0, total=0.0, lo=math.inf,
           hi=-math.inf, magic=b"WMSK", version=1) -> bytes:
    return struct.pack("<4sBdIBQddd", magic, version, alpha, max_bins, collapses, count,
                       total, lo, hi)


def varint(n: int) -> bytes:
    out = bytearray()
    _codec.put_varint(out, n)
    return bytes(out)


def body(zero=0, neg=(), pos=()) -> bytes:
    """Raw body from (step, count) pairs, steps as written (first one zig-zagged)."""
    out = varint(zero)
    for store in (neg, pos):
        out += varint(len(store))
        for step, c in store:
            out += varint(step) + varint(c)
    return out


def sample(impl):
    s = impl.Sketch(0.02, 64)
    for v in (0.0, 1.0, 2.5, -3.0, 1e-9, 7e12, -0.5, 1e-320, 42.0, 42.0):
        s.add(v)
    return s


def decode_outcome(cls, data):
    """``("ok", canonical bytes)`` or ``("ValueError",)``; anything else propagates."""
    try:
        s = cls.from_bytes(data)
    except ValueError:
        return ("ValueError",)
    return ("ok", s.to_bytes())


@SETTINGS
@given(data=st.binary(max_size=200))
def test_random_bytes(impl, data):
    with pytest.raises(ValueError):
        impl.Sketch.from_bytes(data)


@SETTINGS
@given(tail=st.binary(max_size=60), alpha=st.floats(0.001, 0.5),
       max_bins=st.integers(16, 4096), collapses=st.integers(0, 40),
       count=st.integers(0, 3))
def test_valid_header_random_body(impl, compiled, tail, alpha, max_bins, collapses, count):
    data = header(alpha, max_bins, collapses, count, 1.0, -1.0, 1.0) + tail
    a = decode_outcome(REFERENCE.Sketch, data)
    b = decode_outcome(compiled.Sketch, data)
    assert a == b
    if a[0] == "ok":   # whatever decodes must answer queries without trouble
        s = impl.Sketch.from_bytes(data)
        for q in (0.0, 0.3, 0.5, 0.99, 1.0):
            s.quantile(q)
        assert s.count == count


def test_every_truncation_is_refused(impl):
    data = sample(impl).to_bytes()
    impl.Sketch.from_bytes(data)
    for n in range(len(data)):
        with pytest.raises(ValueError):
            impl.Sketch.from_bytes(data[:n])


def test_every_bit_flip_is_refused_or_decodes_alike(compiled):
    data = sample(REFERENCE).to_bytes()
    assert data == sample(compiled).to_bytes()
    accepted = 0
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            flipped = bytes(flipped)
            a = decode_outcome(REFERENCE.Sketch, flipped)
            assert a == decode_outcome(compiled.Sketch, flipped), (i, bit)
            if a[0] == "ok":
                accepted += 1
                for cls in (REFERENCE.Sketch, compiled.Sketch):
                    cls.from_bytes(flipped).quantile(0.5)
    # flips of sum/min/max bits or of some keys still make well-formed sketches
    assert 0 < accepted < len(data) * 8


@pytest.mark.parametrize("data, why", [
    (header(magic=b"WMSX") + body(), "magic"),
    (header(version=2) + body(), "version"),
    (header(alpha=0.0) + body(), "alpha"),
    (header(alpha=1.0) + body(), "alpha"),
    (header(alpha=math.nan) + body(), "alpha"),
    (header(alpha=1e-9) + body(), "alpha below the accepted minimum"),
    (header(max_bins=15) + body(), "max_bins"),
    (header(max_bins=(1 << 20) + 1) + body(), "max_bins"),
    (header(collapses=41) + body(), "collapses"),
    (header(count=1, total=1.0, lo=math.nan, hi=1.0) + body(zero=1), "min nan"),
    (header(count=1, total=1.0, lo=2.0, hi=1.0) + body(zero=1), "min > max"),
    (header(count=1, total=math.nan, lo=1.0, hi=1.0) + body(zero=1), "sum nan"),
    (header(count=1, total=1.0, lo=-math.inf, hi=1.0) + body(zero=1), "min inf"),
    (header(count=2, total=1.0, lo=0.0, hi=1.0) + body(zero=1), "counts disagree"),
    (header(count=(1 << 64) - 1, total=1.0, lo=0.0, hi=1.0)
     + body(pos=[(2, (1 << 64) - 1), (1, 5)]), "counts overflow"),
    (header() + body() + b"\x00", "trailing byte"),
    (header(count=1, total=1.0, lo=1.0, hi=1.0) + body(pos=[(2, 0)]), "zero count bin"),
    (header(count=2, total=1.0, lo=1.0, hi=1.0) + body(pos=[(2, 1), (0, 1)]), "repeated key"),
    (header(count=1, total=1.0, lo=1.0, hi=1.0) + body(pos=[((1 << 41) * 2, 1)]), "key range"),
    (header(count=2, total=1.0, lo=1.0, hi=1.0) + body(pos=[(0, 1), (1 << 41, 1)]),
     "key range after step"),
    (header(max_bins=16) + varint(0) + varint(17) + b"", "more bins than max_bins"),
    (header(max_bins=16) + varint(0) + varint(1 << 60), "absurd bin count"),
    (header(count=2, total=1.0, lo=1.0, hi=1.0, max_bins=16)
     + body(pos=[(0, 1), (16, 1)]), "span beyond max_bins"),
    (header(count=2, total=1.0, lo=-1.0, hi=1.0, max_bins=16)
     + body(neg=[(0, 1)], pos=[(0, 1)]) , "fine: spans 1 + 1"),
    (header(count=2, total=1.0, lo=-1.0, hi=1.0, max_bins=16)
     + body(neg=[(0, 1)], pos=[(0, 1), (15, 1)])[:-2], "truncated"),
    (header(count=3, total=1.0, lo=-1.0, hi=1.0, max_bins=16)
     + body(neg=[(0, 1), (8, 1)], pos=[(0, 1), (8, 1)])[:-2] + varint(1), "garbled"),
    (header(count=4, total=1.0, lo=-1.0, hi=1.0, max_bins=16)
     + body(neg=[(0, 1), (8, 1)], pos=[(0, 1), (8, 1)]), "combined span 18 > 16"),
    (header() + b"\xff" * 11, "varint longer than 10 bytes"),
    (header() + b"\xff" * 9 + b"\x02" + varint(0) + varint(0), "varint overflows 64 bits"),
    (b"", "empty"),
    (header()[:-1], "short header"),
])
def test_malformed_inputs(impl, data, why):
    if why.startswith("fine"):
        assert impl.Sketch.from_bytes(data).count == 2
        return
    with pytest.raises(ValueError):
        impl.Sketch.from_bytes(data)


def test_non_bytes_inputs(impl):
    with pytest.raises(TypeError):
        impl.Sketch.from_bytes("WMSK")
    with pytest.raises(ValueError):        # bytes(7) is seven zero bytes
        impl.Sketch.from_bytes(7)
    data = sample(impl).to_bytes()
    assert impl.Sketch.from_bytes(memoryview(data)) == impl.Sketch.from_bytes(bytearray(data))


def test_huge_collapse_level_answers_sanely(impl):
    # a legal header may claim 40 collapses: gamma^(2^40) overflows a double
    data = header(alpha=0.5, collapses=40, count=4, total=1.0, lo=-5.0, hi=5.0) + \
        body(neg=[(zz(1), 1)], pos=[(zz(1), 1), (1, 2)])
    s = impl.Sketch.from_bytes(data)
    assert s.alpha == 1.0
    # representatives at the limit: -2, 2, then +inf clamped to max
    assert [s.quantile(q) for q in (0.0, 0.3, 0.5, 0.9, 1.0)] == [-5.0, -2.0, 2.0, 5.0, 5.0]


def zz(k: int) -> int:
    return _codec.zigzag(k)
