/*
 * store_pg — the cluster's durable store (the `postgres` backend of
 * store.h): PostgreSQL through libpq. Each lane has its own connection: the
 * commit lane runs one statement per group commit, the read lane loads
 * sessions (and listens for takeovers). A connection that fails is dropped
 * and opened again on the next call, at most every 0.2 s to 2 s, trying
 * every host of the connection string (target_session_attrs=read-write
 * finds a promoted standby by itself).
 *
 * Tables (schema version 1, created by the first node to start):
 *   grooved_sessions(id, epoch, owner, ckpt_opno, record, crc, accessed_at)
 *     a session's newest checkpoint and its ownership: epoch grows by one
 *     each time a node takes the session (when it loads it);
 *   grooved_ops(id, opno, op)
 *     the ops after each checkpoint (the compact form of op.h), deleted
 *     once a checkpoint holds them.
 *
 * One writer per session, safe without clocks: grooved_commit() locks the
 * rows of the batch's sessions and writes nothing of a session whose epoch
 * is no longer the one this node took (it reports it as fenced), all inside
 * the one transaction that commits the rest of the batch. A session this
 * node creates is inserted with epoch 1 and is fenced if the row already
 * exists. grooved_load(take) raises the epoch and notifies the channel
 * grooved_taken, so the previous owner drops the session at once instead of
 * at its next commit (the notification is for speed; the epoch is safety).
 *
 * With synchronous_commit=on and a synchronous standby, a statement returns
 * only when its WAL is flushed on both machines: that is the output gate.
 */
#include "store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "op.h"
#include "oplog.h"

#define SCHEMA_VERSION 1

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS grooved_schema(version integer NOT NULL);"
    "CREATE TABLE IF NOT EXISTS grooved_sessions("
    " id uuid PRIMARY KEY, epoch bigint NOT NULL, owner text NOT NULL,"
    " ckpt_opno bigint NOT NULL, record text NOT NULL, crc bigint NOT NULL,"
    " accessed_at bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS grooved_ops("
    " id uuid NOT NULL, opno bigint NOT NULL, op bytea NOT NULL, PRIMARY KEY (id, opno));"
    "INSERT INTO grooved_schema(version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM grooved_schema);"
    /* One group commit. Sessions are given once each with the epoch this
     * node holds and whether this batch creates them; returns the fenced. */
    "CREATE OR REPLACE FUNCTION grooved_commit(p_owner text, p_ids uuid[], p_epochs bigint[],"
    " p_creates boolean[], p_op_ids uuid[], p_op_nos bigint[], p_ops bytea[],"
    " p_ck_ids uuid[], p_ck_nos bigint[], p_ck_records text[], p_ck_crcs bigint[],"
    " p_ck_access bigint[]) RETURNS uuid[] LANGUAGE plpgsql AS $$\n"
    "DECLARE fenced uuid[] := '{}'; i int; held bigint; k int; n int;\n"
    "BEGIN\n"
    "  PERFORM 1 FROM grooved_sessions WHERE id = ANY(p_ids) ORDER BY id FOR UPDATE;\n"
    "  FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP\n"
    "    IF p_creates[i] THEN\n"
    "      k := array_position(p_ck_ids, p_ids[i]);\n"
    "      INSERT INTO grooved_sessions(id, epoch, owner, ckpt_opno, record, crc, accessed_at)\n"
    "        VALUES (p_ids[i], 1, p_owner, p_ck_nos[k], p_ck_records[k], p_ck_crcs[k],\n"
    "                p_ck_access[k]) ON CONFLICT (id) DO NOTHING;\n"
    "      GET DIAGNOSTICS n = ROW_COUNT;\n"
    "      IF n = 0 THEN fenced := fenced || p_ids[i]; END IF;\n"
    "    ELSE\n"
    "      SELECT epoch INTO held FROM grooved_sessions WHERE id = p_ids[i];\n"
    "      IF NOT FOUND OR held <> p_epochs[i] THEN fenced := fenced || p_ids[i]; END IF;\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  INSERT INTO grooved_ops(id, opno, op)\n"
    "    SELECT o.id, o.opno, o.op FROM unnest(p_op_ids, p_op_nos, p_ops) AS o(id, opno, op)\n"
    "    WHERE NOT o.id = ANY(fenced);\n"
    "  UPDATE grooved_sessions s SET ckpt_opno = c.opno, record = c.rec, crc = c.crc,\n"
    "      accessed_at = c.acc, owner = p_owner\n"
    "    FROM (SELECT DISTINCT ON (id) id, opno, rec, crc, acc FROM\n"
    "          unnest(p_ck_ids, p_ck_nos, p_ck_records, p_ck_crcs, p_ck_access)\n"
    "          AS c(id, opno, rec, crc, acc) ORDER BY id, opno DESC) c\n"
    "    WHERE s.id = c.id AND NOT c.id = ANY(fenced) AND c.opno >= s.ckpt_opno;\n"
    "  DELETE FROM grooved_ops o USING unnest(p_ck_ids, p_ck_nos) AS c(id, opno)\n"
    "    WHERE o.id = c.id AND o.opno <= c.opno AND NOT c.id = ANY(fenced);\n"
    "  RETURN fenced;\n"
    "END $$;"
    /* A session's durable state, taking it (epoch + 1) when p_take. */
    "CREATE OR REPLACE FUNCTION grooved_load(p_id uuid, p_owner text, p_take boolean)"
    " RETURNS TABLE(epoch bigint, ckpt_opno bigint, record text, crc bigint, opnos bigint[],"
    " ops bytea[]) LANGUAGE plpgsql AS $$\n"
    "DECLARE r grooved_sessions%ROWTYPE;\n"
    "BEGIN\n"
    "  IF p_take THEN\n"
    "    UPDATE grooved_sessions s SET epoch = s.epoch + 1, owner = p_owner WHERE s.id = p_id\n"
    "      RETURNING s.* INTO r;\n"
    "    IF FOUND THEN\n"
    "      PERFORM pg_notify('grooved_taken', p_id::text || ' ' || r.epoch || ' ' || p_owner);\n"
    "    END IF;\n"
    "  ELSE\n"
    "    SELECT * INTO r FROM grooved_sessions s WHERE s.id = p_id;\n"
    "  END IF;\n"
    "  IF r.id IS NULL THEN RETURN; END IF;\n"
    "  RETURN QUERY SELECT r.epoch, r.ckpt_opno, r.record, r.crc,\n"
    "    coalesce(array_agg(o.opno ORDER BY o.opno), '{}'),\n"
    "    coalesce(array_agg(o.op ORDER BY o.opno), '{}')\n"
    "    FROM grooved_ops o WHERE o.id = p_id AND o.opno > r.ckpt_opno;\n"
    "END $$;";

typedef struct pgconn {
    PGconn *c;
    int64_t retry_at_ms; /* no new connection attempt before this (monotonic) */
    int failures;
    bool listen; /* LISTEN grooved_taken on this connection */
} pgconn;

struct gd_durable {
    char conninfo[1024];
    char owner[128];
    pgconn commit_conn; /* commit lane (and startup) */
    pgconn read_conn;   /* read lane */
    gd_buf buf;         /* commit lane: text of the array parameters */
};

typedef struct gd_durable gd_pg;

static int64_t mono_ms(void)
{
    return gd_now_us() / 1000;
}

/* libpq's URL form takes options as query parameters: ask for read-write
 * and for dead connections to be noticed in seconds, unless given. */
static void build_conninfo(char *out, size_t len, const char *url)
{
    static const char *const extra[] = {"target_session_attrs=read-write",
                                        "connect_timeout=3",
                                        "keepalives=1",
                                        "keepalives_idle=5",
                                        "keepalives_interval=2",
                                        "keepalives_count=2",
                                        "tcp_user_timeout=10000"};
    size_t used = (size_t)snprintf(out, len, "%s", url);
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]) && used < len; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)(strchr(extra[i], '=') - extra[i] + 1), extra[i]);
        if (strstr(url, key)) continue;
        used += (size_t)snprintf(out + used, len - used, "%c%s", strchr(out, '?') ? '&' : '?',
                                 extra[i]);
    }
}

static void drop(pgconn *p)
{
    if (p->c) PQfinish(p->c);
    p->c = NULL;
}

/* The connection, opened if needed (never more often than the backoff
 * allows); NULL while the server cannot be reached. */
static PGconn *conn_of(gd_pg *d, pgconn *p)
{
    if (p->c && PQstatus(p->c) == CONNECTION_OK) return p->c;
    drop(p);
    if (mono_ms() < p->retry_at_ms) return NULL;
    p->c = PQconnectdb(d->conninfo);
    if (PQstatus(p->c) != CONNECTION_OK) {
        int backoff = 200 << (p->failures < 4 ? p->failures : 4); /* 0.2 s .. 3.2 s */
        if (p->failures++ == 0 || p->failures % 20 == 0)
            gd_log(GD_LOG_WARN, "store: PostgreSQL unreachable (%s); retrying",
                   PQerrorMessage(p->c));
        p->retry_at_ms = mono_ms() + backoff;
        drop(p);
        return NULL;
    }
    if (p->failures) gd_log(GD_LOG_INFO, "store: PostgreSQL reachable again");
    p->failures = 0;
    PQclear(PQexec(p->c, "SET synchronous_commit = on; SET client_min_messages = warning"));
    if (p->listen) PQclear(PQexec(p->c, "LISTEN grooved_taken"));
    return p->c;
}

/* A failed statement: the connection is dropped when it is the connection
 * that failed (the next call reconnects); the error is logged. */
static int failed(pgconn *p, PGresult *r, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(p->c);
    gd_log(GD_LOG_ERROR, "store: PostgreSQL %s failed: %s", what, msg && *msg ? msg : "no answer");
    if (!p->c || PQstatus(p->c) != CONNECTION_OK) drop(p);
    PQclear(r);
    return -EIO;
}

static int pg_open(gd_pg **out, const char *where, const char *node_id)
{
    gd_pg *d = calloc(1, sizeof(*d));
    if (!d) return -ENOMEM;
    build_conninfo(d->conninfo, sizeof(d->conninfo), where);
    snprintf(d->owner, sizeof(d->owner), "%s", node_id ? node_id : "grooved");
    d->read_conn.listen = true;
    gd_buf_init(&d->buf);
    PGconn *c = conn_of(d, &d->commit_conn);
    int rc = 0;
    if (!c) {
        rc = -EHOSTUNREACH;
    } else {
        /* Concurrent first starts: one creates the schema, the others wait. */
        PGresult *r = PQexec(c, "BEGIN; SELECT pg_advisory_xact_lock(4242424242);");
        PQclear(r);
        r = PQexec(c, schema_sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = failed(&d->commit_conn, r, "schema");
        else
            PQclear(r);
        PQclear(PQexec(c, rc ? "ROLLBACK" : "COMMIT"));
        if (rc == 0) {
            r = PQexec(c, "SELECT max(version) FROM grooved_schema");
            int v = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
            PQclear(r);
            if (v != SCHEMA_VERSION) {
                gd_log(GD_LOG_ERROR, "store: PostgreSQL schema version %d, grooved needs %d", v,
                       SCHEMA_VERSION);
                rc = -EPROTO;
            }
        }
    }
    if (rc) {
        gd_log(GD_LOG_ERROR, "store: cannot open the PostgreSQL store");
        drop(&d->commit_conn);
        gd_buf_free(&d->buf);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

static void pg_close(gd_pg *d)
{
    if (!d) return;
    drop(&d->commit_conn);
    drop(&d->read_conn);
    gd_buf_free(&d->buf);
    free(d);
}

static int pg_recover(gd_pg *d, gd_damage_policy policy, size_t *quarantined)
{
    (void)d;
    (void)policy;
    if (quarantined) *quarantined = 0;
    return 0; /* PostgreSQL recovers its own WAL */
}

static int each_row(gd_pg *d, const char *sql, void (*fn)(void *arg, const char *id, int64_t v),
                    void *arg)
{
    PGconn *c = conn_of(d, &d->commit_conn);
    if (!c) return -EHOSTUNREACH;
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return failed(&d->commit_conn, r, "listing");
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, PQgetvalue(r, i, 0), PQnfields(r) > 1 ? atoll(PQgetvalue(r, i, 1)) : 0);
    PQclear(r);
    return 0;
}

typedef struct id_fn {
    void (*fn)(void *arg, const char *id);
    void *arg;
} id_fn;

static void call_id(void *arg, const char *id, int64_t v)
{
    (void)v;
    id_fn *f = arg;
    f->fn(f->arg, id);
}

static int pg_each_id(gd_pg *d, void (*fn)(void *arg, const char *id), void *arg)
{
    id_fn f = {fn, arg};
    return each_row(d, "SELECT id FROM grooved_sessions", call_id, &f);
}

static int pg_each_checkpoint(gd_pg *d, void (*fn)(void *arg, const char *id, int64_t opno),
                              void *arg)
{
    return each_row(d, "SELECT id, ckpt_opno FROM grooved_sessions", fn, arg);
}

/* Appends a PostgreSQL array literal element: a quoted string. */
static void arr_str(gd_buf *b, const char *s, size_t len)
{
    gd_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\') gd_buf_putc(b, '\\');
        gd_buf_putc(b, s[i]);
    }
    gd_buf_putc(b, '"');
}

/* bytea in hex form inside an array literal: "\\x0102..." */
static void arr_bytea(gd_buf *b, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    gd_buf_puts(b, "\"\\\\x");
    for (size_t i = 0; i < len; i++) {
        gd_buf_putc(b, hex[p[i] >> 4]);
        gd_buf_putc(b, hex[p[i] & 15]);
    }
    gd_buf_putc(b, '"');
}

enum {
    P_IDS,
    P_EPOCHS,
    P_CREATES,
    P_OP_IDS,
    P_OP_NOS,
    P_OPS,
    P_CK_IDS,
    P_CK_NOS,
    P_CK_RECS,
    P_CK_CRCS,
    P_CK_ACCESS,
    NPARAMS
};

/* Parses a uuid[] result "{a,b}" into job->fenced. */
static void note_fenced(gd_job *job, const char *v)
{
    if (!v || *v != '{') return;
    for (const char *p = v + 1; *p && *p != '}';) {
        const char *e = p;
        while (*e && *e != ',' && *e != '}')
            e++;
        char id[37];
        snprintf(id, sizeof(id), "%.*s", (int)(e - p), p);
        gd_job_note_session(&job->fenced, &job->nfenced, id);
        p = *e == ',' ? e + 1 : e;
    }
}

static void pg_commit(gd_pg *d, gd_job *job, uint64_t *bytes)
{
    *bytes = 0;
    PGconn *c = conn_of(d, &d->commit_conn);
    if (!c) {
        job->rc = -EHOSTUNREACH;
        return;
    }
    /* Build the eleven array parameters as text, each in its own buffer. */
    gd_buf p[NPARAMS];
    for (int i = 0; i < NPARAMS; i++) {
        gd_buf_init(&p[i]);
        gd_buf_putc(&p[i], '{');
    }
    int nsess = 0, nops = 0, ncks = 0;
    for (size_t i = 0; i < job->nrows; i++) {
        gd_row *r = &job->rows[i];
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(job->rows[k].id, r->id) == 0;
        if (!seen) { /* the session, once, with the epoch held and whether it is created here */
            bool creates = r->kind == GD_ROW_CKPT && r->create;
            gd_buf_printf(&p[P_IDS], "%s%s", nsess ? "," : "", r->id);
            gd_buf_printf(&p[P_EPOCHS], "%s%lld", nsess ? "," : "", (long long)r->epoch);
            gd_buf_printf(&p[P_CREATES], "%s%s", nsess ? "," : "", creates ? "t" : "f");
            nsess++;
        }
        if (r->kind == GD_ROW_OP) {
            gd_buf_printf(&p[P_OP_IDS], "%s%s", nops ? "," : "", r->id);
            gd_buf_printf(&p[P_OP_NOS], "%s%lld", nops ? "," : "", (long long)r->opno);
            if (nops) gd_buf_putc(&p[P_OPS], ',');
            arr_bytea(&p[P_OPS], (const uint8_t *)r->text, r->len);
            nops++;
        } else {
            const char *sep = ncks ? "," : "";
            gd_buf_printf(&p[P_CK_IDS], "%s%s", sep, r->id);
            gd_buf_printf(&p[P_CK_NOS], "%s%lld", sep, (long long)r->opno);
            if (ncks) gd_buf_putc(&p[P_CK_RECS], ',');
            arr_str(&p[P_CK_RECS], r->text, r->len);
            gd_buf_printf(&p[P_CK_CRCS], "%s%u", sep, gd_crc32((const uint8_t *)r->text, r->len));
            gd_buf_printf(&p[P_CK_ACCESS], "%s%lld", sep, (long long)gd_now_ms());
            ncks++;
        }
        *bytes += r->len;
    }
    const char *values[NPARAMS + 1];
    bool oom = false;
    values[0] = d->owner;
    for (int i = 0; i < NPARAMS; i++) {
        gd_buf_putc(&p[i], '}');
        oom |= p[i].oom;
        values[i + 1] = p[i].p;
    }
    if (oom) {
        job->rc = -ENOMEM;
    } else {
        PGresult *r = PQexecParams(
            c,
            "SELECT grooved_commit($1, $2::uuid[], $3::bigint[], $4::boolean[], $5::uuid[],"
            " $6::bigint[], $7::bytea[], $8::uuid[], $9::bigint[], $10::text[], $11::bigint[],"
            " $12::bigint[])",
            NPARAMS + 1, NULL, values, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            job->rc = failed(&d->commit_conn, r, "commit");
        } else {
            note_fenced(job, PQgetvalue(r, 0, 0));
            for (int i = 0; i < job->nfenced; i++)
                gd_log(GD_LOG_WARN,
                       "session %s: another node took it over; this node's batch rows of it "
                       "were not written",
                       job->fenced[i]);
            PQclear(r);
            job->rc = 0;
        }
    }
    for (int i = 0; i < NPARAMS; i++)
        gd_buf_free(&p[i]);
}

static int pg_load(gd_pg *d, const char *id, bool take, gd_durable_load *out, char *why,
                   size_t whylen)
{
    out->found = false;
    out->replayed = 0;
    out->epoch = 0;
    PGconn *c = conn_of(d, &d->read_conn);
    if (!c) {
        snprintf(why, whylen, "PostgreSQL cannot be reached");
        return -EHOSTUNREACH;
    }
    const char *values[3] = {id, d->owner, take ? "t" : "f"};
    const int formats[3] = {0, 0, 0};
    PGresult *r = PQexecParams(c,
                               "SELECT epoch, ckpt_opno, record, crc, opnos, ops FROM "
                               "grooved_load($1::uuid, $2, $3::boolean)",
                               3, NULL, values, NULL, formats, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "PostgreSQL load failed");
        return failed(&d->read_conn, r, "load");
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    /* Binary results: int8 in network order, text as is, arrays in the
     * binary array format. */
#define I8(col)                                                                                    \
    ({                                                                                             \
        const uint8_t *q_ = (const uint8_t *)PQgetvalue(r, 0, col);                                \
        int64_t v_ = 0;                                                                            \
        for (int b_ = 0; b_ < 8; b_++)                                                             \
            v_ = v_ << 8 | q_[b_];                                                                 \
        v_;                                                                                        \
    })
    out->epoch = I8(0);
    out->ckpt_opno = I8(1);
    int64_t crc = I8(3);
    int rc = gd_checkpoint_parse(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), true,
                                 (uint32_t)crc, id, out->ckpt_opno, out->rec, why, whylen);
    if (rc == 0) {
        out->found = true;
        /* Two one-dimensional arrays of equal length: opnos (int8), ops (bytea). */
        const uint8_t *a = (const uint8_t *)PQgetvalue(r, 0, 4);
        const uint8_t *b = (const uint8_t *)PQgetvalue(r, 0, 5);
        size_t alen = (size_t)PQgetlength(r, 0, 4), blen = (size_t)PQgetlength(r, 0, 5);
#define U32(p) ((uint32_t)(p)[0] << 24 | (uint32_t)(p)[1] << 16 | (uint32_t)(p)[2] << 8 | (p)[3])
        uint32_t ndim = alen >= 12 ? U32(a) : 0;
        uint32_t n = ndim ? U32(a + 12) : 0;
        size_t ai = ndim ? 20 : 12, bi = ndim ? 20 : 12;
        for (uint32_t k = 0; rc == 0 && k < n; k++) {
            if (ai + 12 > alen || bi + 4 > blen) {
                rc = -EBADMSG;
                break;
            }
            uint64_t opno = 0;
            for (int x = 0; x < 8; x++)
                opno = opno << 8 | a[ai + 4 + x];
            ai += 12;
            uint32_t len = U32(b + bi);
            bi += 4;
            if (bi + len > blen) {
                rc = -EBADMSG;
                break;
            }
            uint64_t have = out->rec->opno;
            int prc = gd_op_replay(out->rec, opno, b + bi, len);
            bi += len;
            if (prc < 0) {
                snprintf(why, whylen, "op %llu %s (after op %llu)", (unsigned long long)opno,
                         prc == -EILSEQ ? "leaves a gap" : "does not replay",
                         (unsigned long long)have);
                rc = -EBADMSG;
            }
            out->replayed += prc == 0;
        }
        if (rc) gd_record_clear(out->rec);
    }
#undef I8
#undef U32
    PQclear(r);
    return rc;
}

static int pg_gc(gd_pg *d, int64_t cutoff_ms, bool dry_run, void (*fn)(void *arg, const char *id),
                 void *arg)
{
    PGconn *c = conn_of(d, &d->commit_conn);
    if (!c) return -EHOSTUNREACH;
    char cut[32];
    snprintf(cut, sizeof(cut), "%lld", (long long)cutoff_ms);
    const char *values[1] = {cut};
    PGresult *r = PQexecParams(
        c,
        dry_run ? "SELECT id FROM grooved_sessions WHERE accessed_at < $1::bigint"
                : "WITH gone AS (DELETE FROM grooved_sessions WHERE accessed_at < $1::bigint "
                  "RETURNING id), ops AS (DELETE FROM grooved_ops o USING gone WHERE o.id = "
                  "gone.id) SELECT id FROM gone",
        1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return failed(&d->commit_conn, r, "gc");
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, PQgetvalue(r, i, 0));
    PQclear(r);
    return 0;
}

static int pg_poll_taken(gd_pg *d, void (*fn)(void *arg, const char *id, int64_t epoch), void *arg)
{
    PGconn *c = conn_of(d, &d->read_conn);
    if (!c) return -EHOSTUNREACH;
    if (!PQconsumeInput(c)) return failed(&d->read_conn, NULL, "listen");
    PGnotify *n;
    while ((n = PQnotifies(c))) {
        /* "<id> <epoch> <owner>": only another owner's take concerns this node. */
        char id[37], owner[128];
        long long epoch;
        if (sscanf(n->extra, "%36s %lld %127s", id, &epoch, owner) == 3 &&
            strcmp(owner, d->owner) != 0)
            fn(arg, id, epoch);
        PQfreemem(n);
    }
    return 0;
}

const gd_durable_ops gd_durable_postgres = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .recover = pg_recover,
    .each_id = pg_each_id,
    .each_checkpoint = pg_each_checkpoint,
    .commit = pg_commit,
    .load = pg_load,
    .gc = pg_gc,
    .poll_taken = pg_poll_taken,
};
