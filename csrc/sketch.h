/* Relative-error quantile sketch (DDSketch mapping, UDDSketch uniform collapse).
 *
 * C99, no Python: the twin of wedmetrics/_kernels/_sketch_ref.py.  Every
 * float operation follows the reference's order so both agree bit for bit
 * (build with -ffp-contract=off, never -ffast-math).
 *
 * Two forms:
 *   wm_sketch  - dense and mutable: per sign a counts array around the used
 *                key range, grown by realloc; used while a bucket is open.
 *   body bytes - the frozen compact form (the codec "body", see _codec.py):
 *                varint zero count, then the negative and positive stores as
 *                varint n_bins + (zigzag first key | key delta, count) pairs.
 */
#ifndef WM_SKETCH_H
#define WM_SKETCH_H

#include <stddef.h>
#include <stdint.h>

/* Error codes (negative); the bindings turn them into exceptions. */
#define WM_OK 0
#define WM_ENOMEM (-1)
#define WM_EFORMAT (-2)

/* Codec limits, identical to _codec.py. */
#define WM_MAX_BINS_LIMIT (1u << 20)
#define WM_MAX_COLLAPSES 40
#define WM_KEY_LIMIT ((int64_t)1 << 40)
#define WM_MIN_ALPHA 1e-6
#define WM_HEADER_SIZE 50

#define WM_TRACKED 24
#define WM_UNTRACKED 255

/* Optional byte counter that every allocation of a sketch adds to. */
typedef int64_t wm_acct;

typedef struct {
    uint64_t *c;     /* counts; c[i] is key off + i */
    int64_t off;
    int64_t lo, hi;  /* non-empty key range; lo > hi when empty */
    uint32_t cap;
    uint32_t nb;     /* non-zero bins */
    /* While a store has few bins (the usual open 1 s bucket) it also lists
     * them, as key - tbase, so encoding and clearing cost O(bins) instead of
     * O(key span).  ntk == WM_UNTRACKED once the list overflowed. */
    int64_t tbase;
    int16_t tk[WM_TRACKED];
    uint8_t ntk;
    /* Small mode (open buckets of the core only): while sm is set the
     * counts live in tc next to tk and the dense array is not touched at
     * all; the store turns dense on the first bin that does not fit. */
    uint8_t sm, small_ok;
    uint32_t tc[WM_TRACKED];
} wm_store;

typedef struct {
    double base_alpha, log_gamma, mult;
    uint32_t max_bins;
    int collapses;
    wm_store pos, neg;
    uint64_t zero, count;
    double sum, min, max;
    wm_acct *acct;
} wm_sketch;

/* Once per process, before any other call (tables of the key mapping). */
void wm_sketch_global_init(void);

/* Parameters and lifecycle. */
void wm_sketch_init(wm_sketch *s, double alpha, uint32_t max_bins, wm_acct *acct);
void wm_sketch_free(wm_sketch *s);
void wm_sketch_clear(wm_sketch *s);   /* empty, keeps its buffers */
/* Let an (empty) sketch keep few bins in small mode.  Only for sketches
 * that are added to, encoded, merged from and cleared: quantile() and
 * bins() read the dense form. */
void wm_sketch_allow_small(wm_sketch *s);
int wm_sketch_copy(wm_sketch *dst, const wm_sketch *src);  /* dst uninitialised */

/* Building (values must be finite: the caller checks). */
int wm_sketch_add(wm_sketch *s, double v);
/* add(v) whose sum contribution is sumv: merging a one-point bucket adds its
 * sum (0.0 + v), which differs from v for v = -0.0. */
int wm_sketch_add_point(wm_sketch *s, double v, double sumv);
/* The key mapping on its own, for callers that add many values: mult of an
 * alpha (what wm_sketch_init sets), the base key of one value (0 for zero
 * and subnormals), of an array of values (any finite or not), and add(v)
 * given that key.  Results are identical to add(v). */
double wm_sketch_mult(double alpha);
int64_t wm_sketch_key(double mult, double v);
void wm_sketch_keys(double mult, int64_t n, const double *vals, int64_t *keys);
int wm_sketch_add_key(wm_sketch *s, double v, int64_t key);
int wm_sketch_merge(wm_sketch *s, const wm_sketch *o);
/* Merge a frozen body with its stats (trusted bytes made by this core). */
int wm_sketch_merge_body(wm_sketch *s, int collapses, uint64_t count, double sum, double mn,
                         double mx, const uint8_t *body, size_t len);

/* Undo a level-0 add or merge_body on a level-0 sketch that holds those
 * points (the core's sliding-window cache); count and bins only, the
 * other stats are left as they are. */
int wm_sketch_sub_point(wm_sketch *s, double v);
int wm_sketch_sub_body(wm_sketch *s, uint64_t count, const uint8_t *body, size_t len);

/* Reading. */
double wm_sketch_quantile(const wm_sketch *s, double q);
/* Several at once: out[i] = wm_sketch_quantile(s, qs[i]), with at most one
 * walk up and one walk down the bins. */
#define WM_MAX_QUANTILES 32
void wm_sketch_quantiles(const wm_sketch *s, int n, const double *qs, double *out);
double wm_sketch_alpha(const wm_sketch *s);
uint32_t wm_sketch_num_bins(const wm_sketch *s);
double wm_representative(int64_t key, double log_gamma, int collapses);

/* Bytes.  *_bound gives a buffer size that always suffices. */
size_t wm_sketch_body_bound(const wm_sketch *s);
size_t wm_sketch_body_encode(const wm_sketch *s, uint8_t *out);
void wm_header_encode(uint8_t *out, double alpha, uint32_t max_bins, int collapses,
                      uint64_t count, double sum, double mn, double mx);
/* Full decode of header + body with every check of _codec.py.  On success
 * *s is initialised (free it); on failure it is not, and *err names why. */
int wm_sketch_decode(wm_sketch *s, const uint8_t *buf, size_t len, wm_acct *acct,
                     const char **err);

/* Varints, shared with the core. */
size_t wm_put_varint(uint8_t *out, uint64_t n);
int wm_get_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out);

#endif
