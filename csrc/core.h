/* The bucket core of one engine: every series, every resolution.
 *
 * C99, no Python: the twin of wedmetrics/_kernels/_core_ref.py (the spec).
 * Indices are bucket units: a bucket of width w holds floor(ts / w).
 *
 * Memory layout, per series (one allocation: wm_series + its rings + its
 * coarse accumulators):
 *   - open finest buckets: a small array sorted by index, each a dense
 *     mutable sketch; entries past n_open are cleared spares whose buffers
 *     are reused, so steady recording does not allocate;
 *   - per resolution a ring of closed buckets.  A slot is 16 bytes:
 *       idx - base (u32), arena offset (u32), sum (f64).
 *     A bucket of one point (offset WM_THIN) keeps its value in `sum` and
 *     nothing else: its count, min, max and sketch follow from that value.
 *     Any other bucket has an arena record: varint body length, u8
 *     collapses, varint count, f64 min, f64 max, then the codec body.
 *     Arena records are FIFO like the slots, so a full arena with a fifth
 *     dead is compacted by one memmove, else grown by half.  Slot arrays
 *     grow by doubling, never past the retention.
 *   - an open coarse bucket is only its index: its content is its children
 *     in the finer ring (the retention rule of Core guarantees they are all
 *     there), merged into a per-core scratch sketch when it closes.
 */
#ifndef WM_CORE_H
#define WM_CORE_H

#include <stdint.h>

#include "sketch.h"

/* Outcome codes, identical to _core_ref.py. */
#define WM_REC_OK 0
#define WM_REC_LATE 1
#define WM_REC_BAD_VALUE 2
#define WM_REC_BAD_TS 3
#define WM_REC_UNKNOWN_SERIES 4
#define WM_REC_NEGATIVE_INCREMENT 5
#define WM_REC_CLOSED 6   /* recorded after wm_core_close */
#define WM_N_OUTCOMES 7

#define WM_MAX_LEVELS 16
/* Bucket indices beyond +-2^52 are refused (BAD_TS) and horizons clamped
 * to +-2^62, so every index computation fits int64. */
#define WM_IDX_LIMIT 4503599627370496.0
#define WM_IDX_CLAMP ((int64_t)1 << 62)

#define WM_THIN UINT32_MAX

typedef struct {
    uint32_t didx;  /* idx - ring base */
    uint32_t ref;   /* arena offset of the record, WM_THIN for a one-point bucket */
    double sum;     /* one point: the value itself (its sum is 0.0 + value) */
} wm_slot;

typedef struct {
    wm_slot *slots;
    uint32_t cap, start, n;
    uint32_t a_head, a_len, a_cap;
    uint8_t *arena;
    int64_t base;   /* slot indices are relative to it */
    int64_t gone;   /* every bucket with idx <= gone has been evicted */
} wm_ring;

typedef struct {
    int64_t idx;
    wm_sketch sk;
} wm_bucket;

typedef struct wm_series wm_series;

/* A result row of wm_core_buckets: the sketch is owned by the caller. */
typedef struct {
    int64_t idx;
    int closed;
    wm_sketch sk;
} wm_row;

typedef struct {
    wm_row *rows;
    int64_t n, cap;
} wm_rows;

typedef struct wm_core wm_core;

wm_core *wm_core_new(int nlevels, const double *widths, const int64_t *retention,
                     double lateness, double alpha, uint32_t max_bins);
void wm_core_free(wm_core *c);

/* Returns the new series id, or -1 when out of memory. */
int64_t wm_core_add_series(wm_core *c, int64_t exact_capacity);
int64_t wm_core_n_series(const wm_core *c);

/* One point; counts the outcome.  Returns the outcome code, or WM_ENOMEM. */
int wm_core_record(wm_core *c, int64_t sid, double v, double ts);
/* From now on wm_core_record refuses every point as WM_REC_CLOSED (the
 * caller refuses batches itself); reads keep working. */
void wm_core_close(wm_core *c);
/* Parallel arrays; counts[0..4] get the outcomes (also added to the core's).
 * Returns WM_OK or WM_ENOMEM (then the points before the failure are in). */
int wm_core_record_many(wm_core *c, int64_t n, const int64_t *sids, const double *ts,
                        const double *vals, int64_t counts[5]);
/* Index of the first point refused for a reason other than lateness, or -1. */
int64_t wm_core_first_invalid(const wm_core *c, int64_t n, const int64_t *sids,
                              const double *ts, const double *vals, int *code);
void wm_core_count(wm_core *c, int code, int64_t n);
const int64_t *wm_core_outcomes(const wm_core *c);

int wm_core_advance(wm_core *c, double now);   /* now must be finite */
double wm_core_watermark(const wm_core *c);

/* Merge of finest buckets lo <= idx < hi of the series into *acc (an
 * initialised sketch).  Ids must be valid (checked by the caller).  A query
 * of one series into an empty sketch goes through the sliding-window cache
 * (bounded, LRU; its bytes count in memory_bytes): same result, bit for bit. */
int wm_core_window(wm_core *c, int64_t n, const int64_t *sids, int64_t lo, int64_t hi,
                   wm_sketch *acc);
/* Buckets of one level; rows appended to *out (free with wm_rows_free). */
int wm_core_buckets(wm_core *c, int64_t sid, int level, int64_t lo, int64_t hi, wm_rows *out);
void wm_rows_free(wm_rows *r);

/* Exact raw-value ring and last value. */
void wm_core_exact(const wm_core *c, int64_t sid, int64_t *cap, int64_t *n, int64_t *head,
                   const double **ts, const double **vals);
void wm_core_last(const wm_core *c, int64_t sid, double *value, double *ts);

/* Outbox of closed buckets (only filled while enabled). */
void wm_core_set_outbox(wm_core *c, int enabled);
int wm_core_outbox_enabled(const wm_core *c);
typedef struct {
    int64_t n, cap;
    int64_t *sid, *idx, *count;
    int32_t *level;
    double *sum, *min, *max;
    uint8_t *collapses;
    uint64_t *body_off;
    uint32_t *body_len;
    uint8_t *bytes;
    uint64_t b_len, b_cap;
} wm_outbox;
/* Hands the outbox over (caller frees it with wm_outbox_free) and starts a new one. */
void wm_core_take_outbox(wm_core *c, wm_outbox *out);
void wm_outbox_free(wm_outbox *o);

/* Restart: put back a bucket an earlier run stored, as closed and already
 * stored (it does not enter the outbox), so that the open coarse bucket above
 * it resumes its content.  Call coarse levels first, oldest first, before any
 * point of the series; a parent this completes closes as usual.  Returns
 * WM_OK, WM_ENOMEM, or WM_EORDER (bad id, level or empty sketch, or not
 * newer than what the level holds). */
#define WM_EORDER (-3)
int wm_core_restore(wm_core *c, int64_t sid, int level, int64_t idx, const wm_sketch *sk);

/* Write-ahead log: every accepted point is appended (wal.h) to the segment
 * [base, base + cap) the caller has mapped, from offset pos, before it lands
 * in its bucket; a full segment makes record return WM_WAL_FULL (the point
 * not accepted).  base NULL turns the log off.  The core never does I/O. */
void wm_core_set_wal(wm_core *c, uint8_t *base, uint64_t cap, uint64_t pos, uint32_t salt);
void wm_core_wal_state(const wm_core *c, uint64_t *pos, double *max_ts);

int64_t wm_core_memory_bytes(const wm_core *c);
/* Where the bytes are (for tests and tuning): series blocks, open buckets,
 * then slots and arena bytes of levels 0, 1, 2 and 3+, coarse accumulators'
 * counts arrays, outbox, sliding-window cache. */
#define WM_MEM_PARTS 13
void wm_core_memory_breakdown(const wm_core *c, int64_t out[WM_MEM_PARTS]);

/* Floor division for any sign, as Python's //. */
static inline int64_t wm_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q -= 1;
    return q;
}

#endif
