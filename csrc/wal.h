/* Write-ahead log records: the format, the checksum and the append into
 * memory the caller maps (C99, no Python, no I/O, no clock).
 *
 * The twin of wedmetrics/wal/_format.py (the spec).  A segment is a file
 * mapped in memory: a 64-byte header (written by Python) and then records of
 * 24 bytes, little-endian:
 *
 *     u32 series id | u32 check | f64 timestamp | f64 value
 *
 * check = wm_wal_check(salt, sid, ts bits, value bits), never 0, where salt
 * is the segment's random 32-bit salt: a zero-filled tail (a fresh file is
 * zeros) and a record torn by a kill mid-store both fail the check, and so do
 * records of another segment.  The first record that fails ends the log.
 */
#ifndef WM_WAL_H
#define WM_WAL_H

#include <stdint.h>
#include <string.h>

#define WM_WAL_HEADER 64
#define WM_WAL_RECORD 24
/* record_one's answer when the segment is full: the point is not accepted
 * yet; the caller maps a new segment and records it again */
#define WM_WAL_FULL (-4)

typedef struct {
    uint8_t *base;      /* the mapped segment, NULL when the log is off */
    uint64_t cap;       /* its size in bytes */
    uint64_t pos;       /* where the next record goes */
    uint32_t salt;
    double max_ts;      /* newest timestamp in this segment (truncation) */
} wm_wal;

/* splitmix64-style mixing of the record's words: not cryptographic, it only
 * has to make a torn or stale record fail (probability 2^-32 of passing) */
static inline uint32_t wm_wal_check(uint32_t salt, uint32_t sid, uint64_t tbits, uint64_t vbits)
{
    uint64_t h = (((uint64_t)salt << 32) | sid) * 0x9E3779B97F4A7C15ULL;
    h ^= tbits;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 31;
    h ^= vbits;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 29;
    uint32_t c = (uint32_t)(h >> 32);
    return c ? c : 1u;
}

/* Append one accepted point.  Returns 0, or WM_WAL_FULL (nothing written). */
static inline int wm_wal_append(wm_wal *w, int64_t sid, double ts, double v)
{
    if (w->pos + WM_WAL_RECORD > w->cap)
        return WM_WAL_FULL;
    uint64_t tb, vb;
    memcpy(&tb, &ts, 8);
    memcpy(&vb, &v, 8);
    uint32_t s = (uint32_t)sid;
    uint32_t c = wm_wal_check(w->salt, s, tb, vb);
    uint8_t *p = w->base + w->pos;
    /* the check last: a record is valid only once all of it is in memory */
    memcpy(p + 8, &tb, 8);
    memcpy(p + 16, &vb, 8);
    memcpy(p, &s, 4);
    memcpy(p + 4, &c, 4);
    w->pos += WM_WAL_RECORD;
    if (ts > w->max_ts)
        w->max_ts = ts;
    return 0;
}

/* Valid records at the start of buf[0, len) (records only, no header):
 * returns their number; *torn is set when the bytes after them are not all
 * zeros (a torn or corrupted tail rather than the unused end). */
int64_t wm_wal_scan(const uint8_t *buf, uint64_t len, uint32_t salt, int *torn);

#endif
