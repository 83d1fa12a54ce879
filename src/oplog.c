/*
 * oplog — see oplog.h. Segments are named by a 16-hex-digit number that only
 * grows (reset continues the numbering), so positions never go backwards.
 * A new segment's directory entry is fsync'd before it holds records.
 */
#include "oplog.h"

#include "faults.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define POS(seg, off) ((int64_t)((uint64_t)(seg) << 40 | (uint64_t)(off)))
#define POS_SEG(p) ((uint64_t)(p) >> 40)
#define POS_OFF(p) ((uint64_t)(p) & ((1ull << 40) - 1))
#define HDR 8u
#define FIXED 20u /* sid + opno */

struct gd_oplog {
    char dir[1024];
    int fd;         /* the current (last) segment, open for writing */
    uint64_t seg;   /* its number */
    uint64_t size;  /* its length: everything before is durable */
    uint64_t first; /* the oldest segment on disk */
    size_t seg_bytes;
    int dirty;            /* bytes past `size` may be on disk: cut them before appending */
    uint64_t header_prev; /* != 0: the segment was opened by rotation and its first write
                           * starts with a header naming the previous segment's size */
};

static uint32_t crc_table[256];
static int skip_sync; /* tests only: gd_oplog_unsafe_skip_sync */

void gd_oplog_unsafe_skip_sync(int on)
{
    skip_sync = on;
}

static int sync_data(int fd)
{
    return skip_sync ? 0 : fdatasync(fd);
}

uint32_t gd_crc32(const uint8_t *p, size_t n)
{
    if (!crc_table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    }
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void seg_path(const gd_oplog *log, uint64_t seg, char *out, size_t n)
{
    snprintf(out, n, "%s/%016llx.log", log->dir, (unsigned long long)seg);
}

int gd_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = skip_sync || fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int sync_dir(const gd_oplog *log)
{
    return gd_fsync_dir(log->dir);
}

/* Lists segment numbers: the oldest and newest (0, 0 when there are none). */
static int list_segments(const gd_oplog *log, uint64_t *lo, uint64_t *hi)
{
    DIR *d = opendir(log->dir);
    if (!d) return -errno;
    *lo = *hi = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long long n = strtoull(e->d_name, &end, 16);
        if (end == e->d_name || strcmp(end, ".log") != 0 || n == 0) continue;
        if (!*lo || n < *lo) *lo = n;
        if (n > *hi) *hi = n;
    }
    closedir(d);
    return 0;
}

static int open_segment(gd_oplog *log, uint64_t seg, int create)
{
    char path[1100];
    seg_path(log, seg, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (create) {
        int rc = sync_dir(log);
        if (rc) {
            close(fd);
            return rc;
        }
    }
    if (log->fd >= 0) close(log->fd);
    log->fd = fd;
    log->seg = seg;
    log->size = (uint64_t)st.st_size;
    return 0;
}

int gd_oplog_open(gd_oplog **out, const char *dir, size_t segment_bytes)
{
    gd_oplog *log = calloc(1, sizeof(*log));
    if (!log) return -ENOMEM;
    log->fd = -1;
    log->seg_bytes = segment_bytes;
    snprintf(log->dir, sizeof(log->dir), "%s/log", dir);
    int rc = 0;
    if (mkdir(log->dir, 0755) == 0 || errno == EEXIST)
        rc = gd_fsync_dir(dir); /* its entry must survive a power cut, even one that came
                                 * between an earlier mkdir and its sync */
    else
        rc = -errno;
    if (rc) {
        free(log);
        return rc;
    }
    uint64_t lo, hi;
    rc = list_segments(log, &lo, &hi);
    if (rc == 0) rc = open_segment(log, hi ? hi : 1, 1);
    if (rc) {
        gd_oplog_close(log);
        return rc;
    }
    log->first = lo ? lo : 1;
    *out = log;
    return 0;
}

int gd_oplog_open_readonly(gd_oplog **out, const char *dir)
{
    gd_oplog *log = calloc(1, sizeof(*log));
    if (!log) return -ENOMEM;
    log->fd = -1;
    snprintf(log->dir, sizeof(log->dir), "%s/log", dir);
    uint64_t lo, hi;
    int rc = list_segments(log, &lo, &hi);
    if (rc == 0 && hi) {
        char path[1100];
        struct stat st;
        seg_path(log, hi, path, sizeof(path));
        if (stat(path, &st) != 0)
            rc = -errno;
        else
            log->size = (uint64_t)st.st_size;
    }
    if (rc) {
        free(log);
        return rc;
    }
    log->seg = hi;
    log->first = lo ? lo : 1;
    *out = log;
    return 0;
}

void gd_oplog_close(gd_oplog *log)
{
    if (!log) return;
    if (log->fd >= 0) close(log->fd);
    free(log);
}

int64_t gd_oplog_end(const gd_oplog *log)
{
    return POS(log->seg, log->size);
}

size_t gd_oplog_encode(uint8_t **buf, size_t *len, size_t *cap, const uint8_t sid[16],
                       uint32_t opno, const uint8_t *op, size_t oplen)
{
    size_t need = HDR + FIXED + oplen;
    if (FIXED + oplen > GD_OPLOG_MAX_PAYLOAD) return 0;
    if (*len + need > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + need)
            c *= 2;
        uint8_t *p = realloc(*buf, c);
        if (!p) return 0;
        *buf = p;
        *cap = c;
    }
    uint8_t *r = *buf + *len;
    memcpy(r + HDR, sid, 16);
    put32(r + HDR + 16, opno);
    memcpy(r + HDR + FIXED, op, oplen);
    put32(r, (uint32_t)(FIXED + oplen));
    put32(r + 4, gd_crc32(r + HDR, FIXED + oplen));
    *len += need;
    return need;
}

/* Removes whatever a failed batch may have left past the durable end: a
 * later, shorter batch must never leave old records behind its own. */
static int cut_dirty_tail(gd_oplog *log)
{
    if (!log->dirty) return 0;
    if (gd_fault("log-truncate")) return -EIO;
    if (ftruncate(log->fd, (off_t)log->size) != 0 || sync_data(log->fd) != 0) return -errno;
    log->dirty = 0;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t at)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, p + done, len - done, (off_t)(at + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* The header record that opens a segment made by rotation: the nil session
 * id, op number 0 (real ops start at 1) and the previous segment's size, so
 * that a scan notices a segment that lost its end. */
static size_t encode_header(uint8_t out[HDR + FIXED + 8], uint64_t prev_size)
{
    memset(out, 0, HDR + FIXED + 8);
    for (int i = 0; i < 8; i++)
        out[HDR + FIXED + i] = (uint8_t)(prev_size >> (8 * i));
    put32(out, FIXED + 8);
    put32(out + 4, gd_crc32(out + HDR, FIXED + 8));
    return HDR + FIXED + 8;
}

static bool is_header(const uint8_t *rec, size_t rlen, uint64_t *prev_size)
{
    static const uint8_t nil[16];
    if (rlen != HDR + FIXED + 8 || memcmp(rec + HDR, nil, 16) != 0 || get32(rec + HDR + 16) != 0)
        return false;
    *prev_size = 0;
    for (int i = 7; i >= 0; i--)
        *prev_size = *prev_size << 8 | rec[HDR + FIXED + i];
    return true;
}

int gd_oplog_append(gd_oplog *log, const uint8_t *records, size_t len, int64_t *first_pos)
{
    /* While the disk still fails, refuse rather than risk an old tail. */
    int rc = cut_dirty_tail(log);
    if (rc) return rc;
    if (log->size > 0 && log->size + len > log->seg_bytes) {
        uint64_t prev = log->size;
        if ((rc = open_segment(log, log->seg + 1, 1)) != 0) return rc;
        log->header_prev = prev;
    }
    uint64_t at = log->size;
    uint8_t header[HDR + FIXED + 8];
    size_t hlen = log->header_prev && at == 0 ? encode_header(header, log->header_prev) : 0;
    if ((hlen && (rc = write_all(log->fd, header, hlen, at)) != 0) ||
        (rc = write_all(log->fd, records, len, at + hlen)) != 0)
        goto undo;
    if (sync_data(log->fd) != 0) {
        rc = -errno;
        goto undo;
    }
    *first_pos = POS(log->seg, at + hlen);
    log->size = at + hlen + len;
    log->header_prev = 0;
    return 0;
undo:
    /* Leave no part of a failed batch behind; if even that fails, the next
     * append retries it before writing anything. */
    log->dirty = 1;
    cut_dirty_tail(log);
    return rc;
}

int gd_oplog_cut(gd_oplog *log, int64_t pos)
{
    if (POS_SEG(pos) != log->seg || POS_OFF(pos) > log->size) return -EINVAL;
    log->size = POS_OFF(pos);
    log->dirty = 1;
    return cut_dirty_tail(log);
}

/* The length of the intact record at off, or 0 when there is none. */
static size_t record_at(const uint8_t *map, size_t size, size_t off)
{
    if (size - off < HDR) return 0;
    uint32_t plen = get32(map + off);
    if (plen < FIXED || plen > GD_OPLOG_MAX_PAYLOAD || plen > size - off - HDR) return 0;
    if (gd_crc32(map + off + HDR, plen) != get32(map + off + 4)) return 0;
    return HDR + plen;
}

/* True when an intact record starts anywhere after `bad`. Records are not
 * aligned, so every offset is a candidate; most fail the length check. */
static bool intact_record_after(const uint8_t *map, size_t size, size_t bad)
{
    for (size_t off = bad + 1; off + HDR + FIXED <= size; off++)
        if (record_at(map, size, off)) return true;
    return false;
}

static int damaged(gd_oplog_damage *dmg, const char *path, uint64_t seg, uint64_t off,
                   const char *what)
{
    if (dmg) {
        snprintf(dmg->path, sizeof(dmg->path), "%s", path);
        dmg->offset = off;
        dmg->pos = POS(seg, off);
        dmg->what = what;
    }
    return -EBADMSG;
}

/* Maps segment seg (NULL map for an empty file). -ENOENT when it is absent. */
static int map_segment(const char *path, uint8_t **map, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    int rc = 0;
    *map = NULL;
    *size = 0;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (st.st_size > 0) {
        *size = (size_t)st.st_size;
        *map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (*map == MAP_FAILED) {
            rc = -errno;
            *map = NULL;
        }
    }
    close(fd);
    return rc;
}

int gd_oplog_scan(gd_oplog *log, int64_t from, int64_t to, int repair,
                  int (*fn)(void *arg, const gd_oplog_rec *r), void *arg, gd_oplog_damage *dmg)
{
    uint64_t lo, hi;
    if (dmg) dmg->what = NULL;
    int rc = list_segments(log, &lo, &hi);
    if (rc || !hi) return rc;
    if (to != INT64_MAX && POS_SEG(to) < hi) hi = POS_SEG(to);
    uint64_t seg = POS_SEG(from) > lo ? POS_SEG(from) : lo;
    char path[1100];
    if (from > 0 && POS_SEG(from) < lo) {
        /* Records this scan must read were deleted. */
        seg_path(log, POS_SEG(from), path, sizeof(path));
        return damaged(dmg, path, POS_SEG(from), POS_OFF(from),
                       "segment missing (deleted while still needed)");
    }
    char prev_path[1100] = "";
    size_t prev_len = 0; /* the size of the segment scanned just before, when there was one */
    for (; seg <= hi; seg++) {
        seg_path(log, seg, path, sizeof(path));
        uint8_t *map;
        size_t maplen = 0, size;
        rc = map_segment(path, &map, &maplen);
        size = maplen;
        if (rc == -ENOENT) return damaged(dmg, path, seg, 0, "segment missing from the sequence");
        if (rc) return rc;
        if (to != INT64_MAX && seg == POS_SEG(to)) {
            if (POS_OFF(to) > size) {
                if (map) munmap(map, maplen);
                return damaged(dmg, path, seg, size, "segment shorter than its durable end");
            }
            size = (size_t)POS_OFF(to); /* past the durable end: not ours to read */
        }
        if (maplen == 0 && seg < hi) /* only the newest segment is ever empty */
            return damaged(dmg, path, seg, 0, "empty segment before the last one");
        size_t off = seg == POS_SEG(from) ? (size_t)POS_OFF(from) : 0;
        int stop = 0;
        while (off < size && !stop) {
            size_t rlen = record_at(map, size, off);
            if (!rlen) {
                /* A torn tail only if nothing intact follows, anywhere, and
                 * only at recovery: below a durable end (to) all is acked. */
                if (to != INT64_MAX || seg != hi || intact_record_after(map, size, off)) {
                    rc = damaged(dmg, path, seg, off,
                                 to != INT64_MAX ? "unreadable record before the durable end"
                                 : seg != hi ? "unreadable record in a segment that is not the last"
                                             : "unreadable record followed by intact records");
                } else {
                    damaged(dmg, path, seg, off, "torn tail"); /* reported, not an error */
                    if (repair && seg == log->seg) {
                        if (ftruncate(log->fd, (off_t)off) != 0 || sync_data(log->fd) != 0)
                            rc = -errno;
                        else
                            log->size = off;
                    }
                }
                if (map) munmap(map, maplen);
                return rc;
            }
            uint64_t said;
            if (is_header(map + off, rlen, &said)) {
                if (off == 0 && prev_path[0] && said != prev_len) {
                    munmap(map, maplen);
                    return damaged(dmg, prev_path, seg - 1, prev_len < said ? prev_len : said,
                                   prev_len < said ? "segment lost its end (the next one says so)"
                                                   : "segment longer than the next one says");
                }
                off += rlen;
                continue;
            }
            gd_oplog_rec r;
            memcpy(r.sid, map + off + HDR, 16);
            r.opno = get32(map + off + HDR + 16);
            r.op = map + off + HDR + FIXED;
            r.oplen = rlen - HDR - FIXED;
            r.pos = POS(seg, off);
            stop = fn(arg, &r);
            off += rlen;
        }
        if (map) munmap(map, maplen);
        if (stop) break;
        snprintf(prev_path, sizeof(prev_path), "%s", path);
        prev_len = maplen;
    }
    return 0;
}

int64_t gd_oplog_start(const gd_oplog *log)
{
    return POS(log->first, 0);
}

int64_t gd_oplog_trim_point(const gd_oplog *log, int64_t keep)
{
    uint64_t upto = keep == INT64_MAX ? log->seg : POS_SEG(keep);
    if (upto > log->seg) upto = log->seg;
    return POS(upto, 0);
}

int gd_oplog_trim(gd_oplog *log, int64_t keep)
{
    uint64_t upto = POS_SEG(gd_oplog_trim_point(log, keep));
    for (uint64_t s = log->first; s < upto; s++) {
        char path[1100];
        seg_path(log, s, path, sizeof(path));
        if (unlink(path) != 0 && errno != ENOENT) return -errno;
    }
    if (upto > log->first) log->first = upto;
    return 0;
}

int gd_oplog_reset(gd_oplog *log)
{
    uint64_t next = log->seg + 1;
    int rc = open_segment(log, next, 1);
    if (rc) return rc;
    rc = gd_oplog_trim(log, INT64_MAX);
    return rc ? rc : sync_dir(log);
}
