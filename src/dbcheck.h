/*
 * dbcheck — read-only access to a SQLite file for offline checks (grooved
 * verify): opening it without changing anything in its directory, and
 * PRAGMA integrity_check. Free of server state; any thread, one connection
 * per caller.
 */
#ifndef GD_DBCHECK_H
#define GD_DBCHECK_H

#include <sqlite3.h>
#include <stddef.h>

/* Opens the database at path to read only, leaving its directory as it
 * was: without a -wal file (a database closed cleanly) it is opened
 * immutable, so SQLite creates no -wal or -shm; with one, read-only (SQLite
 * reads the WAL; it creates a -shm index only if none is there). Closing
 * never checkpoints the WAL. The caller must keep writers away meanwhile
 * (grooved verify holds the data directory's LOCK). 0, or -errno with why
 * filled; *db is the caller's (sqlite3_close). */
int gd_dbcheck_open(const char *path, sqlite3 **db, char *why, size_t whylen);

/* PRAGMA integrity_check: 0 when it answers "ok", else -EBADMSG with its
 * first findings (or the error that stopped it) in what. *pages is the
 * database's page count (0 when unknown). */
int gd_dbcheck_integrity(sqlite3 *db, int *pages, char *what, size_t whatlen);

#endif
