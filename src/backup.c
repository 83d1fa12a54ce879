/*
 * backup — `grooved backup` and `grooved verify` (see backup.h).
 *
 * backup copies a data directory that a server may be writing, without its
 * LOCK (the server holds it) and without stopping or slowing the server,
 * into a directory that is itself a valid data directory, plus a manifest.
 * The server appends to the newest op log segment, commits checkpoints with
 * the log position they cover (meta log_end), and trims: it makes a new
 * log_start durable, then unlinks the segments before it. So:
 *
 *   1. pin    open every segment. An open descriptor keeps a segment's data
 *             even after the server unlinks it. Every op acknowledged before
 *             now was fdatasync'd: it is inside these files.
 *   2. snap   durable.db, then kv.db, with SQLite's online backup API: one
 *             read transaction each, a consistent WAL snapshot; the writer
 *             never waits. The snapshot's meta says where its log starts
 *             (log_start: the server unlinks nothing at or after it before
 *             a later log_start commits) and how far it must reach
 *             (log_end). kv.db comes second, so no value in it is of an op
 *             the log copy lacks.
 *   3. pin    again: segments made since step 1.
 *   4. copy   segments log_start .. E, E the newest pinned, from the pinned
 *             descriptors: each before E whole (a later one exists, so the
 *             server never writes to it again), E as far as it is written
 *             now. A segment of that range that is not pinned was made and
 *             trimmed between the pins: the attempt lost a race.
 *   5. check  cut a torn tail off the copy of E (a record being written as
 *             it was read: never acknowledged), then gd_store_verify the
 *             copy: the fold recovery would do, without writing. Damage
 *             means a lost race or damage in the source.
 *   6. seal   copy quarantine/, write backup-manifest.json (grooved version,
 *             every file's size and CRC-32, every session's opno and
 *             serverSeq), fsync every file and directory.
 *
 * The copy is the state the source would recover to after a crash at the
 * moment E was read: every op acknowledged before step 1, each session a
 * gap-free prefix of its ops. A lost race starts the attempt over, at most
 * five times. backup never writes to the source.
 *
 * verify runs gd_store_verify and prints one line per finding; when the
 * directory holds backup-manifest.json and no LOCK (no grooved has opened it
 * since the backup wrote it), it also compares every file with the
 * manifest. Main thread only.
 */
#define _GNU_SOURCE /* nftw */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "kv.h"
#include "log.h"
#include "oplog.h"
#include "store.h"

#ifndef GD_VERSION
#define GD_VERSION "unknown"
#endif

#define MANIFEST "backup-manifest.json"
#define ATTEMPTS 5

static const char backup_usage[] =
    "usage: grooved backup --data-dir DIR --to DIR [--log-format text|json]\n"
    "  Copies the data directory DIR (a server may be running on it) into a new or\n"
    "  empty directory --to, which is itself a data directory, with " MANIFEST ".\n";
static const char verify_usage[] =
    "usage: grooved verify --data-dir DIR [--log-format text|json]\n"
    "  Checks a data directory that no server is running on; changes nothing.\n"
    "  Exit status 0 when clean, 1 when damaged, 2 on bad usage.\n";

/* ---- small file helpers ---------------------------------------------- */

static int write_all(int fd, const void *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Copies everything in fd (from offset 0 to its end now) into a new file
 * `to`, fsync'd. *size is the bytes copied. */
static int copy_fd(int fd, const char *to, uint64_t *size)
{
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) return -errno;
    static char buf[1 << 16];
    uint64_t at = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), (off_t)at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) rc = -errno;
        if (n <= 0) break;
        if ((rc = write_all(out, buf, (size_t)n)) != 0) break;
        at += (uint64_t)n;
    }
    if (rc == 0 && fsync(out) != 0) rc = -errno;
    close(out);
    *size = at;
    return rc;
}

static int copy_path(const char *from, const char *to)
{
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    uint64_t size;
    int rc = copy_fd(fd, to, &size);
    close(fd);
    return rc;
}

/* CRC-32 (the op log's and zlib's) and size of a whole file. */
static int file_crc(const char *path, uint32_t *crc, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    static unsigned char buf[1 << 16];
    uLong c = crc32(0L, Z_NULL, 0);
    int rc = 0;
    *size = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) rc = -errno;
        if (n <= 0) break;
        c = crc32(c, buf, (uInt)n);
        *size += (uint64_t)n;
    }
    close(fd);
    *crc = (uint32_t)c;
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    return ftw->level == 0 ? 0 : remove(path);
}

/* Empties dir (which backup made or found empty), keeping dir itself. */
static void clear_dir(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int is_empty_dir(const char *dir, bool *empty)
{
    DIR *d = opendir(dir);
    if (!d) return -errno;
    struct dirent *e;
    *empty = true;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) *empty = false;
    closedir(d);
    return 0;
}

static int parent_dir(const char *path, char *out, size_t len)
{
    snprintf(out, len, "%s", path);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, len, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
    return 0;
}

/* ---- segments --------------------------------------------------------- */

typedef struct pin {
    uint64_t seg;
    int fd;
} pin;

typedef struct pins {
    pin *p;
    size_t n, cap;
} pins;

static int find_pin(const pins *ps, uint64_t seg)
{
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i].seg == seg) return ps->p[i].fd;
    return -1;
}

/* Opens every segment of <dir>/log not pinned yet. A segment deleted
 * between the listing and its open is simply not pinned. */
static int pin_segments(const char *dir, pins *ps)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/log", dir);
    DIR *d = opendir(path);
    if (!d) return -errno;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        char *end;
        unsigned long long seg = strtoull(e->d_name, &end, 16);
        if (end == e->d_name || strcmp(end, ".log") != 0 || seg == 0 || find_pin(ps, seg) >= 0)
            continue;
        snprintf(path, sizeof(path), "%s/log/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT) rc = -errno;
            continue;
        }
        if (ps->n == ps->cap) {
            size_t cap = ps->cap ? ps->cap * 2 : 32;
            pin *p = realloc(ps->p, cap * sizeof(*p));
            if (!p) {
                close(fd);
                rc = -ENOMEM;
                break;
            }
            ps->p = p;
            ps->cap = cap;
        }
        ps->p[ps->n++] = (pin){seg, fd};
    }
    closedir(d);
    return rc;
}

static void unpin_all(pins *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        close(ps->p[i].fd);
    free(ps->p);
    memset(ps, 0, sizeof(*ps));
}

/* ---- SQLite snapshots ------------------------------------------------- */

static int64_t meta_value(sqlite3 *db, const char *key)
{
    sqlite3_stmt *q;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &q, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/*
 * Copies the SQLite database `from` into the new file `to` with the online
 * backup API, in one step: one read transaction of a read-only connection,
 * so a consistent snapshot that never blocks the server's writer (and
 * closing it never checkpoints the source's WAL). The copy is switched to a
 * rollback journal, so that it is one self-contained file; a server turns it
 * back to WAL when it opens it. With log_start/log_end non-NULL, reads them
 * from the copy's meta. 0 or -errno with why filled.
 */
static int snapshot_db(const char *from, const char *to, int64_t *log_start, int64_t *log_end,
                       int *pages, char *why, size_t whylen)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rc = sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_db_config(src, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        sqlite3_busy_timeout(src, 10000);
        rc = sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    }
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b) {
            rc = sqlite3_errcode(dst);
        } else {
            for (int tries = 0; tries < 200; tries++) {
                rc = sqlite3_backup_step(b, -1);
                if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
                sqlite3_sleep(50);
            }
            *pages = sqlite3_backup_pagecount(b);
            int frc = sqlite3_backup_finish(b);
            if (rc == SQLITE_DONE) rc = frc;
        }
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (rc == SQLITE_OK && log_start) {
        *log_start = meta_value(dst, "log_start");
        *log_end = meta_value(dst, "log_end");
    }
    if (rc != SQLITE_OK)
        snprintf(why, whylen, "cannot copy %s: %s", from,
                 dst && sqlite3_errcode(dst) != SQLITE_OK ? sqlite3_errmsg(dst)
                 : src                                    ? sqlite3_errmsg(src)
                                                          : sqlite3_errstr(rc));
    sqlite3_close(src);
    if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK) rc = SQLITE_IOERR;
    return rc == SQLITE_OK ? 0 : (rc & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;
}

/* ---- the backup ------------------------------------------------------- */

typedef struct session_row {
    char id[37];
    int64_t opno, server_seq;
} session_row;

typedef struct copy_check {
    session_row *rows;
    size_t n, cap;
    bool oom;
    char first_damage[1600];
    char lines[8][1600]; /* warnings and damage, for the report */
    int nlines;
} copy_check;

static const char *level_word(gd_verify_level level)
{
    return level == GD_VERIFY_DAMAGE ? "DAMAGE" : level == GD_VERIFY_WARN ? "warning" : "ok";
}

static void copy_line(void *arg, gd_verify_level level, const char *subject, const char *text)
{
    copy_check *c = arg;
    if (level == GD_VERIFY_OK) return;
    if (level == GD_VERIFY_DAMAGE && !c->first_damage[0])
        snprintf(c->first_damage, sizeof(c->first_damage), "%s: %s", subject, text);
    if (c->nlines < 8)
        snprintf(c->lines[c->nlines++], sizeof(c->lines[0]), "%-7s %s: %s", level_word(level),
                 subject, text);
}

static void copy_session(void *arg, const char *id, int64_t opno, int64_t server_seq)
{
    copy_check *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        session_row *p = realloc(c->rows, cap * sizeof(*p));
        if (!p) {
            c->oom = true;
            return;
        }
        c->rows = p;
        c->cap = cap;
    }
    session_row *r = &c->rows[c->n++];
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->opno = opno;
    r->server_seq = server_seq;
}

typedef struct backup_result {
    uint64_t first_seg, last_seg; /* segments copied */
    size_t nsegs, unlinked;       /* how many; how many the server had deleted by then */
    uint64_t log_bytes;
    int64_t log_start, log_end, l0;
    int db_pages, kv_pages;
    gd_verify_counts counts;
    copy_check check;
    char why[1800]; /* why an attempt failed */
} backup_result;

static int any_record(void *arg, const gd_oplog_rec *r)
{
    (void)arg;
    (void)r;
    return 0;
}

static int test_delay_ms(void)
{
    /* Tests: widen the window in which the server trims what backup needs. */
    const char *d = getenv("GROOVED_TEST_BACKUP_DELAY_MS");
    return d ? atoi(d) : 0;
}

/*
 * One attempt (steps 1-5 above) into the empty directory `to`. 0, -EAGAIN
 * when it lost a race with the server or found the copy damaged (why says
 * which), or another -errno (why says).
 */
static int backup_attempt(const char *from, const char *to, backup_result *res)
{
    char src[1200], dst[1200];
    pins ps = {0};
    int rc = pin_segments(from, &ps);
    if (rc) {
        snprintf(res->why, sizeof(res->why), "cannot open the op log in %s/log: %s", from,
                 strerror(-rc));
        goto out;
    }
    /* L0: where the log ended when the backup began. */
    res->l0 = 0;
    for (size_t i = 0; i < ps.n; i++) {
        struct stat sb;
        if ((int64_t)(ps.p[i].seg << 40) > res->l0 && fstat(ps.p[i].fd, &sb) == 0)
            res->l0 = (int64_t)(ps.p[i].seg << 40 | (uint64_t)sb.st_size);
    }

    snprintf(src, sizeof(src), "%s/durable.db", from);
    snprintf(dst, sizeof(dst), "%s/durable.db", to);
    rc = snapshot_db(src, dst, &res->log_start, &res->log_end, &res->db_pages, res->why,
                     sizeof(res->why));
    if (rc) goto out;
    snprintf(src, sizeof(src), "%s/kv.db", from);
    snprintf(dst, sizeof(dst), "%s/kv.db", to);
    res->kv_pages = 0;
    if (access(src, F_OK) == 0 &&
        (rc = snapshot_db(src, dst, NULL, NULL, &res->kv_pages, res->why, sizeof(res->why))) != 0)
        goto out;
    if ((rc = pin_segments(from, &ps)) != 0) {
        snprintf(res->why, sizeof(res->why), "cannot open the op log in %s/log: %s", from,
                 strerror(-rc));
        goto out;
    }
    if (test_delay_ms() > 0) usleep((useconds_t)test_delay_ms() * 1000);

    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < ps.n; i++) {
        if (ps.p[i].seg < lo) lo = ps.p[i].seg;
        if (ps.p[i].seg > hi) hi = ps.p[i].seg;
    }
    uint64_t first = res->log_start > 0 ? gd_oplog_pos_segment(res->log_start) : lo;
    snprintf(dst, sizeof(dst), "%s/log", to);
    if (mkdir(dst, 0755) != 0) {
        rc = -errno;
        snprintf(res->why, sizeof(res->why), "cannot create %s: %s", dst, strerror(-rc));
        goto out;
    }
    if (ps.n == 0 || first > hi) {
        rc = -EAGAIN;
        snprintf(res->why, sizeof(res->why),
                 "the op log in %s/log holds no segment from %016llx on (durable.db's log_start)",
                 from, (unsigned long long)first);
        goto out;
    }
    res->first_seg = first;
    res->last_seg = hi;
    res->nsegs = res->unlinked = 0;
    res->log_bytes = 0;
    for (uint64_t seg = first; seg <= hi; seg++) {
        int fd = find_pin(&ps, seg);
        if (fd < 0) {
            rc = -EAGAIN;
            snprintf(res->why, sizeof(res->why),
                     "op log segment %016llx, which the snapshot of durable.db needs, could not "
                     "be opened: the server made and deleted it before backup could open it, or "
                     "it is missing from the source",
                     (unsigned long long)seg);
            goto out;
        }
        struct stat sb;
        if (fstat(fd, &sb) == 0 && sb.st_nlink == 0) res->unlinked++;
        snprintf(dst, sizeof(dst), "%s/log/%016llx.log", to, (unsigned long long)seg);
        uint64_t size;
        if ((rc = copy_fd(fd, dst, &size)) != 0) {
            snprintf(res->why, sizeof(res->why), "cannot copy op log segment %016llx: %s",
                     (unsigned long long)seg, strerror(-rc));
            goto out;
        }
        res->nsegs++;
        res->log_bytes += size;
    }
    unpin_all(&ps);

    /* A record being written while the newest segment was read is a torn
     * tail: cut it, as recovery would. Anything else unreadable is damage. */
    gd_oplog *log;
    if ((rc = gd_oplog_open(&log, to, 64u << 20)) == 0) {
        gd_oplog_damage dmg;
        rc = gd_oplog_scan(log, 0, INT64_MAX, 1, any_record, NULL, &dmg);
        gd_oplog_close(log);
        if (rc == -EBADMSG) {
            const char *base = strrchr(dmg.path, '/');
            snprintf(res->why, sizeof(res->why), "the copy of log/%s is damaged at offset %llu: %s",
                     base ? base + 1 : dmg.path, (unsigned long long)dmg.offset, dmg.what);
            rc = -EAGAIN;
            goto out;
        }
    }
    if (rc) {
        snprintf(res->why, sizeof(res->why), "cannot read the copied op log: %s", strerror(-rc));
        goto out;
    }

    /* The fold recovery would do on the copy, without writing. */
    free(res->check.rows);
    memset(&res->check, 0, sizeof(res->check));
    gd_verify_sink sink = {.line = copy_line, .session = copy_session, .arg = &res->check};
    rc = gd_store_verify(to, &gd_kv_sqlite, &sink, &res->counts);
    if (rc) {
        snprintf(res->why, sizeof(res->why), "cannot verify the copy: %s", strerror(-rc));
    } else if (res->check.oom) {
        rc = -ENOMEM;
        snprintf(res->why, sizeof(res->why), "out of memory");
    } else if (res->counts.damage) {
        rc = -EAGAIN;
        snprintf(res->why, sizeof(res->why), "the copy does not verify: %s",
                 res->check.first_damage);
    }
out:
    unpin_all(&ps);
    return rc;
}

/* Copies <from>/quarantine/<entry>/<file> (sessions set aside at startup). */
static int copy_quarantine(const char *from, const char *to)
{
    char src[1200], dst[1200];
    snprintf(src, sizeof(src), "%s/quarantine", from);
    DIR *d = opendir(src);
    if (!d) return errno == ENOENT ? 0 : -errno;
    snprintf(dst, sizeof(dst), "%s/quarantine", to);
    int rc = mkdir(dst, 0755) == 0 ? 0 : -errno;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sdir[1500], ddir[1500];
        snprintf(sdir, sizeof(sdir), "%s/%s", src, e->d_name);
        snprintf(ddir, sizeof(ddir), "%s/%s", dst, e->d_name);
        DIR *q = opendir(sdir);
        if (!q) continue; /* not a directory: not ours */
        if (mkdir(ddir, 0755) != 0) rc = -errno;
        struct dirent *f;
        while (rc == 0 && (f = readdir(q))) {
            if (f->d_name[0] == '.') continue;
            char sf[1800], df[1800];
            snprintf(sf, sizeof(sf), "%s/%s", sdir, f->d_name);
            snprintf(df, sizeof(df), "%s/%s", ddir, f->d_name);
            rc = copy_path(sf, df);
        }
        closedir(q);
    }
    closedir(d);
    return rc;
}

typedef struct file_list {
    char (*names)[600]; /* relative to the backup directory */
    size_t n, cap;
    const char *root;
    bool oom;
} file_list;

static file_list *walking; /* nftw has no argument pointer */

static int note_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    file_list *fl = walking;
    if (flag != FTW_F) return 0;
    const char *rel = path + strlen(fl->root);
    while (*rel == '/')
        rel++;
    if (strcmp(rel, MANIFEST) == 0) return 0;
    if (fl->n == fl->cap) {
        size_t cap = fl->cap ? fl->cap * 2 : 32;
        char(*p)[600] = realloc(fl->names, cap * sizeof(*p));
        if (!p) {
            fl->oom = true;
            return 1;
        }
        fl->names = p;
        fl->cap = cap;
    }
    snprintf(fl->names[fl->n++], 600, "%s", rel);
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int fsync_path(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int fd = open(path, (flag == FTW_DP || flag == FTW_D ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void iso_time(int64_t ms, char *out, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* Writes <to>/backup-manifest.json: what verify compares the backup with. */
static int write_manifest(const char *from, const char *to, const backup_result *res,
                          int64_t started_ms, char *why, size_t whylen)
{
    file_list fl = {.root = to};
    walking = &fl;
    nftw(to, note_file, 16, FTW_PHYS);
    walking = NULL;
    if (fl.oom) {
        free(fl.names);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    qsort(fl.names, fl.n, sizeof(*fl.names), cmp_name);
    char when[64], abs_from[4096];
    iso_time(started_ms, when, sizeof(when));
    if (!realpath(from, abs_from)) snprintf(abs_from, sizeof(abs_from), "%s", from);
    json_t *m = json_object(), *files = json_array(), *sessions = json_array();
    json_object_set_new(m, "format", json_integer(1));
    json_object_set_new(m, "grooved_version", json_string(GD_VERSION));
    json_object_set_new(m, "created_at", json_string(when));
    json_object_set_new(m, "created_at_ms", json_integer(started_ms));
    json_object_set_new(m, "source", json_string(abs_from));
    json_object_set_new(m, "op_log",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "first_segment",
                                  (json_int_t)res->first_seg, "last_segment",
                                  (json_int_t)res->last_seg, "log_start",
                                  (json_int_t)res->log_start, "log_end", (json_int_t)res->log_end,
                                  "end_when_backup_began", (json_int_t)res->l0));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < fl.n; i++) {
        char path[1700];
        uint32_t crc;
        uint64_t size;
        snprintf(path, sizeof(path), "%s/%s", to, fl.names[i]);
        if ((rc = file_crc(path, &crc, &size)) != 0) {
            snprintf(why, whylen, "cannot read %s: %s", path, strerror(-rc));
            break;
        }
        json_array_append_new(files, json_pack("{s:s, s:I, s:I}", "path", fl.names[i], "size",
                                               (json_int_t)size, "crc32", (json_int_t)crc));
    }
    for (size_t i = 0; i < res->check.n; i++) {
        const session_row *r = &res->check.rows[i];
        json_array_append_new(sessions,
                              json_pack("{s:s, s:I, s:I}", "id", r->id, "opno", (json_int_t)r->opno,
                                        "serverSeq", (json_int_t)r->server_seq));
    }
    json_object_set_new(m, "files", files);
    json_object_set_new(m, "sessions", sessions);
    char *text = json_dumps(m, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(m);
    free(fl.names);
    if (rc == 0 && !text) {
        rc = -ENOMEM;
        snprintf(why, whylen, "out of memory");
    }
    if (rc == 0) {
        char path[1300];
        snprintf(path, sizeof(path), "%s/" MANIFEST, to);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        rc = fd < 0 ? -errno : write_all(fd, text, strlen(text));
        if (rc == 0) rc = write_all(fd, "\n", 1);
        if (rc == 0 && fsync(fd) != 0) rc = -errno;
        if (fd >= 0) close(fd);
        if (rc) snprintf(why, whylen, "cannot write %s: %s", path, strerror(-rc));
    }
    free(text);
    return rc;
}

static void use_log_format_from_env(void)
{
    const char *fmt = getenv("GROOVED_LOG_FORMAT");
    if (fmt && gd_log_format_from_name(fmt) >= 0) gd_log_format = gd_log_format_from_name(fmt);
}

/* Parses --data-dir, --to (when to is not NULL) and --log-format. Returns -1
 * to go on, else the exit status. */
static int parse_args(int argc, char **argv, const char *usage, const char **dir, const char **to)
{
    use_log_format_from_env();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
            *dir = argv[++i];
        } else if (to && strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            *to = argv[++i];
        } else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc &&
                   gd_log_format_from_name(argv[i + 1]) >= 0) {
            gd_log_format = gd_log_format_from_name(argv[++i]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    return -1;
}

int gd_backup_main(int argc, char **argv)
{
    const char *from = "./data", *to = NULL;
    int status = parse_args(argc, argv, backup_usage, &from, &to);
    if (status >= 0) return status;
    if (!to || !*to) {
        gd_log_usage(stderr, "grooved backup", "backup_usage", "", "--to DIR is required");
        return 2;
    }
    char path[1200];
    snprintf(path, sizeof(path), "%s/durable.db", from);
    if (access(path, F_OK) != 0) {
        gd_log_usage(stderr, "grooved backup", "backup_usage", "data_dir",
                     "%s is not a grooved data directory (no durable.db)", from);
        return 2;
    }
    /* The target: new, or an empty directory. Backup writes only there. */
    bool made = false, empty = false;
    int rc = is_empty_dir(to, &empty);
    if (rc == -ENOENT) {
        char parent[1200];
        parent_dir(to, parent, sizeof(parent));
        if (mkdir(to, 0755) != 0) {
            gd_log_usage(stderr, "grooved backup", "backup_failed", "to,error",
                         "cannot create %s: %s", to, strerror(errno));
            return 1;
        }
        made = true;
        gd_fsync_dir(parent);
    } else if (rc) {
        gd_log_usage(stderr, "grooved backup", "backup_usage", "to,error", "cannot use %s: %s", to,
                     strerror(-rc));
        return 2;
    } else if (!empty) {
        gd_log_usage(stderr, "grooved backup", "backup_usage", "to",
                     "%s is not empty; the target must be a new or empty directory", to);
        return 2;
    }
    int64_t t0 = gd_now_us(), started_ms = gd_now_ms();
    backup_result *res = calloc(1, sizeof(*res));
    if (!res) return 1;
    rc = -EAGAIN;
    for (int attempt = 1; attempt <= ATTEMPTS && rc == -EAGAIN; attempt++) {
        if (attempt > 1) {
            gd_log_usage(stderr, "grooved backup", "backup_retry", "attempt,attempts,why",
                         "attempt %d of %d: %s; starting over", attempt - 1, ATTEMPTS, res->why);
            clear_dir(to);
            usleep((useconds_t)attempt * 100000);
        }
        rc = backup_attempt(from, to, res);
    }
    if (rc == 0) rc = copy_quarantine(from, to);
    if (rc == 0) rc = write_manifest(from, to, res, started_ms, res->why, sizeof(res->why));
    if (rc == 0 && nftw(to, fsync_path, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        rc = -errno;
        snprintf(res->why, sizeof(res->why), "cannot fsync the backup: %s", strerror(-rc));
    }
    if (rc) {
        for (int i = 0; i < res->check.nlines; i++)
            fprintf(stderr, "%s\n", res->check.lines[i]);
        gd_log_usage(stderr, "grooved backup", "backup_failed", "why,data_dir,to",
                     "failed: %s (the source %s is untouched; nothing is left in %s)", res->why,
                     from, to);
        clear_dir(to);
        if (made) rmdir(to);
        free(res->check.rows);
        free(res);
        return 1;
    }
    for (int i = 0; i < res->check.nlines; i++)
        printf("%s\n", res->check.lines[i]);
    printf("backup of %s in %s: durable.db (%d pages), kv.db (%d pages), op log segments "
           "%016llx to %016llx (%zu, %llu bytes; %zu already deleted from the source by the "
           "server and read through open descriptors), %zu sessions; verified (%zu checks, %zu "
           "warnings); %s written; %.2f s\n",
           from, to, res->db_pages, res->kv_pages, (unsigned long long)res->first_seg,
           (unsigned long long)res->last_seg, res->nsegs, (unsigned long long)res->log_bytes,
           res->unlinked, res->check.n, res->counts.ok, res->counts.warnings, MANIFEST,
           (double)(gd_now_us() - t0) / 1e6);
    free(res->check.rows);
    free(res);
    return 0;
}

/* ---- verify ----------------------------------------------------------- */

/* arg: the directory, named once before the first line. */
static void print_line(void *arg, gd_verify_level level, const char *subject, const char *text)
{
    static bool named;
    if (!named && arg) printf("verifying %s\n", (const char *)arg);
    named = true;
    printf("%-7s %s: %s\n", level_word(level), subject, text);
}

static void manifest_line(gd_verify_counts *c, gd_verify_level level, const char *subject,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void manifest_line(gd_verify_counts *c, gd_verify_level level, const char *subject,
                          const char *fmt, ...)
{
    static const gd_verify_sink printer = {.line = print_line};
    va_list ap;
    va_start(ap, fmt);
    gd_verify_vreport(&printer, c, level, subject, fmt, ap);
    va_end(ap);
}

/* Compares every file the manifest lists with its size and CRC-32, while
 * the directory is still as the backup wrote it (no LOCK: no grooved has
 * opened it; a server that has run on it has changed its files). */
static void check_manifest(const char *dir, gd_verify_counts *c)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/" MANIFEST, dir);
    if (access(path, F_OK) != 0) return;
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    if (access(path, F_OK) == 0) {
        manifest_line(c, GD_VERIFY_OK, MANIFEST,
                      "not compared: a grooved has opened this directory since the backup wrote "
                      "it (LOCK exists), so its files have moved on");
        return;
    }
    snprintf(path, sizeof(path), "%s/" MANIFEST, dir);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    json_t *files = json_object_get(m, "files");
    if (!json_is_array(files)) {
        manifest_line(c, GD_VERIFY_DAMAGE, MANIFEST, "does not parse: %s",
                      m ? "no \"files\" array" : jerr.text);
        json_decref(m);
        return;
    }
    size_t i, bad = 0;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "path"));
        json_int_t want_size = json_integer_value(json_object_get(f, "size"));
        json_int_t want_crc = json_integer_value(json_object_get(f, "crc32"));
        if (!name) {
            manifest_line(c, GD_VERIFY_DAMAGE, MANIFEST, "entry %zu names no file", i);
            bad++;
            continue;
        }
        char fp[1800];
        uint32_t crc;
        uint64_t size;
        snprintf(fp, sizeof(fp), "%s/%s", dir, name);
        int rc = file_crc(fp, &crc, &size);
        if (rc) {
            manifest_line(c, GD_VERIFY_DAMAGE, name, "listed in %s but %s", MANIFEST,
                          rc == -ENOENT ? "missing" : strerror(-rc));
            bad++;
        } else if ((json_int_t)size != want_size || (json_int_t)crc != want_crc) {
            manifest_line(c, GD_VERIFY_DAMAGE, name,
                          "differs from %s: %llu bytes with CRC-32 %08x; the backup wrote %lld "
                          "bytes with CRC-32 %08llx",
                          MANIFEST, (unsigned long long)size, crc, (long long)want_size,
                          (unsigned long long)want_crc);
            bad++;
        }
    }
    const char *version = json_string_value(json_object_get(m, "grooved_version"));
    const char *when = json_string_value(json_object_get(m, "created_at"));
    if (!bad)
        manifest_line(c, GD_VERIFY_OK, MANIFEST,
                      "%zu files have the sizes and CRC-32s the backup wrote (grooved %s, %s)",
                      json_array_size(files), version ? version : "?", when ? when : "?");
    json_decref(m);
}

int gd_verify_main(int argc, char **argv)
{
    const char *dir = "./data";
    int status = parse_args(argc, argv, verify_usage, &dir, NULL);
    if (status >= 0) return status;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        gd_log_usage(stderr, "grooved verify", "verify_usage", "data_dir,error", "%s: %s", dir,
                     stat(dir, &sb) != 0 ? strerror(errno) : "not a directory");
        return 2;
    }
    gd_verify_counts c, extra = {0};
    gd_verify_sink sink = {.line = print_line, .session = NULL, .arg = (void *)dir};
    int rc = gd_store_verify(dir, &gd_kv_sqlite, &sink, &c);
    if (rc == -EBUSY) {
        gd_log_usage(stderr, "grooved verify", "verify_failed", "data_dir",
                     "%s is in use by a running grooved: stop it first, or verify a backup of it "
                     "(grooved backup --data-dir DIR --to NEWDIR, then grooved verify --data-dir "
                     "NEWDIR)",
                     dir);
        return 1;
    }
    if (rc) {
        gd_log_usage(stderr, "grooved verify", "verify_failed", "data_dir,error",
                     "cannot verify %s: %s", dir, strerror(-rc));
        return 1;
    }
    check_manifest(dir, &extra);
    size_t damage = c.damage + extra.damage, warnings = c.warnings + extra.warnings;
    size_t checks = c.ok + extra.ok + warnings + damage;
    if (damage)
        printf(
            "DAMAGED: %s has %zu findings of damage (listed above) in %zu checks; %zu warnings\n",
            dir, damage, checks, warnings);
    else
        printf("clean: %s passed %zu checks (%zu warnings)\n", dir, checks, warnings);
    fflush(stdout);
    return damage ? 1 : 0;
}
