/*
 * kv_sqlite — the embedded KV view backend: one SQLite file (kv.db) in the
 * data directory, table kv(id, updated_at, value, opno). The view is
 * regenerable, so it commits with synchronous=NORMAL: after a power cut it
 * may be behind, and the store rewrites what is behind at startup (opno).
 * The store's read lane only.
 */
#include "kv.h"

#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbcheck.h"
#include "log.h"

typedef struct kv_sqlite {
    sqlite3 *db;
    sqlite3_stmt *put, *get;
} kv_sqlite;

static void kv_close(void *ctx);

static bool has_opno_column(sqlite3 *db)
{
    sqlite3_stmt *q;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('kv') WHERE name = 'opno'", -1, &q,
                           NULL) != SQLITE_OK)
        return false;
    found = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return found;
}

static int kv_open(void **out, const char *dir)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/kv.db", dir);
    kv_sqlite *kv = calloc(1, sizeof(*kv));
    if (!kv) return -ENOMEM;
    int rc = sqlite3_open_v2(path, &kv->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(kv->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "CREATE TABLE IF NOT EXISTS kv(id TEXT PRIMARY KEY, updated_at INTEGER "
                          "NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
                          "CREATE INDEX IF NOT EXISTS kv_updated ON kv(updated_at);",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && !has_opno_column(kv->db)) /* a view from before opnos were kept */
        rc = sqlite3_exec(kv->db, "ALTER TABLE kv ADD COLUMN opno INTEGER", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kv->db,
                                "INSERT INTO kv(id, updated_at, value, opno) "
                                "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET "
                                "updated_at = excluded.updated_at, value = excluded.value, "
                                "opno = excluded.opno WHERE kv.opno IS NULL OR "
                                "kv.opno <= excluded.opno",
                                -1, &kv->put, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(kv->db, "SELECT value FROM kv WHERE id = ?1", -1, &kv->get, NULL);
    if (rc != SQLITE_OK) {
        gd_event(GD_LOG_ERROR, "kv_open_failed", NULL, "path,error",
                 "kv_sqlite: cannot open %s: %s", path,
                 kv->db ? sqlite3_errmsg(kv->db) : "out of memory");
        kv_close(kv);
        return -EIO;
    }
    *out = kv;
    return 0;
}

static void kv_close(void *ctx)
{
    kv_sqlite *kv = ctx;
    if (!kv) return;
    sqlite3_finalize(kv->put);
    sqlite3_finalize(kv->get);
    sqlite3_close(kv->db);
    free(kv);
}

static int kv_put(void *ctx, const char *id, const char *json, size_t len, int64_t updated_at,
                  int64_t opno)
{
    kv_sqlite *kv = ctx;
    sqlite3_bind_text(kv->put, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(kv->put, 2, updated_at);
    sqlite3_bind_text(kv->put, 3, json, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(kv->put, 4, opno);
    int rc = sqlite3_step(kv->put);
    sqlite3_reset(kv->put);
    sqlite3_clear_bindings(kv->put);
    if (rc != SQLITE_DONE) {
        gd_event(GD_LOG_WARN, "kv_put_failed", id, "error,sqlite_code",
                 "kv_sqlite: put failed: %s (%d)", sqlite3_errmsg(kv->db),
                 sqlite3_extended_errcode(kv->db));
        return -EIO;
    }
    return 0;
}

static int kv_get(void *ctx, const char *id, char **json)
{
    kv_sqlite *kv = ctx;
    *json = NULL;
    sqlite3_bind_text(kv->get, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(kv->get), ret = -ENOENT;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(kv->get, 0);
        *json = v ? strdup(v) : NULL;
        ret = *json ? 0 : -ENOMEM;
    } else if (rc != SQLITE_DONE) {
        ret = -EIO;
    }
    sqlite3_reset(kv->get);
    sqlite3_clear_bindings(kv->get);
    return ret;
}

static int kv_each_id(void *ctx, void (*fn)(void *arg, const char *id, int64_t opno), void *arg)
{
    kv_sqlite *kv = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(kv->db, "SELECT id, coalesce(opno, -1) FROM kv", -1, &st, NULL) !=
        SQLITE_OK)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int kv_list(void *ctx, int64_t before_at, const char *before_id, int limit, gd_buf *out,
                   int64_t *next_at, char next_id[37])
{
    kv_sqlite *kv = ctx;
    sqlite3_stmt *st;
    next_id[0] = '\0';
    if (sqlite3_prepare_v2(kv->db,
                           "SELECT id, updated_at, value FROM kv WHERE updated_at < ?1 OR "
                           "(updated_at = ?1 AND id < ?2) ORDER BY updated_at DESC, id DESC "
                           "LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(st, 1, before_at);
    sqlite3_bind_text(st, 2, before_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, limit);
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        int64_t at = sqlite3_column_int64(st, 1);
        gd_kv_list_item(out, n++, id, at, (const char *)sqlite3_column_text(st, 2));
        if (n == limit) {
            *next_at = at;
            snprintf(next_id, 37, "%s", id);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int kv_del(void *ctx, const char *id)
{
    kv_sqlite *kv = ctx;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(kv->db, "DELETE FROM kv WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Read-only, changing nothing (dbcheck.h). */
static int kv_verify(const char *dir,
                     void (*fn)(void *arg, const char *id, const char *json, size_t len), void *arg,
                     char *what, size_t whatlen)
{
    char path[1024], problems[512];
    snprintf(path, sizeof(path), "%s/kv.db", dir);
    if (access(path, F_OK) != 0) {
        snprintf(what, whatlen, "kv.db is missing");
        return -ENOENT;
    }
    sqlite3 *db;
    sqlite3_stmt *q = NULL;
    if (gd_dbcheck_open(path, &db, problems, sizeof(problems)) != 0) {
        snprintf(what, whatlen, "kv.db cannot be opened: %s", problems);
        return -EBADMSG;
    }
    int pages, rc;
    int ret = gd_dbcheck_integrity(db, &pages, problems, sizeof(problems));
    if (ret) {
        snprintf(what, whatlen, "kv.db: PRAGMA integrity_check: %s", problems);
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT id, value FROM kv", -1, &q, NULL) != SQLITE_OK) {
        snprintf(what, whatlen, "kv.db: its table cannot be read: %s", sqlite3_errmsg(db));
        ret = -EBADMSG;
        goto out;
    }
    size_t n = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_blob(q, 1);
        fn(arg, (const char *)sqlite3_column_text(q, 0), v ? v : "",
           (size_t)sqlite3_column_bytes(q, 1));
        n++;
    }
    if (rc != SQLITE_DONE) {
        snprintf(what, whatlen, "kv.db: reading its values failed after %zu: %s", n,
                 sqlite3_errmsg(db));
        ret = -EBADMSG;
    } else {
        snprintf(what, whatlen, "kv.db: PRAGMA integrity_check: ok (%d pages), %zu values", pages,
                 n);
    }
out:
    sqlite3_finalize(q);
    sqlite3_close(db);
    return ret;
}

const gd_kv_ops gd_kv_sqlite = {
    .name = "sqlite",
    .open = kv_open,
    .close = kv_close,
    .put = kv_put,
    .get = kv_get,
    .each_id = kv_each_id,
    .verify = kv_verify,
    .list = kv_list,
    .del = kv_del,
};
