/*
 * oplog — the append-only op log: numbered segment files in <dir>/log/,
 * each a sequence of records
 *
 *   [u32 payload length][u32 CRC-32 of payload][payload]
 *   payload = [16-byte session id][u32 opno][op bytes]
 *
 * gd_oplog_append writes a whole batch with one write() and makes it durable
 * with one fdatasync(); a batch that fails is cut off again, and if even the
 * cut fails, appends are refused until it succeeds (so a later, shorter
 * batch never leaves stale records behind it). A record's
 * position (segment << 40 | offset) only grows, so it orders the log.
 * Recovery reads segments in order and stops at the first record that is
 * short or fails its CRC (a torn tail): everything before it is intact.
 * Storage thread only (and startup); not thread-safe.
 */
#ifndef GD_OPLOG_H
#define GD_OPLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct gd_oplog gd_oplog;

typedef struct gd_oplog_rec {
    uint8_t sid[16];
    uint32_t opno;
    const uint8_t *op; /* borrowed: valid until the next call on the log */
    size_t oplen;
    int64_t pos;
} gd_oplog_rec;

/* Opens (creating) <dir>/log. 0 or -errno; *out owned by the caller. */
int gd_oplog_open(gd_oplog **out, const char *dir, size_t segment_bytes);
void gd_oplog_close(gd_oplog *log); /* NULL ok */

/* Appends encoded records (gd_oplog_encode) durably. 0 or -errno; on error
 * the log is as it was before. *first_pos is the first record's position. */
int gd_oplog_append(gd_oplog *log, const uint8_t *records, size_t len, int64_t *first_pos);
/* Appends one record to buf (growable); returns its length, or 0 on OOM. */
size_t gd_oplog_encode(uint8_t **buf, size_t *len, size_t *cap, const uint8_t sid[16],
                       uint32_t opno, const uint8_t *op, size_t oplen);

/* Cuts the log back to pos (a position gd_oplog_append returned for the
 * last batch) when a batch fails after its ops were appended. */
int gd_oplog_cut(gd_oplog *log, int64_t pos);
/* Calls fn for every intact record at or after `from`, in log order; stops
 * early when fn returns non-zero. With repair = 1 a torn tail of the last
 * segment is cut off. Returns 0 or -errno. */
int gd_oplog_scan(gd_oplog *log, int64_t from, int repair,
                  int (*fn)(void *arg, const gd_oplog_rec *r), void *arg);
/* Deletes every segment that holds only records before `keep`. */
int gd_oplog_trim(gd_oplog *log, int64_t keep);
/* Deletes every segment and starts a fresh one (after recovery folded them). */
int gd_oplog_reset(gd_oplog *log);
/* Position the next record will get. */
int64_t gd_oplog_end(const gd_oplog *log);
uint32_t gd_crc32(const uint8_t *p, size_t n);

#endif
