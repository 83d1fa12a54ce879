/*
 * kv — the KV view: a read-optimised, possibly stale copy of each session
 * (the Session JSON of §1.2) for REST reads of sessions that are not loaded,
 * listing and other nodes. Always regenerable from the durable store.
 * Backends implement the const ops struct below: `sqlite` (kv_sqlite.c, a
 * file in the data directory) and `redis` (kv_redis.c, shared by a
 * cluster). Every call runs on the store's read lane (also at startup,
 * before the lanes run) and may block, but a backend over the network
 * bounds each call to a few hundred milliseconds: the lane also runs
 * session loads. Return 0 or a negative errno (-EIO while unreachable).
 */
#ifndef GD_KV_H
#define GD_KV_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"

typedef struct gd_kv_ops {
    const char *name;
    /* Opens the backend; `where` is a data directory or URL. *ctx is owned
     * by the backend until close. */
    int (*open)(void **ctx, const char *where);
    void (*close)(void *ctx);
    /* Stores the Session JSON of id, the version of durable op `opno`,
     * unless the stored value is of a newer opno (the view never goes back). */
    int (*put)(void *ctx, const char *id, const char *json, size_t len, int64_t updated_at,
               int64_t opno);
    /* Reads the Session JSON of id into *json (malloc'd, caller frees);
     * -ENOENT when absent. */
    int (*get)(void *ctx, const char *id, char **json);
    /* Appends to out, as JSON objects separated by commas, up to `limit`
     * sessions older than the cursor (updated_at, id), newest first: id,
     * name, updatedAt, trackCount, immutable. Sets *next_at / next_id to the
     * cursor of the last one when there may be more (next_id[0] = 0 if not). */
    int (*list)(void *ctx, int64_t before_at, const char *before_id, int limit, gd_buf *out,
                int64_t *next_at, char next_id[37]);
    /* Removes id's value (absent is not an error). */
    int (*del)(void *ctx, const char *id);
    /* Calls fn for every stored id with the opno its value holds (-1 when
     * unknown: a value written before opnos were kept). Startup only. */
    int (*each_id)(void *ctx, void (*fn)(void *arg, const char *id, int64_t opno), void *arg);
    /* Offline and read-only (grooved verify), without open: checks the view
     * at `where` with the backend's own integrity check, then calls fn for
     * every stored value. Fills what with what was checked (naming the file)
     * or what is wrong. 0, -ENOENT when there is no view there, -EBADMSG
     * when it is damaged, or another -errno. NULL: the backend has none. */
    int (*verify)(const char *where,
                  void (*fn)(void *arg, const char *id, const char *json, size_t len), void *arg,
                  char *what, size_t whatlen);
    /* Set by a backend that is a server of its own and may be down (redis),
     * NULL for a file: 0 when it can be reached now (connecting if need
     * be), else -EIO, within its timeouts. The store asks before rebuilding
     * a value it could not write, and starts without such a backend when it
     * cannot be read at startup (the views then catch up). */
    int (*reachable)(void *ctx);
} gd_kv_ops;

extern const gd_kv_ops gd_kv_sqlite;
extern const gd_kv_ops gd_kv_redis;

/* The backend for a --kv value: "sqlite" (*where = NULL: open it with the
 * data directory) or "redis://[[user]:password@]host[:port][/db]" (*where =
 * spec: open it with the URL, which open checks). NULL for anything else.
 * *where borrows spec. */
const gd_kv_ops *gd_kv_find(const char *spec, const char **where);

/* Appends one listing entry, {"id","name","updatedAt","trackCount",
 * "immutable"}, taken from a stored Session JSON `value`, to out; `n` is
 * how many entries the page already has (a comma goes before all but the
 * first). The same shape whatever the backend. */
void gd_kv_list_item(gd_buf *out, int n, const char *id, int64_t updated_at, const char *value);

#endif
