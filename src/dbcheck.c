/*
 * dbcheck — see dbcheck.h.
 */
#include "dbcheck.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* "file:<path, percent-encoded>" plus query into out. */
static void file_uri(const char *path, const char *query, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = (size_t)snprintf(out, len, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && n + 4 < len; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/._-~", *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    snprintf(out + n, len - n, "%s", query);
}

int gd_dbcheck_open(const char *path, sqlite3 **db, char *why, size_t whylen)
{
    char wal[4200], uri[13000];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    bool immutable = access(wal, F_OK) != 0;
    file_uri(path, immutable ? "?immutable=1" : "", uri, sizeof(uri));
    *db = NULL;
    int rc = sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, whylen, "%s", *db ? sqlite3_errmsg(*db) : "out of memory");
        sqlite3_close(*db);
        *db = NULL;
        return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
    }
    sqlite3_db_config(*db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(*db, 5000);
    return 0;
}

int gd_dbcheck_integrity(sqlite3 *db, int *pages, char *what, size_t whatlen)
{
    sqlite3_stmt *q = NULL;
    size_t used = 0;
    bool ok = false;
    what[0] = '\0';
    *pages = 0;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(10)", -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(q, 0);
        if (!ok && used == 0 && t && strcmp(t, "ok") == 0) {
            ok = true;
        } else if (used < whatlen) {
            ok = false;
            used += (size_t)snprintf(what + used, whatlen - used, "%s%s", used ? "; " : "",
                                     t ? t : "?");
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        ok = false;
        if (used < whatlen)
            snprintf(what + used, whatlen - used, "%s%s", used ? "; " : "", sqlite3_errmsg(db));
    }
    sqlite3_finalize(q);
    if (ok && sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &q, NULL) == SQLITE_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) *pages = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
    }
    return ok ? 0 : -EBADMSG;
}
