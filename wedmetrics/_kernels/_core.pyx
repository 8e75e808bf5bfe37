# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled core: Cython bindings of ``csrc/sketch.c`` and ``csrc/core.c``.

Same public API and results as :mod:`._sketch_ref` and :mod:`._core_ref`
(the hypothesis tests in ``tests/kernels`` check them against each other).
The C code never raises: it returns codes, and this module turns them into
exceptions.  The GIL is held by every call into the core, which is what
makes concurrent recording into one series lose nothing.
"""
import math
import threading

import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Next, PyDict_Size
from cpython.exc cimport PyErr_Occurred
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.object cimport Py_EQ, PyObject, PyObject_Hash, PyObject_RichCompareBool
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from libc.math cimport floor, isfinite, NAN
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

cdef extern from "Python.h":
    ctypedef size_t Py_uhash_t

from .. import errors
from . import _codec, _core_ref, _points

# tables of the key mapping, filled while the import is still single-threaded
wm_sketch_global_init()

cdef int _OK = 0
cdef int _LATE = 1
cdef int _BAD_VALUE = 2
cdef int _BAD_TS = 3
cdef int _UNKNOWN = 4
cdef int _NEG = 5
cdef int _CLOSED = 6
cdef int64_t _IDX_CLAMP = (<int64_t>1) << 62


cdef inline int64_t _clamp_idx(object i) except? -1:
    # indices past +-2^62 select nothing more than +-2^62 does
    if i > _IDX_CLAMP:
        return _IDX_CLAMP
    if i < -_IDX_CLAMP:
        return -_IDX_CLAMP
    return i


cdef Py_ssize_t _quantiles_into(const wm_sketch *s, qs, double *out, Py_ssize_t room) except -1:
    """Checks the quantiles ``qs`` and writes those of ``s`` into ``out``
    (which holds ``room``); returns how many."""
    cdef double buf[WM_MAX_QUANTILES]
    cdef Py_ssize_t i, n = len(qs), done = 0, m
    if n > room:               # a sequence that grew since it was measured
        raise ValueError("the quantiles changed while they were read")
    while done < n:            # WM_MAX_QUANTILES at a time
        m = min(n - done, WM_MAX_QUANTILES)
        for i in range(m):
            buf[i] = float(qs[done + i])
            if not (0.0 <= buf[i] <= 1.0):
                raise ValueError(f"quantile must be in [0, 1], got {buf[i]!r}")
        wm_sketch_quantiles(s, <int>m, buf, out + done)
        done += m
    return n


cdef Sketch _adopt(wm_sketch *src):
    """Wrap a C sketch, taking over its buffers (``src`` must not be freed)."""
    cdef Sketch out = Sketch.__new__(Sketch)
    wm_sketch_free(&out.s)
    out.s = src[0]
    out.s.acct = NULL
    return out


cdef class Sketch:
    """Mergeable relative-error quantile sketch (compiled twin of ``_sketch_ref.Sketch``).

    Parameters
    ----------
    alpha : float
        Relative accuracy guaranteed while the bins fit ``max_bins``.
    max_bins : int
        Bound on the key span of the sketch; beyond it the sketch collapses
        uniformly and reports the degraded ``alpha``.

    Examples
    --------
    >>> s = Sketch(0.01)
    >>> for v in range(1, 101):
    ...     _ = s.add(float(v))
    >>> abs(s.quantile(0.5) - 50) <= 0.01 * 50
    True
    """

    def __cinit__(self, *args, **kwargs):
        wm_sketch_init(&self.s, 0.01, 2048, NULL)

    def __init__(self, alpha=0.01, max_bins=2048):
        alpha = float(alpha)
        if not (0.0 < alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if alpha < _codec.MIN_ALPHA:
            raise ValueError(f"alpha must be >= {_codec.MIN_ALPHA}, got {alpha!r}")
        max_bins = int(max_bins)
        if not (16 <= max_bins <= _codec.MAX_BINS_LIMIT):
            raise ValueError(f"max_bins must be in [16, {_codec.MAX_BINS_LIMIT}], got {max_bins}")
        wm_sketch_free(&self.s)
        wm_sketch_init(&self.s, alpha, max_bins, NULL)

    def __dealloc__(self):
        wm_sketch_free(&self.s)

    # -- state ----------------------------------------------------------
    @property
    def base_alpha(self):
        """Relative accuracy asked for at construction."""
        return self.s.base_alpha

    @property
    def max_bins(self):
        """Bound on the key span."""
        return self.s.max_bins

    @property
    def collapses(self):
        """Uniform collapses so far (each squares gamma)."""
        return self.s.collapses

    @property
    def zero_count(self):
        """Values counted as zero (``|v|`` below the smallest normal double)."""
        return self.s.zero

    @property
    def count(self):
        """Number of values."""
        return self.s.count

    @property
    def sum(self):
        """Sum of the values."""
        return self.s.sum

    @property
    def min(self):
        """Smallest value (inf when empty)."""
        return self.s.min

    @property
    def max(self):
        """Largest value (-inf when empty)."""
        return self.s.max

    # -- building -----------------------------------------------------
    def add(self, value):
        """Add one finite value; returns ``self`` so calls chain."""
        cdef double v = value if type(value) is float else float(value)
        if not isfinite(v):
            raise ValueError(f"sketch values must be finite, got {v!r}")
        if wm_sketch_add(&self.s, v):
            raise MemoryError("sketch: out of memory")
        return self

    def add_many(self, values):
        """Add every value of a sequence or array (all must be finite)."""
        cdef const double[::1] arr
        cdef Py_ssize_t i, n
        if isinstance(values, np.ndarray):
            arr = np.ascontiguousarray(values, dtype=np.float64).ravel()
        else:
            arr = np.array([float(v) for v in values], dtype=np.float64)
        n = arr.shape[0]
        for i in range(n):
            if not isfinite(arr[i]):
                raise ValueError(f"sketch values must be finite, got {arr[i]!r}")
        for i in range(n):
            if wm_sketch_add(&self.s, arr[i]):
                raise MemoryError("sketch: out of memory")
        return self

    def merge(self, other):
        """Add ``other``'s content to this sketch (exact); returns ``self``."""
        if not isinstance(other, Sketch):
            raise TypeError(f"can only merge a Sketch, got {type(other).__name__}")
        cdef Sketch o = <Sketch>other
        if o.s.base_alpha != self.s.base_alpha:
            raise ValueError(f"cannot merge sketches of different alpha "
                             f"({self.s.base_alpha} vs {o.s.base_alpha})")
        if wm_sketch_merge(&self.s, &o.s):
            raise MemoryError("sketch: out of memory")
        return self

    def __iadd__(self, other):
        return self.merge(other)

    def copy(self):
        """An independent copy (through the codec, like the reference)."""
        return type(self).from_bytes(self.to_bytes())

    # -- reading ------------------------------------------------------
    @property
    def alpha(self):
        """Relative accuracy currently guaranteed (degrades with collapses)."""
        return wm_sketch_alpha(&self.s)

    @property
    def num_bins(self):
        """Number of non-empty bins."""
        return wm_sketch_num_bins(&self.s)

    @property
    def mean(self):
        """Mean of the values (NaN when empty)."""
        return self.s.sum / self.s.count if self.s.count else math.nan

    def quantile(self, q):
        """Estimate of the ``q`` quantile: the value of rank ``floor(q (n-1))``
        (numpy's ``method="lower"``) within relative error ``alpha``; NaN when empty."""
        cdef double qq = float(q)
        if not (0.0 <= qq <= 1.0):
            raise ValueError(f"quantile must be in [0, 1], got {qq!r}")
        return wm_sketch_quantile(&self.s, qq)

    def quantiles(self, qs):
        """``[quantile(q) for q in qs]``, in one walk over the bins."""
        qs = list(qs)
        out = np.empty(len(qs))
        cdef double[::1] o = out
        _quantiles_into(&self.s, qs, &o[0] if len(qs) else NULL, len(qs))
        return out.tolist()

    def bins(self):
        """``(neg_keys, neg_counts, pos_keys, pos_counts)``, keys ascending."""
        return (*_store_items(&self.s.neg), *_store_items(&self.s.pos))

    # -- bytes ----------------------------------------------------------
    def body_bytes(self):
        """The codec body (zero count and both stores) alone."""
        return _encode(&self.s, False)

    def to_bytes(self):
        """Serialize (see :mod:`wedmetrics._kernels._codec` for the format)."""
        return _encode(&self.s, True)

    @classmethod
    def from_bytes(cls, data):
        """Decode bytes from :meth:`to_bytes`; raises ``ValueError`` on bad input."""
        cdef bytes buf = data if isinstance(data, bytes) else bytes(data)
        cdef const char *err = NULL
        cdef wm_sketch tmp
        cdef int rc = wm_sketch_decode(&tmp, <const uint8_t *>PyBytes_AS_STRING(buf),
                                       len(buf), NULL, &err)
        if rc == WM_ENOMEM:
            raise MemoryError("sketch: out of memory")
        if rc:
            raise ValueError((<bytes>err).decode())
        cdef Sketch out = cls.__new__(cls)
        wm_sketch_free(&out.s)
        out.s = tmp
        return out

    def __eq__(self, other):
        if not isinstance(other, Sketch):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # mutable

    def __len__(self):
        return self.s.count

    def __repr__(self):
        return (f"Sketch(alpha={self.s.base_alpha}, count={self.s.count}, bins={self.num_bins}, "
                f"collapses={self.s.collapses})")

    def __reduce__(self):
        return (_sketch_from_bytes, (self.to_bytes(),))


def _sketch_from_bytes(data):
    return Sketch.from_bytes(data)


cdef tuple _store_items(const wm_store *st):
    cdef list keys = [], counts = []
    cdef int64_t k
    for k in range(st.lo, st.hi + 1):
        if st.c[k - st.off]:
            keys.append(k)
            counts.append(st.c[k - st.off])
    return keys, counts


cdef bytes _encode(const wm_sketch *s, bint header):
    cdef size_t bound = wm_sketch_body_bound(s)
    cdef uint8_t *tmp = <uint8_t *>malloc(bound + WM_HEADER_SIZE)
    cdef size_t n, head = WM_HEADER_SIZE if header else 0
    if tmp == NULL:
        raise MemoryError("sketch: out of memory")
    try:
        if header:
            wm_header_encode(tmp, s.base_alpha, s.max_bins, s.collapses, s.count, s.sum,
                             s.min, s.max)
        n = wm_sketch_body_encode(s, tmp + head)
        return PyBytes_FromStringAndSize(<char *>tmp, head + n)
    finally:
        free(tmp)


def wal_scan(data, salt):
    """``(valid records, torn)`` of the records ``data`` holds (bytes after
    the segment header): see csrc/wal.h.  Compiled twin of
    ``wedmetrics.wal._format.scan``."""
    cdef const unsigned char[::1] view = memoryview(data).cast("B")
    cdef int torn = 0
    cdef int64_t n
    if not 0 <= salt < 2 ** 32:
        raise ValueError(f"salt must be a u32, got {salt!r}")
    if view.shape[0] == 0:
        return 0, False
    n = wm_wal_scan(&view[0], view.shape[0], <uint32_t>salt, &torn)
    return int(n), bool(torn)


cdef class Core:
    """All series of one engine: buckets, roll-ups, windows and the outbox.

    Compiled twin of ``_core_ref.Core``.

    Parameters
    ----------
    widths : sequence of float
        Bucket width of each resolution in seconds, finest first; each a
        whole multiple of the previous.
    retention : sequence of int
        Closed buckets kept in memory per resolution.
    lateness : float
        Seconds a bucket stays open after its end.
    alpha, max_bins :
        Sketch accuracy and bins bound.

    Notes
    -----
    ``lock`` exists for API parity with the reference; the compiled core
    does not take it: every method holds the GIL for its whole call into C,
    which is what serialises concurrent recorders.
    """

    def __cinit__(self, *args, **kwargs):
        self.c = NULL

    def __init__(self, widths, retention, lateness=5.0, alpha=0.01, max_bins=2048):
        widths = [float(w) for w in widths]
        retention = [int(r) for r in retention]
        if not widths or len(widths) != len(retention):
            raise ValueError("widths and retention must be non-empty and of equal length")
        if len(widths) > WM_MAX_LEVELS:
            raise ValueError(f"at most {WM_MAX_LEVELS} resolutions, got {len(widths)}")
        lateness = float(lateness)
        if not (math.isfinite(lateness) and lateness >= 0):
            raise ValueError(f"lateness must be >= 0, got {lateness!r}")
        for i, w in enumerate(widths):
            if not (math.isfinite(w) and w > 0):
                raise ValueError(f"bucket width must be > 0, got {w!r}")
            if i and (w / widths[i - 1] != round(w / widths[i - 1]) or w <= widths[i - 1]):
                raise ValueError(f"width {w} is not a whole multiple of {widths[i - 1]}")
        for i, r in enumerate(retention):
            if r < 1:
                raise ValueError(f"retention must be >= 1 bucket, got {r}")
            if r >= 1 << 31:
                raise ValueError(f"retention must be < 2**31 buckets, got {r}")
            if i + 1 < len(widths) and r * widths[i] < widths[i + 1] + lateness + widths[i]:
                raise ValueError(
                    f"retention of the {widths[i]:g}s resolution ({r} buckets) must cover one "
                    f"{widths[i + 1]:g}s bucket plus the lateness")
        Sketch(alpha, max_bins)  # validates both
        self.widths = widths
        self.retention = retention
        self.ratios = [int(round(w / widths[0])) for w in widths]
        self.lateness = lateness
        self.alpha = float(alpha)
        self.max_bins = int(max_bins)
        self.lock = threading.RLock()
        cdef double cw[16]
        cdef int64_t cr[16]
        for i in range(len(widths)):
            cw[i] = widths[i]
            cr[i] = retention[i]
        if self.c != NULL:
            wm_core_free(self.c)
        self.c = wm_core_new(len(widths), cw, cr, self.lateness, self.alpha, self.max_bins)
        if self.c == NULL:
            raise MemoryError("core: out of memory")

    def __dealloc__(self):
        if self.c != NULL:
            wm_core_free(self.c)
            self.c = NULL

    cdef void _check(self, int rc) except *:
        if rc == WM_ENOMEM:
            raise MemoryError("wedmetrics core: out of memory")

    cdef void _wal_full(self) except *:
        if self.on_wal_full is None:
            raise RuntimeError("write-ahead log segment full and no on_wal_full to roll it")
        self.on_wal_full()

    # -- write-ahead log ------------------------------------------------------
    def set_wal(self, buffer, pos=0, salt=0):
        """Append every accepted point to ``buffer`` (a writable mapped segment)
        from byte ``pos``, records checked with ``salt``; ``None`` turns the log
        off.  When it fills, ``on_wal_full()`` is called to set the next one."""
        cdef unsigned char[::1] view
        if buffer is None:
            wm_core_set_wal(self.c, NULL, 0, 0, 0)
            self._wal_view = None
            return
        view = memoryview(buffer).cast("B")
        if not 0 <= pos <= view.shape[0] or view.shape[0] == 0:
            raise ValueError(f"pos {pos} outside the segment of {view.shape[0]} bytes")
        wm_core_set_wal(self.c, &view[0], view.shape[0], pos, <uint32_t>salt)
        self._wal_view = view

    def wal_state(self):
        """``(next byte offset, newest timestamp logged in this segment)``."""
        cdef uint64_t pos
        cdef double max_ts
        wm_core_wal_state(self.c, &pos, &max_ts)
        return pos, max_ts

    # -- state ----------------------------------------------------------
    @property
    def watermark(self):
        """Newest timestamp seen or advanced to (-inf before any)."""
        return wm_core_watermark(self.c)

    @property
    def outbox_enabled(self):
        """Whether closed buckets are queued for :meth:`drain`."""
        return bool(wm_core_outbox_enabled(self.c))

    @outbox_enabled.setter
    def outbox_enabled(self, value):
        wm_core_set_outbox(self.c, 1 if value else 0)

    @property
    def outcomes(self):
        """Accepted points and drops by reason code (a new list)."""
        cdef const int64_t *o = wm_core_outcomes(self.c)
        return [o[i] for i in range(WM_N_OUTCOMES)]

    @property
    def n_series(self):
        """Number of series."""
        return wm_core_n_series(self.c)

    def count_drop(self, code, n=1):
        """Count ``n`` points refused for reason ``code`` outside the core."""
        code = int(code)
        if not 0 <= code < WM_N_OUTCOMES:
            raise ValueError(f"unknown outcome code {code}")
        wm_core_count(self.c, code, n)

    def close(self):
        """Refuse every later point (``CLOSED``); reads keep working."""
        wm_core_close(self.c)

    # -- series ---------------------------------------------------------
    def add_series(self, exact_capacity=0):
        """Allocate a series; returns its id."""
        exact_capacity = int(exact_capacity)
        if exact_capacity < 0:
            raise ValueError("exact_capacity must be >= 0")
        cdef int64_t sid = wm_core_add_series(self.c, exact_capacity)
        if sid < 0:
            raise MemoryError("core: out of memory")
        return sid

    # -- recording --------------------------------------------------------
    def record(self, sid, value, ts):
        """Record one point; returns its outcome code."""
        cdef int64_t i
        try:
            i = sid
        except OverflowError:
            i = -1
        cdef int code = wm_core_record(self.c, i, value, ts)
        while code == WM_WAL_FULL:
            self._wal_full()
            code = wm_core_record(self.c, i, value, ts)
        self._check(code)
        return code

    def record_many(self, sids, ts, values):
        """Record parallel arrays; returns counts (ok, late, bad value, bad ts, unknown)."""
        sids = np.ascontiguousarray(sids, dtype=np.int64)
        ts = np.ascontiguousarray(ts, dtype=np.float64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if not (sids.shape == ts.shape == values.shape) or sids.ndim != 1:
            raise ValueError("ids, ts and values must be 1-d arrays of the same length")
        cdef const int64_t[::1] si = sids
        cdef const double[::1] tv = ts
        cdef const double[::1] vv = values
        cdef int64_t counts[5]
        cdef int64_t n = si.shape[0]
        if n == 0:
            return (0, 0, 0, 0, 0)
        cdef int64_t total[5]
        cdef int64_t done = 0, k
        cdef int rc
        for k in range(5):
            total[k] = 0
        while True:
            rc = wm_core_record_many(self.c, n - done, &si[done], &tv[done], &vv[done], counts)
            for k in range(5):
                total[k] += counts[k]
                done += counts[k]
            if rc != WM_WAL_FULL:
                break
            self._wal_full()      # then on from the point that did not fit
        self._check(rc)
        return (total[0], total[1], total[2], total[3], total[4])

    def first_invalid(self, sids, ts, values):
        """Index and code of the first point ``record_many`` would refuse
        for a reason other than lateness, or ``(-1, OK)``."""
        sids = np.ascontiguousarray(sids, dtype=np.int64)
        ts = np.ascontiguousarray(ts, dtype=np.float64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        cdef const int64_t[::1] si = sids
        cdef const double[::1] tv = ts
        cdef const double[::1] vv = values
        cdef int code = 0
        cdef int64_t n = min(si.shape[0], tv.shape[0], vv.shape[0])
        if n == 0:
            return -1, 0
        cdef int64_t i = wm_core_first_invalid(self.c, n, &si[0], &tv[0], &vv[0], &code)
        return i, code

    # -- closing ----------------------------------------------------------
    def advance(self, now):
        """Move the watermark to ``now`` (never back) and close what is due."""
        cdef double t = float(now)
        if not isfinite(t):
            raise ValueError(f"advance needs a finite time, got {t!r}")
        self._check(wm_core_advance(self.c, t))

    # -- reading ----------------------------------------------------------
    def window(self, sids, lo, hi):
        """Merge of every point in finest buckets ``lo <= idx < hi`` of the
        given series: ``(count, sum, min, max, Sketch)``."""
        # the alert engine asks thousands of windows of one or a few series
        # a tick: their ids go in a stack array, no numpy array per call
        cdef int64_t few[8]
        cdef int64_t[::1] many
        cdef int64_t *ids = few
        cdef Py_ssize_t n = len(sids), i
        cdef int64_t n_series = wm_core_n_series(self.c)
        if n > 8:
            many = np.empty(n, dtype=np.int64)
            ids = &many[0]
        for i in range(n):
            sid = int(sids[i])      # a Python int: any size is checked, not truncated
            if not 0 <= sid < n_series:
                raise KeyError(f"unknown series id {sid}")
            ids[i] = sid
        cdef Sketch acc = Sketch.__new__(Sketch)
        wm_sketch_free(&acc.s)
        wm_sketch_init(&acc.s, self.alpha, self.max_bins, NULL)
        cdef int64_t clo = _clamp_idx(lo), chi = _clamp_idx(hi)
        if n:
            self._check(wm_core_window(self.c, n, ids, clo, chi, &acc.s))
        return acc.s.count, acc.s.sum, acc.s.min, acc.s.max, acc

    def windows(self, groups, lo, hi, qs):
        """Many :meth:`window` calls at once: window ``i`` merges the series
        ``groups[i]`` over finest buckets ``lo[i] <= idx < hi[i]``.

        Returns ``(count, sum, min, max, quantiles)``: an int64 column, three
        float64 columns, and a float64 array holding the quantiles ``qs[i]``
        of each window in turn (NaN for an empty window).  One merge buffer
        serves every window, so no Sketch object is made per window.
        """
        cdef Py_ssize_t n = len(groups), i, j, m, k = 0
        cdef const int64_t[::1] clo = np.ascontiguousarray(lo, dtype=np.int64)
        cdef const int64_t[::1] chi = np.ascontiguousarray(hi, dtype=np.int64)
        if clo.shape[0] != n or chi.shape[0] != n or len(qs) != n:
            raise ValueError(f"groups, lo, hi and qs must have one entry per window, got "
                             f"{n}, {clo.shape[0]}, {chi.shape[0]}, {len(qs)}")
        cdef Py_ssize_t n_q = sum(len(x) for x in qs)
        counts = np.zeros(n, dtype=np.int64)
        sums, mins, maxs = np.empty(n), np.empty(n), np.empty(n)
        quants = np.empty(n_q)
        cdef int64_t[::1] oc = counts
        cdef double[::1] osum = sums, omin = mins, omax = maxs, oq = quants
        cdef int64_t few[8]
        cdef int64_t[::1] many
        cdef int64_t *ids
        cdef int64_t n_series = wm_core_n_series(self.c)
        cdef wm_sketch acc
        wm_sketch_init(&acc, self.alpha, self.max_bins, NULL)
        try:
            for i in range(n):
                sids = groups[i]
                m = len(sids)
                ids = few
                if m > 8:
                    many = np.empty(m, dtype=np.int64)
                    ids = &many[0]
                for j in range(m):
                    sid = int(sids[j])
                    if not 0 <= sid < n_series:
                        raise KeyError(f"unknown series id {sid}")
                    ids[j] = sid
                wm_sketch_clear(&acc)
                if m:
                    # (wm_core_window clamps the indices, as _clamp_idx does)
                    self._check(wm_core_window(self.c, m, ids, clo[i], chi[i], &acc))
                oc[i] = <int64_t>acc.count
                osum[i] = acc.sum
                omin[i] = acc.min
                omax[i] = acc.max
                k += _quantiles_into(&acc, qs[i], &oq[k] if k < n_q else NULL, n_q - k)
        finally:
            wm_sketch_free(&acc)
        return counts, sums, mins, maxs, quants

    def buckets(self, sid, level, lo, hi):
        """Buckets of ``level`` with ``lo <= idx < hi``: closed ones from the
        ring, then the still-open ones (built from finer data).

        Returns ``(idx, count, sum, min, max, closed, sketches)``: numpy
        columns plus a list of :class:`Sketch`.
        """
        sid = int(sid)
        if not 0 <= sid < wm_core_n_series(self.c):
            raise KeyError(f"unknown series id {sid}")
        level = int(level)
        if not 0 <= level < len(self.widths):
            raise IndexError(f"resolution level {level} out of range")
        cdef wm_rows rows
        rows.rows = NULL
        rows.n = rows.cap = 0
        cdef int rc = wm_core_buckets(self.c, sid, level, _clamp_idx(lo), _clamp_idx(hi), &rows)
        cdef Py_ssize_t i, n = rows.n
        try:
            self._check(rc)
            idx = np.empty(n, dtype=np.int64)
            count = np.empty(n, dtype=np.int64)
            tot = np.empty(n, dtype=np.float64)
            mn = np.empty(n, dtype=np.float64)
            mx = np.empty(n, dtype=np.float64)
            closed = np.empty(n, dtype=bool)
            sketches = []
            for i in range(n):
                idx[i] = rows.rows[i].idx
                count[i] = rows.rows[i].sk.count
                tot[i] = rows.rows[i].sk.sum
                mn[i] = rows.rows[i].sk.min
                mx[i] = rows.rows[i].sk.max
                closed[i] = rows.rows[i].closed != 0
            for i in range(n):
                sketches.append(_adopt(&rows.rows[i].sk))
                rows.rows[i].sk.pos.c = NULL   # now owned by the Sketch
                rows.rows[i].sk.neg.c = NULL
                rows.rows[i].sk.pos.cap = 0
                rows.rows[i].sk.neg.cap = 0
            return idx, count, tot, mn, mx, closed, sketches
        finally:
            wm_rows_free(&rows)

    # -- exact mode, gauges -------------------------------------------------
    def exact_values(self, sid, lo_ts, hi_ts):
        """Raw points with ``lo_ts < ts <= hi_ts`` kept by the exact ring,
        in arrival order, and whether the ring still holds every such point."""
        sid = int(sid)
        if not 0 <= sid < wm_core_n_series(self.c):
            raise KeyError(f"unknown series id {sid}")
        cdef int64_t cap, total, head
        cdef const double *pts
        cdef const double *pvals
        wm_core_exact(self.c, sid, &cap, &total, &head, &pts, &pvals)
        all_ts = np.empty(cap, dtype=np.float64)
        all_vals = np.empty(cap, dtype=np.float64)
        cdef double[::1] a = all_ts
        cdef double[::1] b = all_vals
        if cap:
            memcpy(&a[0], pts, cap * sizeof(double))
            memcpy(&b[0], pvals, cap * sizeof(double))
        n = min(total, cap)
        order = (np.arange(n) + (head - n)) % cap if cap else np.empty(0, dtype=np.int64)
        ts = all_ts[order]
        vals = all_vals[order]
        complete = total <= cap or (n > 0 and ts.min() <= lo_ts)
        mask = (ts > lo_ts) & (ts <= hi_ts)
        return ts[mask].copy(), vals[mask].copy(), bool(complete)

    def last(self, sid):
        """``(last value, its timestamp)``; NaNs before the first point."""
        sid = int(sid)
        if not 0 <= sid < wm_core_n_series(self.c):
            raise IndexError(f"unknown series id {sid}")
        cdef double v, t
        wm_core_last(self.c, sid, &v, &t)
        return v, t

    # -- outbox -------------------------------------------------------------
    def drain(self):
        """Closed buckets since the last drain (when the outbox is enabled).

        Returns ``(sid, level, idx, count, sum, min, max, sketch_bytes)``:
        numpy columns and a list of full sketch serialisations.
        """
        cdef wm_outbox o
        wm_core_take_outbox(self.c, &o)
        cdef Py_ssize_t i, n = o.n
        cdef bytes blob
        cdef uint8_t *p
        try:
            sid = np.empty(n, dtype=np.int64)
            level = np.empty(n, dtype=np.int32)
            idx = np.empty(n, dtype=np.int64)
            count = np.empty(n, dtype=np.int64)
            tot = np.empty(n, dtype=np.float64)
            lo = np.empty(n, dtype=np.float64)
            hi = np.empty(n, dtype=np.float64)
            blobs = []
            if n:
                _copy_i64(sid, o.sid, n)
                _copy_i64(idx, o.idx, n)
                _copy_i64(count, o.count, n)
                _copy_f64(tot, o.sum, n)
                _copy_f64(lo, o.min, n)
                _copy_f64(hi, o.max, n)
                for i in range(n):
                    level[i] = o.level[i]
            for i in range(n):
                blob = PyBytes_FromStringAndSize(NULL, WM_HEADER_SIZE + o.body_len[i])
                p = <uint8_t *>PyBytes_AS_STRING(blob)
                wm_header_encode(p, self.alpha, self.max_bins, o.collapses[i], <uint64_t>o.count[i],
                                 o.sum[i], o.min[i], o.max[i])
                memcpy(p + WM_HEADER_SIZE, o.bytes + o.body_off[i], o.body_len[i])
                blobs.append(blob)
            return sid, level, idx, count, tot, lo, hi, blobs
        finally:
            wm_outbox_free(&o)

    # -- restart ------------------------------------------------------------
    def restore(self, sid, level, idx, sketch):
        """Put back a bucket an earlier run stored: closed, not re-emitted.

        ``sketch`` (count, sum, min, max and bins of the bucket) must have
        the core's alpha and max_bins.  Call coarse levels first, oldest
        first, before any point of the series; ``ValueError`` otherwise.
        A coarse bucket the restored one completes closes as usual.
        """
        if not isinstance(sketch, Sketch):
            raise TypeError(f"sketch must be a Sketch, got {type(sketch).__name__}")
        cdef Sketch sk = <Sketch>sketch
        if sk.s.base_alpha != self.alpha or sk.s.max_bins != <uint32_t>self.max_bins:
            raise ValueError(f"sketch has alpha={sk.s.base_alpha!r}, max_bins={sk.s.max_bins}; "
                             f"the core has {self.alpha!r}, {self.max_bins}")
        cdef int rc = wm_core_restore(self.c, int(sid), int(level), int(idx), &sk.s)
        if rc == WM_EORDER:
            raise ValueError(f"cannot restore bucket {idx} of level {level} into series {sid}: "
                             "bad id or level, empty, or not newer than what the level holds")
        self._check(rc)

    def memory_bytes(self):
        """Bytes the core has allocated (slots, arenas, sketches, outbox)."""
        return wm_core_memory_bytes(self.c)

    def _memory_breakdown(self):
        """Where :meth:`memory_bytes` goes (used by tests and tuning): a dict of bytes."""
        cdef int64_t parts[13]
        wm_core_memory_breakdown(self.c, parts)
        names = ["series", "open_buckets", "slots_0", "arena_0", "slots_1", "arena_1",
                 "slots_2", "arena_2", "slots_3+", "arena_3+", "accumulators", "outbox",
                 "window_cache"]
        return {name: parts[i] for i, name in enumerate(names)}


cdef inline void _copy_i64(int64_t[::1] dst, const int64_t *src, Py_ssize_t n):
    memcpy(&dst[0], src, n * sizeof(int64_t))


cdef inline void _copy_f64(double[::1] dst, const double *src, Py_ssize_t n):
    memcpy(&dst[0], src, n * sizeof(double))


cdef inline double _wall_now() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_REALTIME, &t)
    return <double>t.tv_sec + <double>t.tv_nsec * 1e-9


cdef class Handle:
    """Recording handle of one series (compiled twin of ``_core_ref.Handle``).

    Made by ``MetricsEngine.series``; the engine is the only caller of the
    constructor.  ``max_future`` bounds how far a timestamp may run ahead
    of the clock; ``refused`` is the engine's list, by outcome code, of
    points refused with an exception.
    """

    def __init__(self, Core core, sid, name, labels, kind, clock, raise_invalid, raise_late,
                 max_future=math.inf, refused=None):
        self._core = core
        self.c = core.c
        self.sid = sid
        self.name = name
        self.labels = labels
        self.kind = kind
        self._clock = clock
        self._wall = bool(getattr(clock, "is_wall", False))
        self._counter = kind == "counter"
        self._raise_invalid = bool(raise_invalid)
        self._raise_late = bool(raise_late)
        self._max_future = float(max_future)
        self._limits_future = self._max_future != math.inf
        self._refused_counts = refused if refused is not None else [0] * WM_N_OUTCOMES

    @property
    def id(self):
        """Series id in the core."""
        return self.sid

    def record(self, value, ts=None):
        """Record ``value`` at ``ts`` (default: the engine's now, the later
        of its clock and the newest timestamp recorded)."""
        cdef double v, t, wm
        cdef int code
        cdef type tv = type(value)
        if tv is float:
            v = PyFloat_AS_DOUBLE(value)
        elif tv is int:
            try:
                v = value
            except OverflowError:
                return self._record_slow(value, ts)
        else:
            return self._record_slow(value, ts)
        if ts is None:
            if self._wall:
                t = _wall_now()
                wm = wm_core_watermark(self.c)
                if t < wm:
                    t = wm
            else:
                return self._record_slow(value, ts)
        elif type(ts) is float:
            t = PyFloat_AS_DOUBLE(ts)
            # a point no newer than the newest accepted one cannot be too far ahead
            if self._limits_future and t > wm_core_watermark(self.c):
                return self._record_slow(value, ts)
        else:
            return self._record_slow(value, ts)
        if self._counter and v < 0.0:
            code = _NEG
            wm_core_count(self.c, _NEG, 1)
        else:
            code = wm_core_record(self.c, self.sid, v, t)
        if code:
            self._refused(code, v, t)

    def _record_slow(self, value, ts):
        cdef double v, t
        cdef int code
        got = value if type(value) is float else _points.real_value(value)
        if got is None:
            self._refuse(_BAD_VALUE, _points.value_problem(value))
            return
        v = got
        if ts is None:
            t = _wall_now() if self._wall else self._clock.now()
            if t < wm_core_watermark(self.c):
                t = wm_core_watermark(self.c)
        else:
            got = ts if type(ts) is float else _points.seconds(ts)
            if got is None:
                self._refuse(_BAD_TS, _points.timestamp_problem(ts))
                return
            t = got
            if self._limits_future and t > wm_core_watermark(self.c) and \
                    t > (_wall_now() if self._wall else self._clock.now()) + self._max_future:
                self._refuse(_BAD_TS, f"timestamp {t!r} is more than max_future="
                                      f"{self._max_future:g}s ahead of the clock")
                return
        if self._counter and v < 0.0:
            code = _NEG
            wm_core_count(self.c, _NEG, 1)
        else:
            code = wm_core_record(self.c, self.sid, v, t)
        if code:
            self._refused(code, v, t)

    def _refuse(self, int code, problem):
        """A point refused before the core saw it: counted, raised by policy."""
        wm_core_count(self.c, code, 1)
        if self._raise_invalid:
            self._refused_counts[code] += 1
            raise errors.InvalidPointError(f"{self.name}: {problem}")

    cdef void _refused(self, int code, double v, double t) except *:
        if code == WM_WAL_FULL:
            self._core._wal_full()
            code = wm_core_record(self.c, self.sid, v, t)
            if code == 0:
                return
            if code == WM_WAL_FULL:
                raise RuntimeError("write-ahead log: a new segment has no room for a record")
        if code < 0:
            raise MemoryError("wedmetrics core: out of memory")
        if code == _LATE:
            if self._raise_late:
                self._refused_counts[code] += 1
                raise errors.LatePointError(_core_ref.late_message(self.name, t, self._core))
        elif self._raise_invalid:
            self._refused_counts[code] += 1
            if code == _CLOSED:
                raise errors.EngineClosedError(
                    f"{self.name}: the engine is closed and records nothing more")
            if code == _BAD_VALUE:
                what = f"value must be finite, got {v!r}"
            elif code == _BAD_TS:
                what = f"timestamp must be finite and in range, got {t!r}"
            else:
                what = f"counter increments must be >= 0, got {v!r}"
            raise errors.InvalidPointError(f"{self.name}: {what}")

    def inc(self, n=1.0, ts=None):
        """Counter increment (``n >= 0``)."""
        self.record(n, ts)

    def set(self, value, ts=None):
        """Gauge update: records ``value`` and keeps it as the current value."""
        self.record(value, ts)

    @property
    def value(self):
        """Last recorded value (NaN before the first point)."""
        cdef double v, t
        wm_core_last(self.c, self.sid, &v, &t)
        return v

    def __repr__(self):
        labels = ",".join(f"{k}={v!r}" for k, v in sorted(self.labels.items()))
        return f"<{self.kind} {self.name}{{{labels}}} id={self.sid}>"


cdef struct _LabelSlot:
    Py_hash_t hash
    PyObject *entry        # owned tuple (name, labels copy, handle); NULL when empty


cdef inline Py_uhash_t _mix(Py_uhash_t x) noexcept:
    # splitmix64's finaliser: spreads the string hashes before they are summed
    x ^= x >> 30
    x *= <Py_uhash_t>0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= <Py_uhash_t>0x94D049BB133111EBULL
    return x ^ (x >> 31)


cdef dict _NO_LABELS = {}


cdef class LabelIndex:
    """``(name, labels dict) -> handle`` for per-call label resolution
    (compiled twin of ``_core_ref.LabelIndex``).

    ``find`` hashes the dict's items in place and compares them with the
    stored copy, so the hot path of ``engine.record(name, v, labels=...)``
    builds no key tuple.  Label order does not matter.  Entries are only
    ever added; the table is open addressing with linear probing.
    """
    cdef _LabelSlot *slots
    cdef Py_ssize_t mask
    cdef Py_ssize_t used

    def __cinit__(self):
        self.slots = <_LabelSlot *>calloc(16, sizeof(_LabelSlot))
        if self.slots == NULL:
            raise MemoryError()
        self.mask = 15
        self.used = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.mask + 1):
                Py_XDECREF(self.slots[i].entry)
            free(self.slots)

    cdef Py_hash_t _hash(self, object name, dict labels) except? -1:
        cdef Py_uhash_t acc = _mix(<Py_uhash_t>PyObject_Hash(name))
        cdef Py_ssize_t pos = 0
        cdef PyObject *k
        cdef PyObject *v
        cdef Py_uhash_t hk
        while PyDict_Next(labels, &pos, &k, &v):
            hk = <Py_uhash_t>PyObject_Hash(<object>k)
            acc += _mix(hk * <Py_uhash_t>0x9E3779B97F4A7C15ULL ^ <Py_uhash_t>PyObject_Hash(<object>v))
        return <Py_hash_t>acc

    cdef bint _same(self, tuple entry, object name, dict labels) except -1:
        cdef object stored_name = entry[0]
        cdef dict stored = <dict>entry[1]
        cdef Py_ssize_t pos = 0
        cdef PyObject *k
        cdef PyObject *v
        cdef PyObject *s
        if stored_name is not name and stored_name != name:
            return False
        if PyDict_Size(stored) != PyDict_Size(labels):
            return False
        while PyDict_Next(labels, &pos, &k, &v):
            s = PyDict_GetItemWithError(stored, <object>k)
            if s == NULL:
                if PyErr_Occurred():
                    raise
                return False
            if s != v and not PyObject_RichCompareBool(<object>s, <object>v, Py_EQ):
                return False
        return True

    cdef dict _as_dict(self, labels):
        if labels is None:
            return _NO_LABELS
        if type(labels) is dict:
            return <dict>labels
        return _NO_LABELS if not labels else None

    def find(self, name, labels):
        """The handle added for ``name`` + ``labels``, or ``None``."""
        cdef dict d = self._as_dict(labels)
        cdef Py_hash_t h
        cdef Py_ssize_t i
        cdef PyObject *e
        cdef tuple entry
        if d is None:
            return None
        try:
            h = self._hash(name, d)
        except TypeError:           # unhashable name or value: never added
            return None
        i = <Py_ssize_t>(<Py_uhash_t>h & <Py_uhash_t>self.mask)
        while True:
            e = self.slots[i].entry
            if e == NULL:
                return None
            if self.slots[i].hash == h:
                # a strong reference: a caller's __eq__ may run Python code, and
                # another thread's add may replace the entry or regrow the table
                # (then this probe may miss, and the caller takes its slow path)
                entry = <tuple>e
                if self._same(entry, name, d):
                    return entry[2]
            i = (i + 1) & self.mask

    def add(self, name, labels, handle):
        """Remember ``handle`` for ``name`` + ``labels`` (replacing an equal key)."""
        cdef dict d = self._as_dict(labels)
        if d is None:
            raise TypeError(f"labels must be a dict, got {type(labels).__name__}")
        cdef Py_hash_t h = self._hash(name, d)
        cdef tuple entry = (name, dict(d), handle)
        cdef Py_ssize_t i
        cdef PyObject *e
        if 2 * (self.used + 1) > self.mask + 1:
            self._grow()
        i = <Py_ssize_t>(<Py_uhash_t>h & <Py_uhash_t>self.mask)
        while True:
            e = self.slots[i].entry
            if e == NULL:
                break
            if self.slots[i].hash == h and self._same(<tuple>e, name, d):
                Py_DECREF(<object>e)
                break
            i = (i + 1) & self.mask
        if e == NULL:
            self.used += 1
        Py_INCREF(entry)
        self.slots[i].hash = h
        self.slots[i].entry = <PyObject *>entry

    cdef void _grow(self) except *:
        cdef Py_ssize_t n = (self.mask + 1) * 2, i, j
        cdef _LabelSlot *new = <_LabelSlot *>calloc(n, sizeof(_LabelSlot))
        if new == NULL:
            raise MemoryError()
        for i in range(self.mask + 1):
            if self.slots[i].entry != NULL:
                j = <Py_ssize_t>(<Py_uhash_t>self.slots[i].hash & <Py_uhash_t>(n - 1))
                while new[j].entry != NULL:
                    j = (j + 1) & (n - 1)
                new[j] = self.slots[i]
        free(self.slots)
        self.slots = new
        self.mask = n - 1

    def __len__(self):
        return self.used
