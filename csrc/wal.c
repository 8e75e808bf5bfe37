/* Write-ahead log: scanning a segment's records (see wal.h). */
#include "wal.h"

int64_t wm_wal_scan(const uint8_t *buf, uint64_t len, uint32_t salt, int *torn)
{
    uint64_t n = len / WM_WAL_RECORD, i;
    for (i = 0; i < n; i++) {
        const uint8_t *p = buf + i * WM_WAL_RECORD;
        uint32_t s, c;
        uint64_t tb, vb;
        memcpy(&s, p, 4);
        memcpy(&c, p + 4, 4);
        memcpy(&tb, p + 8, 8);
        memcpy(&vb, p + 16, 8);
        if (c != wm_wal_check(salt, s, tb, vb))
            break;
    }
    *torn = 0;
    for (uint64_t b = i * WM_WAL_RECORD; b < len; b++)
        if (buf[b]) {
            *torn = 1;
            break;
        }
    return (int64_t)i;
}
