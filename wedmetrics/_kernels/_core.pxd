# cython: language_level=3
"""C API of csrc/sketch.h and csrc/core.h, and the compiled classes' fields."""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "sketch.h" nogil:
    int WM_OK
    int WM_ENOMEM
    int WM_EFORMAT
    int WM_HEADER_SIZE
    double WM_MIN_ALPHA
    ctypedef int64_t wm_acct

    ctypedef struct wm_store:
        uint64_t *c
        int64_t off
        int64_t lo
        int64_t hi
        uint32_t cap

    ctypedef struct wm_sketch:
        double base_alpha
        double log_gamma
        double mult
        uint32_t max_bins
        int collapses
        wm_store pos
        wm_store neg
        uint64_t zero
        uint64_t count
        double sum
        double min
        double max
        wm_acct *acct

    void wm_sketch_global_init()
    void wm_sketch_init(wm_sketch *s, double alpha, uint32_t max_bins, wm_acct *acct)
    void wm_sketch_free(wm_sketch *s)
    void wm_sketch_clear(wm_sketch *s)
    int wm_sketch_add(wm_sketch *s, double v)
    int wm_sketch_merge(wm_sketch *s, const wm_sketch *o)
    double wm_sketch_quantile(const wm_sketch *s, double q)
    enum: WM_MAX_QUANTILES
    void wm_sketch_quantiles(const wm_sketch *s, int n, const double *qs, double *out)
    double wm_sketch_alpha(const wm_sketch *s)
    uint32_t wm_sketch_num_bins(const wm_sketch *s)
    size_t wm_sketch_body_bound(const wm_sketch *s)
    size_t wm_sketch_body_encode(const wm_sketch *s, uint8_t *out)
    void wm_header_encode(uint8_t *out, double alpha, uint32_t max_bins, int collapses,
                          uint64_t count, double sum, double mn, double mx)
    int wm_sketch_decode(wm_sketch *s, const uint8_t *buf, size_t len, wm_acct *acct,
                         const char **err)


cdef extern from "core.h" nogil:
    int WM_REC_OK
    int WM_REC_LATE
    int WM_REC_BAD_VALUE
    int WM_REC_BAD_TS
    int WM_REC_UNKNOWN_SERIES
    int WM_REC_NEGATIVE_INCREMENT
    int WM_REC_CLOSED
    int WM_N_OUTCOMES
    int WM_MAX_LEVELS

    ctypedef struct wm_core:
        pass

    ctypedef struct wm_row:
        int64_t idx
        int closed
        wm_sketch sk

    ctypedef struct wm_rows:
        wm_row *rows
        int64_t n
        int64_t cap

    ctypedef struct wm_outbox:
        int64_t n
        int64_t cap
        int64_t *sid
        int64_t *idx
        int64_t *count
        int32_t *level
        double *sum
        double *min
        double *max
        uint8_t *collapses
        uint64_t *body_off
        uint32_t *body_len
        uint8_t *bytes

    wm_core *wm_core_new(int nlevels, const double *widths, const int64_t *retention,
                         double lateness, double alpha, uint32_t max_bins)
    void wm_core_free(wm_core *c)
    int64_t wm_core_add_series(wm_core *c, int64_t exact_capacity)
    int64_t wm_core_n_series(const wm_core *c)
    int wm_core_record(wm_core *c, int64_t sid, double v, double ts)
    void wm_core_close(wm_core *c)
    int wm_core_record_many(wm_core *c, int64_t n, const int64_t *sids, const double *ts,
                            const double *vals, int64_t *counts)
    int64_t wm_core_first_invalid(const wm_core *c, int64_t n, const int64_t *sids,
                                  const double *ts, const double *vals, int *code)
    void wm_core_count(wm_core *c, int code, int64_t n)
    const int64_t *wm_core_outcomes(const wm_core *c)
    int wm_core_advance(wm_core *c, double now)
    double wm_core_watermark(const wm_core *c)
    int wm_core_window(wm_core *c, int64_t n, const int64_t *sids, int64_t lo, int64_t hi,
                       wm_sketch *acc)
    int wm_core_buckets(wm_core *c, int64_t sid, int level, int64_t lo, int64_t hi,
                        wm_rows *out)
    void wm_rows_free(wm_rows *r)
    void wm_core_exact(const wm_core *c, int64_t sid, int64_t *cap, int64_t *n, int64_t *head,
                       const double **ts, const double **vals)
    void wm_core_last(const wm_core *c, int64_t sid, double *value, double *ts)
    void wm_core_set_outbox(wm_core *c, int enabled)
    int wm_core_outbox_enabled(const wm_core *c)
    void wm_core_take_outbox(wm_core *c, wm_outbox *out)
    void wm_outbox_free(wm_outbox *o)
    void wm_core_set_wal(wm_core *c, uint8_t *base, uint64_t cap, uint64_t pos, uint32_t salt)
    void wm_core_wal_state(const wm_core *c, uint64_t *pos, double *max_ts)
    int WM_EORDER
    int wm_core_restore(wm_core *c, int64_t sid, int level, int64_t idx, const wm_sketch *sk)
    int64_t wm_core_memory_bytes(const wm_core *c)
    int WM_MEM_PARTS
    void wm_core_memory_breakdown(const wm_core *c, int64_t *out)


cdef extern from "wal.h" nogil:
    int WM_WAL_FULL
    int WM_WAL_HEADER
    int WM_WAL_RECORD
    int64_t wm_wal_scan(const uint8_t *buf, uint64_t len, uint32_t salt, int *torn)


cdef class Sketch:
    cdef wm_sketch s


cdef class Core:
    cdef wm_core *c
    cdef readonly list widths
    cdef readonly list retention
    cdef readonly list ratios
    cdef readonly double lateness
    cdef readonly double alpha
    cdef readonly int max_bins
    cdef public object lock
    cdef object _wal_view        # the mapped segment the core writes into
    cdef public object on_wal_full

    cdef void _check(self, int rc) except *
    cdef void _wal_full(self) except *


cdef class Handle:
    cdef readonly Core _core
    cdef wm_core *c
    cdef int64_t sid
    cdef readonly object name
    cdef readonly object labels
    cdef readonly object kind
    cdef readonly object _clock
    cdef bint _wall
    cdef bint _counter
    cdef readonly bint _raise_invalid
    cdef readonly bint _raise_late
    cdef double _max_future
    cdef bint _limits_future
    cdef object _refused_counts
    cdef object __weakref__

    cdef void _refused(self, int code, double v, double t) except *
