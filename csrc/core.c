/* The bucket core; see core.h for the layout and _core_ref.py for the spec. */
#include "core.h"
#include "wal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct wm_series {
    int64_t closed_until;   /* finest idx below which everything is closed */
    wm_bucket *open;        /* circular: open_at(s, i) for i < n_open, sorted by idx;
                             * every other entry is a cleared spare, so closing
                             * the oldest bucket just moves the head */
    uint32_t n_open, open_cap, open_head;
    uint32_t acc_mask;      /* bit l: the level-l bucket acc_idx[l] is open */
    int64_t sid;
    double last_value, last_ts;
    int64_t exact_cap, exact_n, exact_head;
    double *exact_ts, *exact_val;
    wm_ring *rings;         /* nlevels, in the same allocation */
    int64_t *acc_idx;       /* nlevels (0 unused), in the same allocation; an open
                             * coarse bucket is its children in the finer ring,
                             * merged when it closes (retention guarantees they
                             * are all still there) */
};

/* ---- sliding-window cache types ------------------------------------------
 * A window query merges ~100 one-second bucket bodies at the edges of a
 * 5-minute window; the alert engine asks the same windows every tick.  Per
 * (series, window length) the cache keeps the bins of the closed buckets the
 * last walk covered, so the next query only adds the newly covered buckets
 * and subtracts those that left (bin counts subtract exactly).  Only level-0
 * sketches (no collapse) are cached: that keeps subtraction exact.  count,
 * sum, min and max are replayed from the slots in walk order, so the result
 * is bit-identical to merging every piece afresh. */
#define WM_WC_SETS 1024
#define WM_WC_WAYS 4

typedef struct {
    int level;
    int64_t idx;
} wm_pkey;

typedef struct {
    const wm_ring *ring;     /* closed piece: its ring and slot */
    const wm_slot *sl;
    const wm_bucket *open;   /* open piece: the bucket (ring and sl unused) */
    wm_pkey key;
} wm_piece;

typedef struct {
    int64_t sid, width;      /* sid < 0: unused */
    uint64_t used;           /* LRU tick */
    wm_sketch bins;          /* level 0; count and zero kept, other stats unused */
    wm_pkey *keys;           /* the closed pieces in bins, sorted */
    int64_t n_keys, keys_cap;
} wm_wcache;

static inline wm_bucket *open_at(const wm_series *s, uint32_t i)
{
    uint32_t p = s->open_head + i;
    if (p >= s->open_cap)
        p -= s->open_cap;
    return &s->open[p];
}

struct wm_core {
    int nlevels;
    double widths[WM_MAX_LEVELS];
    int64_t ratios[WM_MAX_LEVELS];
    int64_t retention[WM_MAX_LEVELS];
    double lateness, alpha;
    double mult;            /* of the key mapping: wm_sketch_mult(alpha) */
    double w0_inv;          /* 1 / widths[0] when that is exact (a power of two), else 0 */
    uint32_t max_bins;
    double watermark;
    int64_t horizon_idx;    /* floor((watermark - lateness) / w0), clamped */
    int has_horizon;
    int closed;             /* wm_core_close: every later point is refused */
    int64_t swept_idx;      /* horizon and series count of the last full sweep */
    int64_t swept_n;        /* of wm_core_advance (swept_n 0: none yet) */
    wm_series **series;
    int64_t n_series, series_cap;
    int64_t outcomes[WM_N_OUTCOMES];
    int outbox_enabled;
    wm_outbox outbox;
    uint8_t *scratch;       /* body encoding before it is copied into an arena */
    size_t scratch_cap;
    wm_sketch build[WM_MAX_LEVELS];   /* coarse buckets being closed, per level */
    wm_acct mem;
    wm_wcache **wcache;     /* WM_WC_SETS * WM_WC_WAYS entries, each allocated on first use */
    uint64_t wc_tick;       /* LRU clock of the window cache */
    wm_piece *pieces;       /* scratch of the window walk */
    int64_t n_pieces, pieces_cap;
    wm_pkey *pkeys;         /* scratch: the walk's closed pieces, sorted */
    int64_t pkeys_cap;
    wm_pkey *moved;         /* scratch of the window cache: pieces that left, then entered */
    int64_t moved_cap;
    wm_wal wal;             /* write-ahead log segment (base NULL: off) */
};

/* ---- accounted allocation ---------------------------------------------- */

static void *xrealloc(wm_core *c, void *p, size_t old, size_t new_size)
{
    void *q = realloc(p, new_size ? new_size : 1);
    if (q)
        c->mem += (int64_t)new_size - (int64_t)old;
    return q;
}

static void xfree(wm_core *c, void *p, size_t size)
{
    if (p) {
        free(p);
        c->mem -= (int64_t)size;
    }
}

static int64_t clamp_idx(double f)
{
    if (!(f > -(double)WM_IDX_CLAMP))
        return -WM_IDX_CLAMP;
    if (f > (double)WM_IDX_CLAMP)
        return WM_IDX_CLAMP;
    return (int64_t)f;
}

static uint8_t *scratch(wm_core *c, size_t need)
{
    if (need > c->scratch_cap) {
        size_t ncap = c->scratch_cap ? c->scratch_cap : 256;
        while (ncap < need)
            ncap *= 2;
        uint8_t *p = xrealloc(c, c->scratch, c->scratch_cap, ncap);
        if (!p)
            return NULL;
        c->scratch = p;
        c->scratch_cap = ncap;
    }
    return c->scratch;
}

/* ---- lifecycle ----------------------------------------------------------- */

wm_core *wm_core_new(int nlevels, const double *widths, const int64_t *retention,
                     double lateness, double alpha, uint32_t max_bins)
{
    if (nlevels < 1 || nlevels > WM_MAX_LEVELS)
        return NULL;
    wm_core *c = calloc(1, sizeof(wm_core));
    if (!c)
        return NULL;
    c->mem = sizeof(wm_core);
    c->nlevels = nlevels;
    for (int i = 0; i < nlevels; i++) {
        c->widths[i] = widths[i];
        c->ratios[i] = (int64_t)llround(widths[i] / widths[0]);
        c->retention[i] = retention[i];
    }
    c->lateness = lateness;
    c->alpha = alpha;
    c->mult = wm_sketch_mult(alpha);
    int w0_exp;
    c->w0_inv = frexp(widths[0], &w0_exp) == 0.5 ? 1.0 / widths[0] : 0.0;
    c->max_bins = max_bins;
    c->watermark = -INFINITY;
    c->horizon_idx = -WM_IDX_CLAMP;
    c->has_horizon = 0;
    for (int i = 0; i < nlevels; i++)
        wm_sketch_init(&c->build[i], alpha, max_bins, &c->mem);
    return c;
}

static void outbox_release(wm_core *c, wm_outbox *o)
{
    size_t n = (size_t)o->cap;
    xfree(c, o->sid, n * 8);
    xfree(c, o->idx, n * 8);
    xfree(c, o->count, n * 8);
    xfree(c, o->level, n * 4);
    xfree(c, o->sum, n * 8);
    xfree(c, o->min, n * 8);
    xfree(c, o->max, n * 8);
    xfree(c, o->collapses, n);
    xfree(c, o->body_off, n * 8);
    xfree(c, o->body_len, n * 4);
    xfree(c, o->bytes, (size_t)o->b_cap);
    memset(o, 0, sizeof(*o));
}

static size_t series_block_size(int nlevels)
{
    return sizeof(wm_series) + (size_t)nlevels * (sizeof(wm_ring) + sizeof(int64_t));
}

static void series_free(wm_core *c, wm_series *s)
{
    for (uint32_t i = 0; i < s->open_cap; i++)
        wm_sketch_free(&s->open[i].sk);
    xfree(c, s->open, (size_t)s->open_cap * sizeof(wm_bucket));
    for (int l = 0; l < c->nlevels; l++) {
        wm_ring *r = &s->rings[l];
        xfree(c, r->slots, (size_t)r->cap * sizeof(wm_slot));
        xfree(c, r->arena, r->a_cap);
    }
    xfree(c, s->exact_ts, (size_t)s->exact_cap * 8);
    xfree(c, s->exact_val, (size_t)s->exact_cap * 8);
    xfree(c, s, series_block_size(c->nlevels));
}

void wm_core_free(wm_core *c)
{
    if (!c)
        return;
    for (int64_t i = 0; i < c->n_series; i++)
        series_free(c, c->series[i]);
    free(c->series);
    free(c->scratch);
    for (int i = 0; i < c->nlevels; i++)
        wm_sketch_free(&c->build[i]);
    outbox_release(c, &c->outbox);
    if (c->wcache) {
        for (int i = 0; i < WM_WC_SETS * WM_WC_WAYS; i++) {
            if (!c->wcache[i])
                continue;
            wm_sketch_free(&c->wcache[i]->bins);
            free(c->wcache[i]->keys);
            free(c->wcache[i]);
        }
        free(c->wcache);
    }
    free(c->pieces);
    free(c->pkeys);
    free(c->moved);
    free(c);
}

int64_t wm_core_add_series(wm_core *c, int64_t exact_capacity)
{
    if (c->n_series == c->series_cap) {
        int64_t ncap = c->series_cap ? c->series_cap * 2 : 16;
        wm_series **p = xrealloc(c, c->series, (size_t)c->series_cap * sizeof(void *),
                                 (size_t)ncap * sizeof(void *));
        if (!p)
            return -1;
        c->series = p;
        c->series_cap = ncap;
    }
    wm_series *s = xrealloc(c, NULL, 0, series_block_size(c->nlevels));
    if (!s)
        return -1;
    memset(s, 0, series_block_size(c->nlevels));
    s->rings = (wm_ring *)(s + 1);
    s->acc_idx = (int64_t *)(s->rings + c->nlevels);
    s->closed_until = -WM_IDX_CLAMP;
    s->sid = c->n_series;
    s->last_value = NAN;
    s->last_ts = NAN;
    for (int l = 0; l < c->nlevels; l++)
        s->rings[l].gone = -WM_IDX_CLAMP;
    if (exact_capacity > 0) {
        s->exact_ts = xrealloc(c, NULL, 0, (size_t)exact_capacity * 8);
        s->exact_val = xrealloc(c, NULL, 0, (size_t)exact_capacity * 8);
        s->exact_cap = exact_capacity;
        if (!s->exact_ts || !s->exact_val) {
            series_free(c, s);
            return -1;
        }
    }
    c->series[c->n_series] = s;
    return c->n_series++;
}

int64_t wm_core_n_series(const wm_core *c) { return c->n_series; }

/* ---- rings ----------------------------------------------------------------- */

static inline wm_slot *ring_at(const wm_ring *r, uint32_t i)
{
    uint32_t p = r->start + i;
    if (p >= r->cap)
        p -= r->cap;
    return &r->slots[p];
}

static inline int64_t slot_idx(const wm_ring *r, const wm_slot *sl)
{
    return r->base + (int64_t)sl->didx;
}

/* Length of the arena record at rec: varint body length, u8 collapses,
 * varint count, f64 min, f64 max, body. */
static size_t record_len(const uint8_t *rec)
{
    size_t p = 0;
    uint64_t body_len, count;
    wm_get_varint(rec, 10, &p, &body_len);
    p += 1;
    wm_get_varint(rec, p + 10, &p, &count);
    return p + 16 + (size_t)body_len;
}

static void ring_evict_through(wm_ring *r, int64_t idx)
{
    if (idx > r->gone)
        r->gone = idx;
    while (r->n && slot_idx(r, &r->slots[r->start]) <= idx) {
        wm_slot *sl = &r->slots[r->start];
        if (sl->ref != WM_THIN)
            r->a_head = sl->ref + (uint32_t)record_len(r->arena + sl->ref);
        r->start = r->start + 1 == r->cap ? 0 : r->start + 1;
        r->n--;
    }
    if (!r->n)
        r->a_head = r->a_len = 0;
}

/* First position with slot idx >= key (binary search over the ring). */
static uint32_t ring_lower(const wm_ring *r, int64_t key)
{
    uint32_t a = 0, b = r->n;
    while (a < b) {
        uint32_t m = a + (b - a) / 2;
        if (slot_idx(r, ring_at(r, m)) < key)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

static int ring_reserve_slot(wm_core *c, wm_ring *r, int64_t retention)
{
    if (r->n < r->cap)
        return WM_OK;
    uint32_t ncap = r->cap ? r->cap * 2 : 4;
    if ((int64_t)ncap > retention)
        ncap = (uint32_t)retention;
    if (ncap <= r->n)
        ncap = r->n + 1;
    wm_slot *ns = xrealloc(c, NULL, 0, (size_t)ncap * sizeof(wm_slot));
    if (!ns)
        return WM_ENOMEM;
    for (uint32_t i = 0; i < r->n; i++)
        ns[i] = *ring_at(r, i);
    xfree(c, r->slots, (size_t)r->cap * sizeof(wm_slot));
    r->slots = ns;
    r->cap = ncap;
    r->start = 0;
    return WM_OK;
}

/* Room for need more arena bytes.  Records are FIFO: when the arena is full
 * and a fifth of it is dead, slide the live records to the front (each byte
 * moved is paid for by a quarter byte evicted); otherwise grow by half. */
static int ring_reserve_bytes(wm_core *c, wm_ring *r, size_t need)
{
    if ((size_t)r->a_len + need <= r->a_cap)
        return WM_OK;
    uint32_t h = r->a_head, live = r->a_len - r->a_head;
    if (h && (uint64_t)h * 4 >= live) {
        memmove(r->arena, r->arena + h, live);
        r->a_len = live;
        r->a_head = 0;
        for (uint32_t i = 0; i < r->n; i++) {
            wm_slot *sl = ring_at(r, i);
            if (sl->ref != WM_THIN)
                sl->ref -= h;
        }
        if ((size_t)r->a_len + need <= r->a_cap)
            return WM_OK;
    }
    size_t ncap = (size_t)r->a_cap + r->a_cap / 2;
    if (ncap < (size_t)r->a_len + need)
        ncap = (size_t)r->a_len + need + 16;
    if (ncap < 64)
        ncap = 64;
    if (ncap >= WM_THIN)
        return WM_ENOMEM;
    uint8_t *p = xrealloc(c, r->arena, r->a_cap, ncap);
    if (!p)
        return WM_ENOMEM;
    r->arena = p;
    r->a_cap = (uint32_t)ncap;
    return WM_OK;
}

/* Freeze a closed bucket into the ring of its level. */
static int ring_push(wm_core *c, wm_ring *r, int64_t retention, int64_t idx, const wm_sketch *sk)
{
    ring_evict_through(r, idx - retention);
    if (ring_reserve_slot(c, r, retention))
        return WM_ENOMEM;
    wm_slot sl;
    if (sk->count == 1 && sk->collapses == 0) {
        sl.sum = sk->min;   /* the point itself; its sum is 0.0 + it */
        sl.ref = WM_THIN;
    } else {
        uint8_t *body = scratch(c, wm_sketch_body_bound(sk));
        if (!body)
            return WM_ENOMEM;
        size_t body_len = wm_sketch_body_encode(sk, body);
        uint8_t head[40];
        size_t h = wm_put_varint(head, body_len);
        head[h++] = (uint8_t)sk->collapses;
        h += wm_put_varint(head + h, sk->count);
        memcpy(head + h, &sk->min, 8);
        memcpy(head + h + 8, &sk->max, 8);
        h += 16;
        if (ring_reserve_bytes(c, r, h + body_len))
            return WM_ENOMEM;
        memcpy(r->arena + r->a_len, head, h);
        memcpy(r->arena + r->a_len + h, body, body_len);
        sl.sum = sk->sum;
        sl.ref = r->a_len;
        r->a_len += (uint32_t)(h + body_len);
    }
    /* indices are stored relative to the ring's base; rebase when the
     * newest would not fit 32 bits (live slots span less than retention) */
    if (!r->n) {
        r->base = idx;
    } else if (idx - r->base > (int64_t)UINT32_MAX) {
        int64_t nb = slot_idx(r, ring_at(r, 0));
        for (uint32_t i = 0; i < r->n; i++)
            ring_at(r, i)->didx = (uint32_t)(slot_idx(r, ring_at(r, i)) - nb);
        r->base = nb;
    }
    sl.didx = (uint32_t)(idx - r->base);
    *ring_at(r, r->n) = sl;
    r->n++;
    return WM_OK;
}

/* Merge a closed slot into acc. */
static int absorb_slot(const wm_ring *r, const wm_slot *sl, wm_sketch *acc)
{
    if (sl->ref == WM_THIN)
        return wm_sketch_add_point(acc, sl->sum, 0.0 + sl->sum);
    const uint8_t *rec = r->arena + sl->ref;
    size_t p = 0;
    uint64_t body_len, count;
    double mn, mx;
    wm_get_varint(rec, 10, &p, &body_len);
    int collapses = rec[p++];
    wm_get_varint(rec, p + 10, &p, &count);
    memcpy(&mn, rec + p, 8);
    memcpy(&mx, rec + p + 8, 8);
    p += 16;
    return wm_sketch_merge_body(acc, collapses, count, sl->sum, mn, mx, rec + p,
                                (size_t)body_len);
}

/* ---- outbox -------------------------------------------------------------- */

#define GROW_FIELD(field, size)                                                        \
    do {                                                                               \
        void *np_ = xrealloc(c, o->field, (size_t)o->cap * (size), (size_t)ncap * (size)); \
        if (!np_)                                                                      \
            return WM_ENOMEM;                                                          \
        o->field = np_;                                                                \
    } while (0)

static int outbox_grow(wm_core *c, wm_outbox *o)
{
    int64_t ncap = o->cap ? o->cap * 2 : 64;
    /* each field is grown separately; cap moves only when all succeeded */
    GROW_FIELD(sid, 8);
    GROW_FIELD(idx, 8);
    GROW_FIELD(count, 8);
    GROW_FIELD(level, 4);
    GROW_FIELD(sum, 8);
    GROW_FIELD(min, 8);
    GROW_FIELD(max, 8);
    GROW_FIELD(collapses, 1);
    GROW_FIELD(body_off, 8);
    GROW_FIELD(body_len, 4);
    o->cap = ncap;
    return WM_OK;
}

static int outbox_push(wm_core *c, int64_t sid, int level, int64_t idx, const wm_sketch *sk)
{
    wm_outbox *o = &c->outbox;
    if (o->n == o->cap && outbox_grow(c, o))
        return WM_ENOMEM;
    size_t need = wm_sketch_body_bound(sk);
    if (o->b_len + need > o->b_cap) {
        uint64_t ncap = o->b_cap ? o->b_cap : 1024;
        while (ncap < o->b_len + need)
            ncap *= 2;
        uint8_t *p = xrealloc(c, o->bytes, (size_t)o->b_cap, (size_t)ncap);
        if (!p)
            return WM_ENOMEM;
        o->bytes = p;
        o->b_cap = ncap;
    }
    int64_t i = o->n;
    o->sid[i] = sid;
    o->level[i] = level;
    o->idx[i] = idx;
    o->count[i] = (int64_t)sk->count;
    o->sum[i] = sk->sum;
    o->min[i] = sk->min;
    o->max[i] = sk->max;
    o->collapses[i] = (uint8_t)sk->collapses;
    o->body_off[i] = o->b_len;
    size_t len = wm_sketch_body_encode(sk, o->bytes + o->b_len);
    o->body_len[i] = (uint32_t)len;
    o->b_len += len;
    o->n++;
    return WM_OK;
}

void wm_core_set_outbox(wm_core *c, int enabled) { c->outbox_enabled = enabled != 0; }
int wm_core_outbox_enabled(const wm_core *c) { return c->outbox_enabled; }

void wm_core_take_outbox(wm_core *c, wm_outbox *out)
{
    *out = c->outbox;
    memset(&c->outbox, 0, sizeof(wm_outbox));
    /* the caller's copy is no longer the core's memory */
    c->mem -= out->cap * (8 * 7 + 4 + 1 + 4) + (int64_t)out->b_cap;
}

void wm_outbox_free(wm_outbox *o)
{
    free(o->sid);
    free(o->idx);
    free(o->count);
    free(o->level);
    free(o->sum);
    free(o->min);
    free(o->max);
    free(o->collapses);
    free(o->body_off);
    free(o->body_len);
    free(o->bytes);
    memset(o, 0, sizeof(*o));
}

/* ---- closing ------------------------------------------------------------------ */

/* The coarse bucket P of level `up`: the merge of its children, in order,
 * from the ring one level finer - what the reference's accumulator holds. */
static int build_parent(wm_core *c, const wm_series *s, int up, int64_t parent, wm_sketch *out)
{
    wm_sketch_clear(out);
    int64_t k = c->ratios[up] / c->ratios[up - 1];
    const wm_ring *r = &s->rings[up - 1];
    for (uint32_t p = ring_lower(r, parent * k); p < r->n; p++) {
        const wm_slot *sl = ring_at(r, p);
        if (slot_idx(r, sl) >= (parent + 1) * k)
            break;
        if (absorb_slot(r, sl, out))
            return WM_ENOMEM;
    }
    return WM_OK;
}

static int close_bucket(wm_core *c, wm_series *s, int level, int64_t idx, const wm_sketch *sk)
{
    int up = level + 1;
    int64_t parent = 0, done = 0;
    int parent_closes = 0;
    if (up < c->nlevels) {
        parent = wm_floordiv(idx * c->ratios[level], c->ratios[up]);
        if ((s->acc_mask >> up & 1u) && s->acc_idx[up] != parent) {
            /* built before this bucket's push may evict its oldest children */
            done = s->acc_idx[up];
            parent_closes = 1;
            if (build_parent(c, s, up, done, &c->build[up]))
                return WM_ENOMEM;
        }
    }
    if (ring_push(c, &s->rings[level], c->retention[level], idx, sk))
        return WM_ENOMEM;
    if (c->outbox_enabled && outbox_push(c, s->sid, level, idx, sk))
        return WM_ENOMEM;
    if (up < c->nlevels) {
        if (parent_closes) {
            s->acc_mask &= ~(1u << up);
            if (close_bucket(c, s, up, done, &c->build[up]))
                return WM_ENOMEM;
        }
        s->acc_mask |= 1u << up;
        s->acc_idx[up] = parent;
    }
    return WM_OK;
}

static int advance_series(wm_core *c, wm_series *s)
{
    if (!c->has_horizon)
        return WM_OK;
    int64_t until = c->horizon_idx;
    if (until <= s->closed_until)
        return WM_OK;
    s->closed_until = until;
    uint32_t k = 0;
    while (k < s->n_open && open_at(s, k)->idx < until) {
        if (close_bucket(c, s, 0, open_at(s, k)->idx, &open_at(s, k)->sk))
            return WM_ENOMEM;
        k++;
    }
    if (k) {
        /* the closed buckets become cleared spares behind the new head */
        for (uint32_t i = 0; i < k; i++)
            wm_sketch_clear(&open_at(s, i)->sk);
        s->open_head = (s->open_head + k) % s->open_cap;
        s->n_open -= k;
    }
    for (int l = 1; l < c->nlevels; l++) {
        if ((s->acc_mask >> l & 1u) && (s->acc_idx[l] + 1) * c->ratios[l] <= until) {
            s->acc_mask &= ~(1u << l);
            if (build_parent(c, s, l, s->acc_idx[l], &c->build[l]) ||
                close_bucket(c, s, l, s->acc_idx[l], &c->build[l]))
                return WM_ENOMEM;
        }
    }
    return WM_OK;
}

/* floor(q) for |q| <= WM_IDX_LIMIT, without a libm call. */
static inline int64_t floor_idx(double q)
{
    int64_t i = (int64_t)q;
    return i - ((double)i > q);
}

/* t / widths[0]; a multiply when the reciprocal is exact: the same double,
 * since both round the same real number, without a divide's latency. */
static inline double in_w0(const wm_core *c, double t)
{
    return c->w0_inv != 0.0 ? t * c->w0_inv : t / c->widths[0];
}

static inline void set_watermark(wm_core *c, double t)
{
    c->watermark = t;
    double q = in_w0(c, t - c->lateness);
    c->horizon_idx = fabs(q) <= WM_IDX_LIMIT ? floor_idx(q) : clamp_idx(floor(q));
    c->has_horizon = 1;
}

int wm_core_advance(wm_core *c, double now)
{
    if (now > c->watermark)
        set_watermark(c, now);
    /* nothing can have fallen due since the last sweep at this horizon
     * (a series added since has nothing open): a tick per query stays cheap */
    if (!c->has_horizon || (c->swept_idx == c->horizon_idx && c->swept_n == c->n_series))
        return WM_OK;
    for (int64_t i = 0; i < c->n_series; i++)
        if (advance_series(c, c->series[i]))
            return WM_ENOMEM;
    c->swept_idx = c->horizon_idx;
    c->swept_n = c->n_series;
    return WM_OK;
}

double wm_core_watermark(const wm_core *c) { return c->watermark; }

/* ---- recording ------------------------------------------------------------------ */

static wm_bucket *open_bucket(wm_core *c, wm_series *s, int64_t idx)
{
    uint32_t n = s->n_open;
    if (n && open_at(s, n - 1)->idx == idx)
        return open_at(s, n - 1);
    uint32_t pos = n;
    while (pos && open_at(s, pos - 1)->idx > idx)
        pos--;
    if (pos && open_at(s, pos - 1)->idx == idx)
        return open_at(s, pos - 1);
    if (n == s->open_cap) {
        /* full: a new array in logical order, the new entries spares */
        uint32_t ncap = s->open_cap ? s->open_cap * 2 : 2;
        wm_bucket *p = xrealloc(c, NULL, 0, (size_t)ncap * sizeof(wm_bucket));
        if (!p)
            return NULL;
        for (uint32_t i = 0; i < n; i++)
            p[i] = *open_at(s, i);
        for (uint32_t i = n; i < ncap; i++) {
            wm_sketch_init(&p[i].sk, c->alpha, c->max_bins, &c->mem);
            wm_sketch_allow_small(&p[i].sk);
        }
        xfree(c, s->open, (size_t)s->open_cap * sizeof(wm_bucket));
        s->open = p;
        s->open_cap = ncap;
        s->open_head = 0;
    }
    s->n_open = n + 1;
    if (pos == n) {   /* the usual case, a newer second: the spare is in place */
        open_at(s, n)->idx = idx;
        return open_at(s, n);
    }
    wm_bucket spare = *open_at(s, n);
    for (uint32_t j = n; j > pos; j--)
        *open_at(s, j) = *open_at(s, j - 1);
    spare.idx = idx;
    *open_at(s, pos) = spare;
    return open_at(s, pos);
}

/* One point whose value has base key `key` (wm_sketch_key). */
static inline int record_one(wm_core *c, int64_t sid, double v, double ts, int64_t key)
{
    if ((uint64_t)sid >= (uint64_t)c->n_series)
        return WM_REC_UNKNOWN_SERIES;
    if (!isfinite(v))
        return WM_REC_BAD_VALUE;
    double q = in_w0(c, ts);
    if (!(fabs(q) <= WM_IDX_LIMIT))   /* also NaN and inf */
        return WM_REC_BAD_TS;
    if (ts > c->watermark)
        set_watermark(c, ts);
    int64_t idx = floor_idx(q);
    if (idx < c->horizon_idx)
        return WM_REC_LATE;
    /* logged once accepted, before it lands: an acknowledged point is in the log */
    if (c->wal.base && wm_wal_append(&c->wal, sid, ts, v))
        return WM_WAL_FULL;
    wm_series *s = c->series[sid];
    wm_bucket *b = open_bucket(c, s, idx);
    if (!b || wm_sketch_add_key(&b->sk, v, key))
        return WM_ENOMEM;
    s->last_value = v;
    s->last_ts = ts;
    if (s->exact_cap) {
        int64_t p = s->exact_head;
        s->exact_ts[p] = ts;
        s->exact_val[p] = v;
        s->exact_head = p + 1 == s->exact_cap ? 0 : p + 1;
        s->exact_n++;
    }
    if (c->horizon_idx > s->closed_until && advance_series(c, s))
        return WM_ENOMEM;
    return WM_REC_OK;
}

void wm_core_close(wm_core *c) { c->closed = 1; }

int wm_core_record(wm_core *c, int64_t sid, double v, double ts)
{
    int code = c->closed ? WM_REC_CLOSED : record_one(c, sid, v, ts, wm_sketch_key(c->mult, v));
    if (code >= 0)
        c->outcomes[code]++;
    return code;
}

/* Keys are computed a chunk at a time, apart from the bucket work: a loop of
 * independent arithmetic runs several points at once, which the bucket
 * loop (one dependent chain of loads per point) cannot. */
#define RECORD_CHUNK 512

int wm_core_record_many(wm_core *c, int64_t n, const int64_t *sids, const double *ts,
                        const double *vals, int64_t counts[5])
{
    int rc = WM_OK;
    int64_t keys[RECORD_CHUNK];
    for (int i = 0; i < 5; i++)
        counts[i] = 0;
    for (int64_t i0 = 0; i0 < n && rc == WM_OK; i0 += RECORD_CHUNK) {
        int64_t m = n - i0 < RECORD_CHUNK ? n - i0 : RECORD_CHUNK;
        wm_sketch_keys(c->mult, m, vals + i0, keys);
        for (int64_t j = 0; j < m; j++) {
            int64_t i = i0 + j;
            int code = record_one(c, sids[i], vals[i], ts[i], keys[j]);
            if (code < 0) {
                rc = code;
                break;
            }
            counts[code]++;
        }
    }
    for (int i = 0; i < 5; i++)
        c->outcomes[i] += counts[i];
    return rc;
}

int64_t wm_core_first_invalid(const wm_core *c, int64_t n, const int64_t *sids,
                              const double *ts, const double *vals, int *code)
{
    /* the common case, everything valid, as one branch-free pass per chunk */
    const int64_t chunk = 1024;
    const double w = c->widths[0];
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t m = n - i0 < chunk ? n - i0 : chunk;
        int bad = 0;
        for (int64_t i = i0; i < i0 + m; i++)
            bad |= ((uint64_t)sids[i] >= (uint64_t)c->n_series) | !(fabs(vals[i]) <= DBL_MAX) |
                   !(fabs(ts[i] / w) <= WM_IDX_LIMIT);
        if (!bad)
            continue;
        for (int64_t i = i0; i < i0 + m; i++) {
            if ((uint64_t)sids[i] >= (uint64_t)c->n_series) {
                *code = WM_REC_UNKNOWN_SERIES;
                return i;
            }
            if (!isfinite(vals[i])) {
                *code = WM_REC_BAD_VALUE;
                return i;
            }
            if (!(fabs(ts[i] / w) <= WM_IDX_LIMIT)) {
                *code = WM_REC_BAD_TS;
                return i;
            }
        }
    }
    *code = WM_REC_OK;
    return -1;
}

void wm_core_count(wm_core *c, int code, int64_t n) { c->outcomes[code] += n; }
const int64_t *wm_core_outcomes(const wm_core *c) { return c->outcomes; }

/* ---- reading ------------------------------------------------------------------------ */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int absorb_ring_span(const wm_ring *r, int64_t lo, int64_t hi, wm_sketch *acc)
{
    if (lo >= hi)
        return WM_OK;
    for (uint32_t p = ring_lower(r, lo); p < r->n; p++) {
        const wm_slot *sl = ring_at(r, p);
        if (slot_idx(r, sl) >= hi)
            break;
        if (absorb_slot(r, sl, acc))
            return WM_ENOMEM;
    }
    return WM_OK;
}

/* The reference's _cover: coarse closed buckets where whole, finer data at
 * the edges and wherever the coarse level is still open or evicted. */
static int cover(wm_core *c, const wm_series *s, int level, int64_t lo, int64_t hi, wm_sketch *acc)
{
    if (lo >= hi)
        return WM_OK;
    if (level == 0) {
        if (absorb_ring_span(&s->rings[0], lo, min64(hi, s->closed_until), acc))
            return WM_ENOMEM;
        for (uint32_t i = 0; i < s->n_open; i++) {
            const wm_bucket *b = open_at(s, i);
            if (lo <= b->idx && b->idx < hi && wm_sketch_merge(acc, &b->sk))
                return WM_ENOMEM;
        }
        return WM_OK;
    }
    int64_t r = c->ratios[level];
    int64_t first = -wm_floordiv(-lo, r);
    int64_t last = wm_floordiv(hi, r);
    if (first >= last)
        return cover(c, s, level - 1, lo, hi, acc);
    if (cover(c, s, level - 1, lo, first * r, acc))
        return WM_ENOMEM;
    int64_t closed = min64(last, wm_floordiv(s->closed_until, r));
    const wm_ring *ring = &s->rings[level];
    int64_t kept = max64(ring->gone + 1, first);
    int64_t j = first;
    if (j < kept) {
        if (cover(c, s, level - 1, j * r, min64(kept, last) * r, acc))
            return WM_ENOMEM;
        j = kept;
    }
    if (j < closed) {
        if (absorb_ring_span(ring, j, closed, acc))
            return WM_ENOMEM;
        j = closed;
    }
    if (j < last && cover(c, s, level - 1, j * r, last * r, acc))
        return WM_ENOMEM;
    return cover(c, s, level - 1, last * r, hi, acc);
}

/* ---- the sliding-window cache ------------------------------------------- */

static int push_piece(wm_core *c, const wm_ring *ring, const wm_slot *sl, const wm_bucket *b,
                      int level, int64_t idx)
{
    if (c->n_pieces == c->pieces_cap) {
        int64_t ncap = c->pieces_cap ? c->pieces_cap * 2 : 256;
        wm_piece *p = xrealloc(c, c->pieces, (size_t)c->pieces_cap * sizeof(wm_piece),
                               (size_t)ncap * sizeof(wm_piece));
        if (!p)
            return WM_ENOMEM;
        c->pieces = p;
        c->pieces_cap = ncap;
    }
    wm_piece *pc = &c->pieces[c->n_pieces++];
    pc->ring = ring;
    pc->sl = sl;
    pc->open = b;
    pc->key.level = level;
    pc->key.idx = idx;
    return WM_OK;
}

static int walk_ring_span(wm_core *c, const wm_ring *r, int level, int64_t lo, int64_t hi)
{
    if (lo >= hi)
        return WM_OK;
    for (uint32_t p = ring_lower(r, lo); p < r->n; p++) {
        const wm_slot *sl = ring_at(r, p);
        int64_t idx = slot_idx(r, sl);
        if (idx >= hi)
            break;
        if (push_piece(c, r, sl, NULL, level, idx))
            return WM_ENOMEM;
    }
    return WM_OK;
}

/* cover() that lists the pieces in its merge order instead of merging them. */
static int walk(wm_core *c, const wm_series *s, int level, int64_t lo, int64_t hi)
{
    if (lo >= hi)
        return WM_OK;
    if (level == 0) {
        if (walk_ring_span(c, &s->rings[0], 0, lo, min64(hi, s->closed_until)))
            return WM_ENOMEM;
        for (uint32_t i = 0; i < s->n_open; i++) {
            const wm_bucket *b = open_at(s, i);
            if (lo <= b->idx && b->idx < hi && push_piece(c, NULL, NULL, b, 0, b->idx))
                return WM_ENOMEM;
        }
        return WM_OK;
    }
    int64_t r = c->ratios[level];
    int64_t first = -wm_floordiv(-lo, r);
    int64_t last = wm_floordiv(hi, r);
    if (first >= last)
        return walk(c, s, level - 1, lo, hi);
    if (walk(c, s, level - 1, lo, first * r))
        return WM_ENOMEM;
    int64_t closed = min64(last, wm_floordiv(s->closed_until, r));
    const wm_ring *ring = &s->rings[level];
    int64_t kept = max64(ring->gone + 1, first);
    int64_t j = first;
    if (j < kept) {
        if (walk(c, s, level - 1, j * r, min64(kept, last) * r))
            return WM_ENOMEM;
        j = kept;
    }
    if (j < closed) {
        if (walk_ring_span(c, ring, level, j, closed))
            return WM_ENOMEM;
        j = closed;
    }
    if (j < last && walk(c, s, level - 1, j * r, last * r))
        return WM_ENOMEM;
    return walk(c, s, level - 1, last * r, hi);
}

/* A closed slot's record: collapses, count, min, max and body. */
typedef struct {
    int collapses;
    uint64_t count;
    double mn, mx;
    const uint8_t *body;
    size_t len;
} slot_rec;

static void read_slot(const wm_ring *r, const wm_slot *sl, slot_rec *out)
{
    const uint8_t *rec = r->arena + sl->ref;
    size_t p = 0;
    uint64_t body_len;
    wm_get_varint(rec, 10, &p, &body_len);
    out->collapses = rec[p++];
    wm_get_varint(rec, p + 10, &p, &out->count);
    memcpy(&out->mn, rec + p, 8);
    memcpy(&out->mx, rec + p + 8, 8);
    out->body = rec + p + 16;
    out->len = (size_t)body_len;
}

static int pkey_cmp(const void *a, const void *b)
{
    const wm_pkey *x = a, *y = b;
    if (x->level != y->level)
        return x->level < y->level ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The slot of (level, idx) in the series' ring, or NULL once evicted. */
static const wm_slot *find_slot(const wm_series *s, wm_pkey k, const wm_ring **ring)
{
    const wm_ring *r = &s->rings[k.level];
    uint32_t p = ring_lower(r, k.idx);
    if (p >= r->n || slot_idx(r, ring_at(r, p)) != k.idx)
        return NULL;
    *ring = r;
    return ring_at(r, p);
}

static int wc_absorb(wm_wcache *e, const wm_ring *r, const wm_slot *sl)
{
    if (sl->ref == WM_THIN)
        return wm_sketch_add(&e->bins, sl->sum);
    slot_rec rec;
    read_slot(r, sl, &rec);
    return wm_sketch_merge_body(&e->bins, 0, rec.count, 0.0, 0.0, 0.0, rec.body, rec.len);
}

static void wc_remove(wm_wcache *e, const wm_ring *r, const wm_slot *sl)
{
    if (sl->ref == WM_THIN) {
        wm_sketch_sub_point(&e->bins, sl->sum);
        return;
    }
    slot_rec rec;
    read_slot(r, sl, &rec);
    wm_sketch_sub_body(&e->bins, rec.count, rec.body, rec.len);
}

static wm_wcache *wc_entry(wm_core *c, int64_t sid, int64_t width)
{
    size_t n_entries = (size_t)WM_WC_SETS * WM_WC_WAYS;
    if (!c->wcache) {
        c->wcache = xrealloc(c, NULL, 0, n_entries * sizeof(wm_wcache *));
        if (!c->wcache)
            return NULL;
        memset(c->wcache, 0, n_entries * sizeof(wm_wcache *));
    }
    uint64_t h = (uint64_t)sid * 0x9E3779B97F4A7C15ull ^ (uint64_t)width * 0xC2B2AE3D27D4EB4Full;
    wm_wcache **set = &c->wcache[(size_t)((h >> 20) % WM_WC_SETS) * WM_WC_WAYS];
    c->wc_tick++;
    int vw = 0;
    for (int w = 0; w < WM_WC_WAYS; w++) {
        if (!set[w]) {   /* a free way: the set is not full yet */
            set[w] = xrealloc(c, NULL, 0, sizeof(wm_wcache));
            if (!set[w])
                return NULL;
            wm_sketch_init(&set[w]->bins, c->alpha, c->max_bins, &c->mem);
            set[w]->keys = NULL;
            set[w]->n_keys = set[w]->keys_cap = 0;
            set[w]->used = 0;
            vw = w;
            break;
        }
        if (set[w]->sid == sid && set[w]->width == width) {
            set[w]->used = c->wc_tick;
            return set[w];
        }
        if (set[w]->used < set[vw]->used)
            vw = w;
    }
    wm_wcache *victim = set[vw];
    victim->sid = sid;
    victim->width = width;
    victim->used = c->wc_tick;
    victim->n_keys = 0;
    wm_sketch_clear(&victim->bins);
    return victim;
}

static void wc_drop(wm_wcache *e)
{
    e->sid = -1;
    e->used = 0;
    e->n_keys = 0;
    wm_sketch_clear(&e->bins);
}

/* Room for `need` keys in *buf (capacity *cap), doubling past it. */
static int reserve_pkeys(wm_core *c, wm_pkey **buf, int64_t *cap, int64_t need)
{
    if (need <= *cap)
        return WM_OK;
    int64_t ncap = need * 2;
    wm_pkey *p = xrealloc(c, *buf, (size_t)*cap * sizeof(wm_pkey), (size_t)ncap * sizeof(wm_pkey));
    if (!p)
        return WM_ENOMEM;
    *buf = p;
    *cap = ncap;
    return WM_OK;
}

/* Bring e's bins to exactly the closed pieces keys[0..n) (sorted).
 * Returns 1 when done, 0 when the cache cannot hold them (collapse), or WM_ENOMEM. */
static int wc_update(wm_core *c, const wm_series *s, wm_wcache *e, const wm_pkey *keys,
                     int64_t n)
{
    /* One merge-join of the old and new sorted key lists sorts out what left
     * the window (gone) and what entered it (came). */
    int rebuild = e->n_keys == 0;
    int64_t n_gone = 0, n_came = 0;
    wm_pkey *gone = NULL, *came = NULL;
    if (!rebuild) {
        if (reserve_pkeys(c, &c->moved, &c->moved_cap, e->n_keys + n))
            return WM_ENOMEM;
        gone = c->moved;
        came = c->moved + e->n_keys;
        int64_t i = 0, j = 0;
        while (i < e->n_keys || j < n) {
            int cmp = i == e->n_keys ? 1 : j == n ? -1 : pkey_cmp(&e->keys[i], &keys[j]);
            if (cmp == 0) {
                i++;
                j++;
            } else if (cmp < 0) {
                gone[n_gone++] = e->keys[i++];
            } else {
                came[n_came++] = keys[j++];
            }
        }
        rebuild = n_gone + n_came >= n;
    }
    if (!rebuild) {
        /* removals first: every old piece must still be in its ring */
        for (int64_t i = 0; i < n_gone; i++) {
            const wm_ring *r;
            if (!find_slot(s, gone[i], &r)) {
                rebuild = 1;
                break;
            }
        }
    }
    if (rebuild) {
        wm_sketch_clear(&e->bins);
        for (int64_t j = 0; j < n; j++) {
            const wm_ring *r = NULL;
            const wm_slot *sl = find_slot(s, keys[j], &r);
            if (wc_absorb(e, r, sl))
                return WM_ENOMEM;
        }
    } else {
        for (int64_t i = 0; i < n_gone; i++) {
            const wm_ring *r = NULL;
            const wm_slot *sl = find_slot(s, gone[i], &r);
            wc_remove(e, r, sl);
        }
        for (int64_t j = 0; j < n_came; j++) {
            const wm_ring *r = NULL;
            const wm_slot *sl = find_slot(s, came[j], &r);
            if (wc_absorb(e, r, sl))
                return WM_ENOMEM;
        }
    }
    if (e->bins.collapses != 0)
        return 0;
    if (reserve_pkeys(c, &e->keys, &e->keys_cap, n))
        return WM_ENOMEM;
    memcpy(e->keys, keys, (size_t)n * sizeof(wm_pkey));
    e->n_keys = n;
    return 1;
}

/* The window of one series into an empty level-0 acc through the cache.
 * Returns 1 when done, 0 when the caller must take the plain cover walk. */
static int window_cached(wm_core *c, wm_series *s, int64_t lo, int64_t hi, wm_sketch *acc)
{
    c->n_pieces = 0;
    if (walk(c, s, c->nlevels - 1, lo, hi))
        return WM_ENOMEM;
    int64_t n = 0;
    for (int64_t i = 0; i < c->n_pieces; i++) {
        const wm_piece *pc = &c->pieces[i];
        if (pc->open)
            continue;
        if (pc->sl->ref != WM_THIN) {
            slot_rec rec;
            read_slot(pc->ring, pc->sl, &rec);
            if (rec.collapses)
                return 0;
        }
        n++;
    }
    if (n < 8)
        return 0;   /* a short walk merges as fast as the cache would */
    if (reserve_pkeys(c, &c->pkeys, &c->pkeys_cap, n))
        return WM_ENOMEM;
    /* Sorted by (level, idx): the walk visits time in order, so each level's
     * pieces already come in idx order, and a stable scatter by level sorts
     * them.  Checked, with qsort behind it, so that a walk changed later
     * cannot silently corrupt the cache's merge-join. */
    int64_t at[WM_MAX_LEVELS + 1] = {0};
    for (int64_t i = 0; i < c->n_pieces; i++)
        if (!c->pieces[i].open)
            at[c->pieces[i].key.level + 1]++;
    for (int l = 0; l < c->nlevels; l++)
        at[l + 1] += at[l];
    for (int64_t i = 0; i < c->n_pieces; i++)
        if (!c->pieces[i].open)
            c->pkeys[at[c->pieces[i].key.level]++] = c->pieces[i].key;
    for (int64_t i = 1; i < n; i++) {
        if (pkey_cmp(&c->pkeys[i - 1], &c->pkeys[i]) >= 0) {
            qsort(c->pkeys, (size_t)n, sizeof(wm_pkey), pkey_cmp);
            break;
        }
    }
    wm_wcache *e = wc_entry(c, s->sid, (int64_t)((uint64_t)hi - (uint64_t)lo));
    if (!e)
        return WM_ENOMEM;
    int rc = wc_update(c, s, e, c->pkeys, n);
    if (rc <= 0) {
        wc_drop(e);
        return rc;
    }
    /* Bins: the closed part, then the open buckets.  The collapse level of
     * a merge is the smallest one that fits the union of the key ranges, so
     * it does not depend on the order of the pieces. */
    if (e->bins.count && wm_sketch_merge(acc, &e->bins))
        return WM_ENOMEM;
    for (int64_t i = 0; i < c->n_pieces; i++) {
        const wm_piece *pc = &c->pieces[i];
        if (pc->open && wm_sketch_merge(acc, &pc->open->sk))
            return WM_ENOMEM;
    }
    /* Stats: replayed in walk order, as the uncached merges accumulate them. */
    uint64_t zero = acc->zero, count = acc->count;
    acc->sum = 0.0;
    acc->min = INFINITY;
    acc->max = -INFINITY;
    for (int64_t i = 0; i < c->n_pieces; i++) {
        const wm_piece *pc = &c->pieces[i];
        double sum, mn, mx;
        if (pc->open) {
            if (pc->open->sk.count == 0)
                continue;
            sum = pc->open->sk.sum;
            mn = pc->open->sk.min;
            mx = pc->open->sk.max;
        } else if (pc->sl->ref == WM_THIN) {
            sum = 0.0 + pc->sl->sum;
            mn = mx = pc->sl->sum;
        } else {
            slot_rec rec;
            read_slot(pc->ring, pc->sl, &rec);
            if (rec.count == 0)
                continue;
            sum = pc->sl->sum;
            mn = rec.mn;
            mx = rec.mx;
        }
        acc->sum += sum;
        if (mn < acc->min)
            acc->min = mn;
        if (mx > acc->max)
            acc->max = mx;
    }
    acc->zero = zero;
    acc->count = count;
    return 1;
}

int wm_core_window(wm_core *c, int64_t n, const int64_t *sids, int64_t lo, int64_t hi,
                   wm_sketch *acc)
{
    lo = max64(min64(lo, WM_IDX_CLAMP), -WM_IDX_CLAMP);
    hi = max64(min64(hi, WM_IDX_CLAMP), -WM_IDX_CLAMP);
    if (n == 1 && acc->count == 0 && acc->collapses == 0 && hi > lo) {
        wm_series *s = c->series[sids[0]];
        if (advance_series(c, s))
            return WM_ENOMEM;
        int rc = window_cached(c, s, lo, hi, acc);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return WM_OK;
        return cover(c, s, c->nlevels - 1, lo, hi, acc) ? WM_ENOMEM : WM_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        wm_series *s = c->series[sids[i]];
        if (advance_series(c, s) || cover(c, s, c->nlevels - 1, lo, hi, acc))
            return WM_ENOMEM;
    }
    return WM_OK;
}

static wm_row *rows_push(wm_rows *out, int64_t idx, int closed, double alpha, uint32_t max_bins)
{
    if (out->n == out->cap) {
        int64_t ncap = out->cap ? out->cap * 2 : 16;
        wm_row *p = realloc(out->rows, (size_t)ncap * sizeof(wm_row));
        if (!p)
            return NULL;
        out->rows = p;
        out->cap = ncap;
    }
    wm_row *row = &out->rows[out->n++];
    row->idx = idx;
    row->closed = closed;
    wm_sketch_init(&row->sk, alpha, max_bins, NULL);
    return row;
}

void wm_rows_free(wm_rows *r)
{
    for (int64_t i = 0; i < r->n; i++)
        wm_sketch_free(&r->rows[i].sk);
    free(r->rows);
    r->rows = NULL;
    r->n = r->cap = 0;
}

int wm_core_buckets(wm_core *c, int64_t sid, int level, int64_t lo, int64_t hi, wm_rows *out)
{
    wm_series *s = c->series[sid];
    lo = max64(min64(lo, WM_IDX_CLAMP), -WM_IDX_CLAMP);
    hi = max64(min64(hi, WM_IDX_CLAMP), -WM_IDX_CLAMP);
    if (advance_series(c, s))
        return WM_ENOMEM;
    int64_t r = c->ratios[level];
    int64_t closed = wm_floordiv(s->closed_until, r);
    const wm_ring *ring = &s->rings[level];
    int64_t top_closed = min64(hi, closed);
    if (lo < top_closed) {
        for (uint32_t p = ring_lower(ring, lo); p < ring->n; p++) {
            const wm_slot *sl = ring_at(ring, p);
            if (slot_idx(ring, sl) >= top_closed)
                break;
            wm_row *row = rows_push(out, slot_idx(ring, sl), 1, c->alpha, c->max_bins);
            if (!row || absorb_slot(ring, sl, &row->sk))
                return WM_ENOMEM;
            /* the reference sets the slot's stats verbatim */
            row->sk.sum = sl->sum;
            if (sl->ref == WM_THIN)
                row->sk.sum = 0.0 + sl->sum;
        }
    }
    int64_t newest = s->n_open ? open_at(s, s->n_open - 1)->idx : s->closed_until - 1;
    int64_t top = min64(hi, wm_floordiv(newest, r) + 1);
    for (int64_t j = max64(lo, closed); j < top; j++) {
        wm_row *row = rows_push(out, j, 0, c->alpha, c->max_bins);
        if (!row || cover(c, s, level > 0 ? level - 1 : 0, j * r, (j + 1) * r, &row->sk))
            return WM_ENOMEM;
        if (row->sk.count == 0) {
            wm_sketch_free(&row->sk);
            out->n--;
        }
    }
    return WM_OK;
}

void wm_core_exact(const wm_core *c, int64_t sid, int64_t *cap, int64_t *n, int64_t *head,
                   const double **ts, const double **vals)
{
    const wm_series *s = c->series[sid];
    *cap = s->exact_cap;
    *n = s->exact_n;
    *head = s->exact_head;
    *ts = s->exact_ts;
    *vals = s->exact_val;
}

void wm_core_last(const wm_core *c, int64_t sid, double *value, double *ts)
{
    *value = c->series[sid]->last_value;
    *ts = c->series[sid]->last_ts;
}

int64_t wm_core_memory_bytes(const wm_core *c) { return c->mem; }

static int64_t store_bytes(const wm_sketch *sk)
{
    return ((int64_t)sk->pos.cap + sk->neg.cap) * (int64_t)sizeof(uint64_t);
}

void wm_core_memory_breakdown(const wm_core *c, int64_t out[WM_MEM_PARTS])
{
    for (int i = 0; i < WM_MEM_PARTS; i++)
        out[i] = 0;
    for (int64_t i = 0; i < c->n_series; i++) {
        const wm_series *s = c->series[i];
        out[0] += (int64_t)series_block_size(c->nlevels) + s->exact_cap * 16;
        out[1] += (int64_t)s->open_cap * (int64_t)sizeof(wm_bucket);
        for (uint32_t k = 0; k < s->open_cap; k++)
            out[1] += store_bytes(&s->open[k].sk);
        for (int l = 0; l < c->nlevels; l++) {
            const wm_ring *r = &s->rings[l];
            out[2 + 2 * (l < 3 ? l : 3)] += (int64_t)r->cap * (int64_t)sizeof(wm_slot);
            out[3 + 2 * (l < 3 ? l : 3)] += r->a_cap;
        }
    }
    for (int l = 0; l < c->nlevels; l++)
        out[10] += store_bytes(&c->build[l]);
    out[11] = c->outbox.cap * 65 + (int64_t)c->outbox.b_cap;
    out[12] = c->pieces_cap * (int64_t)sizeof(wm_piece) +
              (c->pkeys_cap + c->moved_cap) * (int64_t)sizeof(wm_pkey);
    if (c->wcache) {
        out[12] += WM_WC_SETS * WM_WC_WAYS * (int64_t)sizeof(wm_wcache *);
        for (int i = 0; i < WM_WC_SETS * WM_WC_WAYS; i++) {
            const wm_wcache *e = c->wcache[i];
            if (e)
                out[12] += (int64_t)sizeof(wm_wcache) + e->keys_cap * (int64_t)sizeof(wm_pkey) +
                           store_bytes(&e->bins);
        }
    }
}

/* ---- restart ------------------------------------------------------------------ */

int wm_core_restore(wm_core *c, int64_t sid, int level, int64_t idx, const wm_sketch *sk)
{
    if ((uint64_t)sid >= (uint64_t)c->n_series || level < 0 || level >= c->nlevels ||
        !sk->count || !(fabs((double)idx) <= WM_IDX_LIMIT))
        return WM_EORDER;
    wm_series *s = c->series[sid];
    wm_ring *r = &s->rings[level];
    /* only before anything newer exists at this level: restores go coarse
     * to fine, oldest first, before the first point */
    if ((r->n && slot_idx(r, ring_at(r, r->n - 1)) >= idx) || (s->acc_mask >> level & 1u) ||
        (level == 0 && s->n_open))
        return WM_EORDER;
    int up = level + 1;
    int64_t parent = 0;
    if (up < c->nlevels) {
        parent = wm_floordiv(idx * c->ratios[level], c->ratios[up]);
        if ((s->acc_mask >> up & 1u) && s->acc_idx[up] != parent) {
            /* the previous parent is complete: it closes as usual (outbox
             * included), built before this push may evict its children */
            int64_t done = s->acc_idx[up];
            s->acc_mask &= ~(1u << up);
            if (build_parent(c, s, up, done, &c->build[up]) ||
                close_bucket(c, s, up, done, &c->build[up]))
                return WM_ENOMEM;
        }
    }
    if (ring_push(c, r, c->retention[level], idx, sk))
        return WM_ENOMEM;
    if (up < c->nlevels) {
        s->acc_mask |= 1u << up;
        s->acc_idx[up] = parent;
    }
    c->swept_n = -1;   /* the open bucket may be due already: the next advance sweeps */
    return WM_OK;
}

/* ---- write-ahead log ------------------------------------------------------------ */

void wm_core_set_wal(wm_core *c, uint8_t *base, uint64_t cap, uint64_t pos, uint32_t salt)
{
    c->wal.base = base;
    c->wal.cap = cap;
    c->wal.pos = pos;
    c->wal.salt = salt;
    c->wal.max_ts = -INFINITY;
}

void wm_core_wal_state(const wm_core *c, uint64_t *pos, double *max_ts)
{
    *pos = c->wal.pos;
    *max_ts = c->wal.max_ts;
}
