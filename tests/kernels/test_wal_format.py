"""The write-ahead log format: compiled writer and scanner against the pure twin, hostile bytes."""
from __future__ import annotations

import mmap
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wedmetrics.wal import _format

from .conftest import REFERENCE, compiled_impl

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADER = _format.HEADER
RECORD = _format.RECORD

points = st.lists(st.tuples(st.integers(0, 3),
                            st.floats(-1e6, 1e6) | st.sampled_from([float("nan"), float("inf")]),
                            st.floats(0.0, 50.0) | st.sampled_from([float("nan"), 1e300])),
                  max_size=60)


def _logged(impl, pts, salt, size):
    core = impl.Core([1.0, 60.0], [120, 10], 5.0, 0.01, 2048)
    for _ in range(4):
        core.add_series(0)
    segments = []

    def roll():
        segments.append(mmap.mmap(-1, size))
        core.set_wal(segments[-1], HEADER, salt + len(segments))
    core.on_wal_full = roll
    roll()
    codes = [core.record(sid, v, 1000.0 + t) for sid, v, t in pts]
    state = core.wal_state()
    core.set_wal(None)
    return codes, [bytes(m) for m in segments], state


@SETTINGS
@given(points, st.integers(0, 2 ** 32 - 5), st.sampled_from([HEADER + RECORD, HEADER + 5 * RECORD,
                                                            HEADER + 7 * RECORD + 3, 4096]))
def test_compiled_and_pure_write_the_same_bytes(pts, salt, size):
    ref = _logged(REFERENCE, pts, salt, size)
    comp = _logged(compiled_impl(), pts, salt, size)
    assert ref == comp
    codes, segments, _ = ref
    accepted = [p for p, c in zip(pts, codes) if c == 0]
    # every accepted point is in the log, in order, and nothing else
    got = []
    for i, seg in enumerate(segments):
        s = salt + i + 1
        n, torn = _format.scan(seg[HEADER:len(seg) - (len(seg) - HEADER) % RECORD], s)
        assert not torn
        recs = np.frombuffer(seg, dtype=_format.RECORD_DTYPE, count=n, offset=HEADER)
        got += [(int(r["sid"]), float(r["value"]), float(r["ts"]) - 1000.0) for r in recs]
    assert got == [(sid, v, t) for sid, v, t in
                   [(a, b, float(np.float64(1000.0 + c) - 1000.0)) for a, b, c in accepted]]


def _records(rows, salt):
    out = bytearray()
    for sid, ts, v in rows:
        out += struct.pack("<IIdd", sid, _format.record_check(salt, sid, ts, v), ts, v)
    return out


rows = st.lists(st.tuples(st.integers(0, 2 ** 32 - 1), st.floats(allow_nan=False),
                          st.floats(allow_nan=False)), max_size=20)


@SETTINGS
@given(rows, st.integers(0, 2 ** 32 - 1), st.data())
def test_scans_agree_and_stop_at_the_first_bad_record(recs, salt, data):
    buf = _records(recs, salt)
    compiled = compiled_impl()
    import wedmetrics._kernels._core as _c
    assert compiled is not None
    assert _c.wal_scan(bytes(buf), salt) == _format.scan(bytes(buf), salt) == (len(recs), False)
    # a zero-filled unused end is not a tear
    clean = bytes(buf) + bytes(data.draw(st.integers(0, 3)) * RECORD)
    assert _c.wal_scan(clean, salt) == _format.scan(clean, salt) == (len(recs), False)
    if not recs:
        return
    # one flipped bit, a tail torn mid-record, or garbage: the scan stops right there
    at = data.draw(st.integers(0, len(buf) - 1))
    bit = data.draw(st.integers(0, 7))
    hurt = bytearray(buf)
    hurt[at] ^= 1 << bit
    expected = at // RECORD
    for blob in (bytes(hurt), bytes(buf[:at]) + bytes(len(buf) - at)):
        a, b = _c.wal_scan(blob, salt), _format.scan(blob, salt)
        assert a == b
        if blob == bytes(hurt):
            assert a == (expected, True)
    garbage = bytes(buf) + bytes(data.draw(st.binary(min_size=RECORD, max_size=3 * RECORD)))
    assert _c.wal_scan(garbage[:len(garbage) // RECORD * RECORD], salt) == \
        _format.scan(garbage[:len(garbage) // RECORD * RECORD], salt)
    # another segment's salt validates nothing
    if salt != 7:
        assert _format.scan(bytes(buf), 7)[0] < len(recs) or not recs


@SETTINGS
@given(st.binary(max_size=2 * HEADER))
def test_hostile_headers_raise_value_error(blob):
    try:
        salt, writer, seq = _format.decode_header(blob)
    except ValueError:
        return
    assert _format.encode_header(salt, writer, seq) == blob[:HEADER]


def test_a_good_header_round_trips_and_a_flipped_bit_is_refused():
    head = _format.encode_header(123, 2 ** 63 - 1, 9)
    assert len(head) == HEADER and _format.decode_header(head) == (123, 2 ** 63 - 1, 9)
    for i in range(HEADER):
        bad = bytearray(head)
        bad[i] ^= 0x10
        with pytest.raises(ValueError):
            _format.decode_header(bytes(bad))
    with pytest.raises(ValueError, match="truncated"):
        _format.decode_header(head[:10])


@pytest.mark.parametrize("which", ["reference", "compiled"])
def test_set_wal_refuses_what_it_cannot_write_into(which):
    impl = REFERENCE if which == "reference" else compiled_impl()
    core = impl.Core([1.0], [10], 0.0, 0.01, 2048)
    with pytest.raises((TypeError, ValueError, BufferError)):
        core.set_wal(b"read-only bytes", 0, 1)
    with pytest.raises(ValueError):
        core.set_wal(bytearray(100), 101, 1)
    core.add_series(0)
    core.set_wal(bytearray(HEADER + RECORD), HEADER, 1)
    assert core.record(0, 1.0, 5.0) == 0
    with pytest.raises(RuntimeError, match="on_wal_full"):
        core.record(0, 1.0, 5.0)                   # full and nobody rolls it
    assert core.outcomes[0] == 1                   # the refused point was not accepted
