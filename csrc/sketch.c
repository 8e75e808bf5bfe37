/* Relative-error quantile sketch; see sketch.h and _sketch_ref.py (the spec). */
#include "sketch.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocation with accounting ------------------------------------- */

static void *acct_realloc(wm_acct *acct, void *p, size_t old, size_t new_size)
{
    void *q = realloc(p, new_size);
    if (q && acct)
        *acct += (int64_t)new_size - (int64_t)old;
    return q;
}

static void acct_free(wm_acct *acct, void *p, size_t size)
{
    if (p) {
        free(p);
        if (acct)
            *acct -= (int64_t)size;
    }
}

/* ceil(k / 2^c) for any integer k: -((-k) >> c), arithmetic shift. */
static inline int64_t shift_key(int64_t k, int c)
{
    if (c <= 0)
        return k;
    if (c > 62)
        return k > 0 ? 1 : 0;
    return -((-k) >> c);
}

/* ---- key mapping ------------------------------------------------------
 * The key of a magnitude m is ceil(log(m) * mult), with libm's log: the
 * reference computes exactly that.  log() is most of the cost of add(), so
 * y = log(m) * mult is first estimated without it: m = 2^e * x with x in
 * [1, 2), log(x) = log(c_i) + log(x / c_i) for c_i the centre of x's
 * 1/256th of [1, 2), and |x / c_i - 1| < 2^-9 leaves a degree-4 series
 * whose truncation error is below 1e-14.  The estimate is within `slack`
 * of libm's y (the bound is in base_key); when its ceiling could differ -
 * y within that slack of an integer, about one value in 10^8 at the
 * default alpha - the key comes from libm's log itself, so keys are always
 * exactly the reference's. */
#define LOGTAB_BITS 8
static double logtab_inv[1 << LOGTAB_BITS], logtab_log[1 << LOGTAB_BITS];
static int logtab_ready;

void wm_sketch_global_init(void)
{
    if (logtab_ready)
        return;
    for (int i = 0; i < (1 << LOGTAB_BITS); i++) {
        double c = 1.0 + (i + 0.5) / (double)(1 << LOGTAB_BITS);
        logtab_inv[i] = 1.0 / c;
        logtab_log[i] = log(c);
    }
    logtab_ready = 1;
}

static inline int64_t exact_key(double magnitude, double mult)
{
    return (int64_t)ceil(log(magnitude) * mult);
}

/* m must be normal, positive and finite (add() checks). */
static inline int64_t base_key(double m, double mult)
{
    uint64_t bits;
    memcpy(&bits, &m, sizeof bits);
    int e = (int)(bits >> 52) - 1023;
    uint64_t mant = bits & ((UINT64_C(1) << 52) - 1);
    int i = (int)(mant >> (52 - LOGTAB_BITS));
    uint64_t xbits = mant | (UINT64_C(1023) << 52);
    double x;
    memcpy(&x, &xbits, sizeof x);
    double r = x * logtab_inv[i] - 1.0;
    double r2 = r * r;
    double lr = r - r2 * 0.5 + r2 * r * (1.0 / 3.0) - r2 * r2 * 0.25;
    double y = ((double)e * 0.69314718055994530942 + (logtab_log[i] + lr)) * mult;
    /* |estimate - libm| <= mult * (|e| * 2^-53 ln2 + 1e-14 + 1.5 ulp(log m)) + ulp(y)
     * < 2e-14 * mult * (1 + |log m|) with |log m| < 745: the slack keeps a 5x
     * margin over that (a constant, so it is off the critical path). */
    double slack = mult * 7.5e-11;
    int64_t k = (int64_t)y;          /* |y| < 2^40: mult <= 1/(2e-6), |log m| < 745 */
    k += (double)k < y;              /* ceil without libm */
    double gap = (double)k - y;      /* in [0, 1) */
    if (gap > slack && gap < 1.0 - slack)
        return k;
    return exact_key(m, mult);
}

static inline size_t put_varint(uint8_t *out, uint64_t n)
{
    size_t i = 0;
    while (n >= 0x80) {
        out[i++] = (uint8_t)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    out[i++] = (uint8_t)n;
    return i;
}

/* ---- store ------------------------------------------------------------ */

static inline int store_empty(const wm_store *st) { return st->lo > st->hi; }

static inline int64_t store_span(const wm_store *st)
{
    return store_empty(st) ? 0 : st->hi - st->lo + 1;
}

static void store_init(wm_store *st)
{
    st->c = NULL;
    st->off = 0;
    st->lo = 1;
    st->hi = 0;
    st->cap = 0;
    st->nb = 0;
    st->ntk = 0;
    st->tbase = 0;
    for (int i = 0; i < WM_TRACKED; i++)
        st->tk[i] = INT16_MAX;           /* add_small's sentinels */
    st->sm = 0;
    st->small_ok = 0;
}

static void store_free(wm_store *st, wm_acct *acct)
{
    acct_free(acct, st->c, (size_t)st->cap * sizeof(uint64_t));
    store_init(st);
}

static void store_clear(wm_store *st)
{
    if (st->sm) {
        /* nothing in the dense array */
    } else if (st->ntk != WM_UNTRACKED) {
        for (int i = 0; i < st->ntk; i++)
            st->c[st->tbase + st->tk[i] - st->off] = 0;
    } else if (!store_empty(st)) {
        memset(st->c + (st->lo - st->off), 0, (size_t)(st->hi - st->lo + 1) * sizeof(uint64_t));
    }
    /* unused list entries are INT16_MAX (add_small counts keys below d) */
    int used = st->ntk == WM_UNTRACKED ? WM_TRACKED : st->ntk;
    for (int i = 0; i < used; i++)
        st->tk[i] = INT16_MAX;
    st->lo = 1;
    st->hi = 0;
    st->nb = 0;
    st->ntk = 0;
    st->sm = st->small_ok;
}

/* A bin of key k turns non-empty. */
static inline void store_track(wm_store *st, int64_t k)
{
    st->nb++;
    if (st->ntk < WM_TRACKED) {
        if (st->ntk == 0)
            st->tbase = k;
        int64_t d = k - st->tbase;
        if (d >= INT16_MIN && d <= INT16_MAX) {
            st->tk[st->ntk++] = (int16_t)d;
            return;
        }
    }
    st->ntk = WM_UNTRACKED;
}

/* Make keys [a, b] addressable (a <= b), keeping the content. */
static int store_reserve(wm_store *st, int64_t a, int64_t b, wm_acct *acct)
{
    if (st->cap && a >= st->off && b < st->off + (int64_t)st->cap)
        return WM_OK;
    int empty = store_empty(st);
    int64_t lo = empty ? a : (a < st->lo ? a : st->lo);
    int64_t hi = empty ? b : (b > st->hi ? b : st->hi);
    int64_t need = hi - lo + 1;
    if (need > (int64_t)(WM_MAX_BINS_LIMIT) * 4 + 64)
        return WM_ENOMEM;   /* cannot happen with bounded spans; refuse instead of thrashing */
    /* slack goes on the side that grew, so a drifting range reallocates rarely */
    if (need <= (int64_t)st->cap) {
        int64_t noff = (!empty && a < st->lo) ? hi + 1 - (int64_t)st->cap : lo;
        if (!empty) {
            size_t n = (size_t)(st->hi - st->lo + 1);
            uint64_t *src = st->c + (st->lo - st->off);
            uint64_t *dst = st->c + (st->lo - noff);
            memmove(dst, src, n * sizeof(uint64_t));
            /* zero what the move uncovered */
            if (dst > src)
                memset(src, 0, (size_t)(dst - src < (ptrdiff_t)n ? dst - src : (ptrdiff_t)n) * sizeof(uint64_t));
            else if (dst < src) {
                size_t gap = (size_t)(src - dst);
                uint64_t *tail = src + n - (gap < n ? gap : n);
                memset(tail, 0, (gap < n ? gap : n) * sizeof(uint64_t));
            }
        }
        st->off = noff;
        return WM_OK;
    }
    uint32_t ncap = st->cap ? st->cap : 8;
    while ((int64_t)ncap < need)
        ncap *= 2;
    uint64_t *nc = acct_realloc(acct, NULL, 0, (size_t)ncap * sizeof(uint64_t));
    if (!nc)
        return WM_ENOMEM;
    memset(nc, 0, (size_t)ncap * sizeof(uint64_t));
    int64_t noff = (!empty && a < st->lo) ? hi + 1 - (int64_t)ncap : lo;
    if (!empty)
        memcpy(nc + (st->lo - noff), st->c + (st->lo - st->off),
               (size_t)(st->hi - st->lo + 1) * sizeof(uint64_t));
    acct_free(acct, st->c, (size_t)st->cap * sizeof(uint64_t));
    st->c = nc;
    st->cap = ncap;
    st->off = noff;
    return WM_OK;
}

/* Leave small mode: counts move into the dense array (tk stays valid). */
static int store_densify(wm_store *st, wm_acct *acct)
{
    if (!st->sm)
        return WM_OK;
    if (st->nb) {
        int64_t lo = st->lo, hi = st->hi;
        st->lo = 1;   /* the dense array holds nothing yet */
        st->hi = 0;
        int rc = store_reserve(st, lo, hi, acct);
        st->lo = lo;
        st->hi = hi;
        if (rc)
            return rc;
        for (uint32_t i = 0; i < st->nb; i++)
            st->c[st->tbase + st->tk[i] - st->off] = st->tc[i];
    }
    st->sm = 0;
    return WM_OK;
}

/* Add c to key k; the key must be reserved. */
static inline void store_put(wm_store *st, int64_t k, uint64_t c)
{
    if (st->c[k - st->off] == 0)
        store_track(st, k);
    st->c[k - st->off] += c;
    if (st->lo > st->hi) {
        st->lo = st->hi = k;
    } else if (k < st->lo) {
        st->lo = k;
    } else if (k > st->hi) {
        st->hi = k;
    }
}

static inline int store_add(wm_store *st, int64_t k, uint64_t c, wm_acct *acct)
{
    if (!(st->cap && k >= st->off && k < st->off + (int64_t)st->cap)) {
        int rc = store_reserve(st, k, k, acct);
        if (rc)
            return rc;
    }
    store_put(st, k, c);
    return WM_OK;
}

/* Every key k becomes ceil(k / 2^d); in place (targets never pass sources). */
static void store_collapse(wm_store *st, int d)
{
    if (d <= 0 || store_empty(st))
        return;
    int64_t nlo = shift_key(st->lo, d), nhi = shift_key(st->hi, d);
    uint32_t nb = 0;
    for (int64_t k = st->lo; k <= st->hi; k++) {
        uint64_t x = st->c[k - st->off];
        if (!x)
            continue;
        st->c[k - st->off] = 0;
        nb += st->c[shift_key(k, d) - nlo] == 0;
        st->c[shift_key(k, d) - nlo] += x;
    }
    st->nb = nb;
    st->ntk = WM_UNTRACKED;   /* keys moved; clear and encode scan the span */
    st->off = nlo;
    st->lo = nlo;
    st->hi = nhi;
}

/* ---- sketch ----------------------------------------------------------- */

void wm_sketch_init(wm_sketch *s, double alpha, uint32_t max_bins, wm_acct *acct)
{
    wm_sketch_global_init();   /* no-op after the first call (the module's import) */
    s->base_alpha = alpha;
    s->log_gamma = log((1.0 + alpha) / (1.0 - alpha));
    s->mult = wm_sketch_mult(alpha);
    s->max_bins = max_bins;
    s->collapses = 0;
    store_init(&s->pos);
    store_init(&s->neg);
    s->zero = 0;
    s->count = 0;
    s->sum = 0.0;
    s->min = INFINITY;
    s->max = -INFINITY;
    s->acct = acct;
}

void wm_sketch_free(wm_sketch *s)
{
    store_free(&s->pos, s->acct);
    store_free(&s->neg, s->acct);
}

void wm_sketch_clear(wm_sketch *s)
{
    store_clear(&s->pos);
    store_clear(&s->neg);
    s->collapses = 0;
    s->zero = 0;
    s->count = 0;
    s->sum = 0.0;
    s->min = INFINITY;
    s->max = -INFINITY;
}

int wm_sketch_copy(wm_sketch *dst, const wm_sketch *src)
{
    *dst = *src;
    store_init(&dst->pos);
    store_init(&dst->neg);
    const wm_store *ss[2] = {&src->pos, &src->neg};
    wm_store *ds[2] = {&dst->pos, &dst->neg};
    for (int i = 0; i < 2; i++) {
        ds[i]->small_ok = ss[i]->small_ok;
        ds[i]->sm = ss[i]->sm;
        if (ss[i]->sm) {   /* the small form is all in the struct */
            memcpy(ds[i]->tk, ss[i]->tk, sizeof(ss[i]->tk));
            memcpy(ds[i]->tc, ss[i]->tc, sizeof(ss[i]->tc));
            ds[i]->tbase = ss[i]->tbase;
            ds[i]->nb = ss[i]->nb;
            ds[i]->ntk = ss[i]->ntk;
            ds[i]->lo = ss[i]->lo;
            ds[i]->hi = ss[i]->hi;
            continue;
        }
        if (store_empty(ss[i]))
            continue;
        if (store_reserve(ds[i], ss[i]->lo, ss[i]->hi, dst->acct)) {
            wm_sketch_free(dst);
            return WM_ENOMEM;
        }
        memcpy(ds[i]->c + (ss[i]->lo - ds[i]->off), ss[i]->c + (ss[i]->lo - ss[i]->off),
               (size_t)(ss[i]->hi - ss[i]->lo + 1) * sizeof(uint64_t));
        ds[i]->lo = ss[i]->lo;
        ds[i]->hi = ss[i]->hi;
        ds[i]->nb = ss[i]->nb;
        ds[i]->ntk = WM_UNTRACKED;
    }
    return WM_OK;
}

static int collapse_to(wm_sketch *s, int level)
{
    int d = level - s->collapses;
    if (d > 0) {
        if (store_densify(&s->pos, s->acct) || store_densify(&s->neg, s->acct))
            return WM_ENOMEM;
        store_collapse(&s->pos, d);
        store_collapse(&s->neg, d);
        s->collapses = level;
    }
    return WM_OK;
}

void wm_sketch_allow_small(wm_sketch *s)
{
    s->pos.small_ok = s->neg.small_ok = 1;
    if (store_empty(&s->pos) && !s->pos.c)
        s->pos.sm = 1;
    if (store_empty(&s->neg) && !s->neg.c)
        s->neg.sm = 1;
}

static int add_outside(wm_sketch *s, wm_store *st, int64_t k);

/* add() of key k to a store in small mode.  The list is kept sorted by key,
 * so a closing bucket encodes it as it is. */
static int add_small(wm_sketch *s, wm_store *st, int64_t k)
{
    uint32_t n = st->nb;
    int64_t d = k - st->tbase;
    int fits16 = d >= INT16_MIN && d <= INT16_MAX;
    uint32_t at = 0;
    if (n && fits16) {
        /* position among the sorted keys: a fixed-length count the compiler
         * turns into a few vector compares, no mispredicted loop exit
         * (entries past n are INT16_MAX, which no key is below) */
        int16_t dd = (int16_t)d;
        int cnt = 0;
        for (int i = 0; i < WM_TRACKED; i++)
            cnt += st->tk[i] < dd;
        at = (uint32_t)cnt;
        if (at < n && st->tk[at] == (int16_t)d) {
            if (st->tc[at] == UINT32_MAX)
                goto dense;
            st->tc[at]++;
            return WM_OK;
        }
    }
    if (n < WM_TRACKED && (n == 0 || fits16)) {
        int64_t lo = n == 0 || k < st->lo ? k : st->lo;
        int64_t hi = n == 0 || k > st->hi ? k : st->hi;
        const wm_store *other = st == &s->pos ? &s->neg : &s->pos;
        if (hi - lo + 1 + store_span(other) <= (int64_t)s->max_bins) {
            if (n == 0) {
                st->tbase = k;
                d = 0;
            }
            for (uint32_t i = n; i > at; i--) {
                st->tk[i] = st->tk[i - 1];
                st->tc[i] = st->tc[i - 1];
            }
            st->tk[at] = (int16_t)d;
            st->tc[at] = 1;
            st->nb = n + 1;
            st->ntk = (uint8_t)(n + 1);
            st->lo = lo;
            st->hi = hi;
            return WM_OK;
        }
    }
dense:
    if (store_densify(st, s->acct))
        return WM_ENOMEM;
    if (st->lo <= k && k <= st->hi) {
        uint64_t *cell = &st->c[k - st->off];
        if (*cell == 0)
            store_track(st, k);
        *cell += 1;
        return WM_OK;
    }
    return add_outside(s, st, k);
}

int wm_sketch_add(wm_sketch *s, double v) { return wm_sketch_add_point(s, v, v); }

/* |v| is a zero bin's: zero or subnormal. */
static inline int is_zero_bin(double v) { return !(fabs(v) >= DBL_MIN); }

double wm_sketch_mult(double alpha) { return 1.0 / log((1.0 + alpha) / (1.0 - alpha)); }

int64_t wm_sketch_key(double mult, double v)
{
    return is_zero_bin(v) ? 0 : base_key(fabs(v), mult);
}

void wm_sketch_keys(double mult, int64_t n, const double *vals, int64_t *keys)
{
    /* a loop of independent estimates: the CPU overlaps them */
    for (int64_t i = 0; i < n; i++) {
        double m = fabs(vals[i]);
        keys[i] = m >= DBL_MIN && m <= DBL_MAX ? base_key(m, mult) : 0;
    }
}

static inline int add_keyed(wm_sketch *s, double v, double sumv, int64_t key)
{
    s->count += 1;
    s->sum += sumv;
    if (v < s->min)
        s->min = v;
    if (v > s->max)
        s->max = v;
    if (is_zero_bin(v)) {
        s->zero += 1;
        return WM_OK;
    }
    wm_store *st = v > 0.0 ? &s->pos : &s->neg;
    int64_t k = shift_key(key, s->collapses);
    if (st->sm)
        return add_small(s, st, k);
    if (st->lo <= k && k <= st->hi) {   /* the common case: inside the used range */
        uint64_t *cell = &st->c[k - st->off];
        if (*cell == 0)
            store_track(st, k);
        *cell += 1;
        return WM_OK;
    }
    return add_outside(s, st, k);
}

int wm_sketch_add_key(wm_sketch *s, double v, int64_t key) { return add_keyed(s, v, v, key); }

int wm_sketch_add_point(wm_sketch *s, double v, double sumv)
{
    return add_keyed(s, v, sumv, wm_sketch_key(s->mult, v));
}

/* Smallest level >= start at which the union of key ranges fits max_bins.
 * Ranges are given at their own levels (a_* at la, b_* at lb); empty when lo > hi. */
static int fit_level(int start, uint32_t max_bins, const int64_t *alo, const int64_t *ahi,
                     int la, const int64_t *blo, const int64_t *bhi, int lb)
{
    int L = start;
    for (;;) {
        int64_t total = 0;
        for (int i = 0; i < 2; i++) {
            int ea = alo[i] > ahi[i], eb = blo[i] > bhi[i];
            if (ea && eb)
                continue;
            int64_t lo, hi;
            if (ea) {
                lo = shift_key(blo[i], L - lb);
                hi = shift_key(bhi[i], L - lb);
            } else if (eb) {
                lo = shift_key(alo[i], L - la);
                hi = shift_key(ahi[i], L - la);
            } else {
                int64_t l1 = shift_key(alo[i], L - la), l2 = shift_key(blo[i], L - lb);
                int64_t h1 = shift_key(ahi[i], L - la), h2 = shift_key(bhi[i], L - lb);
                lo = l1 < l2 ? l1 : l2;
                hi = h1 > h2 ? h1 : h2;
            }
            total += hi - lo + 1;
        }
        if (total <= (int64_t)max_bins)
            return L;
        L++;
    }
}

/* A key outside the used range: collapse first to the level the new span
 * needs (adding then collapsing, as the reference does, gives the same keys
 * since ceil(ceil(k/2^a)/2^b) = ceil(k/2^(a+b))), then add. */
static int add_outside(wm_sketch *s, wm_store *st, int64_t k)
{
    int is_pos = st == &s->pos;
    /* the usual case: the widened span still fits, no collapse */
    int64_t lo = store_empty(st) || k < st->lo ? k : st->lo;
    int64_t hi = store_empty(st) || k > st->hi ? k : st->hi;
    if (hi - lo + 1 + store_span(is_pos ? &s->neg : &s->pos) <= (int64_t)s->max_bins)
        return store_add(st, k, 1, s->acct);
    int64_t alo[2] = {s->pos.lo, s->neg.lo}, ahi[2] = {s->pos.hi, s->neg.hi};
    int64_t blo[2] = {is_pos ? k : 1, is_pos ? 1 : k}, bhi[2] = {is_pos ? k : 0, is_pos ? 0 : k};
    int L = fit_level(s->collapses, s->max_bins, alo, ahi, s->collapses, blo, bhi, s->collapses);
    int d = L - s->collapses;
    if (collapse_to(s, L))
        return WM_ENOMEM;
    return store_add(st, shift_key(k, d), 1, s->acct);
}

static void merge_stats(wm_sketch *s, uint64_t zero, uint64_t count, double sum, double mn,
                        double mx)
{
    s->zero += zero;
    s->count += count;
    s->sum += sum;
    if (mn < s->min)
        s->min = mn;
    if (mx > s->max)
        s->max = mx;
}

/* merge() into an empty dense sketch that can hold o's key ranges as they
 * are: the general path would put o's bins one by one into the same cells. */
static int merge_into_empty(wm_sketch *s, const wm_sketch *o)
{
    const wm_store *os[2] = {&o->pos, &o->neg};
    wm_store *ss[2] = {&s->pos, &s->neg};
    s->collapses = o->collapses;
    for (int i = 0; i < 2; i++) {
        const wm_store *src = os[i];
        wm_store *dst = ss[i];
        if (store_empty(src))
            continue;
        if (store_reserve(dst, src->lo, src->hi, s->acct))
            return WM_ENOMEM;
        memcpy(dst->c + (src->lo - dst->off), src->c + (src->lo - src->off),
               (size_t)(src->hi - src->lo + 1) * sizeof(uint64_t));
        dst->lo = src->lo;
        dst->hi = src->hi;
        dst->nb = src->nb;
        dst->ntk = WM_UNTRACKED;   /* clear and encode scan the span */
    }
    merge_stats(s, o->zero, o->count, o->sum, o->min, o->max);
    return WM_OK;
}

/* store_put of every non-zero bin of a dense src into dst at the same
 * collapse level, as one branch-free loop: dst no longer lists its bins
 * (ntk == WM_UNTRACKED) and src's range is reserved in it. */
static void merge_dense_same_level(wm_store *dst, const wm_store *src)
{
    int64_t a = src->lo, b = src->hi;
    while (a <= b && src->c[a - src->off] == 0)   /* edges a subtraction emptied */
        a++;
    while (b >= a && src->c[b - src->off] == 0)
        b--;
    if (a > b)
        return;
    const uint64_t *sp = src->c + (a - src->off);
    uint64_t *dp = dst->c + (a - dst->off);
    uint32_t added = 0;
    for (int64_t j = 0; j <= b - a; j++) {
        added += (dp[j] == 0) & (sp[j] != 0);
        dp[j] += sp[j];
    }
    dst->nb += added;
    if (dst->lo > dst->hi) {
        dst->lo = a;
        dst->hi = b;
    } else {
        if (a < dst->lo)
            dst->lo = a;
        if (b > dst->hi)
            dst->hi = b;
    }
}

int wm_sketch_merge(wm_sketch *s, const wm_sketch *o)
{
    if (o->count == 0)
        return WM_OK;
    if (s->count == 0 && s->collapses == 0 && !s->pos.sm && !s->neg.sm && !o->pos.sm &&
        !o->neg.sm && store_empty(&s->pos) && store_empty(&s->neg) &&
        store_span(&o->pos) + store_span(&o->neg) <= (int64_t)s->max_bins)
        return merge_into_empty(s, o);
    int64_t alo[2] = {s->pos.lo, s->neg.lo}, ahi[2] = {s->pos.hi, s->neg.hi};
    int64_t blo[2] = {o->pos.lo, o->neg.lo}, bhi[2] = {o->pos.hi, o->neg.hi};
    int start = s->collapses > o->collapses ? s->collapses : o->collapses;
    int L = fit_level(start, s->max_bins, alo, ahi, s->collapses, blo, bhi, o->collapses);
    if (store_densify(&s->pos, s->acct) || store_densify(&s->neg, s->acct) || collapse_to(s, L))
        return WM_ENOMEM;
    int d = L - o->collapses;
    const wm_store *os[2] = {&o->pos, &o->neg};
    wm_store *ss[2] = {&s->pos, &s->neg};
    for (int i = 0; i < 2; i++) {
        const wm_store *src = os[i];
        if (store_empty(src))
            continue;
        if (store_reserve(ss[i], shift_key(src->lo, d), shift_key(src->hi, d), s->acct))
            return WM_ENOMEM;
        if (src->sm) {
            for (uint32_t j = 0; j < src->nb; j++)
                store_put(ss[i], shift_key(src->tbase + src->tk[j], d), src->tc[j]);
            continue;
        }
        if (d == 0 && ss[i]->ntk == WM_UNTRACKED) {
            merge_dense_same_level(ss[i], src);
            continue;
        }
        for (int64_t k = src->lo; k <= src->hi; k++) {
            uint64_t x = src->c[k - src->off];
            if (x)
                store_put(ss[i], shift_key(k, d), x);
        }
    }
    merge_stats(s, o->zero, o->count, o->sum, o->min, o->max);
    return WM_OK;
}

/* ---- varints and body ---------------------------------------------------- */

size_t wm_put_varint(uint8_t *out, uint64_t n) { return put_varint(out, n); }

int wm_get_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
{
    uint64_t result = 0;
    size_t p = *pos;
    for (int i = 0; i < 10; i++) {
        if (p >= len)
            return WM_EFORMAT;
        uint8_t b = buf[p++];
        if (i == 9 && (b & 0x7F) > 1 && !(b & 0x80))
            return WM_EFORMAT;   /* overflows 64 bits */
        result |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *pos = p;
            *out = result;
            return WM_OK;
        }
    }
    return WM_EFORMAT;           /* longer than 10 bytes */
}

static inline uint64_t zigzag(int64_t n)
{
    return n >= 0 ? (uint64_t)n << 1 : (((uint64_t)(-(n + 1))) << 1) + 1;
}

static inline int64_t unzigzag(uint64_t z)
{
    return (z & 1) ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
}

static inline uint32_t store_nbins(const wm_store *st) { return st->nb; }

uint32_t wm_sketch_num_bins(const wm_sketch *s)
{
    return store_nbins(&s->pos) + store_nbins(&s->neg);
}

size_t wm_sketch_body_bound(const wm_sketch *s)
{
    return 30 + 20 * ((size_t)store_span(&s->pos) + (size_t)store_span(&s->neg));
}

static size_t encode_store(const wm_store *st, uint8_t *out)
{
    size_t p = put_varint(out, st->nb);
    if (!st->nb)
        return p;
    if (st->sm) {
        /* small mode: the list is sorted already */
        int64_t prev = 0;
        for (int i = 0; i < st->ntk; i++) {
            int64_t k = st->tbase + st->tk[i];
            p += put_varint(out + p, i == 0 ? zigzag(k) : (uint64_t)(k - prev));
            p += put_varint(out + p, st->tc[i]);
            prev = k;
        }
        return p;
    }
    if (st->ntk != WM_UNTRACKED) {
        /* few bins: sort their list (insertion sort of <= 12) */
        int16_t d[WM_TRACKED];
        uint64_t cnt[WM_TRACKED];
        int n = st->ntk;
        for (int i = 0; i < n; i++) {
            int16_t x = st->tk[i];
            uint64_t y = st->sm ? st->tc[i] : st->c[st->tbase + x - st->off];
            int j = i;
            while (j > 0 && d[j - 1] > x) {
                d[j] = d[j - 1];
                cnt[j] = cnt[j - 1];
                j--;
            }
            d[j] = x;
            cnt[j] = y;
        }
        int64_t prev = 0;
        for (int i = 0; i < n; i++) {
            int64_t k = st->tbase + d[i];
            p += put_varint(out + p, i == 0 ? zigzag(k) : (uint64_t)(k - prev));
            p += put_varint(out + p, cnt[i]);
            prev = k;
        }
        return p;
    }
    const uint64_t *c = st->c;
    const int64_t off = st->off;
    int64_t k = st->lo, hi = st->hi, prev = k;
    /* lo is a non-empty bin by definition */
    p += put_varint(out + p, zigzag(k));
    p += put_varint(out + p, c[k - off]);
    for (k = k + 1; k <= hi; k++) {
        uint64_t x = c[k - off];
        if (!x)
            continue;
        p += put_varint(out + p, (uint64_t)(k - prev));
        p += put_varint(out + p, x);
        prev = k;
    }
    return p;
}

size_t wm_sketch_body_encode(const wm_sketch *s, uint8_t *out)
{
    size_t p = put_varint(out, s->zero);
    p += encode_store(&s->neg, out + p);
    p += encode_store(&s->pos, out + p);
    return p;
}

/* One pass over a store of a body: validates like _codec.decode_store and
 * reports n, first and last key and the total count (0 when it overflows). */
typedef struct {
    uint64_t n;
    int64_t first, last;
    uint64_t total;
    int overflow;
    size_t start;   /* position of the first pair */
} store_scan;

static int scan_store(const uint8_t *buf, size_t len, size_t *pos, uint64_t limit,
                      store_scan *sc)
{
    if (wm_get_varint(buf, len, pos, &sc->n))
        return WM_EFORMAT;
    if (sc->n > limit)
        return WM_EFORMAT;
    sc->start = *pos;
    sc->total = 0;
    sc->overflow = 0;
    sc->first = 1;
    sc->last = 0;
    int64_t prev = 0;
    for (uint64_t i = 0; i < sc->n; i++) {
        uint64_t step, c;
        if (wm_get_varint(buf, len, pos, &step) || wm_get_varint(buf, len, pos, &c))
            return WM_EFORMAT;
        int64_t k;
        if (i == 0) {
            k = unzigzag(step);
        } else {
            if (step == 0 || step > (uint64_t)(2 * WM_KEY_LIMIT))
                return WM_EFORMAT;
            k = prev + (int64_t)step;
        }
        if (k > WM_KEY_LIMIT || k < -WM_KEY_LIMIT || c == 0)
            return WM_EFORMAT;
        if (sc->total + c < sc->total)
            sc->overflow = 1;
        sc->total += c;
        if (i == 0)
            sc->first = k;
        sc->last = k;
        prev = k;
    }
    return WM_OK;
}

/* Add a scanned (valid) store's pairs, keys shifted by d; range reserved by caller. */
static void load_store(wm_store *st, const uint8_t *buf, size_t len, const store_scan *sc, int d)
{
    size_t p = sc->start;
    int64_t prev = 0;
    for (uint64_t i = 0; i < sc->n; i++) {
        uint64_t step = 0, c = 0;
        wm_get_varint(buf, len, &p, &step);
        wm_get_varint(buf, len, &p, &c);
        int64_t k = i == 0 ? unzigzag(step) : prev + (int64_t)step;
        store_put(st, shift_key(k, d), c);
        prev = k;
    }
}

static int merge_body_scanned(wm_sketch *s, int collapses, uint64_t count, double sum, double mn,
                         double mx, const uint8_t *body, size_t len)
{
    if (count == 0)
        return WM_OK;
    size_t p = 0;
    uint64_t zero;
    store_scan neg, pos;
    if (wm_get_varint(body, len, &p, &zero) || scan_store(body, len, &p, UINT64_MAX, &neg) ||
        scan_store(body, len, &p, UINT64_MAX, &pos))
        return WM_EFORMAT;
    int64_t alo[2] = {s->pos.lo, s->neg.lo}, ahi[2] = {s->pos.hi, s->neg.hi};
    int64_t blo[2] = {pos.n ? pos.first : 1, neg.n ? neg.first : 1};
    int64_t bhi[2] = {pos.n ? pos.last : 0, neg.n ? neg.last : 0};
    int start = s->collapses > collapses ? s->collapses : collapses;
    int L = fit_level(start, s->max_bins, alo, ahi, s->collapses, blo, bhi, collapses);
    if (store_densify(&s->pos, s->acct) || store_densify(&s->neg, s->acct) || collapse_to(s, L))
        return WM_ENOMEM;
    int d = L - collapses;
    if (pos.n) {
        if (store_reserve(&s->pos, shift_key(pos.first, d), shift_key(pos.last, d), s->acct))
            return WM_ENOMEM;
        load_store(&s->pos, body, len, &pos, d);
    }
    if (neg.n) {
        if (store_reserve(&s->neg, shift_key(neg.first, d), shift_key(neg.last, d), s->acct))
            return WM_ENOMEM;
        load_store(&s->neg, body, len, &neg, d);
    }
    merge_stats(s, zero, count, sum, mn, mx);
    return WM_OK;
}

/* A varint of bytes this library wrote (no bounds or overflow checks). */
static inline uint64_t get_varint_trusted(const uint8_t *buf, size_t *pos)
{
    size_t p = *pos;
    uint8_t b = buf[p++];
    uint64_t r = b & 0x7F;
    for (int sh = 7; b & 0x80; sh += 7) {
        b = buf[p++];
        r |= (uint64_t)(b & 0x7F) << sh;
    }
    *pos = p;
    return r;
}

/* One store of a trusted body, decoded once into keys/counts (room for
 * MERGE_PAIRS pairs); returns the number of pairs, or -1 when they do not fit. */
#define MERGE_PAIRS 256
static int64_t decode_pairs(const uint8_t *buf, size_t *pos, int64_t *keys, uint64_t *counts)
{
    uint64_t n = get_varint_trusted(buf, pos);
    if (n > MERGE_PAIRS)
        return -1;
    int64_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t step = get_varint_trusted(buf, pos);
        k = i == 0 ? unzigzag(step) : k + (int64_t)step;
        keys[i] = k;
        counts[i] = get_varint_trusted(buf, pos);
    }
    return (int64_t)n;
}

int wm_sketch_merge_body(wm_sketch *s, int collapses, uint64_t count, double sum, double mn,
                         double mx, const uint8_t *body, size_t len)
{
    if (count == 0)
        return WM_OK;
    /* bodies of the core's closed buckets are small: one decoding pass into
     * the stack; larger ones are scanned for their key range, then loaded */
    int64_t keys[2][MERGE_PAIRS];
    uint64_t cnts[2][MERGE_PAIRS];
    size_t p = 0;
    uint64_t zero = get_varint_trusted(body, &p);
    int64_t nn = decode_pairs(body, &p, keys[1], cnts[1]);
    int64_t np = nn < 0 ? -1 : decode_pairs(body, &p, keys[0], cnts[0]);
    if (np < 0)
        return merge_body_scanned(s, collapses, count, sum, mn, mx, body, len);
    int64_t n[2] = {np, nn};
    int64_t alo[2] = {s->pos.lo, s->neg.lo}, ahi[2] = {s->pos.hi, s->neg.hi};
    int64_t blo[2] = {np ? keys[0][0] : 1, nn ? keys[1][0] : 1};
    int64_t bhi[2] = {np ? keys[0][np - 1] : 0, nn ? keys[1][nn - 1] : 0};
    int start = s->collapses > collapses ? s->collapses : collapses;
    int L = fit_level(start, s->max_bins, alo, ahi, s->collapses, blo, bhi, collapses);
    if (store_densify(&s->pos, s->acct) || store_densify(&s->neg, s->acct) || collapse_to(s, L))
        return WM_ENOMEM;
    int d = L - collapses;
    wm_store *ss[2] = {&s->pos, &s->neg};
    for (int i = 0; i < 2; i++) {
        if (!n[i])
            continue;
        if (store_reserve(ss[i], shift_key(blo[i], d), shift_key(bhi[i], d), s->acct))
            return WM_ENOMEM;
        for (int64_t j = 0; j < n[i]; j++)
            store_put(ss[i], shift_key(keys[i][j], d), cnts[i][j]);
    }
    merge_stats(s, zero, count, sum, mn, mx);
    return WM_OK;
}

/* ---- subtraction (the core's sliding-window cache) -------------------------- */

/* Take c from key k, which holds at least c; the used range stays tight. */
static void store_take(wm_store *st, int64_t k, uint64_t c)
{
    uint64_t *cell = &st->c[k - st->off];
    *cell -= c;
    st->ntk = WM_UNTRACKED;   /* the list cannot drop keys; clear scans the span */
    if (*cell)
        return;
    st->nb--;
    if (st->nb == 0) {
        st->lo = 1;
        st->hi = 0;
        return;
    }
    while (st->c[st->lo - st->off] == 0)
        st->lo++;
    while (st->c[st->hi - st->off] == 0)
        st->hi--;
}

int wm_sketch_sub_point(wm_sketch *s, double v)
{
    s->count -= 1;
    wm_store *st;
    double m;
    if (v > 0.0) {
        st = &s->pos;
        m = v;
    } else if (v < 0.0) {
        st = &s->neg;
        m = -v;
    } else {
        s->zero -= 1;
        return WM_OK;
    }
    if (m < DBL_MIN) {
        s->zero -= 1;
        return WM_OK;
    }
    store_take(st, base_key(m, s->mult), 1);
    return WM_OK;
}

static void unload_store(wm_store *st, const uint8_t *buf, size_t len, const store_scan *sc)
{
    size_t p = sc->start;
    int64_t prev = 0;
    for (uint64_t i = 0; i < sc->n; i++) {
        uint64_t step = 0, c = 0;
        wm_get_varint(buf, len, &p, &step);
        wm_get_varint(buf, len, &p, &c);
        int64_t k = i == 0 ? unzigzag(step) : prev + (int64_t)step;
        store_take(st, k, c);
        prev = k;
    }
}

int wm_sketch_sub_body(wm_sketch *s, uint64_t count, const uint8_t *body, size_t len)
{
    if (count == 0)
        return WM_OK;
    size_t p = 0;
    uint64_t zero;
    store_scan neg, pos;
    if (wm_get_varint(body, len, &p, &zero) || scan_store(body, len, &p, UINT64_MAX, &neg) ||
        scan_store(body, len, &p, UINT64_MAX, &pos))
        return WM_EFORMAT;
    unload_store(&s->neg, body, len, &neg);
    unload_store(&s->pos, body, len, &pos);
    s->zero -= zero;
    s->count -= count;
    return WM_OK;
}

/* ---- reading -------------------------------------------------------------- */

/* exp() that saturates like IEEE (CPython's math.exp raises instead; the
 * reference catches that and uses inf, so both agree). */
double wm_representative(int64_t key, double log_gamma, int collapses)
{
    double lg = log_gamma * ldexp(1.0, collapses);
    double g = exp(lg);
    if (isinf(g))   /* 2 g^k / (1 + g) -> its limit for huge g */
        return key > 1 ? INFINITY : (key == 1 ? 2.0 : 0.0);
    return 2.0 * exp((double)key * lg) / (1.0 + g);
}

static inline double clampv(const wm_sketch *s, double v)
{
    return v < s->min ? s->min : (v > s->max ? s->max : v);
}

double wm_sketch_quantile(const wm_sketch *s, double q)
{
    double out;
    wm_sketch_quantiles(s, 1, &q, &out);
    return out;
}

/* The quantile of each qs[i] (n <= WM_MAX_QUANTILES, each in [0, 1]) into
 * out[i]: the value of rank floor(q (count - 1)), found with at most one walk
 * up and one walk down the bins for all of them. */
void wm_sketch_quantiles(const wm_sketch *s, int n, const double *qs, double *out)
{
    int order[WM_MAX_QUANTILES], m = 0;
    double rank[WM_MAX_QUANTILES];
    for (int i = 0; i < n; i++) {
        if (s->count == 0)
            out[i] = NAN;
        else if (qs[i] == 0.0)
            out[i] = s->min;
        else if (!(qs[i] < 1.0))   /* 1; past it or NaN only from C callers: no rank fits */
            out[i] = s->max;
        else {
            /* insertion by rank: the walks answer the ranks in order */
            double r = qs[i] * (double)(s->count - 1);
            int j = m++;
            for (; j > 0 && rank[j - 1] > r; j--) {
                rank[j] = rank[j - 1];
                order[j] = order[j - 1];
            }
            rank[j] = r;
            order[j] = i;
        }
    }
    /* Ranks in the lower half are found walking up from the smallest value,
     * the others walking down from the largest, so p99 reads a few bins, not
     * all of them.  Walking down, a bin answers rank r when the points below
     * it, count - (points from it up), are not > r: the very comparison the
     * upward walk makes on that count, so both walks give the same bin. */
    int split = 0;
    while (split < m && rank[split] <= 0.5 * (double)(s->count - 1))
        split++;
    int next = 0;
    uint64_t seen = 0;
    const wm_store *ng = &s->neg, *p = &s->pos;
    for (int64_t k = ng->hi; k >= ng->lo && next < split; k--) {
        uint64_t x = ng->c[k - ng->off];
        if (!x)
            continue;
        seen += x;
        while (next < split && (double)seen > rank[next])
            out[order[next++]] = clampv(s, -wm_representative(k, s->log_gamma, s->collapses));
    }
    seen += s->zero;
    while (next < split && (double)seen > rank[next])
        out[order[next++]] = clampv(s, 0.0);
    for (int64_t k = p->lo; k <= p->hi && next < split; k++) {
        /* four bins at a time while they cannot hold the next answer */
        while (k + 3 <= p->hi) {
            const uint64_t *b = &p->c[k - p->off];
            uint64_t block = b[0] + b[1] + b[2] + b[3];
            if ((double)(seen + block) > rank[next])
                break;
            seen += block;
            k += 4;
        }
        if (k > p->hi)
            break;
        uint64_t x = p->c[k - p->off];
        if (!x)
            continue;
        seen += x;
        while (next < split && (double)seen > rank[next])
            out[order[next++]] = clampv(s, wm_representative(k, s->log_gamma, s->collapses));
    }
    while (next < split)
        out[order[next++]] = s->max;
    int top = m - 1;
    uint64_t above = 0;
    for (int64_t k = p->hi; k >= p->lo && top >= split; k--) {
        while (k - 3 >= p->lo) {
            const uint64_t *b = &p->c[k - 3 - p->off];
            uint64_t block = b[0] + b[1] + b[2] + b[3];
            if (!((double)(s->count - (above + block)) > rank[top]))
                break;
            above += block;
            k -= 4;
        }
        if (k < p->lo)
            break;
        uint64_t x = p->c[k - p->off];
        if (!x)
            continue;
        above += x;
        while (top >= split && !((double)(s->count - above) > rank[top]))
            out[order[top--]] = clampv(s, wm_representative(k, s->log_gamma, s->collapses));
    }
    above += s->zero;
    while (top >= split && !((double)(s->count - above) > rank[top]))
        out[order[top--]] = clampv(s, 0.0);
    for (int64_t k = ng->lo; k <= ng->hi && top >= split; k++) {
        uint64_t x = ng->c[k - ng->off];
        if (!x)
            continue;
        above += x;
        while (top >= split && !((double)(s->count - above) > rank[top]))
            out[order[top--]] = clampv(s, -wm_representative(k, s->log_gamma, s->collapses));
    }
    while (top >= split)
        out[order[top--]] = s->max;
}

double wm_sketch_alpha(const wm_sketch *s)
{
    if (s->collapses == 0)
        return s->base_alpha;
    double g = exp(s->log_gamma * ldexp(1.0, s->collapses));
    if (isinf(g))
        return 1.0;
    return (g - 1.0) / (g + 1.0);
}

/* ---- header ----------------------------------------------------------------- */

static void put_u64(uint8_t *out, uint64_t x)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(x >> (8 * i));
}

static uint64_t get_u64(const uint8_t *in)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)in[i] << (8 * i);
    return x;
}

static void put_f64(uint8_t *out, double d)
{
    uint64_t x;
    memcpy(&x, &d, 8);
    put_u64(out, x);
}

static double get_f64(const uint8_t *in)
{
    uint64_t x = get_u64(in);
    double d;
    memcpy(&d, &x, 8);
    return d;
}

void wm_header_encode(uint8_t *out, double alpha, uint32_t max_bins, int collapses,
                      uint64_t count, double sum, double mn, double mx)
{
    memcpy(out, "WMSK", 4);
    out[4] = 1;
    put_f64(out + 5, alpha);
    for (int i = 0; i < 4; i++)
        out[13 + i] = (uint8_t)(max_bins >> (8 * i));
    out[17] = (uint8_t)collapses;
    put_u64(out + 18, count);
    put_f64(out + 26, sum);
    put_f64(out + 34, mn);
    put_f64(out + 42, mx);
}

#define FAIL(msg)      \
    do {               \
        *err = (msg);  \
        return WM_EFORMAT; \
    } while (0)

int wm_sketch_decode(wm_sketch *s, const uint8_t *buf, size_t len, wm_acct *acct,
                     const char **err)
{
    if (len < WM_HEADER_SIZE)
        FAIL("sketch bytes too short");
    if (memcmp(buf, "WMSK", 4) != 0)
        FAIL("not a wedmetrics sketch (bad magic)");
    if (buf[4] != 1)
        FAIL("unsupported sketch format version");
    double alpha = get_f64(buf + 5);
    uint32_t max_bins = 0;
    for (int i = 0; i < 4; i++)
        max_bins |= (uint32_t)buf[13 + i] << (8 * i);
    int collapses = buf[17];
    uint64_t count = get_u64(buf + 18);
    double total = get_f64(buf + 26), lo = get_f64(buf + 34), hi = get_f64(buf + 42);
    if (!(alpha > 0.0 && alpha < 1.0))
        FAIL("sketch alpha out of (0, 1)");
    if (max_bins < 16 || max_bins > WM_MAX_BINS_LIMIT)
        FAIL("sketch max_bins out of [16, 1048576]");
    if (collapses > WM_MAX_COLLAPSES)
        FAIL("sketch collapse level out of range");
    if (count) {
        if (!(isfinite(lo) && isfinite(hi) && lo <= hi))
            FAIL("sketch min/max are not finite and ordered");
        if (isnan(total))
            FAIL("sketch sum is NaN");
    }
    if (alpha < WM_MIN_ALPHA)
        FAIL("sketch alpha below the smallest accepted (1e-06)");
    size_t p = WM_HEADER_SIZE;
    uint64_t zero;
    store_scan neg, pos;
    if (wm_get_varint(buf, len, &p, &zero))
        FAIL("sketch body is malformed (zero count)");
    if (scan_store(buf, len, &p, max_bins, &neg) || scan_store(buf, len, &p, max_bins, &pos))
        FAIL("sketch body is malformed (bad store)");
    if (p != len)
        FAIL("trailing bytes after the sketch");
    uint64_t sum = zero;
    int over = neg.overflow || pos.overflow;
    if (sum + neg.total < sum)
        over = 1;
    sum += neg.total;
    if (sum + pos.total < sum)
        over = 1;
    sum += pos.total;
    if (over || sum != count)
        FAIL("sketch bin counts do not add up to its count");
    int64_t nspan = neg.n ? neg.last - neg.first + 1 : 0;
    int64_t pspan = pos.n ? pos.last - pos.first + 1 : 0;
    if (nspan > (int64_t)max_bins || pspan > (int64_t)max_bins || nspan + pspan > (int64_t)max_bins)
        FAIL("sketch bins span more than max_bins");
    wm_sketch_init(s, alpha, max_bins, acct);
    s->collapses = collapses;
    s->zero = zero;
    if ((neg.n && store_reserve(&s->neg, neg.first, neg.last, acct)) ||
        (pos.n && store_reserve(&s->pos, pos.first, pos.last, acct))) {
        wm_sketch_free(s);
        *err = "out of memory";
        return WM_ENOMEM;
    }
    load_store(&s->neg, buf, len, &neg, 0);
    load_store(&s->pos, buf, len, &pos, 0);
    s->count = count;
    s->sum = total;
    if (count) {
        s->min = lo;
        s->max = hi;
    }
    return WM_OK;
}
