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
 *
 * Damage is never mistaken for the end of the log: a bad record (short,
 * wrong length or failing its CRC) is a torn tail only when it is in the
 * last segment and no intact record follows it anywhere; then nothing after
 * it was ever acknowledged, and recovery cuts it off. A bad record followed
 * by intact ones, damage in an earlier segment, or a missing segment is
 * reported (-EBADMSG and a gd_oplog_damage), never skipped.
 * Storage thread only (and startup); not thread-safe, except that
 * gd_oplog_scan of records before a position the caller read under its own
 * lock may run on another thread while appends go on.
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

/* Opens (creating) <dir>/log; a new directory is made durable in <dir>
 * before this returns. 0 or -errno; *out owned by the caller. */
int gd_oplog_open(gd_oplog **out, const char *dir, size_t segment_bytes);
/* Opens <dir>/log to read only (grooved verify): creates, writes and syncs
 * nothing; only gd_oplog_scan without repair, gd_oplog_start and
 * gd_oplog_end may be called on it. -ENOENT when there is no log directory. */
int gd_oplog_open_readonly(gd_oplog **out, const char *dir);
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
/* What gd_oplog_scan found unreadable, or, with rc 0, the torn tail it saw
 * (what = "torn tail"; pos is where the intact records end). */
typedef struct gd_oplog_damage {
    char path[1100];  /* the segment file */
    uint64_t offset;  /* of the first unreadable byte in it */
    int64_t pos;      /* the same as a log position */
    const char *what; /* static text: what is wrong; NULL when nothing is */
} gd_oplog_damage;

/* The segment number of a log position. */
static inline uint64_t gd_oplog_pos_segment(int64_t pos)
{
    return (uint64_t)pos >> 40;
}

/* Calls fn for every record at or after `from` and before `to` (a position
 * gd_oplog_end returned, or INT64_MAX for everything on disk), in log order;
 * stops early when fn returns non-zero. With repair = 1 a torn tail (see
 * above) is cut off the last segment. Returns 0, -EBADMSG with *dmg filled
 * when the log is damaged (dmg may be NULL), or another -errno. */
int gd_oplog_scan(gd_oplog *log, int64_t from, int64_t to, int repair,
                  int (*fn)(void *arg, const gd_oplog_rec *r), void *arg, gd_oplog_damage *dmg);
/* The position where the oldest segment on disk starts. */
int64_t gd_oplog_start(const gd_oplog *log);
/* Where the log would start after gd_oplog_trim(log, keep). */
int64_t gd_oplog_trim_point(const gd_oplog *log, int64_t keep);
/* Deletes every segment that holds only records before `keep`. */
int gd_oplog_trim(gd_oplog *log, int64_t keep);
/* Deletes every segment and starts a fresh one (after recovery folded them). */
int gd_oplog_reset(gd_oplog *log);
/* Position the next record will get. */
int64_t gd_oplog_end(const gd_oplog *log);
uint32_t gd_crc32(const uint8_t *p, size_t n);
/* Largest record payload the log writes (a whole state is well under it). */
#define GD_OPLOG_MAX_PAYLOAD (1u << 20)
/* fsyncs the directory at path. 0 or -errno. */
int gd_fsync_dir(const char *path);
/* TESTS ONLY: with on = 1 every fsync and fdatasync of the log (and
 * gd_fsync_dir) is skipped, so nothing is durable; the power-loss tests use
 * it to show that they notice (see GROOVED_TEST_UNSAFE_NO_SYNC in store.c).
 * Never in production. */
void gd_oplog_unsafe_skip_sync(int on);

#endif
