/*
 * store_local — the embedded durable store (the `local` backend of store.h):
 * the op log plus SQLite checkpoints in a data directory. SQLite result
 * codes stay inside this file and are mapped to -EIO / -ENOSPC / -EBADMSG
 * at its boundary; extended codes are logged. The commit lane runs
 * local_commit; the read lane local_load; startup recovery, gc and verify
 * run before the lanes.
 *
 * Layout: ops go to the append-only op log (oplog.c: one write and one
 * fdatasync per group commit, no page written twice); checkpoints go to
 * SQLite, sessions(id, opno, record, crc), in WAL mode with
 * synchronous=FULL. `unfolded` maps each session with log records newer
 * than its checkpoint to the position of the first; it changes only after a
 * commit succeeds, so it always describes what is on disk. Every 64 commits
 * the log segments older than every unfolded record are deleted, unless a
 * read-lane scan is under way. Loads read the unfolded entry and the durable
 * end first, then the checkpoint, then that session's log records below the
 * end: whatever commits in between, that is a consistent prefix.
 *
 * meta(key, value) holds three log positions: log_end, the end of the log
 * at the last checkpoint transaction (the log never ends before it: what is
 * before it was on disk before that commit); log_start, where the log
 * starts, made durable before older segments are deleted (so missing
 * segments at the start are seen, not taken for a trimmed log); and
 * recovered_through, the end of the log the last recovery folded. Log
 * records of a session without a checkpoint row are the leftovers of a
 * creation whose commit never finished (they lie after log_end, or before
 * recovered_through when that recovery could not delete them); anywhere
 * else they mean a lost row, which is damage. Recovery's first half,
 * find_damage, applies these rules and changes nothing; gd_store_verify
 * (grooved verify) runs it too, on read-only handles of a stopped data
 * directory, so that verify and recovery can never disagree about damage.
 *
 * Fault injection: faults.h's sites "checkpoint-commit" and "log-truncate".
 *
 * TESTS ONLY: GROOVED_TEST_UNSAFE_NO_SYNC=1 skips every fsync and fdatasync
 * of the op log and of directories, and opens durable.db with
 * synchronous=OFF, so nothing is durable; the power-loss loop
 * (tests/powerloss) uses it to show that it detects lost acknowledged ops.
 * Startup logs a warning when it is set.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dbcheck.h"
#include "faults.h"
#include "idset.h"
#include "log.h"
#include "op.h"
#include "oplog.h"

struct gd_durable {
    char dir[1024];
    int lock_fd; /* flock on <dir>/LOCK: one process per data directory */

    /* Commit lane (and startup). */
    sqlite3 *db;
    sqlite3_stmt *put_ckpt, *put_meta, *get_ckpt_w;
    gd_oplog *log;
    uint8_t *recbuf; /* the records of one commit, reused */
    size_t reclen, reccap;
    int commits_since_trim;
    uint64_t pin_seg; /* the segment when pinned sessions were last looked for */

    /* Read lane. */
    sqlite3 *rdb;
    sqlite3_stmt *get_ckpt, *get_quarantine;

    /* Shared between the lanes, guarded by fold_mu. */
    pthread_mutex_t fold_mu;
    gd_idset unfolded;   /* written by the commit lane */
    int64_t durable_end; /* the log's end after the last successful commit */
    int scans;           /* read-lane scans under way: no trimming meanwhile */
};

typedef struct gd_durable gd_local;

static int map_rc(sqlite3 *db, int rc, const char *what);
static void local_close(gd_local *st);
static void format_id(const uint8_t *b, char out[37]);

static bool unsafe_no_sync; /* tests only: GROOVED_TEST_UNSAFE_NO_SYNC (see above) */

/* A corrupt database file is damage (-EBADMSG), not an I/O error. */
static int map_rc(sqlite3 *db, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    gd_log(GD_LOG_ERROR, "store: %s failed: %s (extended code %d)", what, sqlite3_errmsg(db),
           sqlite3_extended_errcode(db));
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    default:
        return -EIO;
    }
}

/* ---- opening ---------------------------------------------------------- */

static bool has_column(sqlite3 *db, const char *table, const char *column)
{
    sqlite3_stmt *q;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &q,
                           NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, column, -1, SQLITE_STATIC);
    found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return found;
}

static int open_db(gd_local *st, const char *path)
{
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db,
                          "PRAGMA journal_mode=WAL;"
                          "PRAGMA synchronous=FULL;"
                          "PRAGMA wal_autocheckpoint=4000;"
                          "CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, opno INTEGER "
                          "NOT NULL, record TEXT NOT NULL) WITHOUT ROWID;"
                          "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER "
                          "NOT NULL) WITHOUT ROWID;"
                          "CREATE TABLE IF NOT EXISTS quarantine(id TEXT PRIMARY KEY, at INTEGER "
                          "NOT NULL, reason TEXT NOT NULL, dir TEXT NOT NULL) WITHOUT ROWID;",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && unsafe_no_sync)
        rc = sqlite3_exec(st->db, "PRAGMA synchronous=OFF", NULL, NULL, NULL);
    /* Checkpoints written before they carried a CRC keep a NULL one. */
    if (rc == SQLITE_OK && !has_column(st->db, "sessions", "crc"))
        rc = sqlite3_exec(st->db, "ALTER TABLE sessions ADD COLUMN crc INTEGER", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db,
                                "INSERT OR REPLACE INTO sessions(id, opno, record, crc) "
                                "VALUES(?1, ?2, ?3, ?4)",
                                -1, &st->put_ckpt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
                                -1, &st->put_meta, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db, "SELECT opno, record, crc FROM sessions WHERE id = ?1", -1,
                                &st->get_ckpt_w, NULL);
    /* The read lane's own connection: WAL readers never block the writer. */
    if (rc == SQLITE_OK) rc = sqlite3_open_v2(path, &st->rdb, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->rdb, "SELECT opno, record, crc FROM sessions WHERE id = ?1", -1,
                                &st->get_ckpt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->rdb, "SELECT reason, dir FROM quarantine WHERE id = ?1", -1,
                                &st->get_quarantine, NULL);
    if (rc != SQLITE_OK) {
        gd_log(GD_LOG_ERROR, "store: cannot open %s: %s", path,
               st->db ? sqlite3_errmsg(st->db) : "out of memory");
        return -EIO;
    }
    return 0;
}

static int local_open(gd_local **out, const char *dir, const char *node_id)
{
    (void)node_id; /* one process per data directory: no owners to name */
    *out = NULL;
    const char *nosync = getenv("GROOVED_TEST_UNSAFE_NO_SYNC");
    unsafe_no_sync = nosync && strcmp(nosync, "1") == 0;
    if (unsafe_no_sync) {
        gd_log(GD_LOG_WARN, "store: GROOVED_TEST_UNSAFE_NO_SYNC=1: nothing is made durable "
                            "(a test of the tests; never use it for real data)");
        gd_oplog_unsafe_skip_sync(1);
    }
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        /* The data directory's entry must survive a power cut: synced at
         * every start, since a crash may have come between an earlier
         * mkdir and its sync. */
        char parent[1024];
        snprintf(parent, sizeof(parent), "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash == parent)
            parent[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(parent, sizeof(parent), ".");
        int rc = gd_fsync_dir(parent);
        if (rc) {
            gd_log(GD_LOG_ERROR, "store: cannot sync %s: %s", parent, strerror(-rc));
            return rc;
        }
    } else {
        int rc = -errno;
        gd_log(GD_LOG_ERROR, "store: cannot create data directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    gd_local *st = calloc(1, sizeof(*st));
    if (!st) return -ENOMEM;
    snprintf(st->dir, sizeof(st->dir), "%s", dir);
    char path[1100];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        gd_log(GD_LOG_ERROR, "store: data directory %s is in use by another grooved (%s)", dir,
               strerror(err));
        if (st->lock_fd >= 0) close(st->lock_fd);
        free(st);
        return err == EWOULDBLOCK ? -EBUSY : -err;
    }
    pthread_mutex_init(&st->fold_mu, NULL);
    gd_idset_init(&st->unfolded);
    snprintf(path, sizeof(path), "%s/durable.db", dir);
    int rc = open_db(st, path);
    if (rc) {
        local_close(st);
        return rc;
    }
    const char *seg = getenv("GROOVED_LOG_SEGMENT_BYTES"); /* tests: force rotation */
    if ((rc = gd_oplog_open(&st->log, dir, seg ? strtoull(seg, NULL, 10) : 64u << 20)) != 0) {
        gd_log(GD_LOG_ERROR, "store: cannot open the op log in %s: %s", dir, strerror(-rc));
        local_close(st);
        return rc;
    }
    st->durable_end = gd_oplog_end(st->log);
    st->pin_seg = gd_oplog_pos_segment(st->durable_end);
    /* The files SQLite may just have created. */
    if ((rc = gd_fsync_dir(dir)) != 0) {
        gd_log(GD_LOG_ERROR, "store: cannot sync %s: %s", dir, strerror(-rc));
        local_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

static void local_close(gd_local *st)
{
    if (!st) return;
    sqlite3_finalize(st->put_ckpt);
    sqlite3_finalize(st->put_meta);
    sqlite3_finalize(st->get_ckpt_w);
    sqlite3_finalize(st->get_ckpt);
    sqlite3_finalize(st->get_quarantine);
    gd_oplog_close(st->log);
    gd_idset_free(&st->unfolded);
    free(st->recbuf);
    sqlite3_close(st->rdb);
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->fold_mu);
    if (st->lock_fd >= 0) close(st->lock_fd); /* releases the flock */
    free(st);
}

static int local_each_id(gd_local *st, void (*fn)(void *arg, const char *id), void *arg)
{
    /* Quarantined sessions are known too: they answer with an error, not 404. */
    static const char *const queries[] = {"SELECT id FROM sessions", "SELECT id FROM quarantine"};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(st->db, queries[i], -1, &q, NULL) != SQLITE_OK) return -EIO;
        int rc;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW)
            fn(arg, (const char *)sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE) return map_rc(st->db, rc, "list sessions");
    }
    return 0;
}

static int local_each_checkpoint(gd_local *st, void (*fn)(void *arg, const char *id, int64_t opno),
                                 void *arg)
{
    sqlite3_stmt *q = NULL;
    int rc =
        map_rc(st->db, sqlite3_prepare_v2(st->db, "SELECT id, opno FROM sessions", -1, &q, NULL),
               "list checkpoints");
    while (rc == 0) {
        int step = sqlite3_step(q);
        if (step != SQLITE_ROW) {
            rc = step == SQLITE_DONE ? 0 : map_rc(st->db, step, "list checkpoints");
            break;
        }
        fn(arg, (const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1));
    }
    sqlite3_finalize(q);
    return rc;
}

/* ---- the commit lane -------------------------------------------------- */

static int step_reset(sqlite3 *db, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return map_rc(db, rc, what);
}

static int put_meta(gd_local *st, const char *key, int64_t value)
{
    sqlite3_bind_text(st->put_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->put_meta, 2, value);
    return step_reset(st->db, st->put_meta, "write meta");
}

static int put_checkpoint(gd_local *st, const char *id, int64_t opno, const char *text, size_t len)
{
    sqlite3_bind_text(st->put_ckpt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->put_ckpt, 2, opno);
    sqlite3_bind_text(st->put_ckpt, 3, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st->put_ckpt, 4, gd_crc32((const uint8_t *)text, len));
    return step_reset(st->db, st->put_ckpt, "write checkpoint");
}

/* Deletes the log segments that every session has folded into a
 * checkpoint, and names the sessions whose oldest unfolded record is more
 * than one segment behind the newest (they keep old segments alive: the
 * loop checkpoints them). Skipped while a read-lane scan might need them. */
static void trim_log(gd_local *st, gd_job *job, bool force_pin_check)
{
    uint64_t cur = gd_oplog_pos_segment(gd_oplog_end(st->log));
    bool trim = ++st->commits_since_trim >= 64;
    bool pin = force_pin_check || cur != st->pin_seg || trim;
    if (!trim && !pin) return;
    pthread_mutex_lock(&st->fold_mu);
    int64_t keep = INT64_MAX;
    for (size_t i = 0; i < st->unfolded.cap; i++) {
        const gd_idslot *e = &st->unfolded.slots[i];
        if (!e->used) continue;
        if (e->val < keep) keep = e->val;
        if (pin && gd_oplog_pos_segment(e->val) + 1 < cur && job->npinned < GD_MAX_PINNED) {
            char id[37];
            format_id(e->key, id);
            gd_job_note_session(&job->pinned, &job->npinned, id);
        }
    }
    if (pin && job->npinned < GD_MAX_PINNED) st->pin_seg = cur;
    if (trim && st->scans == 0) {
        st->commits_since_trim = 0;
        /* Where the log starts is durable before anything is deleted, so
         * that recovery can tell a trimmed log from lost segments. */
        int64_t start = gd_oplog_trim_point(st->log, keep);
        int rc = 0;
        if (start > gd_oplog_start(st->log)) {
            rc = put_meta(st, "log_start", start);
            if (rc == 0) rc = gd_oplog_trim(st->log, keep);
        }
        if (rc) gd_log(GD_LOG_WARN, "store: op log trim failed: %s", strerror(-rc));
    }
    pthread_mutex_unlock(&st->fold_mu);
}

static void local_commit(gd_local *st, gd_job *job, uint64_t *bytes)
{
    int rc = 0;
    bool ckpts = false, appended = false;
    int64_t pos = 0;
    st->reclen = 0;
    size_t *offsets = calloc(job->nrows ? job->nrows : 1, sizeof(*offsets));
    if (!offsets) {
        rc = -ENOMEM;
        goto out;
    }
    /* 1. Every op of the batch, in order, with one write and one fdatasync. */
    for (size_t i = 0; i < job->nrows; i++) {
        gd_row *r = &job->rows[i];
        if (r->kind != GD_ROW_OP) {
            ckpts = true;
            continue;
        }
        uint8_t sid[16];
        gd_id_pack(r->id, sid);
        offsets[i] = st->reclen;
        if (!gd_oplog_encode(&st->recbuf, &st->reclen, &st->reccap, sid, (uint32_t)r->opno,
                             (const uint8_t *)r->text, r->len)) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (st->reclen) {
        rc = gd_oplog_append(st->log, st->recbuf, st->reclen, &pos);
        if (rc) {
            gd_log(GD_LOG_ERROR, "store: op log append failed: %s", strerror(-rc));
            goto out;
        }
        appended = true;
    }
    /* 2. The checkpoints, in one SQLite transaction that also records where
     * the log ended (see log_end above). */
    if (ckpts) {
        rc = map_rc(st->db, sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
        if (rc == 0 && gd_fault("checkpoint-commit")) {
            gd_log(GD_LOG_WARN, "store: injected checkpoint failure (checkpoint-commit)");
            rc = -EIO;
        }
        for (size_t i = 0; rc == 0 && i < job->nrows; i++) {
            gd_row *r = &job->rows[i];
            if (r->kind == GD_ROW_CKPT) rc = put_checkpoint(st, r->id, r->opno, r->text, r->len);
        }
        if (rc == 0) rc = put_meta(st, "log_end", gd_oplog_end(st->log));
        if (rc == 0)
            rc = map_rc(st->db, sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL), "commit");
        if (rc != 0 && !sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (rc != 0 && appended) { /* the batch fails whole: take its ops back */
            int cut = gd_oplog_cut(st->log, pos);
            if (cut)
                gd_log(GD_LOG_ERROR,
                       "store: cannot take back the failed batch's ops (%s); appends wait "
                       "until they are gone",
                       strerror(-cut));
        }
    }
    /* 3. Only what is now on disk changes the fold map, in row order: a
     * checkpoint folds everything before it; a later op opens a new range. */
    if (rc == 0) {
        pthread_mutex_lock(&st->fold_mu);
        for (size_t i = 0; i < job->nrows; i++) {
            gd_row *r = &job->rows[i];
            int64_t cur;
            if (r->kind == GD_ROW_CKPT)
                gd_idset_remove(&st->unfolded, r->id);
            else if (!gd_idset_get(&st->unfolded, r->id, &cur) &&
                     gd_idset_put(&st->unfolded, r->id, pos + (int64_t)offsets[i]) != 0)
                st->commits_since_trim = INT32_MIN; /* out of memory: never trim, never lose ops */
        }
        st->durable_end = gd_oplog_end(st->log);
        pthread_mutex_unlock(&st->fold_mu);
        trim_log(st, job, false);
    }
out:
    free(offsets);
    job->rc = rc;
    *bytes = st->reclen;
    for (size_t i = 0; i < job->nrows; i++)
        if (job->rows[i].kind == GD_ROW_CKPT) *bytes += job->rows[i].len;
}

/* ---- reading: checkpoints, replay, loads ------------------------------ */

/*
 * Reads id's checkpoint with `get` into *rec. Returns 0, -ENOENT when there
 * is no row, -EBADMSG when a row exists but cannot be read (why says what is
 * wrong), or another -errno.
 */
static int read_checkpoint(sqlite3 *db, sqlite3_stmt *get, const char *id, gd_record *rec,
                           int64_t *opno, char *why, size_t whylen)
{
    sqlite3_bind_text(get, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(get);
    if (rc == SQLITE_DONE) {
        rc = -ENOENT;
    } else if (rc != SQLITE_ROW) {
        rc = map_rc(db, rc, "read checkpoint");
        snprintf(why, whylen, "the checkpoint row cannot be read (%s)", sqlite3_errmsg(db));
    } else {
        *opno = sqlite3_column_int64(get, 0);
        rc = gd_checkpoint_parse(
            (const char *)sqlite3_column_blob(get, 1), (size_t)sqlite3_column_bytes(get, 1),
            sqlite3_column_type(get, 2) != SQLITE_NULL, (uint32_t)sqlite3_column_int64(get, 2), id,
            *opno, rec, why, whylen);
    }
    sqlite3_reset(get);
    sqlite3_clear_bindings(get);
    return rc;
}

/* Applies one log record of rec's own session onto rec: ops already in rec
 * are skipped (1), the next one is applied (0), anything else cannot be
 * replayed (-EILSEQ: a gap; -EINVAL: the op does not parse or apply). The
 * same gd_apply as live sessions. */
static int replay_record(gd_record *rec, const gd_oplog_rec *r)
{
    return gd_op_replay(rec, r->opno, r->op, r->oplen);
}

static void describe_replay_failure(int rc, const gd_oplog_rec *r, uint64_t have, char *why,
                                    size_t whylen)
{
    if (rc == -EILSEQ)
        snprintf(why, whylen, "op %u follows op %llu (a gap) at log position %lld", r->opno,
                 (unsigned long long)have, (long long)r->pos);
    else
        snprintf(why, whylen, "op %u at log position %lld does not replay", r->opno,
                 (long long)r->pos);
}

typedef struct load_scan {
    gd_record *rec;
    uint8_t sid[16];
    int replayed;
    int rc;
    char *why;
    size_t whylen;
} load_scan;

static int load_record(void *arg, const gd_oplog_rec *r)
{
    load_scan *ls = arg;
    if (memcmp(r->sid, ls->sid, 16) != 0) return 0;
    uint64_t have = ls->rec->opno;
    int rc = replay_record(ls->rec, r);
    if (rc < 0) {
        describe_replay_failure(rc, r, have, ls->why, ls->whylen);
        ls->rc = -EBADMSG;
        return 1;
    }
    ls->replayed += rc == 0;
    return 0;
}

/*
 * The durable state of id: its checkpoint plus the log records after it,
 * below the durable end. Read lane only. Returns 0 (*found false when the
 * durable store has no such session), -EBADMSG with why filled, -EUCLEAN
 * when it is quarantined, or another -errno.
 */
static int load_durable(gd_local *st, const char *id, gd_record *rec, int64_t *ckpt_opno,
                        int *replayed, bool *found, char *why, size_t whylen)
{
    *found = false;
    *replayed = 0;
    sqlite3_bind_text(st->get_quarantine, 1, id, -1, SQLITE_STATIC);
    int q = sqlite3_step(st->get_quarantine);
    if (q == SQLITE_ROW)
        snprintf(why, whylen, "quarantined: %s (see %s)",
                 (const char *)sqlite3_column_text(st->get_quarantine, 0),
                 (const char *)sqlite3_column_text(st->get_quarantine, 1));
    sqlite3_reset(st->get_quarantine);
    sqlite3_clear_bindings(st->get_quarantine);
    if (q == SQLITE_ROW) return -EUCLEAN;
    if (q != SQLITE_DONE) return map_rc(st->rdb, q, "read quarantine");

    /* The fold map first, then the checkpoint: see the comment at the top. */
    int64_t from = 0, end;
    pthread_mutex_lock(&st->fold_mu);
    bool unfolded = gd_idset_get(&st->unfolded, id, &from);
    end = st->durable_end;
    st->scans++;
    pthread_mutex_unlock(&st->fold_mu);

    int rc = read_checkpoint(st->rdb, st->get_ckpt, id, rec, ckpt_opno, why, whylen);
    if (rc == -ENOENT && unfolded) {
        snprintf(why, whylen, "the op log has records of it but durable.db has no checkpoint");
        rc = -EBADMSG;
    } else if (rc == 0) {
        *found = true;
        if (unfolded) {
            load_scan ls = {.rec = rec, .why = why, .whylen = whylen};
            gd_id_pack(id, ls.sid);
            gd_oplog_damage dmg;
            rc = gd_oplog_scan(st->log, from, end, 0, load_record, &ls, &dmg);
            if (rc == -EBADMSG) {
                /* A very long path is cut to half the report; it still names the damage. */
                snprintf(why, whylen, "op log damaged: %.*s at offset %llu: %s", (int)(whylen / 2),
                         dmg.path, (unsigned long long)dmg.offset, dmg.what);
            } else if (rc == 0) {
                rc = ls.rc;
            }
            *replayed = ls.replayed;
        }
        if (rc != 0) gd_record_clear(rec);
    }
    pthread_mutex_lock(&st->fold_mu);
    st->scans--;
    pthread_mutex_unlock(&st->fold_mu);
    return rc == -ENOENT ? 0 : rc;
}

static int local_load(gd_local *st, const char *id, bool take, gd_durable_load *out, char *why,
                      size_t whylen)
{
    (void)take; /* one process per data directory: it owns every session */
    out->epoch = 0;
    return load_durable(st, id, out->rec, &out->ckpt_opno, &out->replayed, &out->found, why,
                        whylen);
}

/* ---- recovery --------------------------------------------------------- */

static void format_id(const uint8_t *b, char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

typedef enum { REC_OK, REC_ORPHAN, REC_DAMAGED } rec_state;

typedef struct recovering {
    char id[37];
    gd_record rec;
    rec_state state;
    bool has_row;
    bool ckpt_bad; /* its checkpoint row cannot be read (why says why) */
    int64_t first_pos;
    size_t nrecords;
    char why[512];
    uint8_t *raw; /* quarantine: this session's log records, as the log holds them */
    size_t rawlen, rawcap;
} recovering;

typedef struct recovery {
    gd_local *st;
    gd_idset index; /* id -> position in recs */
    recovering *recs;
    size_t n, cap, rows;
    int rc;
    bool collect_raw; /* second pass: copy the records of damaged sessions */
} recovery;

static recovering *recovery_session(recovery *rv, const char *id)
{
    int64_t at;
    if (gd_idset_get(&rv->index, id, &at)) return &rv->recs[at];
    if (rv->n == rv->cap) {
        size_t cap = rv->cap ? rv->cap * 2 : 64;
        recovering *p = realloc(rv->recs, cap * sizeof(*p));
        if (!p) return NULL;
        rv->recs = p;
        rv->cap = cap;
    }
    if (gd_idset_put(&rv->index, id, (int64_t)rv->n) != 0) return NULL;
    recovering *r = &rv->recs[rv->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    gd_state_init(&r->rec.state);
    int64_t opno;
    int rc =
        read_checkpoint(rv->st->db, rv->st->get_ckpt_w, id, &r->rec, &opno, r->why, sizeof(r->why));
    r->has_row = rc != -ENOENT;
    r->ckpt_bad = rc != 0 && rc != -ENOENT;
    r->state = rc == 0 ? REC_OK : rc == -ENOENT ? REC_ORPHAN : REC_DAMAGED;
    if (rc != 0 && rc != -ENOENT && rc != -EBADMSG) rv->rc = rc; /* cannot even read: stop */
    return r;
}

/* Pass 1: folds one log record into its session's record, reading the
 * session's checkpoint the first time it is seen. */
static int recover_record(void *arg, const gd_oplog_rec *r)
{
    recovery *rv = arg;
    char id[37];
    format_id(r->sid, id);
    recovering *rr = rv->collect_raw ? NULL : recovery_session(rv, id);
    if (rv->collect_raw) {
        int64_t at;
        if (!gd_idset_get(&rv->index, id, &at) || rv->recs[at].state != REC_DAMAGED) return 0;
        rr = &rv->recs[at];
        if (!gd_oplog_encode(&rr->raw, &rr->rawlen, &rr->rawcap, r->sid, r->opno, r->op,
                             r->oplen)) {
            rv->rc = -ENOMEM;
            return 1;
        }
        return 0;
    }
    if (!rr) {
        rv->rc = -ENOMEM;
        return 1;
    }
    if (rv->rc) return 1;
    rv->rows++;
    if (rr->nrecords++ == 0) rr->first_pos = r->pos;
    if (rr->state == REC_OK) {
        uint64_t have = rr->rec.opno;
        int prc = replay_record(&rr->rec, r);
        if (prc < 0) {
            describe_replay_failure(prc, r, have, rr->why, sizeof(rr->why));
            rr->state = REC_DAMAGED;
        }
    }
    return 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = 0;
    size_t done = 0;
    while (rc == 0 && done < len) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            rc = n < 0 ? -errno : -EIO;
        else
            done += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    close(fd);
    return rc;
}

/* Copies a damaged session's checkpoint row (as stored) and log records to
 * <dir>/quarantine/<id>.<ms>/ with a REPORT, all durable before the log that
 * held the records is deleted. Fills qdir. */
static int quarantine_session(gd_local *st, recovering *r, char *qdir, size_t qlen)
{
    char base[1100], path[1300];
    snprintf(base, sizeof(base), "%s/quarantine", st->dir);
    bool made = mkdir(base, 0755) == 0;
    if (!made && errno != EEXIST) return -errno;
    int rc = made ? gd_fsync_dir(st->dir) : 0;
    snprintf(qdir, qlen, "%s/%s.%lld", base, r->id, (long long)gd_now_ms());
    if (rc == 0 && mkdir(qdir, 0755) != 0) rc = -errno;
    if (rc == 0) rc = gd_fsync_dir(base);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/records.log", qdir);
        rc = write_file(path, r->raw ? (const void *)r->raw : "", r->rawlen);
    }
    if (rc == 0 && r->has_row) {
        sqlite3_stmt *q;
        rc = map_rc(
            st->db,
            sqlite3_prepare_v2(st->db, "SELECT record FROM sessions WHERE id = ?1", -1, &q, NULL),
            "read checkpoint for quarantine");
        if (rc == 0) {
            sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW) {
                snprintf(path, sizeof(path), "%s/checkpoint.json", qdir);
                rc =
                    write_file(path, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
            }
            sqlite3_finalize(q);
        }
    }
    if (rc == 0) {
        char report[2048];
        int n = snprintf(report, sizeof(report),
                         "session %s was set aside at startup (--on-damage quarantine).\n"
                         "why: %s\n"
                         "records.log: its %zu op log records, in the op log's record format\n"
                         "checkpoint.json: its checkpoint row as stored in durable.db%s\n"
                         "Its checkpoint row in durable.db was left as it was; grooved answers "
                         "requests for it with an error while it is listed in the quarantine "
                         "table of durable.db.\n",
                         r->id, r->why, r->nrecords, r->has_row ? "" : " (there was none)");
        snprintf(path, sizeof(path), "%s/REPORT", qdir);
        rc = write_file(path, report, (size_t)n < sizeof(report) ? (size_t)n : sizeof(report));
    }
    if (rc == 0) rc = gd_fsync_dir(qdir);
    return rc;
}

static int64_t get_meta(gd_local *st, const char *key)
{
    sqlite3_stmt *q;
    int64_t v = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?1", -1, &q, NULL) !=
        SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

typedef enum { LOG_INTACT, LOG_DAMAGED, LOG_START_MISSING, LOG_ENDS_EARLY } log_verdict;

/* What the first half of recovery finds; gd_store_recover acts on it and
 * gd_store_verify reports it. */
typedef struct findings {
    log_verdict log;
    gd_oplog_damage dmg; /* LOG_DAMAGED: where; else what = "torn tail", or NULL */
    int64_t log_start, log_end, recovered; /* from meta */
    int64_t intact_end;                    /* where the intact records end */
    size_t ndamaged, norphans;
} findings;

/*
 * The first half of recovery, which changes nothing (gd_store_verify runs
 * it too): scans the whole op log, folding each record into its session's
 * checkpoint in rv; checks that the log starts no later than log_start and
 * that its intact records reach log_end; then classifies the sessions with
 * records and no checkpoint row: an unfinished creation (REC_ORPHAN: its
 * records lie after log_end, or before recovered_through) or a lost row
 * (REC_DAMAGED). Returns 0 (damaged sessions are counted in f->ndamaged, not
 * an error), -EBADMSG when the log itself is damaged (f->log says how), or
 * another -errno.
 */
static int find_damage(gd_local *st, recovery *rv, findings *f)
{
    memset(f, 0, sizeof(*f));
    f->log_end = get_meta(st, "log_end");
    f->recovered = get_meta(st, "recovered_through");
    f->log_start = get_meta(st, "log_start");
    int rc = gd_oplog_scan(st->log, 0, INT64_MAX, 0, recover_record, rv, &f->dmg);
    if (rc == -EBADMSG) {
        f->log = LOG_DAMAGED;
        return rc;
    }
    if (rc == 0) rc = rv->rc;
    if (rc) return rc;
    /* The log must still start where it was trimmed to, and reach at least
     * as far as it did at the last checkpoint transaction. */
    f->intact_end = f->dmg.what ? f->dmg.pos : gd_oplog_end(st->log);
    if (gd_oplog_start(st->log) > f->log_start && f->log_start > 0) {
        f->log = LOG_START_MISSING;
        return -EBADMSG;
    }
    if (f->intact_end < f->log_end) {
        f->log = LOG_ENDS_EARLY;
        return -EBADMSG;
    }
    /* Log records with no checkpoint row: an unfinished creation, or a lost row. */
    for (size_t i = 0; i < rv->n; i++) {
        recovering *r = &rv->recs[i];
        if (r->state == REC_ORPHAN) {
            if (r->first_pos >= f->log_end || r->first_pos < f->recovered) {
                f->norphans++;
            } else {
                r->state = REC_DAMAGED;
                snprintf(r->why, sizeof(r->why),
                         "the op log has %zu records of it but durable.db lost its checkpoint",
                         r->nrecords);
            }
        }
        if (r->state == REC_DAMAGED) f->ndamaged++;
    }
    return 0;
}

/*
 * Crash recovery, at startup before the lanes run: replays every intact op
 * log record onto its session's checkpoint (through gd_apply, in log
 * order), writes the results as new checkpoints in one transaction, then
 * deletes the log (the store then rewrites the KV views behind). A crash
 * during recovery leaves the log in place, and replay skips what a newer
 * checkpoint already holds. Nothing is changed unless every record folds
 * or the operator chose quarantine for the sessions whose records do not.
 */
static int local_recover(gd_local *st, gd_damage_policy policy, size_t *quarantined)
{
    int64_t t0 = gd_now_us();
    recovery rv = {.st = st};
    gd_idset_init(&rv.index);
    size_t nquar = 0;
    findings f;
    int rc = find_damage(st, &rv, &f);
    if (rc == -EBADMSG && f.log == LOG_DAMAGED)
        gd_log(GD_LOG_ERROR,
               "recovery: the op log is damaged: %s at offset %llu: %s. The records it hides "
               "cannot be attributed to sessions, so grooved will not start; restore the data "
               "directory from a backup (grooved changed nothing)",
               f.dmg.path, (unsigned long long)f.dmg.offset, f.dmg.what);
    else if (rc == -EBADMSG && f.log == LOG_START_MISSING)
        gd_log(GD_LOG_ERROR,
               "recovery: op log segments are missing: it starts at segment %llu, but segment "
               "%llu onwards must be there (in %s/log). grooved changed nothing and will not "
               "start; restore the data directory from a backup",
               (unsigned long long)gd_oplog_pos_segment(gd_oplog_start(st->log)),
               (unsigned long long)gd_oplog_pos_segment(f.log_start), st->dir);
    else if (rc == -EBADMSG)
        gd_log(GD_LOG_ERROR,
               "recovery: the op log ends early: its intact records end at segment %llu offset "
               "%llu, but records up to segment %llu offset %llu were on disk before a later "
               "commit (in %s/log). grooved changed nothing and will not start; restore the "
               "data directory from a backup",
               (unsigned long long)gd_oplog_pos_segment(f.intact_end),
               (unsigned long long)(f.intact_end & ((1ll << 40) - 1)),
               (unsigned long long)gd_oplog_pos_segment(f.log_end),
               (unsigned long long)(f.log_end & ((1ll << 40) - 1)), st->dir);
    if (rc) goto done;
    bool torn = f.dmg.what != NULL;
    if (torn)
        gd_log(GD_LOG_WARN,
               "recovery: torn tail of the op log at %s offset %llu (never "
               "acknowledged); it is dropped",
               f.dmg.path, (unsigned long long)f.dmg.offset);
    for (size_t i = 0; i < rv.n; i++) {
        recovering *r = &rv.recs[i];
        if (r->state == REC_ORPHAN)
            gd_log(GD_LOG_WARN,
                   "recovery: session %s: %zu log records of a creation that never "
                   "committed (never acknowledged); dropped",
                   r->id, r->nrecords);
        else if (r->state == REC_DAMAGED)
            gd_log(GD_LOG_ERROR, "recovery: session %s cannot be recovered: %s (in %s)", r->id,
                   r->why, st->dir);
    }
    size_t ndamaged = f.ndamaged, norphans = f.norphans;
    if (ndamaged && policy != GD_DAMAGE_QUARANTINE) {
        gd_log(GD_LOG_ERROR,
               "recovery: %zu sessions cannot be recovered (listed above); grooved changed "
               "nothing and will not start. Restore the data directory from a backup, or "
               "start with --on-damage quarantine to set those sessions aside",
               ndamaged);
        rc = -EBADMSG;
        goto done;
    }
    char(*qdirs)[1200] = NULL;
    if (ndamaged) {
        rv.collect_raw = true;
        rc = gd_oplog_scan(st->log, 0, INT64_MAX, 0, recover_record, &rv, NULL);
        if (rc == 0) rc = rv.rc;
        qdirs = calloc(rv.n, sizeof(*qdirs));
        if (rc == 0 && !qdirs) rc = -ENOMEM;
        for (size_t i = 0; rc == 0 && i < rv.n; i++) {
            if (rv.recs[i].state != REC_DAMAGED) continue;
            rc = quarantine_session(st, &rv.recs[i], qdirs[i], sizeof(qdirs[i]));
            if (rc)
                gd_log(GD_LOG_ERROR, "recovery: cannot quarantine session %s: %s", rv.recs[i].id,
                       strerror(-rc));
        }
    }
    if (rc == 0 && (rv.rows > 0 || torn)) {
        rc = map_rc(st->db, sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
        for (size_t i = 0; rc == 0 && i < rv.n; i++) {
            recovering *r = &rv.recs[i];
            if (r->state == REC_DAMAGED) {
                sqlite3_stmt *q;
                rc = map_rc(st->db,
                            sqlite3_prepare_v2(st->db,
                                               "INSERT OR REPLACE INTO quarantine(id, at, "
                                               "reason, dir) VALUES(?1, ?2, ?3, ?4)",
                                               -1, &q, NULL),
                            "prepare quarantine");
                if (rc) break;
                sqlite3_bind_text(q, 1, r->id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(q, 2, gd_now_ms());
                sqlite3_bind_text(q, 3, r->why, -1, SQLITE_STATIC);
                sqlite3_bind_text(q, 4, qdirs[i], -1, SQLITE_STATIC);
                rc = step_reset(st->db, q, "write quarantine");
                sqlite3_finalize(q);
                nquar++;
                continue;
            }
            if (r->state != REC_OK) continue;
            gd_buf b;
            gd_buf_init(&b);
            gd_record_write(&b, &r->rec, true);
            rc = b.oom ? -ENOMEM : put_checkpoint(st, r->id, (int64_t)r->rec.opno, b.p, b.len);
            gd_buf_free(&b);
        }
        /* Everything up to the log's end is folded (or set aside); the
         * reset below starts the log in the next segment. */
        int64_t end = gd_oplog_end(st->log);
        if (rc == 0) rc = put_meta(st, "log_end", end);
        if (rc == 0) rc = put_meta(st, "recovered_through", end);
        if (rc == 0) rc = put_meta(st, "log_start", (int64_t)(gd_oplog_pos_segment(end) + 1) << 40);
        if (rc == 0)
            rc =
                map_rc(st->db, sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL), "commit recovery");
        if (rc != 0 && !sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (rc == 0) rc = gd_oplog_reset(st->log);
        gd_log(GD_LOG_INFO,
               "recovery: replayed %zu log rows into %zu sessions in %.1f ms (%zu orphaned "
               "records' sessions dropped, %zu sessions quarantined)",
               rv.rows, rv.n - norphans - ndamaged, (double)(gd_now_us() - t0) / 1000.0, norphans,
               nquar);
    }
    free(qdirs);
    if (rc == 0) {
        st->durable_end = gd_oplog_end(st->log);
        st->pin_seg = gd_oplog_pos_segment(st->durable_end);
    }
done:
    for (size_t i = 0; i < rv.n; i++) {
        gd_record_clear(&rv.recs[i].rec);
        free(rv.recs[i].raw);
    }
    free(rv.recs);
    gd_idset_free(&rv.index);
    if (quarantined) *quarantined = nquar;
    return rc;
}

/* ---- operator garbage collection -------------------------------------- */

/* Removes every checkpoint not accessed since cutoff_ms, in one transaction
 * (offline: after recovery, the log holds nothing unfolded). */
static int local_gc(gd_local *st, int64_t cutoff_ms, bool dry_run,
                    void (*fn)(void *arg, const char *id), void *arg)
{
    char(*old)[37] = NULL;
    size_t nold = 0, capold = 0;
    sqlite3_stmt *q = NULL;
    int rc = map_rc(st->db,
                    sqlite3_prepare_v2(st->db,
                                       "SELECT id, coalesce(json_extract(record, "
                                       "'$.lastAccessedAt'), json_extract(record, "
                                       "'$.updatedAt')) FROM sessions",
                                       -1, &q, NULL),
                    "scan sessions");
    while (rc == 0) {
        int step = sqlite3_step(q);
        if (step != SQLITE_ROW) {
            rc = step == SQLITE_DONE ? 0 : map_rc(st->db, step, "scan sessions");
            break;
        }
        if (sqlite3_column_int64(q, 1) >= cutoff_ms) continue;
        if (nold == capold) {
            size_t cap = capold ? capold * 2 : 64;
            char(*p)[37] = realloc(old, cap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            old = p;
            capold = cap;
        }
        snprintf(old[nold++], 37, "%s", (const char *)sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    if (rc == 0 && !dry_run && nold) {
        sqlite3_stmt *del = NULL;
        rc = map_rc(st->db, sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
        if (rc == 0)
            rc = map_rc(
                st->db,
                sqlite3_prepare_v2(st->db, "DELETE FROM sessions WHERE id = ?1", -1, &del, NULL),
                "prepare delete");
        for (size_t i = 0; rc == 0 && i < nold; i++) {
            sqlite3_bind_text(del, 1, old[i], -1, SQLITE_STATIC);
            rc = step_reset(st->db, del, "delete session");
        }
        sqlite3_finalize(del);
        if (rc == 0)
            rc = map_rc(st->db, sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL), "commit");
        if (rc != 0 && !sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    for (size_t i = 0; rc == 0 && i < nold; i++)
        fn(arg, old[i]);
    free(old);
    return rc;
}

const gd_durable_ops gd_durable_local = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .recover = local_recover,
    .each_id = local_each_id,
    .each_checkpoint = local_each_checkpoint,
    .commit = local_commit,
    .load = local_load,
    .gc = local_gc,
};

/* ---- offline verification (grooved verify) ----------------------------- */

typedef struct verifier {
    const gd_verify_sink *sink;
    gd_verify_counts *counts;
    gd_local *st;     /* read-only: db, get_ckpt_w and log; no lanes */
    gd_idset durable; /* ids with a checkpoint row */
    gd_idset quarantined;
} verifier;

static void report(verifier *v, gd_verify_level level, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(verifier *v, gd_verify_level level, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gd_verify_vreport(v->sink, v->counts, level, subject, fmt, ap);
    va_end(ap);
}

/* "log/<name>" for a segment path the op log reported. */
static const char *segment_name(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    snprintf(out, len, "log/%s", base ? base + 1 : path);
    return out;
}

static unsigned long long pos_offset(int64_t pos)
{
    return (unsigned long long)(pos & ((1ll << 40) - 1));
}

/* Opens durable.db read-only, changing nothing (dbcheck.h), and checks it.
 * Fills st->db and st->get_ckpt_w when its tables can be read. */
static void verify_database(verifier *v)
{
    gd_local *st = v->st;
    char path[1100], what[600];
    snprintf(path, sizeof(path), "%s/durable.db", st->dir);
    if (access(path, F_OK) != 0) {
        report(v, GD_VERIFY_DAMAGE, "durable.db",
               "missing: no checkpoints (this is not a grooved data directory, or it lost them)");
        return;
    }
    sqlite3 *db;
    if (gd_dbcheck_open(path, &db, what, sizeof(what)) != 0) {
        report(v, GD_VERIFY_DAMAGE, "durable.db", "cannot be opened: %s", what);
        return;
    }
    int pages;
    if (gd_dbcheck_integrity(db, &pages, what, sizeof(what)) != 0)
        report(v, GD_VERIFY_DAMAGE, "durable.db", "PRAGMA integrity_check: %s", what);
    else
        report(v, GD_VERIFY_OK, "durable.db", "PRAGMA integrity_check: ok (%d pages)", pages);
    /* Checkpoints written before they carried a CRC have no crc column yet. */
    const char *get = has_column(db, "sessions", "crc")
                          ? "SELECT opno, record, crc FROM sessions WHERE id = ?1"
                          : "SELECT opno, record, NULL FROM sessions WHERE id = ?1";
    if (sqlite3_prepare_v2(db, get, -1, &st->get_ckpt_w, NULL) != SQLITE_OK) {
        report(v, GD_VERIFY_DAMAGE, "durable.db", "its sessions table cannot be read: %s",
               sqlite3_errmsg(db));
        sqlite3_close(db);
        return;
    }
    st->db = db;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct seg_count {
    uint64_t seg;
    size_t records;
} seg_count;

static int count_segment_record(void *arg, const gd_oplog_rec *r)
{
    seg_count *c = arg;
    if (gd_oplog_pos_segment(r->pos) != c->seg) return 1; /* the next segment: done */
    c->records++;
    return 0;
}

/* Every segment on its own: its records and CRCs (and that the next one's
 * rotation header names its size), and that the numbers have no gaps. The
 * same scan as recovery, so a torn tail is told from damage the same way. */
static void verify_segments(verifier *v)
{
    char path[1100], name[1200];
    snprintf(path, sizeof(path), "%s/log", v->st->dir);
    DIR *d = opendir(path);
    if (!d) {
        report(v, GD_VERIFY_DAMAGE, "log/", "cannot be read: %s", strerror(errno));
        return;
    }
    uint64_t *segs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long long k = strtoull(e->d_name, &end, 16);
        if (end == e->d_name || strcmp(end, ".log") != 0 || k == 0) continue;
        if (n == cap) {
            uint64_t *p = realloc(segs, (cap = cap ? cap * 2 : 64) * sizeof(*p));
            if (!p) break;
            segs = p;
        }
        segs[n++] = k;
    }
    closedir(d);
    qsort(segs, n, sizeof(*segs), cmp_u64);
    if (n == 0) report(v, GD_VERIFY_WARN, "log/", "no segments (an empty log)");
    size_t gaps = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "log/%016llx.log", (unsigned long long)segs[i]);
        if (i > 0 && segs[i] != segs[i - 1] + 1) {
            gaps++;
            report(v, GD_VERIFY_DAMAGE, "log/",
                   "segments %016llx to %016llx are missing between log/%016llx.log and %s",
                   (unsigned long long)segs[i - 1] + 1, (unsigned long long)segs[i] - 1,
                   (unsigned long long)segs[i - 1], name);
        }
        struct stat sb;
        snprintf(path, sizeof(path), "%s/log/%016llx.log", v->st->dir, (unsigned long long)segs[i]);
        long long size = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
        seg_count c = {.seg = segs[i]};
        gd_oplog_damage dmg;
        int rc = gd_oplog_scan(v->st->log, (int64_t)(segs[i] << 40), INT64_MAX, 0,
                               count_segment_record, &c, &dmg);
        bool here = dmg.what && gd_oplog_pos_segment(dmg.pos) == segs[i];
        if (rc == -EBADMSG && here)
            report(v, GD_VERIFY_DAMAGE, name, "%s at offset %llu (%zu intact records before it)",
                   dmg.what, (unsigned long long)dmg.offset, c.records);
        else if (rc != 0 && rc != -EBADMSG)
            report(v, GD_VERIFY_DAMAGE, name, "cannot be read: %s", strerror(-rc));
        else if (rc == 0 && here)
            report(v, GD_VERIFY_WARN, name,
                   "%zu intact records, then a torn tail at offset %llu of %lld bytes (a write "
                   "that never finished: nothing in it was acknowledged; recovery drops it)",
                   c.records, (unsigned long long)dmg.offset, size);
        else
            report(v, GD_VERIFY_OK, name, "%zu records, %lld bytes, every CRC intact", c.records,
                   size);
    }
    if (n > 0 && gaps == 0)
        report(v, GD_VERIFY_OK, "log/", "%zu segments, %016llx to %016llx, without gaps", n,
               (unsigned long long)segs[0], (unsigned long long)segs[n - 1]);
    free(segs);
}

/* The fold, as recovery does it (find_damage), without its writes. */
static void verify_fold(verifier *v, recovery *rv)
{
    gd_local *st = v->st;
    findings f;
    char name[1200];
    int rc = find_damage(st, rv, &f);
    if (rc == -EBADMSG && f.log == LOG_DAMAGED)
        report(v, GD_VERIFY_DAMAGE, "op log",
               "damaged: %s at offset %llu: %s; the records after it cannot be attributed to "
               "sessions, so recovery refuses to start",
               segment_name(f.dmg.path, name, sizeof(name)), (unsigned long long)f.dmg.offset,
               f.dmg.what);
    else if (rc == -EBADMSG && f.log == LOG_START_MISSING)
        report(v, GD_VERIFY_DAMAGE, "op log",
               "segments are missing: it starts at segment %016llx, but durable.db's log_start "
               "says segment %016llx onwards must be there",
               (unsigned long long)gd_oplog_pos_segment(gd_oplog_start(st->log)),
               (unsigned long long)gd_oplog_pos_segment(f.log_start));
    else if (rc == -EBADMSG)
        report(v, GD_VERIFY_DAMAGE, "op log",
               "ends early: its intact records end at segment %016llx offset %llu, but "
               "durable.db's log_end says records up to segment %016llx offset %llu were on disk",
               (unsigned long long)gd_oplog_pos_segment(f.intact_end), pos_offset(f.intact_end),
               (unsigned long long)gd_oplog_pos_segment(f.log_end), pos_offset(f.log_end));
    else if (rc)
        report(v, GD_VERIFY_DAMAGE, "op log", "the fold stopped: %s", strerror(-rc));
    else
        report(v, GD_VERIFY_OK, "op log",
               "starts at segment %016llx, %s; its intact records reach segment %016llx offset "
               "%llu, no earlier than its log_end (segment %016llx offset %llu)",
               (unsigned long long)gd_oplog_pos_segment(gd_oplog_start(st->log)),
               f.log_start ? "no later than durable.db's log_start"
                           : "and durable.db records no log_start (never trimmed)",
               (unsigned long long)gd_oplog_pos_segment(f.intact_end), pos_offset(f.intact_end),
               (unsigned long long)gd_oplog_pos_segment(f.log_end), pos_offset(f.log_end));
    size_t folded = 0;
    for (size_t i = 0; i < rv->n; i++) {
        recovering *r = &rv->recs[i];
        if (r->state == REC_DAMAGED && !r->ckpt_bad) /* bad checkpoints: see verify_checkpoints */
            report(v, GD_VERIFY_DAMAGE, "op log", "session %s cannot be recovered: %s", r->id,
                   r->why);
        else if (r->state == REC_ORPHAN && rc == 0)
            report(v, GD_VERIFY_WARN, "op log",
                   "session %s: %zu log records of a creation that never committed (never "
                   "acknowledged); recovery drops them",
                   r->id, r->nrecords);
        folded += r->state == REC_OK;
    }
    if (rc == 0)
        report(v, GD_VERIFY_OK, "fold",
               "%zu log records of %zu sessions replay onto their checkpoints through gd_apply, "
               "as recovery would replay them (%zu sessions cannot)",
               rv->rows, folded, f.ndamaged);
}

typedef struct verified_session {
    char id[37];
    int64_t opno, server_seq;
} verified_session;

/* Every checkpoint row, not only those the log has records of; then the
 * sessions that recovery would give, to sink->session. */
static void verify_checkpoints(verifier *v, const recovery *rv, bool log_ok)
{
    gd_local *st = v->st;
    sqlite3_stmt *q;
    verified_session *good = NULL;
    size_t ngood = 0, cap = 0, nrows = 0, nbad = 0, nocrc = 0;
    const char *list = has_column(st->db, "sessions", "crc")
                           ? "SELECT id, crc IS NULL FROM sessions ORDER BY id"
                           : "SELECT id, 1 FROM sessions ORDER BY id";
    if (sqlite3_prepare_v2(st->db, list, -1, &q, NULL) != SQLITE_OK) {
        report(v, GD_VERIFY_DAMAGE, "durable.db", "its checkpoints cannot be listed: %s",
               sqlite3_errmsg(st->db));
        return;
    }
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        char id[37], why[512] = "";
        snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(q, 0));
        gd_idset_add(&v->durable, id);
        nrows++;
        gd_record rec;
        memset(&rec, 0, sizeof(rec));
        gd_state_init(&rec.state);
        int64_t opno = 0;
        int rc = read_checkpoint(st->db, st->get_ckpt_w, id, &rec, &opno, why, sizeof(why));
        nocrc += rc == 0 && sqlite3_column_int(q, 1);
        if (rc != 0) {
            nbad++;
            bool quar = gd_idset_has(&v->quarantined, id);
            report(v, quar ? GD_VERIFY_WARN : GD_VERIFY_DAMAGE, "durable.db", "session %s: %s%s",
                   id, rc == -EBADMSG ? why : strerror(-rc),
                   quar ? " (it is quarantined: see above)" : "");
        } else if (v->sink->session) {
            if (ngood == cap) {
                verified_session *p = realloc(good, (cap = cap ? cap * 2 : 64) * sizeof(*p));
                if (!p) {
                    gd_record_clear(&rec);
                    break;
                }
                good = p;
            }
            verified_session *g = &good[ngood++];
            snprintf(g->id, sizeof(g->id), "%s", id);
            g->opno = opno;
            g->server_seq = (int64_t)rec.server_seq;
        }
        gd_record_clear(&rec);
    }
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        report(v, GD_VERIFY_DAMAGE, "durable.db", "listing its checkpoints failed after %zu: %s",
               nrows, sqlite3_errmsg(st->db));
    sqlite3_finalize(q);
    report(v, GD_VERIFY_OK, "durable.db",
           "%zu checkpoints read: %zu pass their CRC, parse and name their own session and op "
           "number (%zu have no CRC: written before checkpoints carried one)",
           nrows, nrows - nbad, nocrc);
    for (size_t i = 0; log_ok && i < ngood; i++) {
        int64_t at;
        verified_session *g = &good[i];
        if (gd_idset_get(&rv->index, g->id, &at)) {
            const recovering *r = &rv->recs[at];
            if (r->state != REC_OK) continue;
            g->opno = (int64_t)r->rec.opno;
            g->server_seq = (int64_t)r->rec.server_seq;
        }
        v->sink->session(v->sink->arg, g->id, g->opno, g->server_seq);
    }
    free(good);
}

static void verify_quarantine(verifier *v)
{
    sqlite3_stmt *q;
    size_t n = 0;
    if (sqlite3_prepare_v2(v->st->db, "SELECT id, at, reason, dir FROM quarantine ORDER BY id", -1,
                           &q, NULL) != SQLITE_OK) {
        report(v, GD_VERIFY_OK, "quarantine", "no quarantine table (no session set aside)");
        return;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        gd_idset_add(&v->quarantined, id);
        report(v, GD_VERIFY_WARN, "quarantine",
               "session %s was set aside at %lld ms since the epoch: %s (see %s)", id,
               (long long)sqlite3_column_int64(q, 1), (const char *)sqlite3_column_text(q, 2),
               (const char *)sqlite3_column_text(q, 3));
        n++;
    }
    sqlite3_finalize(q);
    if (n == 0) report(v, GD_VERIFY_OK, "quarantine", "no session set aside");
}

typedef struct kv_tally {
    verifier *v;
    size_t values, only_kv;
} kv_tally;

static void verify_kv_value(void *arg, const char *id, const char *json, size_t len)
{
    kv_tally *t = arg;
    bool durable = gd_idset_has(&t->v->durable, id);
    t->values++;
    t->only_kv += !durable;
    gd_record rec;
    memset(&rec, 0, sizeof(rec));
    gd_state_init(&rec.state);
    if (gd_record_from_text(id, json, len, &rec) != 0)
        report(t->v, durable ? GD_VERIFY_WARN : GD_VERIFY_DAMAGE, "kv.db",
               "session %s: its value does not parse as its session record%s", id,
               durable ? " (the durable store has the session; its KV view is rewritten from "
                         "there when it next leaves memory)"
                       : " (and the durable store does not have it: it cannot be loaded)");
    gd_record_clear(&rec);
}

static void verify_kv(verifier *v, const gd_kv_ops *kv)
{
    char what[700];
    if (!kv || !kv->verify) {
        report(v, GD_VERIFY_OK, "KV view", "not checked (backend %s)", kv ? kv->name : "none");
        return;
    }
    kv_tally t = {.v = v};
    int rc = kv->verify(v->st->dir, verify_kv_value, &t, what, sizeof(what));
    if (rc == -ENOENT)
        report(v, GD_VERIFY_WARN, "KV view",
               "%s (it is rebuilt from the durable store at the next start)", what);
    else if (rc)
        report(v, GD_VERIFY_DAMAGE, "KV view", "%s", what);
    else
        report(v, GD_VERIFY_OK, "KV view", "%s, %zu of sessions only in the KV view", what,
               t.only_kv);
}

int gd_store_verify(const char *dir, const gd_kv_ops *kv, const gd_verify_sink *sink,
                    gd_verify_counts *counts)
{
    memset(counts, 0, sizeof(*counts));
    struct stat sb;
    if (stat(dir, &sb) != 0) return -errno;
    if (!S_ISDIR(sb.st_mode)) return -ENOTDIR;
    /* A server holds LOCK exclusively: a shared lock keeps one from starting
     * meanwhile. No LOCK file is created: its absence says that no grooved
     * has opened the directory (grooved backup relies on that). */
    char path[1100];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    int lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (lock_fd < 0 && errno != ENOENT) return -errno;
    if (lock_fd >= 0 && flock(lock_fd, LOCK_SH | LOCK_NB) != 0) {
        int err = errno;
        close(lock_fd);
        return err == EWOULDBLOCK ? -EBUSY : -err;
    }
    gd_local *st = calloc(1, sizeof(*st));
    if (!st) {
        if (lock_fd >= 0) close(lock_fd);
        return -ENOMEM;
    }
    snprintf(st->dir, sizeof(st->dir), "%s", dir);
    st->lock_fd = -1;
    verifier v = {.sink = sink, .counts = counts, .st = st};
    gd_idset_init(&v.durable);
    gd_idset_init(&v.quarantined);
    recovery rv = {.st = st};
    gd_idset_init(&rv.index);

    report(&v, GD_VERIFY_OK, "LOCK",
           lock_fd >= 0 ? "held (shared) while checking: no grooved runs on this directory"
                        : "absent: no grooved has opened this directory since it was written");
    verify_database(&v);
    int rc = gd_oplog_open_readonly(&st->log, dir);
    if (rc == -ENOENT)
        report(&v, GD_VERIFY_DAMAGE, "log/", "missing: the op log is gone");
    else if (rc)
        report(&v, GD_VERIFY_DAMAGE, "log/", "cannot be read: %s", strerror(-rc));
    else
        verify_segments(&v);
    if (st->db) verify_quarantine(&v);
    size_t before = counts->damage;
    if (st->db && st->log) verify_fold(&v, &rv);
    if (st->db) verify_checkpoints(&v, &rv, st->log && counts->damage == before);
    verify_kv(&v, kv);
    rc = 0;

    for (size_t i = 0; i < rv.n; i++)
        gd_record_clear(&rv.recs[i].rec);
    free(rv.recs);
    gd_idset_free(&rv.index);
    gd_idset_free(&v.durable);
    gd_idset_free(&v.quarantined);
    sqlite3_finalize(st->get_ckpt_w);
    sqlite3_close(st->db);
    gd_oplog_close(st->log);
    free(st);
    if (lock_fd >= 0) close(lock_fd);
    return rc;
}
