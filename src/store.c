/*
 * store — see store.h. SQLite result codes stay inside this file and are
 * mapped to -EIO / -ENOSPC at its boundary; extended codes are logged.
 *
 * Layout: ops go to the append-only op log (oplog.c: one write and one
 * fdatasync per group commit, no page written twice); checkpoints go to
 * SQLite, sessions(id, opno, record), in WAL mode with synchronous=FULL.
 * `unfolded` maps each session with log records newer than its checkpoint
 * to the position of the first; it changes only after a commit succeeds, so
 * it always describes what is on disk. Every 64 commits the log segments
 * older than every unfolded record are deleted. Loads read the checkpoint,
 * plus that session's log records when `unfolded` has it.
 *
 * Fault injection: when the environment names GROOVED_FAULT_FILE and that
 * file exists, every commit fails with -EIO before touching the database;
 * GROOVED_KV_FAULT_FILE does the same for KV view writes.
 * Tests use it to simulate a failing disk without root or a full mount.
 */
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "idset.h"
#include "oplog.h"
#include "log.h"
#include "op.h"

struct gd_store {
    sqlite3 *db;
    sqlite3_stmt *put_ckpt, *get_ckpt;
    gd_oplog *log;
    uint8_t *recbuf; /* the records of one commit, reused */
    size_t reclen, reccap;
    gd_idset unfolded; /* storage thread only */
    int commits_since_trim;
    const gd_kv_ops *kv;
    void *kv_ctx;
    void (*wake)(void *);
    void *wake_arg;
    const char *fault_file;    /* tests: commits fail while this file exists */
    const char *kv_fault_file; /* tests: KV view writes fail while this file exists */
    int lock_fd;               /* flock on <dir>/LOCK: one process per data directory */

    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    gd_job *todo_head, *todo_tail;
    gd_job *done_head, *done_tail;
    bool stopping;
    int pending;
    gd_store_stats stats;
};

static void *storage_main(void *arg);
static void run_commit(gd_store *st, gd_job *job);
static void run_load(gd_store *st, gd_job *job);
static void run_kv_put(gd_store *st, gd_job *job);
static void run_kv_list(gd_store *st, gd_job *job);
static int map_rc(gd_store *st, int rc, const char *what);

int64_t gd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t gd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

gd_job *gd_job_new(gd_job_type type)
{
    gd_job *job = calloc(1, sizeof(*job));
    if (job) job->type = type;
    return job;
}

int gd_job_add_row(gd_job *job, gd_row_kind kind, const char *id, int64_t opno, char *text,
                   size_t len)
{
    if (job->nrows == job->caprows) {
        size_t cap = job->caprows ? job->caprows * 2 : 16;
        gd_row *rows = realloc(job->rows, cap * sizeof(*rows));
        if (!rows) {
            free(text);
            return -ENOMEM;
        }
        job->rows = rows;
        job->caprows = cap;
    }
    gd_row *r = &job->rows[job->nrows++];
    r->kind = kind;
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->opno = opno;
    r->text = text;
    r->len = len;
    job->bytes += len;
    return 0;
}

void gd_job_free(gd_job *job)
{
    if (!job) return;
    for (size_t i = 0; i < job->nrows; i++)
        free(job->rows[i].text);
    free(job->rows);
    free(job->text);
    gd_record_clear(&job->rec);
    free(job);
}

static int map_rc(gd_store *st, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
    gd_log(GD_LOG_ERROR, "store: %s failed: %s (extended code %d)", what, sqlite3_errmsg(st->db),
           sqlite3_extended_errcode(st->db));
    return (rc & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;
}

int gd_store_open(gd_store **out, const char *dir, const gd_kv_ops *kv, void (*wake)(void *),
                  void *wake_arg)
{
    *out = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        gd_log(GD_LOG_ERROR, "store: cannot create data directory %s: %s", dir, strerror(errno));
        return -errno;
    }
    gd_store *st = calloc(1, sizeof(*st));
    if (!st) return -ENOMEM;
    char lockpath[1024];
    snprintf(lockpath, sizeof(lockpath), "%s/LOCK", dir);
    st->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        gd_log(GD_LOG_ERROR, "store: data directory %s is in use by another grooved (%s)", dir,
               strerror(err));
        if (st->lock_fd >= 0) close(st->lock_fd);
        free(st);
        return err == EWOULDBLOCK ? -EBUSY : -err;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    st->kv = kv;
    st->wake = wake;
    st->wake_arg = wake_arg;
    st->fault_file = getenv("GROOVED_FAULT_FILE");
    st->kv_fault_file = getenv("GROOVED_KV_FAULT_FILE");

    char path[1024];
    snprintf(path, sizeof(path), "%s/durable.db", dir);
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db,
                          "PRAGMA journal_mode=WAL;"
                          "PRAGMA synchronous=FULL;"
                          "PRAGMA wal_autocheckpoint=4000;"
                          "CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, opno INTEGER "
                          "NOT NULL, record TEXT NOT NULL) WITHOUT ROWID;",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db,
                                "INSERT OR REPLACE INTO sessions(id, opno, record) "
                                "VALUES(?1, ?2, ?3)",
                                -1, &st->put_ckpt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db, "SELECT opno, record FROM sessions WHERE id = ?1", -1,
                                &st->get_ckpt, NULL);
    if (rc != SQLITE_OK) {
        gd_log(GD_LOG_ERROR, "store: cannot open %s: %s", path,
               st->db ? sqlite3_errmsg(st->db) : "out of memory");
        gd_store_close(st);
        return -EIO;
    }
    const char *seg = getenv("GROOVED_LOG_SEGMENT_BYTES"); /* tests: force rotation */
    if ((rc = gd_oplog_open(&st->log, dir, seg ? strtoull(seg, NULL, 10) : 64u << 20)) != 0) {
        gd_log(GD_LOG_ERROR, "store: cannot open the op log in %s: %s", dir, strerror(-rc));
        gd_store_close(st);
        return rc;
    }
    if ((rc = kv->open(&st->kv_ctx, dir)) != 0) {
        gd_store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

int gd_store_each_id(gd_store *st, void (*fn)(void *arg, const char *id), void *arg)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT id FROM sessions", -1, &q, NULL) != SQLITE_OK)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        fn(arg, (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return -EIO;
    return st->kv->each_id(st->kv_ctx, fn, arg);
}

int gd_store_start(gd_store *st)
{
    int rc = pthread_create(&st->thread, NULL, storage_main, st);
    if (rc != 0) return -rc;
    st->started = true;
    return 0;
}

void gd_store_close(gd_store *st)
{
    if (!st) return;
    if (st->started) {
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thread, NULL);
    }
    for (gd_job *j = st->done_head, *n; j; j = n) {
        n = j->next;
        gd_job_free(j);
    }
    sqlite3_finalize(st->put_ckpt);
    sqlite3_finalize(st->get_ckpt);
    gd_oplog_close(st->log);
    gd_idset_free(&st->unfolded);
    free(st->recbuf);
    sqlite3_close(st->db);
    if (st->kv_ctx) st->kv->close(st->kv_ctx);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    close(st->lock_fd); /* releases the flock */
    free(st);
}

void gd_store_submit(gd_store *st, gd_job *job)
{
    job->next = NULL;
    job->submitted_us = gd_now_us();
    pthread_mutex_lock(&st->mu);
    if (st->todo_tail)
        st->todo_tail->next = job;
    else
        st->todo_head = job;
    st->todo_tail = job;
    st->pending++;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

int gd_store_drain(gd_store *st)
{
    pthread_mutex_lock(&st->mu);
    gd_job *list = st->done_head;
    st->done_head = st->done_tail = NULL;
    pthread_mutex_unlock(&st->mu);
    int n = 0;
    while (list) {
        gd_job *next = list->next;
        pthread_mutex_lock(&st->mu);
        st->pending--;
        pthread_mutex_unlock(&st->mu);
        list->next = NULL;
        list->done(list);
        list = next;
        n++;
    }
    return n;
}

int gd_store_pending(gd_store *st)
{
    pthread_mutex_lock(&st->mu);
    int n = st->pending;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void gd_store_get_stats(gd_store *st, gd_store_stats *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->stats;
    pthread_mutex_unlock(&st->mu);
}

static void *storage_main(void *arg)
{
    gd_store *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        while (!st->todo_head && !st->stopping)
            pthread_cond_wait(&st->cv, &st->mu);
        gd_job *job = st->todo_head;
        if (!job) { /* stopping and drained */
            pthread_mutex_unlock(&st->mu);
            return NULL;
        }
        st->todo_head = job->next;
        if (!st->todo_head) st->todo_tail = NULL;
        pthread_mutex_unlock(&st->mu);

        switch (job->type) {
        case GD_JOB_COMMIT:
            run_commit(st, job);
            break;
        case GD_JOB_LOAD:
            run_load(st, job);
            break;
        case GD_JOB_KV_PUT:
            run_kv_put(st, job);
            break;
        case GD_JOB_KV_LIST:
            run_kv_list(st, job);
            break;
        }
        job->finished_us = gd_now_us();

        pthread_mutex_lock(&st->mu);
        job->next = NULL;
        if (st->done_tail)
            st->done_tail->next = job;
        else
            st->done_head = job;
        st->done_tail = job;
        pthread_mutex_unlock(&st->mu);
        st->wake(st->wake_arg);
    }
}

static int step_reset(gd_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return map_rc(st, rc, what);
}

/* Deletes the log segments that every session has folded into a checkpoint. */
static int trim_log(gd_store *st)
{
    int64_t keep = INT64_MAX;
    for (size_t i = 0; i < st->unfolded.cap; i++)
        if (st->unfolded.slots[i].used && st->unfolded.slots[i].val < keep)
            keep = st->unfolded.slots[i].val;
    return gd_oplog_trim(st->log, keep);
}

static void run_commit(gd_store *st, gd_job *job)
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
    if (st->fault_file && access(st->fault_file, F_OK) == 0) {
        gd_log(GD_LOG_WARN, "store: injected commit failure (%s exists)", st->fault_file);
        rc = -EIO;
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
    /* 2. The checkpoints, in one SQLite transaction. */
    if (ckpts) {
        rc = map_rc(st, sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
        for (size_t i = 0; rc == 0 && i < job->nrows; i++) {
            gd_row *r = &job->rows[i];
            if (r->kind != GD_ROW_CKPT) continue;
            sqlite3_bind_text(st->put_ckpt, 1, r->id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st->put_ckpt, 2, r->opno);
            sqlite3_bind_text(st->put_ckpt, 3, r->text, (int)r->len, SQLITE_STATIC);
            rc = step_reset(st, st->put_ckpt, "write checkpoint");
        }
        if (rc == 0) rc = map_rc(st, sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL), "commit");
        if (rc != 0 && !sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (rc != 0 && appended) /* the batch fails whole: take its ops back */
            gd_oplog_cut(st->log, pos);
    }
    /* 3. Only what is now on disk changes the fold map, in row order: a
     * checkpoint folds everything before it; a later op opens a new range. */
    for (size_t i = 0; rc == 0 && i < job->nrows; i++) {
        gd_row *r = &job->rows[i];
        int64_t cur;
        if (r->kind == GD_ROW_CKPT)
            gd_idset_remove(&st->unfolded, r->id);
        else if (!gd_idset_get(&st->unfolded, r->id, &cur) &&
                 gd_idset_put(&st->unfolded, r->id, pos + (int64_t)offsets[i]) != 0)
            st->commits_since_trim = INT32_MIN; /* out of memory: never trim, never lose ops */
    }
    if (rc == 0 && ++st->commits_since_trim >= 64) {
        st->commits_since_trim = 0;
        if (trim_log(st) != 0) gd_log(GD_LOG_WARN, "store: op log trim failed");
    }
out:
    free(offsets);
    job->rc = rc;
    pthread_mutex_lock(&st->mu);
    if (rc == 0) {
        st->stats.commits++;
        st->stats.rows += job->nrows;
        st->stats.bytes += st->reclen;
        for (size_t i = 0; i < job->nrows; i++)
            if (job->rows[i].kind == GD_ROW_CKPT) st->stats.bytes += job->rows[i].len;
    } else {
        st->stats.commit_failures++;
    }
    pthread_mutex_unlock(&st->mu);
}

/* Applies one log record of rec's own session onto rec: ops already in rec
 * are skipped (1), the next one is applied (0), anything else cannot be
 * replayed (< 0). The same gd_apply as live sessions. */
static int replay_record(gd_record *rec, const gd_oplog_rec *r)
{
    if (r->opno <= rec->opno) return 1;
    if (r->opno != rec->opno + 1) return -EILSEQ;
    gd_op op;
    gd_op_err err;
    gd_apply_res res;
    int rc = gd_op_parse_compact(r->op, r->oplen, &op, &err);
    if (rc == 0) {
        rc = gd_apply(rec, &op, &res, &err);
        gd_op_clear(&op);
    }
    return rc ? -EINVAL : 0;
}

typedef struct load_scan {
    gd_job *job;
    uint8_t sid[16];
} load_scan;

static int load_record(void *arg, const gd_oplog_rec *r)
{
    load_scan *ls = arg;
    if (memcmp(r->sid, ls->sid, 16) != 0) return 0;
    int rc = replay_record(&ls->job->rec, r);
    if (rc < 0) {
        gd_log(GD_LOG_ERROR, "store: session %s: op %u does not replay (%s)", ls->job->id, r->opno,
               rc == -EILSEQ ? "gap" : "invalid");
        return 1;
    }
    ls->job->replayed += rc == 0;
    return 0;
}

/* Recovery of one session: checkpoint, then replay of every later op. */
static void run_load(gd_store *st, gd_job *job)
{
    json_error_t jerr;
    json_t *j = NULL;
    int rc;
    job->source = GD_SRC_NONE;
    sqlite3_bind_text(st->get_ckpt, 1, job->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st->get_ckpt);
    if (rc == SQLITE_ROW) {
        job->ckpt_opno = sqlite3_column_int64(st->get_ckpt, 0);
        j = json_loads((const char *)sqlite3_column_text(st->get_ckpt, 1), JSON_DECODE_INT_AS_REAL,
                       &jerr);
    }
    rc = map_rc(st, rc, "read checkpoint");
    sqlite3_reset(st->get_ckpt);
    sqlite3_clear_bindings(st->get_ckpt);
    if (rc != 0) goto out;
    if (j) {
        if (gd_record_from_json(j, &job->rec) != 0) {
            gd_log(GD_LOG_ERROR, "store: session %s: checkpoint does not parse", job->id);
            rc = -EIO;
            goto out;
        }
        job->source = GD_SRC_DURABLE;
        int64_t from;
        if (!gd_idset_get(&st->unfolded, job->id, &from))
            goto out; /* the checkpoint holds every op of this session */
        load_scan ls = {.job = job};
        gd_id_pack(job->id, ls.sid);
        rc = gd_oplog_scan(st->log, from, gd_oplog_end(st->log), 0, load_record, &ls, NULL);
        goto out;
    }
    /* Never live here: fall back to the KV view. */
    char *text = NULL;
    rc = st->kv->get(st->kv_ctx, job->id, &text);
    if (rc == 0) {
        json_t *kj = json_loads(text, JSON_DECODE_INT_AS_REAL, &jerr);
        if (kj && gd_record_from_json(kj, &job->rec) == 0) {
            job->source = GD_SRC_KV;
            job->rec.opno = 0;
        } else {
            gd_log(GD_LOG_WARN, "store: session %s: KV value does not parse", job->id);
        }
        json_decref(kj);
    }
    free(text);
    rc = rc == -ENOENT ? 0 : rc;
out:
    json_decref(j);
    job->rc = rc;
    pthread_mutex_lock(&st->mu);
    st->stats.loads++;
    pthread_mutex_unlock(&st->mu);
}

static void run_kv_list(gd_store *st, gd_job *job)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"sessions\":[");
    job->rc = st->kv->list(st->kv_ctx, job->updated_at, job->id, job->limit, &b, &job->next_at,
                           job->next_id);
    gd_buf_puts(&b, "],\"nextCursor\":");
    if (job->next_id[0])
        gd_buf_printf(&b, "\"%lld.%s\"}", (long long)job->next_at, job->next_id);
    else
        gd_buf_puts(&b, "null}");
    if (b.oom) job->rc = -ENOMEM;
    job->text = gd_buf_steal(&b, &job->len);
}

/* One attempt: a failed KV write is retried by the loop with backoff
 * (session.c), never by sleeping here, where it would delay every commit. */
static void run_kv_put(gd_store *st, gd_job *job)
{
    int rc;
    if (st->kv_fault_file && access(st->kv_fault_file, F_OK) == 0)
        rc = -EIO;
    else
        rc = st->kv->put(st->kv_ctx, job->id, job->text, job->len, job->updated_at);
    job->rc = rc;
    pthread_mutex_lock(&st->mu);
    if (rc == 0)
        st->stats.kv_puts++;
    else
        st->stats.kv_failures++;
    pthread_mutex_unlock(&st->mu);
}

static void format_id(const uint8_t *b, char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

typedef struct recovering {
    gd_record rec;
    bool ok;
} recovering;

typedef struct recovery {
    gd_store *st;
    gd_idset index; /* id -> position in recs */
    recovering *recs;
    size_t n, cap, rows;
    int rc;
} recovery;

/* Folds one log record into its session's record, loading the session's
 * checkpoint the first time it is seen. */
static int recover_record(void *arg, const gd_oplog_rec *r)
{
    recovery *rv = arg;
    gd_store *st = rv->st;
    char id[37];
    format_id(r->sid, id);
    rv->rows++;
    int64_t at;
    if (!gd_idset_get(&rv->index, id, &at)) {
        if (rv->n == rv->cap) {
            size_t cap = rv->cap ? rv->cap * 2 : 64;
            recovering *p = realloc(rv->recs, cap * sizeof(*p));
            if (!p) {
                rv->rc = -ENOMEM;
                return 1;
            }
            rv->recs = p;
            rv->cap = cap;
        }
        at = (int64_t)rv->n++;
        recovering *nr = &rv->recs[at];
        memset(nr, 0, sizeof(*nr));
        gd_state_init(&nr->rec.state);
        if (gd_idset_put(&rv->index, id, at) != 0) {
            rv->rc = -ENOMEM;
            return 1;
        }
        sqlite3_bind_text(st->get_ckpt, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st->get_ckpt) == SQLITE_ROW) {
            json_error_t jerr;
            json_t *j = json_loads((const char *)sqlite3_column_text(st->get_ckpt, 1),
                                   JSON_DECODE_INT_AS_REAL, &jerr);
            nr->ok = j && gd_record_from_json(j, &nr->rec) == 0;
            json_decref(j);
        }
        sqlite3_reset(st->get_ckpt);
        sqlite3_clear_bindings(st->get_ckpt);
        if (!nr->ok)
            gd_log(GD_LOG_WARN,
                   "recovery: session %s has log records but no checkpoint "
                   "(its creation was never acknowledged)",
                   id);
    }
    recovering *rr = &rv->recs[at];
    if (rr->ok) {
        int prc = replay_record(&rr->rec, r);
        if (prc < 0)
            gd_log(GD_LOG_ERROR, "recovery: session %s: op %u does not replay (%s)", id, r->opno,
                   prc == -EILSEQ ? "gap" : "invalid");
    }
    return 0;
}

/*
 * Crash recovery, at startup before the storage thread runs: replays every
 * intact op log record onto its session's checkpoint (through gd_apply, in
 * log order; a torn tail is cut off), writes the results as new checkpoints
 * in one transaction, then deletes the log and refreshes the KV view of
 * those sessions. A crash during recovery leaves the log in place, and
 * replay skips what a newer checkpoint already holds.
 */
int gd_store_recover(gd_store *st)
{
    int64_t t0 = gd_now_us();
    recovery rv = {.st = st};
    gd_idset_init(&rv.index);
    int rc = gd_oplog_scan(st->log, 0, INT64_MAX, 1, recover_record, &rv, NULL);
    if (rc == 0) rc = rv.rc;
    if (rc == 0 && rv.rows > 0) {
        rc = map_rc(st, sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
        for (size_t i = 0; rc == 0 && i < rv.n; i++) {
            if (!rv.recs[i].ok) continue;
            gd_buf b;
            gd_buf_init(&b);
            gd_record_write(&b, &rv.recs[i].rec, true);
            if (b.oom) {
                rc = -ENOMEM;
            } else {
                sqlite3_bind_text(st->put_ckpt, 1, rv.recs[i].rec.id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st->put_ckpt, 2, (int64_t)rv.recs[i].rec.opno);
                sqlite3_bind_text(st->put_ckpt, 3, b.p, (int)b.len, SQLITE_STATIC);
                rc = step_reset(st, st->put_ckpt, "write recovered checkpoint");
            }
            gd_buf_free(&b);
        }
        if (rc == 0)
            rc = map_rc(st, sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL), "commit recovery");
        if (rc != 0 && !sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        if (rc == 0) rc = gd_oplog_reset(st->log);
        for (size_t i = 0; rc == 0 && i < rv.n; i++) {
            if (!rv.recs[i].ok) continue;
            gd_buf b;
            gd_buf_init(&b);
            gd_record_write(&b, &rv.recs[i].rec, false);
            if (!b.oom && st->kv->put(st->kv_ctx, rv.recs[i].rec.id, b.p, b.len,
                                      rv.recs[i].rec.updated_at) != 0)
                gd_log(GD_LOG_WARN, "recovery: KV view of %s not refreshed", rv.recs[i].rec.id);
            gd_buf_free(&b);
        }
        gd_log(GD_LOG_INFO, "recovery: replayed %zu log rows into %zu sessions in %.1f ms", rv.rows,
               rv.n, (double)(gd_now_us() - t0) / 1000.0);
    }
    for (size_t i = 0; i < rv.n; i++)
        gd_record_clear(&rv.recs[i].rec);
    free(rv.recs);
    gd_idset_free(&rv.index);
    return rc;
}

typedef struct gc_ctx {
    gd_store *st;
    int64_t cutoff;
    gd_idset durable; /* ids with a checkpoint */
    char (*old)[37];
    size_t nold, capold;
} gc_ctx;

static void gc_note(gc_ctx *g, const char *id)
{
    if (g->nold == g->capold) {
        size_t cap = g->capold ? g->capold * 2 : 64;
        char(*p)[37] = realloc(g->old, cap * sizeof(*p));
        if (!p) return;
        g->old = p;
        g->capold = cap;
    }
    snprintf(g->old[g->nold++], 37, "%s", id);
}

/* KV-only sessions (never live here) are judged by their KV value. */
static void gc_kv_id(void *arg, const char *id)
{
    gc_ctx *g = arg;
    int64_t v;
    char *text = NULL;
    if (gd_idset_get(&g->durable, id, &v) || g->st->kv->get(g->st->kv_ctx, id, &text) != 0) return;
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_INT_AS_REAL, &e);
    json_t *la = json_object_get(j, "lastAccessedAt");
    if (!la) la = json_object_get(j, "updatedAt");
    if (json_is_number(la) && json_number_value(la) < (double)g->cutoff) gc_note(g, id);
    json_decref(j);
    free(text);
}

int gd_store_gc(gd_store *st, int64_t cutoff_ms, bool dry_run, size_t *removed)
{
    gc_ctx g = {.st = st, .cutoff = cutoff_ms};
    gd_idset_init(&g.durable);
    sqlite3_stmt *q = NULL;
    int rc = map_rc(st,
                    sqlite3_prepare_v2(st->db,
                                       "SELECT id, coalesce(json_extract(record, "
                                       "'$.lastAccessedAt'), json_extract(record, "
                                       "'$.updatedAt')) FROM sessions",
                                       -1, &q, NULL),
                    "scan sessions");
    while (rc == 0) {
        int step = sqlite3_step(q);
        if (step != SQLITE_ROW) {
            rc = step == SQLITE_DONE ? 0 : map_rc(st, step, "scan sessions");
            break;
        }
        const char *id = (const char *)sqlite3_column_text(q, 0);
        gd_idset_add(&g.durable, id);
        if (sqlite3_column_int64(q, 1) < cutoff_ms) gc_note(&g, id);
    }
    sqlite3_finalize(q);
    if (rc == 0) rc = st->kv->each_id(st->kv_ctx, gc_kv_id, &g);
    if (rc == 0 && !dry_run && g.nold) {
        sqlite3_stmt *del = NULL;
        rc = map_rc(st, sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin");
        if (rc == 0)
            rc = map_rc(
                st,
                sqlite3_prepare_v2(st->db, "DELETE FROM sessions WHERE id = ?1", -1, &del, NULL),
                "prepare delete");
        for (size_t i = 0; rc == 0 && i < g.nold; i++) {
            sqlite3_bind_text(del, 1, g.old[i], -1, SQLITE_STATIC);
            rc = step_reset(st, del, "delete session");
        }
        sqlite3_finalize(del);
        if (rc == 0) rc = map_rc(st, sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL), "commit");
        if (rc != 0 && !sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        /* The durable store first: the view is only ever behind it. */
        for (size_t i = 0; rc == 0 && i < g.nold; i++)
            if (st->kv->del(st->kv_ctx, g.old[i]) != 0)
                gd_log(GD_LOG_WARN, "gc: KV value of %s not removed", g.old[i]);
    }
    for (size_t i = 0; i < g.nold; i++)
        printf("%s %s\n", dry_run ? "would remove" : "removed", g.old[i]);
    *removed = g.nold;
    free(g.old);
    gd_idset_free(&g.durable);
    return rc;
}
