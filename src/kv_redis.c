/*
 * kv_redis — the KV view in Redis (--kv redis://[[user]:password@]host[:port][/db]), shared
 * by every node of a cluster. The store's read lane only (and startup,
 * before the lanes run); one blocking hiredis connection, owned here.
 *
 * Keys (db of the URL):
 *   grooved:session:<id>  hash: value (the Session JSON), opno (the durable
 *                         op number that value holds), member (its entry below)
 *   grooved:sessions      sorted set, every score 0, members
 *                         "<16 hex digits of updatedAt>:<id>": ordered by
 *                         (updatedAt, id) byte-wise, so a listing cursor is
 *                         one ZRANGE ... BYLEX REV from an exclusive bound.
 * A put, a delete and a listing page are each one Lua script (EVALSHA),
 * so the hash and the sorted set never disagree and a value is never
 * replaced by one of an older opno, whichever node writes.
 *
 * The read lane also runs session loads: no call may hold it for long.
 * Connecting waits at most CONNECT_MS, each command at most COMMAND_MS.
 * After a failure the connection is dropped and rebuilt lazily by a later
 * call; until a wait (RETRY_MIN_MS doubling to RETRY_MAX_MS) is over, calls
 * answer -EIO at once without touching the network, so a Redis that is
 * down or frozen costs the lane one timeout per wait, not one per call.
 * The store retries the writes that failed (store.c, mark_behind). The
 * listing reads each value's name and track count (kv.c); ids are
 * lower-case UUIDs, so keys and members need no escaping.
 *
 * Credentials come from the URL's user information (percent-decoded, no
 * control characters): AUTH
 * with the password, or with user and password for a Redis 6+ ACL user,
 * first on every connection. Log lines carry the URL with the password
 * replaced by "***"; the password is wiped when the view closes.
 *
 *   DOWN --(due, connect+AUTH+SELECT+SCRIPT LOAD ok)--> UP
 *   UP   --(I/O error, timeout)--> DOWN (retry after 200 ms .. 2 s)
 */
#include "kv.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "idset.h"
#include "log.h"
#include "reqhead.h"

enum {
    CONNECT_MS = 300,
    COMMAND_MS = 300,
    RETRY_MIN_MS = 200,
    RETRY_MAX_MS = 2000,
    SCAN_COUNT = 1000,
};

#define KEY_PREFIX "grooved:session:"
#define ZSET_KEY "grooved:sessions"

/* KEYS: the session's hash, the sorted set. ARGV: value, member, opno.
 * Returns 1 when stored, 0 when the stored value is of a newer opno. */
static const char put_lua[] =
    "local cur = redis.call('HGET', KEYS[1], 'opno')\n"
    "if cur and tonumber(cur) > tonumber(ARGV[3]) then return 0 end\n"
    "local old = redis.call('HGET', KEYS[1], 'member')\n"
    "if old and old ~= ARGV[2] then redis.call('ZREM', KEYS[2], old) end\n"
    "redis.call('HSET', KEYS[1], 'value', ARGV[1], 'opno', ARGV[3], 'member', ARGV[2])\n"
    "redis.call('ZADD', KEYS[2], 0, ARGV[2])\n"
    "return 1\n";

/* KEYS: the session's hash, the sorted set. */
static const char del_lua[] = "local old = redis.call('HGET', KEYS[1], 'member')\n"
                              "if old then redis.call('ZREM', KEYS[2], old) end\n"
                              "return redis.call('DEL', KEYS[1])\n";

/* KEYS: the sorted set. ARGV: exclusive upper bound "(member", limit, key
 * prefix. Returns member, value, member, value, ... newest first (value nil
 * if the hash is gone). The hashes are read in the same atomic step. */
static const char list_lua[] =
    "local m = redis.call('ZRANGE', KEYS[1], ARGV[1], '-', 'BYLEX', 'REV', 'LIMIT', 0, "
    "tonumber(ARGV[2]))\n"
    "local out = {}\n"
    "for _, mem in ipairs(m) do\n"
    "  out[#out + 1] = mem\n"
    "  out[#out + 1] = redis.call('HGET', ARGV[3] .. string.sub(mem, 18), 'value')\n"
    "end\n"
    "return out\n";

enum { SCRIPT_PUT, SCRIPT_DEL, SCRIPT_LIST, NSCRIPTS };
static const char *const scripts[NSCRIPTS] = {put_lua, del_lua, list_lua};

typedef struct kv_redis {
    char url[256]; /* for log lines: the password replaced by "***" */
    char host[256];
    char user[128], pass[256]; /* from the URL, decoded; "" when absent */
    int port, db;
    redisContext *c;        /* NULL while down */
    int64_t retry_at_ms;    /* monotonic: no connection attempt before this */
    int failures;           /* consecutive failed attempts */
    char sha[NSCRIPTS][41]; /* of each script, loaded at connect */
} kv_redis;

static void kv_close(void *ctx);

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* redis://[[user]:password@]host[:port][/db] with host a name, an IPv4
 * address or [IPv6]. */
static int parse_url(kv_redis *r, const char *url)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) return -EINVAL;
    const char *p = url + sizeof(scheme) - 1, *end;
    const char *authority_end = p + strcspn(p, "/");
    const char *at = NULL;
    for (const char *q = p; q < authority_end; q++)
        if (*q == '@') at = q;
    r->user[0] = r->pass[0] = '\0';
    if (at) {
        /* user:password or :password; a bare word is refused (user or password?). */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon || colon + 1 == at) return -EINVAL;
        if (!gd_percent_decode(p, (size_t)(colon - p), r->user, sizeof(r->user)) ||
            !gd_percent_decode(colon + 1, (size_t)(at - colon - 1), r->pass, sizeof(r->pass)))
            return -EINVAL;
        p = at + 1;
    }
    if (*p == '[') {
        end = strchr(++p, ']');
        if (!end) return -EINVAL;
    } else {
        end = p + strcspn(p, ":/");
    }
    size_t n = (size_t)(end - p);
    if (n == 0 || n >= sizeof(r->host) || memchr(p, '@', n) || memchr(p, '?', n)) return -EINVAL;
    memcpy(r->host, p, n);
    r->host[n] = '\0';
    p = end + (*end == ']');
    r->port = 6379;
    r->db = 0;
    if (*p == ':') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (e == p + 1 || v < 1 || v > 65535) return -EINVAL;
        r->port = (int)v;
        p = e;
    }
    if (*p == '/' && p[1] != '\0') {
        char *e;
        long v = strtol(p + 1, &e, 10);
        if (e == p + 1 || v < 0 || v > 1000000) return -EINVAL;
        r->db = (int)v;
        p = e;
    } else if (*p == '/') {
        p++;
    }
    return *p == '\0' ? 0 : -EINVAL;
}

/* Drops the connection after a failure and sets when the next attempt may
 * be made. The first failure of a run is a warning, later ones debug. */
static void mark_down(kv_redis *r, const char *what, const char *reason)
{
    char why[160]; /* reason may live in the context freed here */
    snprintf(why, sizeof(why), "%s", reason && reason[0] ? reason : "no reply");
    if (r->c) redisFree(r->c);
    r->c = NULL;
    int shift = r->failures < 4 ? r->failures : 4;
    int wait = RETRY_MIN_MS << shift;
    if (wait > RETRY_MAX_MS) wait = RETRY_MAX_MS;
    r->retry_at_ms = monotonic_ms() + wait;
    if (r->failures++ == 0)
        gd_event(GD_LOG_WARN, "kv_redis_down", NULL, "url,step,error",
                 "kv_redis: %s unavailable (%s: %s); KV view calls fail until it is back", r->url,
                 what, why);
    else
        gd_event(GD_LOG_DEBUG, "kv_redis_retry_failed", NULL, "url,step,error,failures",
                 "kv_redis: %s still unavailable (%s: %s, %d failures)", r->url, what, why,
                 r->failures);
}

/* One command on the open connection. Returns the reply (the caller frees
 * it with freeReplyObject; it may be an error reply) or NULL after an I/O
 * error or a timeout, which drops the connection. */
static redisReply *command(kv_redis *r, const char *what, int argc, const char **argv,
                           const size_t *lens)
{
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep) mark_down(r, what, r->c->errstr);
    return rep;
}

/* A command whose answer must be a status (+OK): 0, or -EIO after marking
 * the connection down with the error's text. */
static int status_command(kv_redis *r, const char *what, int argc, const char **argv)
{
    redisReply *rep = command(r, what, argc, argv, NULL);
    if (!rep) return -EIO;
    bool ok = rep->type == REDIS_REPLY_STATUS;
    char why[160];
    snprintf(why, sizeof(why), "%s", rep->type == REDIS_REPLY_ERROR ? rep->str : "?");
    freeReplyObject(rep);
    if (ok) return 0;
    mark_down(r, what, why);
    return -EIO;
}

/* Connects when down and due: AUTH, SELECT db, SCRIPT LOAD every script.
 * 0 when connected, -EIO otherwise (without waiting when not due). */
static int ensure_connected(kv_redis *r)
{
    if (r->c) return 0;
    if (monotonic_ms() < r->retry_at_ms) return -EIO;
    r->c = redisConnectWithTimeout(r->host, r->port, ms_tv(CONNECT_MS));
    if (!r->c || r->c->err) {
        mark_down(r, "connect", r->c ? r->c->errstr : "out of memory");
        return -EIO;
    }
    if (redisSetTimeout(r->c, ms_tv(COMMAND_MS)) != REDIS_OK) {
        mark_down(r, "set timeout", r->c->errstr);
        return -EIO;
    }
    redisEnableKeepAlive(r->c);
    if (r->pass[0]) { /* AUTH [user] password */
        const char *argv[3] = {"AUTH"};
        int argc = 1;
        if (r->user[0]) argv[argc++] = r->user;
        argv[argc++] = r->pass;
        if (status_command(r, "auth", argc, argv) != 0) return -EIO;
    }
    if (r->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", r->db);
        const char *argv[] = {"SELECT", db};
        if (status_command(r, "select", 2, argv) != 0) return -EIO;
    }
    for (int i = 0; i < NSCRIPTS; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};
        redisReply *rep = command(r, "script load", 3, argv, NULL);
        if (!rep) return -EIO;
        bool ok = rep->type == REDIS_REPLY_STRING && rep->len == 40;
        if (ok) memcpy(r->sha[i], rep->str, 41);
        char why[160];
        snprintf(why, sizeof(why), "%s", rep->type == REDIS_REPLY_ERROR ? rep->str : "bad reply");
        freeReplyObject(rep);
        if (!ok) {
            mark_down(r, "script load", why);
            return -EIO;
        }
    }
    if (r->failures)
        gd_event(GD_LOG_INFO, "kv_redis_up", NULL, "url,failures",
                 "kv_redis: %s reachable again after %d failed attempts", r->url, r->failures);
    r->failures = 0;
    return 0;
}

/* Runs script i with argv[0..argc) = numkeys, keys..., args... (lens
 * may be NULL for C strings). Falls back to EVAL when the server lost its
 * script cache. The reply, or NULL (-EIO) after a failure; an error reply
 * is logged and turned into NULL too. */
static redisReply *run_script(kv_redis *r, int i, const char *what, int argc, const char **args,
                              const size_t *lens)
{
    if (ensure_connected(r) != 0) return NULL;
    const char *argv[12];
    size_t argl[12];
    if (argc + 2 > (int)(sizeof(argv) / sizeof(argv[0]))) return NULL;
    argv[0] = "EVALSHA";
    argv[1] = r->sha[i];
    for (int k = 0; k < argc; k++) {
        argv[k + 2] = args[k];
        argl[k + 2] = lens ? lens[k] : strlen(args[k]);
    }
    argl[0] = 7;
    argl[1] = 40;
    redisReply *rep = command(r, what, argc + 2, argv, argl);
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        argv[0] = "EVAL";
        argv[1] = scripts[i];
        argl[0] = 4;
        argl[1] = strlen(scripts[i]);
        rep = command(r, what, argc + 2, argv, argl);
    }
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        /* The connection is fine (e.g. -LOADING, -OOM, -READONLY): the call fails. */
        gd_event(GD_LOG_WARN, "kv_redis_error", NULL, "url,step,error", "kv_redis: %s: %s: %s",
                 r->url, what, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static void session_key(char *out, size_t cap, const char *id)
{
    snprintf(out, cap, KEY_PREFIX "%s", id);
}

/* "<16 hex digits>:<id>": the hex of updated_at with its sign bit flipped,
 * so that byte order is numeric order for every int64. */
static void member_of(char *out, size_t cap, int64_t updated_at, const char *id)
{
    snprintf(out, cap, "%016" PRIx64 ":%s", (uint64_t)updated_at ^ (UINT64_C(1) << 63), id);
}

/* Splits a member back; false when it is not one of ours. */
static bool parse_member(const char *m, size_t len, int64_t *at, char id[37])
{
    if (len < 18 || len > 17 + 36 || m[16] != ':') return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = m[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    *at = (int64_t)(v ^ (UINT64_C(1) << 63));
    memcpy(id, m + 17, len - 17);
    id[len - 17] = '\0';
    return true;
}

static int kv_open(void **out, const char *url)
{
    kv_redis *r = calloc(1, sizeof(*r));
    if (!r) return -ENOMEM;
    gd_log_redact_url(r->url, sizeof(r->url), url);
    if (strlen(url) >= sizeof(r->url) || parse_url(r, url) != 0) {
        gd_event(GD_LOG_ERROR, "kv_url_invalid", NULL, "url",
                 "kv_redis: cannot parse '%s': expected "
                 "redis://[[user]:password@]host[:port][/db] (user and password percent-encoded)",
                 r->url);
        explicit_bzero(r, sizeof(*r));
        free(r);
        return -EINVAL;
    }
    /* Redis being down does not stop startup: the view catches up later. */
    if (ensure_connected(r) == 0)
        gd_event(GD_LOG_INFO, "kv_redis_connected", NULL, "url", "kv_redis: connected to %s",
                 r->url);
    *out = r;
    return 0;
}

static void kv_close(void *ctx)
{
    kv_redis *r = ctx;
    if (!r) return;
    if (r->c) redisFree(r->c);
    explicit_bzero(r->pass, sizeof(r->pass));
    free(r);
}

static int kv_reachable(void *ctx)
{
    return ensure_connected(ctx);
}

static int kv_put(void *ctx, const char *id, const char *json, size_t len, int64_t updated_at,
                  int64_t opno)
{
    kv_redis *r = ctx;
    char key[80], member[80], op[24];
    session_key(key, sizeof(key), id);
    member_of(member, sizeof(member), updated_at, id);
    snprintf(op, sizeof(op), "%" PRId64, opno);
    const char *args[] = {"2", key, ZSET_KEY, json, member, op};
    size_t lens[] = {1, strlen(key), strlen(ZSET_KEY), len, strlen(member), strlen(op)};
    redisReply *rep = run_script(r, SCRIPT_PUT, "put", 6, args, lens);
    if (!rep) return -EIO;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        gd_event(GD_LOG_INFO, "kv_put_kept_newer", id, "opno",
                 "kv_redis: the view already holds a newer version than opno %lld; kept",
                 (long long)opno);
    freeReplyObject(rep);
    return 0;
}

static int kv_get(void *ctx, const char *id, char **json)
{
    kv_redis *r = ctx;
    *json = NULL;
    if (ensure_connected(r) != 0) return -EIO;
    char key[80];
    session_key(key, sizeof(key), id);
    const char *argv[] = {"HGET", key, "value"};
    redisReply *rep = command(r, "get", 3, argv, NULL);
    if (!rep) return -EIO;
    int rc = -EIO;
    if (rep->type == REDIS_REPLY_NIL) {
        rc = -ENOENT;
    } else if (rep->type == REDIS_REPLY_STRING) {
        *json = strndup(rep->str, rep->len);
        rc = *json ? 0 : -ENOMEM;
    }
    freeReplyObject(rep);
    return rc;
}

static int kv_list(void *ctx, int64_t before_at, const char *before_id, int limit, gd_buf *out,
                   int64_t *next_at, char next_id[37])
{
    kv_redis *r = ctx;
    next_id[0] = '\0';
    char bound[80], lim[16];
    bound[0] = '(';
    member_of(bound + 1, sizeof(bound) - 1, before_at, before_id);
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *args[] = {"1", ZSET_KEY, bound, lim, KEY_PREFIX};
    redisReply *rep = run_script(r, SCRIPT_LIST, "list", 5, args, NULL);
    if (!rep) return -EIO;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2) {
        freeReplyObject(rep);
        return -EIO;
    }
    int n = 0;
    for (size_t i = 0; i < rep->elements; i += 2) {
        redisReply *m = rep->element[i], *v = rep->element[i + 1];
        int64_t at;
        char id[37];
        if (m->type != REDIS_REPLY_STRING || !parse_member(m->str, m->len, &at, id)) continue;
        if (v->type == REDIS_REPLY_STRING) gd_kv_list_item(out, n++, id, at, v->str);
        if (i / 2 + 1 == (size_t)limit) { /* a full page: there may be more */
            *next_at = at;
            snprintf(next_id, 37, "%s", id);
        }
    }
    freeReplyObject(rep);
    return 0;
}

static int kv_del(void *ctx, const char *id)
{
    kv_redis *r = ctx;
    char key[80];
    session_key(key, sizeof(key), id);
    const char *args[] = {"2", key, ZSET_KEY};
    redisReply *rep = run_script(r, SCRIPT_DEL, "del", 3, args, NULL);
    if (!rep) return -EIO;
    freeReplyObject(rep);
    return 0;
}

/* SCAN over the session hashes, one pipelined HGET opno per page. SCAN may
 * return a key twice: each id is reported once. */
static int kv_each_id(void *ctx, void (*fn)(void *arg, const char *id, int64_t opno), void *arg)
{
    kv_redis *r = ctx;
    if (ensure_connected(r) != 0) return -EIO;
    gd_idset seen;
    gd_idset_init(&seen);
    char cursor[32] = "0", count[16];
    snprintf(count, sizeof(count), "%d", SCAN_COUNT);
    int rc = 0;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", KEY_PREFIX "*", "COUNT", count};
        redisReply *page = command(r, "scan", 6, argv, NULL);
        if (!page) {
            rc = -EIO;
            break;
        }
        if (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
            page->element[0]->type != REDIS_REPLY_STRING ||
            page->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            rc = -EIO;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", page->element[0]->str);
        redisReply *keys = page->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *hget[] = {"HGET", keys->element[i]->str, "opno"};
            redisAppendCommandArgv(r->c, 3, hget, NULL);
        }
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *rep = NULL;
            if (redisGetReply(r->c, (void **)&rep) != REDIS_OK) {
                mark_down(r, "scan", r->c->errstr);
                rc = -EIO;
                break;
            }
            const char *id = keys->element[i]->str + sizeof(KEY_PREFIX) - 1;
            int64_t opno = -1;
            if (rep->type == REDIS_REPLY_STRING) opno = strtoll(rep->str, NULL, 10);
            freeReplyObject(rep);
            /* Not a session id (a stranger's key): not ours to report. */
            if (gd_idset_has(&seen, id) || gd_idset_add(&seen, id) != 0) continue;
            fn(arg, id, opno);
        }
        freeReplyObject(page);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    gd_idset_free(&seen);
    return rc;
}

const gd_kv_ops gd_kv_redis = {
    .name = "redis",
    .open = kv_open,
    .close = kv_close,
    .put = kv_put,
    .get = kv_get,
    .each_id = kv_each_id,
    .list = kv_list,
    .del = kv_del,
    .reachable = kv_reachable,
};
