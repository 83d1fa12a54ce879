/*
 * session — see session.h. The batch bookkeeping lives here because it is
 * the output gate: a batch remembers which sessions it touched (to advance
 * their durable_opno and release their output) and who sent each op (to tell
 * them when the commit fails).
 */
#include "session.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "hash.h"
#include "identity.h"
#include "log.h"

typedef struct touch {
    gd_session *s;
    int64_t opno;
} touch;

typedef struct sender {
    uint64_t serial;
    gd_session *s;
    int64_t opno;
    char *client_seq; /* owned JSON text or NULL */
    int64_t at_us;
    bool rejected; /* refused on this batch's state (a gated error), not an op of it */
} sender;

struct gd_batch {
    gd_sessions *ss;
    gd_job *job;
    touch *touched;
    size_t nt, capt;
    sender *senders;
    size_t ns, caps;
};

static void on_commit_done(gd_job *job);
static void on_load_done(gd_job *job);
static void on_kv_done(gd_job *job);
static void release(gd_sessions *ss, gd_session *s);
static void rollback(gd_sessions *ss, gd_session *s, gd_batch *failed);
static void complete_join(gd_sessions *ss, gd_session *s, gd_conn *c);
static void try_kv_flush(gd_sessions *ss, gd_session *s);
static gd_msg *build_snapshot(gd_sessions *ss, gd_session *s, gd_conn *to);
static void send_error(gd_sessions *ss, gd_conn *c, const char *code, const char *message,
                       const char *client_seq, int64_t gate);
static void session_free(gd_sessions *ss, gd_session *s);
static int submit_load(gd_sessions *ss, gd_session *s);
static void close_player(gd_sessions *ss, gd_conn *c, uint16_t code, const char *reason);
static void send_snapshot(gd_sessions *ss, gd_session *s, gd_conn *c);
static void resync_players(gd_sessions *ss, gd_session *s);
static void fail_players(gd_sessions *ss, gd_session *s, const char *code, const char *message,
                         int rc);
static void kv_put(gd_sessions *ss, gd_session *s);
static bool retry_reload(gd_sessions *ss, gd_session *s, int rc);
static void moved_away(gd_sessions *ss, gd_session *s, gd_batch *b);
static void strip_open_batch(gd_sessions *ss, gd_session *s, const char *code, const char *message);

/* ---- registry --------------------------------------------------------- */

static void enforce_budget(gd_sessions *ss);

static void budget_cb(lws_sorted_usec_list_t *sul)
{
    gd_sessions *ss = lws_container_of(sul, gd_sessions, budget_sul);
    ss->budget_scheduled = false;
    enforce_budget(ss);
    gd_sessions_schedule_flush(ss);
}

/* Measures what s really holds: the session and, while its state is in
 * memory, every heap block of its record (gd_record_mem_bytes). Keeps the
 * process-wide total in step, and once the total is over the budget,
 * enforces it at the end of this loop turn, not at the next tick: a flood
 * of creates or loads must never outrun the budget. */
static void account(gd_sessions *ss, gd_session *s)
{
    size_t now = sizeof(*s) + (s->st == GD_SESS_LIVE ? gd_record_mem_bytes(&s->rec) : 0);
    ss->m->mem_estimate = ss->m->mem_estimate - s->mem_bytes + now;
    s->mem_bytes = now;
    if (ss->m->mem_estimate > (size_t)ss->cfg->memory_budget_mb * 1024 * 1024 &&
        !ss->budget_scheduled && ss->ctx) {
        ss->budget_scheduled = true;
        lws_sul_schedule(ss->ctx, 0, &ss->budget_sul, budget_cb, 1);
    }
}

/* Something happened to s: it moves up in the LRU order, and what it holds
 * may have changed. */
static void touch_session(gd_sessions *ss, gd_session *s)
{
    s->last_active_ms = gd_now_ms();
    account(ss, s);
}

static size_t bucket_of(const gd_sessions *ss, const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)h & (ss->nbuckets - 1);
}

int gd_sessions_init(gd_sessions *ss, const gd_config *cfg, gd_metrics *m,
                     const gd_player_ops *player_ops)
{
    memset(ss, 0, sizeof(*ss));
    ss->cfg = cfg;
    ss->m = m;
    ss->player_ops = player_ops;
    gd_idset_init(&ss->ids);
    ss->ids_complete = true;
    ss->nbuckets = 1024;
    ss->buckets = calloc(ss->nbuckets, sizeof(gd_session *));
    return ss->buckets ? 0 : -ENOMEM;
}

void gd_sessions_cancel_timers(gd_sessions *ss)
{
    lws_sul_cancel(&ss->flush_sul);
    lws_sul_cancel(&ss->budget_sul);
}

gd_session *gd_session_find(gd_sessions *ss, const char *id)
{
    for (gd_session *s = ss->buckets[bucket_of(ss, id)]; s; s = s->hnext)
        if (strcmp(s->id, id) == 0) return s;
    return NULL;
}

static void table_grow(gd_sessions *ss)
{
    size_t nb = ss->nbuckets * 2;
    gd_session **b = calloc(nb, sizeof(*b));
    if (!b) return; /* keep the longer chains */
    gd_session **old = ss->buckets;
    size_t oldn = ss->nbuckets;
    ss->buckets = b;
    ss->nbuckets = nb;
    for (size_t i = 0; i < oldn; i++) {
        for (gd_session *s = old[i], *n; s; s = n) {
            n = s->hnext;
            size_t k = bucket_of(ss, s->id);
            s->hnext = b[k];
            b[k] = s;
        }
    }
    free(old);
}

static void table_insert(gd_sessions *ss, gd_session *s)
{
    if (ss->n + 1 > ss->nbuckets) table_grow(ss);
    size_t k = bucket_of(ss, s->id);
    s->hnext = ss->buckets[k];
    ss->buckets[k] = s;
    ss->n++;
}

static void table_remove(gd_sessions *ss, gd_session *s)
{
    for (gd_session **pp = &ss->buckets[bucket_of(ss, s->id)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            ss->n--;
            return;
        }
    }
}

static void session_free(gd_sessions *ss, gd_session *s)
{
    assert(!s->batch_refs && !s->waiters && !s->nplayers);
    table_remove(ss, s);
    ss->m->mem_estimate -= s->mem_bytes;
    gd_record_clear(&s->rec);
    free(s);
}

static gd_session *session_new(const char *id)
{
    gd_session *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->durable_opno = -1;
    s->kv_opno = -1;
    gd_state_init(&s->rec.state);
    return s;
}

static void batch_free(gd_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->ns; i++)
        free(b->senders[i].client_seq);
    free(b->senders);
    free(b->touched);
    gd_job_free(b->job);
    free(b);
}

void gd_sessions_free(gd_sessions *ss)
{
    for (size_t i = 0; i < ss->nbuckets; i++) {
        for (gd_session *s = ss->buckets[i], *n; s; s = n) {
            n = s->hnext;
            gd_record_clear(&s->rec);
            free(s);
        }
    }
    free(ss->buckets);
    ss->buckets = NULL;
    batch_free(ss->open);
    ss->open = NULL;
    gd_idset_free(&ss->ids);
}

/* ---- batches ---------------------------------------------------------- */

static gd_batch *open_batch(gd_sessions *ss)
{
    if (ss->open) return ss->open;
    gd_batch *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->job = gd_job_new(GD_JOB_COMMIT);
    if (!b->job) {
        free(b);
        return NULL;
    }
    b->ss = ss;
    b->job->arg = b;
    b->job->done = on_commit_done;
    ss->open = b;
    return b;
}

/* Makes room for one more touched session and one more sender, so that
 * nothing can fail between applying an op and recording it. */
static int batch_reserve(gd_batch *b)
{
    if (b->nt == b->capt) {
        size_t cap = b->capt ? b->capt * 2 : 16;
        touch *t = realloc(b->touched, cap * sizeof(*t));
        if (!t) return -ENOMEM;
        b->touched = t;
        b->capt = cap;
    }
    if (b->ns == b->caps) {
        size_t cap = b->caps ? b->caps * 2 : 16;
        sender *n = realloc(b->senders, cap * sizeof(*n));
        if (!n) return -ENOMEM;
        b->senders = n;
        b->caps = cap;
    }
    return 0;
}

/* Records that b holds rows of s up to opno. The session remembers its entry
 * in the open batch, so this is O(1). Requires batch_reserve first. */
static void batch_touch(gd_batch *b, gd_session *s, int64_t opno)
{
    if (s->touch_batch == b) {
        assert(b->touched[s->touch_idx].s == s && b->touched[s->touch_idx].opno <= opno);
        b->touched[s->touch_idx].opno = opno;
        return;
    }
    s->touch_batch = b;
    s->touch_idx = b->nt;
    b->touched[b->nt++] = (touch){s, opno};
    s->batch_refs++;
}

static int add_checkpoint(gd_sessions *ss, gd_session *s, bool track)
{
    gd_batch *b = open_batch(ss);
    if (!b) return -ENOMEM;
    gd_buf buf;
    gd_buf_init(&buf);
    gd_record_write(&buf, &s->rec, true);
    size_t len;
    char *text = gd_buf_steal(&buf, &len);
    if (!text) return -ENOMEM;
    if (batch_reserve(b) != 0) {
        free(text);
        return -ENOMEM;
    }
    if (gd_job_add_row(b->job, GD_ROW_CKPT, s->id, (int64_t)s->rec.opno, text, len) != 0)
        return -ENOMEM; /* text was freed */
    gd_row *row = &b->job->rows[b->job->nrows - 1];
    row->epoch = s->epoch;
    /* The first checkpoint of a session never durable creates it (cluster
     * mode: fenced if another node created it first). */
    row->create = s->durable_opno < 0 && !s->creation_queued;
    if (row->create) s->creation_queued = true;
    if (track) batch_touch(b, s, (int64_t)s->rec.opno);
    s->ckpt_opno = (int64_t)s->rec.opno;
    s->unfolded_since_ms = 0;
    s->access_dirty = false;
    return 0;
}

static void flush_cb(lws_sorted_usec_list_t *sul)
{
    gd_sessions *ss = lws_container_of(sul, gd_sessions, flush_sul);
    ss->flush_scheduled = false;
    if (ss->inflight || !ss->open || ss->open->job->nrows == 0) return;
    gd_batch *b = ss->open;
    ss->open = NULL;
    ss->inflight = b;
    for (size_t i = 0; i < b->nt; i++)
        b->touched[i].s->touch_batch = NULL;
    gd_hist_add(&ss->m->ops_per_commit, (double)b->job->nrows);
    gd_store_submit(ss->store, b->job);
}

void gd_sessions_schedule_flush(gd_sessions *ss)
{
    if (ss->inflight || ss->flush_scheduled || !ss->open || ss->open->job->nrows == 0) return;
    ss->flush_scheduled = true;
    /* Run at the end of this loop turn, so every op read in it shares the commit. */
    lws_sul_schedule(ss->ctx, 0, &ss->flush_sul, flush_cb, 1);
}

static gd_conn *player_by_serial(gd_session *s, uint64_t serial)
{
    for (int i = 0; i < s->nplayers; i++)
        if (s->players[i]->serial == serial) return s->players[i];
    return NULL;
}

static void on_commit_done(gd_job *job)
{
    gd_batch *b = job->arg;
    gd_sessions *ss = b->ss;
    assert(ss->inflight == b);
    ss->inflight = NULL;
    gd_hist_add(&ss->m->commit_ms, (double)(job->finished_us - job->submitted_us) / 1000.0);
    if (job->rc == 0) {
        int64_t now = gd_now_us();
        for (size_t i = 0; i < b->ns; i++)
            if (!b->senders[i].rejected)
                gd_hist_add(&ss->m->ack_ms, (double)(now - b->senders[i].at_us) / 1000.0);
        /* Cluster mode: sessions another node took meanwhile. Nothing of
         * theirs in this batch was written; they leave this node. */
        for (int i = 0; i < job->nfenced; i++) {
            gd_session *s = gd_session_find(ss, job->fenced[i]);
            for (size_t k = 0; s && k < b->nt; k++) {
                if (b->touched[k].s != s) continue;
                b->touched[k].s = NULL; /* not released below */
                s->batch_refs--;
                moved_away(ss, s, b);
            }
        }
        for (size_t i = 0; i < b->nt; i++) {
            gd_session *s = b->touched[i].s;
            if (!s) continue;
            s->batch_refs--;
            assert(s->batch_refs >= 0 && b->touched[i].opno <= (int64_t)s->rec.opno);
            if (b->touched[i].opno > s->durable_opno) s->durable_opno = b->touched[i].opno;
            release(ss, s);
        }
        /* Sessions whose oldest unfolded record keeps old log segments. */
        for (int i = 0; i < job->npinned; i++) {
            gd_session *s = gd_session_find(ss, job->pinned[i]);
            if (s && s->st == GD_SESS_LIVE && s->ckpt_opno != (int64_t)s->rec.opno) {
                gd_log(GD_LOG_DEBUG, "session %s: checkpoint (it pins old op log segments)", s->id);
                add_checkpoint(ss, s, true);
            }
        }
        for (size_t i = 0; i < b->nt; i++) {
            gd_session *s = b->touched[i].s;
            if (s && s->moved && !s->batch_refs) {
                b->touched[i].s = NULL;
                session_free(ss, s);
                continue;
            }
            if (s && s->evicting && s->st == GD_SESS_LIVE && !s->nplayers && !s->waiters &&
                !s->batch_refs && s->durable_opno == (int64_t)s->rec.opno &&
                s->ckpt_opno == (int64_t)s->rec.opno && !s->access_dirty) {
                gd_log(GD_LOG_INFO, "session %s: evicted (opno %llu, checkpoint durable)", s->id,
                       (unsigned long long)s->rec.opno);
                ss->m->evictions++;
                session_free(ss, s);
            }
        }
    } else {
        gd_log(GD_LOG_ERROR, "commit of %zu rows failed: %s; rolling back %zu sessions", job->nrows,
               strerror(-job->rc), b->nt);
        for (size_t i = 0; i < b->nt; i++) {
            gd_session *s = b->touched[i].s;
            s->batch_refs--;
            rollback(ss, s, b);
        }
    }
    batch_free(b);
    gd_sessions_schedule_flush(ss);
}

/* Sends what the gate now allows and tells the requests that were waiting
 * for this durability. */
static void release(gd_sessions *ss, gd_session *s)
{
    for (int i = 0; i < s->nplayers; i++)
        if (gd_conn_can_send(s->players[i], s->durable_opno))
            ss->player_ops->want_write(s->players[i]);
    for (gd_conn *c = s->waiters, *n; c; c = n) {
        n = c->wnext;
        if (c->wait == GD_WAIT_DURABLE && c->wait_opno <= s->durable_opno) {
            gd_session_wait_cb cb = c->wait_cb;
            gd_session_unwait(c);
            cb(c, s, 0);
        }
    }
    if (s->kv_flush_wanted) try_kv_flush(ss, s);
}

static void notify_failed(gd_sessions *ss, gd_session *s, gd_batch *b, const char *code,
                          const char *message)
{
    for (size_t i = 0; b && i < b->ns; i++) {
        if (b->senders[i].s != s) continue;
        gd_conn *c = player_by_serial(s, b->senders[i].serial);
        if (c) gd_session_send_error(ss, c, code, message, b->senders[i].client_seq);
    }
}

/* A commit holding ops of s failed: drop everything of s that is not durable
 * (its rows in the open batch too, since they were applied on top), tell the
 * senders and the requests waiting for it (-EIO), and reload s from the
 * durable store. */
static void rollback(gd_sessions *ss, gd_session *s, gd_batch *failed)
{
    if (s->st == GD_SESS_LOADING) return; /* already rolled back for an earlier row of this batch */
    if (s->moved) {                       /* another node has it: nothing to reload here */
        if (s->batch_refs == 0) session_free(ss, s);
        return;
    }
    notify_failed(ss, s, failed, GD_E_STORAGE_UNAVAILABLE,
                  "The change could not be saved; it was not applied");
    strip_open_batch(ss, s, GD_E_STORAGE_UNAVAILABLE,
                     "The change could not be saved; it was not applied");
    for (int i = 0; i < s->nplayers; i++) {
        gd_conn_drop_gated(s->players[i], s->durable_opno);
        ss->player_ops->hold_reads(s->players[i]);
    }
    for (gd_conn *c = s->waiters, *n; c; c = n) {
        n = c->wnext;
        if (c->wait == GD_WAIT_DURABLE && c->wait_opno > s->durable_opno) {
            gd_session_wait_cb cb = c->wait_cb;
            gd_session_unwait(c);
            cb(c, s, -EIO);
        }
    }
    ss->m->rejected_storage++;
    s->evicting = false;
    s->resync = true;
    if (s->durable_opno < 0) s->creation_queued = false;
    if (s->durable_opno < 0 && s->kv_opno < 0) {
        /* Its creation never reached the disk: it does not exist. */
        gd_idset_remove(&ss->ids, s->id);
    }
    gd_record_clear(&s->rec);
    gd_state_init(&s->rec.state);
    submit_load(ss, s);
    account(ss, s);
}

/* Removes every row of s from the open batch (they were applied on top of
 * state that is not durable), telling their senders code and message. */
static void strip_open_batch(gd_sessions *ss, gd_session *s, const char *code, const char *message)
{
    gd_batch *o = ss->open;
    if (o) {
        notify_failed(ss, s, o, code, message);
        size_t w = 0;
        for (size_t i = 0; i < o->job->nrows; i++) {
            if (strcmp(o->job->rows[i].id, s->id) == 0) {
                o->job->bytes -= o->job->rows[i].len;
                free(o->job->rows[i].text);
            } else {
                o->job->rows[w++] = o->job->rows[i];
            }
        }
        o->job->nrows = w;
        w = 0;
        for (size_t i = 0; i < o->nt; i++) {
            if (o->touched[i].s == s) {
                s->batch_refs--;
                s->touch_batch = NULL;
            } else {
                o->touched[i].s->touch_idx = w;
                o->touched[w++] = o->touched[i];
            }
        }
        o->nt = w;
        w = 0;
        for (size_t i = 0; i < o->ns; i++) {
            if (o->senders[i].s == s)
                free(o->senders[i].client_seq);
            else
                o->senders[w++] = o->senders[i];
        }
        o->ns = w;
    }
}

/*
 * Cluster mode: another node took s (its commit was fenced, or the store
 * says so). Nothing of s that is not durable here was written or will be:
 * the senders of those ops hear SESSION_MOVED, requests waiting on s get
 * -EAGAIN, its players are closed with 1012 (they reconnect, through the
 * balancer, to the node that has it now) and s leaves memory. b: the batch
 * that was fenced (its senders are told), or NULL.
 */
static void moved_away(gd_sessions *ss, gd_session *s, gd_batch *b)
{
    static const char msg[] = "This session moved to another server; reconnect and retry";
    gd_log(GD_LOG_WARN, "session %s: taken over by another node; its %d players reconnect", s->id,
           s->nplayers);
    notify_failed(ss, s, b, GD_E_SESSION_MOVED, msg);
    strip_open_batch(ss, s, GD_E_SESSION_MOVED, msg);
    for (int i = 0; i < s->nplayers; i++) {
        gd_conn *c = s->players[i];
        gd_conn_drop_gated(c, s->durable_opno);
        c->session = NULL;
        c->joined = false;
        close_player(ss, c, 1012, "session moved");
    }
    s->nplayers = 0;
    for (gd_conn *c = s->waiters, *n; c; c = n) {
        n = c->wnext;
        gd_session_wait_cb cb = c->wait_cb;
        gd_session_unwait(c);
        cb(c, s, -EAGAIN);
    }
    ss->m->sessions_moved++;
    if (s->batch_refs == 0)
        session_free(ss, s);
    else
        s->moved = true; /* freed when its last batch is done */
}

/* A reload (after a failed commit) that failed for a reason that may pass
 * (the store unreachable): keeps the players, holding their messages, and
 * tries again with backoff, up to about five minutes, instead of closing
 * them. Requests waiting on s are answered now. True when it will retry. */
static bool retry_reload(gd_sessions *ss, gd_session *s, int rc)
{
    bool transient = rc == -EIO || rc == -EHOSTUNREACH || rc == -ECONNREFUSED || rc == -ETIMEDOUT ||
                     rc == -ENOSPC;
    if (!transient || !s->resync || !s->nplayers || s->reload_attempts >= 60) return false;
    int64_t backoff = 200LL << (s->reload_attempts < 5 ? s->reload_attempts : 5); /* to 6.4 s */
    s->reload_attempts++;
    s->reload_at_ms = gd_now_us() / 1000 + backoff;
    gd_log(GD_LOG_WARN, "session %s: reload failed (%s); retrying in %lld ms, %d players kept",
           s->id, strerror(-rc), (long long)backoff, s->nplayers);
    for (gd_conn *c = s->waiters, *n; c; c = n) {
        n = c->wnext;
        gd_session_wait_cb cb = c->wait_cb;
        gd_session_unwait(c);
        cb(c, s, -EIO);
    }
    return true;
}

bool gd_sessions_may_exist(gd_sessions *ss, const char *id)
{
    return !ss->ids_complete || gd_idset_has(&ss->ids, id);
}

void gd_sessions_on_taken(gd_job *job)
{
    gd_sessions *ss = job->arg;
    for (int i = 0; i < job->nfenced; i++) {
        gd_session *s = gd_session_find(ss, job->fenced[i]);
        /* A notice of a take older than this node's own is stale. */
        if (!s || s->moved || s->st == GD_SESS_LOADING || job->taken_epochs[i] <= s->epoch)
            continue;
        moved_away(ss, s, NULL);
    }
    gd_job_free(job);
}

/* ---- loading ---------------------------------------------------------- */

/* Submits a load of s (LOADING until it completes). If even that cannot be
 * allocated, s keeps no state (HIBERNATED: the next access tries again) and
 * its players and waiters are told, rather than left on a stale state. */
static int submit_load(gd_sessions *ss, gd_session *s)
{
    gd_job *job = gd_fault("load-job") ? NULL : gd_job_new(GD_JOB_LOAD);
    if (!job) {
        gd_log(GD_LOG_ERROR, "session %s: out of memory submitting its load", s->id);
        gd_record_clear(&s->rec);
        gd_state_init(&s->rec.state);
        s->st = GD_SESS_HIBERNATED;
        fail_players(ss, s, GD_E_STORAGE_UNAVAILABLE, "Out of memory loading the session; retry",
                     -ENOMEM);
        return -ENOMEM;
    }
    s->st = GD_SESS_LOADING;
    snprintf(job->id, sizeof(job->id), "%s", s->id);
    job->arg = ss;
    job->done = on_load_done;
    gd_store_submit(ss->store, job);
    return 0;
}

/* Replays the messages that arrived while c's session was not in memory. */
static void replay_stalled(gd_sessions *ss, gd_conn *c)
{
    gd_buf held = c->stalled;
    int n = c->nstalled;
    gd_buf_init(&c->stalled);
    c->nstalled = 0;
    const char *p = held.p;
    for (int i = 0; i < n && p; i++) {
        size_t len = strlen(p);
        gd_session_on_message(ss, c, p, len);
        p += len + 1;
    }
    gd_buf_free(&held);
}

gd_session *gd_session_acquire(gd_sessions *ss, const char *id)
{
    assert(gd_id_pattern_ok(id, (int)strlen(id))); /* lower-case: one session per id */
    gd_session *s = gd_session_find(ss, id);
    if (s) {
        s->evicting = false; /* wanted again: keep it */
        if (s->st == GD_SESS_HIBERNATED && submit_load(ss, s) != 0) return NULL;
        return s;
    }
    s = session_new(id);
    if (!s) return NULL;
    s->empty_since_ms = gd_now_ms();
    table_insert(ss, s);
    if (submit_load(ss, s) != 0) {
        session_free(ss, s);
        return NULL;
    }
    return s;
}

/* Tells every player of s (code, message: an `error` message, then a close
 * with 1011 so that the client reconnects later) and every waiter (rc, see
 * gd_session_wait_load). The players leave the session. */
static void fail_players(gd_sessions *ss, gd_session *s, const char *code, const char *message,
                         int rc)
{
    for (int i = 0; i < s->nplayers; i++) {
        gd_conn *c = s->players[i];
        gd_conn_drop_gated(c, s->durable_opno); /* what is durable may still go out */
        c->session = NULL;
        c->joined = false;
        gd_session_send_error(ss, c, code, message, NULL);
        close_player(ss, c, 1011, "session unavailable");
    }
    s->nplayers = 0;
    for (gd_conn *c = s->waiters, *n; c; c = n) {
        n = c->wnext;
        gd_session_wait_cb cb = c->wait_cb;
        gd_session_unwait(c);
        cb(c, s, rc);
    }
}

/* A load that failed: nothing is written over what could not be read; the
 * next request or message tries again. */
static void fail_load(gd_sessions *ss, gd_session *s, int rc)
{
    if (rc == -EBADMSG || rc == -EUCLEAN)
        fail_players(ss, s, GD_E_SESSION_UNAVAILABLE,
                     "This session's stored data cannot be read; nothing was changed", -EBADMSG);
    else
        fail_players(ss, s, GD_E_STORAGE_UNAVAILABLE, "The session could not be loaded; retry",
                     -EIO);
    if (s->batch_refs == 0) session_free(ss, s);
}

static void on_load_done(gd_job *job)
{
    gd_sessions *ss = job->arg;
    gd_session *s = gd_session_find(ss, job->id);
    if (!s || s->st != GD_SESS_LOADING) {
        gd_job_free(job);
        return;
    }
    if (job->rc != 0) {
        gd_log(GD_LOG_ERROR, "session %s: load failed: %s", s->id,
               job->rc == -EBADMSG   ? "stored data cannot be read"
               : job->rc == -EUCLEAN ? "quarantined"
                                     : strerror(-job->rc));
        ss->m->load_failures++;
        if (retry_reload(ss, s, job->rc)) {
            gd_job_free(job);
            return;
        }
        fail_load(ss, s, job->rc);
        gd_job_free(job);
        return;
    }
    s->reload_attempts = 0;
    gd_load_source src = job->source;
    if (src == GD_SRC_NONE && !gd_idset_has(&ss->ids, s->id)) {
        fail_players(ss, s, GD_E_SESSION_UNAVAILABLE, "Session not found", -ENOENT);
        if (s->batch_refs == 0) session_free(ss, s);
        gd_job_free(job);
        return;
    }
    if (src == GD_SRC_NONE) {
        src = GD_SRC_DEFAULT;
        gd_record_init(&s->rec, s->id, gd_now_ms());
    } else {
        s->rec = job->rec;
        memset(&job->rec, 0, sizeof(job->rec));
        gd_state_init(&job->rec.state);
    }
    s->st = GD_SESS_LIVE;
    if (src != GD_SRC_DEFAULT) gd_idset_add(&ss->ids, s->id); /* cluster: learnt from the store */
    if (src == GD_SRC_DURABLE) {
        s->epoch = job->epoch;
        s->creation_queued = false;
        s->durable_opno = (int64_t)s->rec.opno;
        s->ckpt_opno = job->ckpt_opno;
        s->unfolded_since_ms = s->ckpt_opno != s->durable_opno ? gd_now_ms() : 0;
        ss->m->loads_durable++;
    } else {
        /* The durable store has never seen it: its first row is a checkpoint,
         * which creates it (as its first owner). */
        s->epoch = 1;
        s->creation_queued = false;
        s->durable_opno = -1;
        s->kv_opno = src == GD_SRC_KV ? 0 : -1;
        if (add_checkpoint(ss, s, true) != 0) {
            /* Without its first checkpoint its ops could never be recovered. */
            gd_log(GD_LOG_ERROR, "session %s: out of memory queueing its checkpoint", s->id);
            gd_job_free(job);
            fail_load(ss, s, -ENOMEM);
            return;
        }
        gd_sessions_schedule_flush(ss);
        if (src == GD_SRC_KV)
            ss->m->loads_kv++;
        else
            ss->m->loads_default++;
    }
    gd_log(GD_LOG_INFO,
           "session %s: loaded from %s (opno %llu, serverSeq %llu, %d ops replayed, %.2f ms)",
           s->id,
           src == GD_SRC_DURABLE ? "durable store"
           : src == GD_SRC_KV    ? "KV view"
                                 : "defaults",
           (unsigned long long)s->rec.opno, (unsigned long long)s->rec.server_seq, job->replayed,
           (double)(job->finished_us - job->submitted_us) / 1000.0);
    gd_job_free(job);

    for (int i = 0; i < s->nplayers; i++) {
        gd_conn *c = s->players[i];
        if (!c->joined) {
            complete_join(ss, s, c);
        } else {
            if (s->resync) send_snapshot(ss, s, c); /* reloaded after a failed commit */
            ss->player_ops->release_reads(c);
        }
    }
    s->resync = false;
    touch_session(ss, s);
    for (int i = 0; i < s->nplayers; i++)
        if (s->players[i]->nstalled) replay_stalled(ss, s->players[i]);
    for (gd_conn *c = s->waiters, *n; c; c = n) {
        n = c->wnext;
        if (c->wait == GD_WAIT_LOAD) {
            gd_session_wait_cb cb = c->wait_cb;
            gd_session_unwait(c);
            cb(c, s, 0);
        }
    }
}

gd_session *gd_session_create(gd_sessions *ss, gd_record *rec)
{
    gd_session *s = session_new(rec->id);
    if (!s) return NULL;
    s->rec = *rec;
    memset(rec, 0, sizeof(*rec));
    gd_state_init(&rec->state);
    s->st = GD_SESS_LIVE;
    s->empty_since_ms = gd_now_ms();
    s->epoch = 1; /* created here: the first owner */
    if (gd_idset_add(&ss->ids, s->id) != 0 || add_checkpoint(ss, s, true) != 0) {
        gd_record_clear(&s->rec);
        free(s);
        return NULL;
    }
    table_insert(ss, s);
    touch_session(ss, s);
    ss->m->sessions_created++;
    gd_sessions_schedule_flush(ss);
    return s;
}

/* ---- the single writer ------------------------------------------------ */

int gd_session_apply_op(gd_sessions *ss, gd_session *s, gd_op *op, gd_conn *sender,
                        const char *client_seq, gd_op_err *err, int64_t *opno)
{
    assert(s->st == GD_SESS_LIVE);
    gd_batch *b = open_batch(ss);
    gd_buf log;
    gd_buf_init(&log);
    if (op->at == 0) op->at = gd_now_ms();
    gd_op_write_compact(&log, op);
    size_t len;
    char *text = gd_buf_steal(&log, &len);
    /* Reserve everything before applying, so an allocation failure can never
     * leave an applied op unlogged. */
    if (!b || !text || batch_reserve(b) != 0 ||
        gd_job_add_row(b->job, GD_ROW_OP, s->id, (int64_t)s->rec.opno + 1, text, len) != 0) {
        err->code = GD_E_STORAGE_UNAVAILABLE;
        snprintf(err->message, sizeof(err->message), "Out of memory");
        return -ENOMEM;
    }
    b->job->rows[b->job->nrows - 1].epoch = s->epoch;
    gd_apply_res res;
    int rc = gd_apply(&s->rec, op, &res, err);
    if (rc != 0) {
        b->job->nrows--;
        b->job->bytes -= b->job->rows[b->job->nrows].len;
        free(b->job->rows[b->job->nrows].text);
        return rc;
    }
    assert(b->job->rows[b->job->nrows - 1].opno == (int64_t)s->rec.opno);
    batch_touch(b, s, (int64_t)s->rec.opno);
    if (!s->unfolded_since_ms) s->unfolded_since_ms = gd_now_ms();
    if (sender)
        b->senders[b->ns++] = (struct sender){
            sender->serial, s,    (int64_t)s->rec.opno, client_seq ? strdup(client_seq) : NULL,
            gd_now_us(),    false};
    if ((int64_t)s->rec.opno - s->ckpt_opno >= ss->cfg->checkpoint_every)
        add_checkpoint(ss, s, true);
    ss->m->mutations[op->type]++;
    *opno = (int64_t)s->rec.opno;
    touch_session(ss, s);
    s->last_op_ms = s->last_active_ms;

    if (op->type == GD_OP_REPLACE_STATE) {
        gd_session_snapshot_all(ss, s);
    } else {
        gd_buf out;
        gd_buf_init(&out);
        gd_op_write_broadcast(&out, &s->rec, op, &res, sender ? sender->player_id : NULL,
                              client_seq);
        gd_msg *m =
            out.len && !out.oom && !gd_fault("broadcast") ? gd_msg_new(out.p, out.len) : NULL;
        gd_buf_free(&out);
        if (!m) {
            resync_players(ss, s); /* out of memory: never let a player miss a change */
        } else {
            for (int i = 0; i < s->nplayers; i++) {
                if (!s->players[i]->joined) continue;
                gd_session_send(ss, s->players[i], m, *opno);
                if (sender && s->players[i] != sender) sender->fanout_tokens -= (double)m->len;
            }
        }
        gd_msg_unref(m);
    }
    gd_sessions_schedule_flush(ss);
    return 0;
}

/* ---- output ----------------------------------------------------------- */

/* Closes c with code once what is queued to it has been sent. */
static void close_player(gd_sessions *ss, gd_conn *c, uint16_t code, const char *reason)
{
    ss->player_ops->release_reads(c);
    ss->player_ops->close(c, code, reason);
}

/* A broadcast could not be allocated: the players would silently diverge,
 * so each is told and closed (after what it already has queued); they
 * reconnect and start again from a fresh snapshot. */
static void resync_players(gd_sessions *ss, gd_session *s)
{
    gd_log(GD_LOG_ERROR, "session %s: out of memory broadcasting; closing %d players to resync",
           s->id, s->nplayers);
    for (int i = 0; i < s->nplayers; i++) {
        gd_conn *c = s->players[i];
        gd_session_send_error(ss, c, GD_E_STORAGE_UNAVAILABLE, "Out of memory; reconnect", NULL);
        close_player(ss, c, 1011, "out of memory");
    }
}

void gd_session_send(gd_sessions *ss, gd_conn *c, gd_msg *m, int64_t gate)
{
    if (c->closing) return;
    if (gd_conn_enqueue(c, m, gate, (size_t)ss->cfg->out_cap_kb * 1024) != 0) {
        gd_log(GD_LOG_WARN, "conn %llu session %s: output queue over %d KiB, closing slow reader",
               (unsigned long long)c->serial, c->session ? c->session->id : "-",
               ss->cfg->out_cap_kb);
        ss->m->lagging_closed++;
        gd_conn_clear_queue(c);
        ss->player_ops->close(c, 1008, "slow reader");
        return;
    }
    int64_t durable = c->session ? c->session->durable_opno : INT64_MAX;
    if (gd_conn_can_send(c, durable)) ss->player_ops->want_write(c);
}

static void send_buf(gd_sessions *ss, gd_conn *c, gd_buf *b, int64_t gate)
{
    gd_msg *m = b->oom ? NULL : gd_msg_new(b->p, b->len);
    if (m) gd_session_send(ss, c, m, gate);
    gd_msg_unref(m);
}

void gd_session_send_error(gd_sessions *ss, gd_conn *c, const char *code, const char *message,
                           const char *client_seq)
{
    send_error(ss, c, code, message, client_seq, 0);
}

/* An error that depends on the session's state (TRACK_NOT_FOUND,
 * TOO_MANY_TRACKS) is decided on applied state, which may not be durable
 * yet: gate it like a broadcast, so that it never reveals a change whose
 * commit could still fail. */
static void send_error(gd_sessions *ss, gd_conn *c, const char *code, const char *message,
                       const char *client_seq, int64_t gate)
{
    gd_session *s = c->session;
    if (s && gate > s->durable_opno) {
        /* If the batch that holds that state fails, this refusal was wrong
         * too: the sender then hears STORAGE_UNAVAILABLE instead of it. */
        gd_batch *b = s->touch_batch ? s->touch_batch : ss->inflight;
        if (b && batch_reserve(b) == 0)
            b->senders[b->ns++] = (sender){
                c->serial, s, gate, client_seq ? strdup(client_seq) : NULL, gd_now_us(), true};
    }
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"type\":\"error\",\"code\":");
    gd_json_str(&b, code);
    gd_buf_puts(&b, ",\"message\":");
    gd_json_str(&b, message);
    if (client_seq) gd_buf_printf(&b, ",\"clientSeq\":%s", client_seq);
    gd_buf_putc(&b, '}');
    send_buf(ss, c, &b, gate);
    gd_buf_free(&b);
    gd_metrics *m = ss->m;
    uint64_t *counter = strcmp(code, GD_E_INVALID_JSON) == 0          ? &m->rejected_invalid_json
                        : strcmp(code, GD_E_MESSAGE_TOO_LARGE) == 0   ? &m->rejected_too_large
                        : strcmp(code, GD_E_UNKNOWN_TYPE) == 0        ? &m->rejected_unknown_type
                        : strcmp(code, GD_E_INVALID_FIELD) == 0       ? &m->rejected_invalid_field
                        : strcmp(code, GD_E_TRACK_NOT_FOUND) == 0     ? &m->rejected_track_not_found
                        : strcmp(code, GD_E_TOO_MANY_TRACKS) == 0     ? &m->rejected_too_many_tracks
                        : strcmp(code, GD_E_SESSION_PUBLISHED) == 0   ? &m->rejected_published
                        : strcmp(code, GD_E_RATE_LIMITED) == 0        ? &m->rejected_rate_limited
                        : strcmp(code, GD_E_SESSION_UNAVAILABLE) == 0 ? &m->rejected_unavailable
                        : strcmp(code, GD_E_SESSION_MOVED) == 0       ? &m->rejected_moved
                                                                      : &m->rejected_storage;
    (*counter)++;
}

static void write_player(gd_buf *b, const gd_conn *c)
{
    gd_buf_puts(b, "{\"id\":");
    gd_json_str(b, c->player_id);
    gd_buf_printf(b, ",\"connectedAt\":%lld,\"lastMessageAt\":%lld,\"messageCount\":%lld",
                  (long long)c->connected_at, (long long)c->last_message_at,
                  (long long)c->message_count);
    gd_buf_puts(b, ",\"color\":");
    gd_json_str(b, c->ident.color);
    gd_buf_printf(b, ",\"colorIndex\":%d,\"animal\":", c->ident.color_index);
    gd_json_str(b, c->ident.animal);
    gd_buf_puts(b, ",\"name\":");
    gd_json_str(b, c->ident.name);
    gd_buf_putc(b, '}');
}

static gd_msg *build_snapshot(gd_sessions *ss, gd_session *s, gd_conn *to)
{
    (void)ss;
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"type\":\"snapshot\",\"state\":");
    gd_state_write(&b, &s->rec.state);
    gd_buf_puts(&b, ",\"players\":[");
    bool first = true;
    for (int i = 0; i < s->nplayers; i++) {
        gd_conn *c = s->players[i];
        if (!c->joined && c != to) continue;
        if (!first) gd_buf_putc(&b, ',');
        first = false;
        write_player(&b, c);
    }
    gd_buf_puts(&b, "],\"playerId\":");
    gd_json_str(&b, to->player_id);
    gd_buf_printf(&b, ",\"immutable\":%s,\"snapshotTimestamp\":%lld,\"playingPlayerIds\":[",
                  s->rec.immutable ? "true" : "false", (long long)gd_now_ms());
    /* In the order they started playing, as the reference's Set keeps them. */
    uint64_t after = 0;
    for (first = true;; first = false) {
        gd_conn *next = NULL;
        for (int i = 0; i < s->nplayers; i++) {
            gd_conn *p = s->players[i];
            if (p->joined && p->playing && p->playing_since > after &&
                (!next || p->playing_since < next->playing_since))
                next = p;
        }
        if (!next) break;
        if (!first) gd_buf_putc(&b, ',');
        gd_json_str(&b, next->player_id);
        after = next->playing_since;
    }
    gd_buf_puts(&b, "]}");
    gd_msg *m = b.oom ? NULL : gd_msg_new(b.p, b.len);
    gd_buf_free(&b);
    return m;
}

static void send_snapshot(gd_sessions *ss, gd_session *s, gd_conn *c)
{
    gd_msg *m = build_snapshot(ss, s, c);
    if (m) {
        gd_session_send(ss, c, m, (int64_t)s->rec.opno);
    } else { /* out of memory: a player without the state must not stay */
        gd_session_send_error(ss, c, GD_E_STORAGE_UNAVAILABLE, "Out of memory; reconnect", NULL);
        close_player(ss, c, 1011, "out of memory");
    }
    gd_msg_unref(m);
}

void gd_session_snapshot_all(gd_sessions *ss, gd_session *s)
{
    for (int i = 0; i < s->nplayers; i++)
        if (s->players[i]->joined) send_snapshot(ss, s, s->players[i]);
}

/* Sends b to every joined player except `except`. */
static void send_others(gd_sessions *ss, gd_session *s, gd_conn *except, gd_buf *b, int64_t gate)
{
    gd_msg *m = b->oom ? NULL : gd_msg_new(b->p, b->len);
    for (int i = 0; m && i < s->nplayers; i++)
        if (s->players[i]->joined && s->players[i] != except)
            gd_session_send(ss, s->players[i], m, gate);
    gd_msg_unref(m);
}

/* ---- players ---------------------------------------------------------- */

static void complete_join(gd_sessions *ss, gd_session *s, gd_conn *c)
{
    c->joined = true;
    send_snapshot(ss, s, c);
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"type\":\"player_joined\",\"player\":");
    write_player(&b, c);
    gd_buf_putc(&b, '}');
    send_others(ss, s, c, &b, 0);
    gd_buf_free(&b);
    ss->player_ops->release_reads(c);
    gd_log(GD_LOG_INFO, "session %s: player %s (%s) joined, %d connected", s->id, c->player_id,
           c->ident.name, s->nplayers);
}

void gd_session_join(gd_sessions *ss, gd_session *s, gd_conn *c)
{
    touch_session(ss, s);
    if (s->st == GD_SESS_LIVE) {
        s->rec.last_accessed_at = s->last_active_ms;
        s->access_dirty = true;
    }
    c->session = s;
    s->players[s->nplayers++] = c;
    s->empty_since_ms = 0;
    if (s->st == GD_SESS_LIVE)
        complete_join(ss, s, c);
    else
        ss->player_ops->hold_reads(c);
}

void gd_session_leave(gd_sessions *ss, gd_conn *c)
{
    gd_session *s = c->session;
    gd_conn_clear_queue(c);
    gd_buf_free(&c->stalled);
    c->nstalled = 0;
    if (!s) return;
    c->session = NULL;
    int k = -1;
    for (int i = 0; i < s->nplayers; i++)
        if (s->players[i] == c) k = i;
    if (k < 0) return;
    /* Close the gap: the others keep their join order. */
    memmove(&s->players[k], &s->players[k + 1],
            (size_t)(s->nplayers - k - 1) * sizeof(*s->players));
    s->nplayers--;
    touch_session(ss, s);
    if (c->joined) {
        gd_buf b;
        gd_buf_init(&b);
        if (c->playing) {
            gd_buf_puts(&b, "{\"type\":\"playback_stopped\",\"playerId\":");
            gd_json_str(&b, c->player_id);
            gd_buf_putc(&b, '}');
            send_others(ss, s, c, &b, 0);
            gd_buf_reset(&b);
        }
        gd_buf_puts(&b, "{\"type\":\"player_left\",\"playerId\":");
        gd_json_str(&b, c->player_id);
        gd_buf_putc(&b, '}');
        send_others(ss, s, c, &b, 0);
        gd_buf_free(&b);
    }
    c->joined = false;
    gd_log(GD_LOG_INFO, "session %s: player %s left, %d connected", s->id, c->player_id,
           s->nplayers);
    if (s->nplayers == 0) {
        s->empty_since_ms = gd_now_ms();
        s->kv_flush_wanted = true;
        try_kv_flush(ss, s);
    }
}

/* ---- messages --------------------------------------------------------- */

/* ---- fan-out fairness -------------------------------------------------- */

/*
 * What one connection makes the other players receive (its broadcasts and
 * relays, counted once per recipient) comes out of a bucket of --fanout-kb
 * per second, twice that at most. A sender over it gets RATE_LIMITED: a
 * flood slows its sender down instead of pushing the players it floods
 * over their output cap.
 */
static bool fanout_ok(gd_sessions *ss, gd_conn *c)
{
    double rate = (double)ss->cfg->fanout_kb * 1024, cap = 2 * rate;
    int64_t now = gd_now_us();
    if (c->fanout_at_us == 0)
        c->fanout_tokens = cap;
    else
        c->fanout_tokens += (double)(now - c->fanout_at_us) * rate / 1e6;
    if (c->fanout_tokens > cap) c->fanout_tokens = cap;
    c->fanout_at_us = now;
    return c->fanout_tokens > 0;
}

/* Sends b to every joined player but `from` (and to `from` too when
 * include_from), charging `from`'s fan-out bucket. Ephemeral messages (a
 * cursor, superseded by the next one) are not queued to a player whose
 * queue is over a quarter of the cap: they are dropped, never a reason to
 * cut a slow reader off. */
static void relay(gd_sessions *ss, gd_session *s, gd_conn *from, gd_buf *b, int64_t gate,
                  bool include_from, bool ephemeral)
{
    gd_msg *m = b->oom ? NULL : gd_msg_new(b->p, b->len);
    size_t cap = (size_t)ss->cfg->out_cap_kb * 1024;
    for (int i = 0; m && i < s->nplayers; i++) {
        gd_conn *to = s->players[i];
        if (!to->joined || (to == from && !include_from)) continue;
        if (ephemeral && to->qbytes > cap / 4) continue;
        gd_session_send(ss, to, m, gate);
        if (to != from) from->fanout_tokens -= (double)m->len;
    }
    gd_msg_unref(m);
}

/* A cursor position is two finite numbers, and optionally the track and
 * step under it. Writes the normalised object, or returns false. */
static bool write_position(gd_buf *b, const json_t *pos)
{
    json_t *x = json_object_get(pos, "x"), *y = json_object_get(pos, "y");
    json_t *track = json_object_get(pos, "trackId"), *step = json_object_get(pos, "step");
    if (!json_is_object(pos) || !json_is_number(x) || !json_is_number(y) ||
        !isfinite(json_number_value(x)) || !isfinite(json_number_value(y)))
        return false;
    if (track && (!json_is_string(track) || json_string_length(track) > GD_MAX_ID_BYTES))
        return false;
    double st = step ? json_number_value(step) : 0;
    if (step && (!json_is_number(step) || st < 0 || st >= GD_MAX_STEPS || st != floor(st)))
        return false;
    gd_buf_puts(b, "{\"x\":");
    gd_json_num(b, json_number_value(x));
    gd_buf_puts(b, ",\"y\":");
    gd_json_num(b, json_number_value(y));
    if (track) {
        gd_buf_puts(b, ",\"trackId\":");
        gd_json_str(b, json_string_value(track));
    }
    if (step) gd_buf_printf(b, ",\"step\":%d", (int)st);
    gd_buf_putc(b, '}');
    return true;
}

static void handle_readonly(gd_sessions *ss, gd_session *s, gd_conn *c, const char *type,
                            json_t *msg, const char *client_seq)
{
    gd_buf b;
    gd_buf_init(&b);
    if (strcmp(type, "play") == 0 || strcmp(type, "stop") == 0) {
        bool play = type[1] == 'l';
        if (play && !c->playing) c->playing_since = ++s->play_starts; /* a replay keeps its place */
        c->playing = play;
        gd_buf_puts(&b, play ? "{\"type\":\"playback_started\",\"playerId\":"
                             : "{\"type\":\"playback_stopped\",\"playerId\":");
        gd_json_str(&b, c->player_id);
        if (play) {
            gd_buf_printf(&b, ",\"startTime\":%lld,\"tempo\":", (long long)gd_now_ms());
            gd_json_num(&b, s->rec.state.tempo);
        }
        gd_buf_putc(&b, '}');
        /* playback_started carries the tempo, which may not be durable yet. */
        relay(ss, s, c, &b, play ? (int64_t)s->rec.opno : 0, true, false);
    } else if (strcmp(type, "state_hash") == 0) {
        char h[9] = "";
        gd_state_hash(&s->rec.state, h);
        const char *theirs = json_string_value(json_object_get(msg, "hash"));
        if (theirs && strcmp(theirs, h) == 0)
            gd_buf_puts(&b, "{\"type\":\"state_hash_match\"}");
        else
            gd_buf_printf(&b, "{\"type\":\"state_mismatch\",\"serverHash\":\"%s\"}", h);
        send_buf(ss, c, &b, (int64_t)s->rec.opno);
    } else if (strcmp(type, "request_snapshot") == 0) {
        send_snapshot(ss, s, c);
    } else if (strcmp(type, "clock_sync_request") == 0) {
        json_t *ct = json_object_get(msg, "clientTime");
        if (ct && (!json_is_number(ct) || !isfinite(json_number_value(ct)))) {
            gd_session_send_error(ss, c, GD_E_INVALID_FIELD, "clientTime must be a number",
                                  client_seq);
            gd_buf_free(&b);
            return;
        }
        gd_buf_puts(&b, "{\"type\":\"clock_sync_response\"");
        if (ct) {
            gd_buf_puts(&b, ",\"clientTime\":");
            gd_json_num(&b, json_number_value(ct));
        }
        gd_buf_printf(&b, ",\"serverTime\":%lld}", (long long)gd_now_ms());
        send_buf(ss, c, &b, 0);
    } else { /* cursor_move */
        gd_buf_puts(&b, "{\"type\":\"cursor_moved\",\"playerId\":");
        gd_json_str(&b, c->player_id);
        gd_buf_puts(&b, ",\"position\":");
        if (!write_position(&b, json_object_get(msg, "position"))) {
            gd_session_send_error(ss, c, GD_E_INVALID_FIELD,
                                  "position must be an object with numbers x and y", client_seq);
            gd_buf_free(&b);
            return;
        }
        gd_buf_puts(&b, ",\"color\":");
        gd_json_str(&b, c->ident.color);
        gd_buf_puts(&b, ",\"name\":");
        gd_json_str(&b, c->ident.name);
        gd_buf_putc(&b, '}');
        relay(ss, s, c, &b, 0, false, true);
    }
    gd_buf_free(&b);
}

/* The clientSeq that answers msg: its `seq` written back as JSON (owned,
 * free()), or NULL without one. -EINVAL when seq is there but not a finite
 * number: it is echoed to every player, so it is a relayed field too. */
static int client_seq_of(const json_t *msg, char **out)
{
    *out = NULL;
    json_t *seq = json_object_get(msg, "seq");
    if (!seq) return 0;
    if (!json_is_number(seq) || !isfinite(json_number_value(seq))) return -EINVAL;
    gd_buf b;
    gd_buf_init(&b);
    gd_json_value(&b, seq);
    *out = gd_buf_steal(&b, NULL);
    return 0;
}

void gd_session_on_rate_limited(gd_sessions *ss, gd_conn *c, const char *data, size_t len)
{
    if (!c->session || c->closing) return;
    json_error_t jerr;
    json_t *msg = json_loadb(data, len, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &jerr);
    char *client_seq = NULL;
    if (json_is_object(msg)) client_seq_of(msg, &client_seq);
    gd_session_send_error(ss, c, GD_E_RATE_LIMITED, "Too many messages; slow down", client_seq);
    free(client_seq);
    json_decref(msg);
}

void gd_session_on_message(gd_sessions *ss, gd_conn *c, const char *data, size_t len)
{
    gd_session *s = c->session;
    if (!s || c->closing) return;
    c->last_message_at = gd_now_ms();
    c->message_count++;
    json_error_t jerr;
    json_t *msg = json_loadb(data, len, JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &jerr);
    if (!msg) {
        gd_session_send_error(ss, c, GD_E_INVALID_JSON, "Invalid JSON", NULL);
        return;
    }
    if (!json_is_object(msg)) {
        gd_session_send_error(ss, c, GD_E_INVALID_JSON, "Message must be a JSON object", NULL);
        json_decref(msg);
        return;
    }
    char *client_seq = NULL;
    if (client_seq_of(msg, &client_seq) != 0) {
        gd_session_send_error(ss, c, GD_E_INVALID_FIELD, "seq must be a number", NULL);
        json_decref(msg);
        return;
    }
    if (s->st != GD_SESS_LIVE) {
        /* Not in memory (hibernated, or reloading after a failed commit):
         * hold the message, stop reading, and replay it after the load. */
        if (c->nstalled >= 64) {
            gd_session_send_error(ss, c, GD_E_RATE_LIMITED,
                                  "Too many messages while the "
                                  "session loads; retry",
                                  client_seq);
            goto out;
        }
        gd_buf_put(&c->stalled, data, len);
        gd_buf_putc(&c->stalled, '\0');
        c->nstalled++;
        c->message_count--; /* counted again on replay */
        ss->player_ops->hold_reads(c);
        if (s->st == GD_SESS_HIBERNATED) {
            gd_log(GD_LOG_INFO, "session %s: waking from hibernation", s->id);
            submit_load(ss, s); /* on failure c was told and is closing */
        }
        goto out;
    }
    json_t *ack = json_object_get(msg, "ack");
    if (json_is_number(ack) && json_number_value(ack) >= 0 &&
        (double)s->rec.server_seq - json_number_value(ack) > 50)
        send_snapshot(ss, s, c);

    const char *type = json_string_value(json_object_get(msg, "type"));
    /* Everything but the four answered to the sender alone reaches the
     * other players: it needs fan-out budget (see fanout_ok). */
    static const char *const own[] = {"state_hash", "request_snapshot", "clock_sync_request"};
    bool to_others = true;
    for (size_t i = 0; type && i < sizeof(own) / sizeof(own[0]); i++)
        if (strcmp(type, own[i]) == 0) to_others = false;
    if (to_others && !fanout_ok(ss, c)) {
        gd_session_send_error(ss, c, GD_E_RATE_LIMITED,
                              "Too much output for the other players; slow down", client_seq);
        goto out;
    }
    static const char *const readonly[] = {
        "play", "stop", "state_hash", "request_snapshot", "clock_sync_request", "cursor_move"};
    for (size_t i = 0; type && i < sizeof(readonly) / sizeof(readonly[0]); i++) {
        if (strcmp(type, readonly[i]) == 0) {
            handle_readonly(ss, s, c, type, msg, client_seq);
            goto out;
        }
    }

    /* The published gate comes before field validation, as in the reference. */
    if (s->rec.immutable && gd_op_is_mutating(gd_op_type_from_name(type, false))) {
        gd_session_send_error(ss, c, GD_E_SESSION_PUBLISHED,
                              "This session is published and cannot be edited. Remix it to "
                              "create an editable copy.",
                              client_seq);
        goto out;
    }
    gd_op op;
    gd_op_err err;
    if (gd_op_parse(msg, false, &op, &err) != 0) {
        gd_session_send_error(ss, c, err.code, err.message, client_seq);
        goto out;
    }
    if (s->rec.immutable) {
        /* mute/solo on a published session: relayed to the players, never stored. */
        if (gd_state_find_track(&s->rec.state, op.track_id) < 0) {
            send_error(ss, c, GD_E_TRACK_NOT_FOUND, "Track not found", client_seq,
                       (int64_t)s->rec.opno);
        } else {
            gd_buf b;
            gd_buf_init(&b);
            gd_apply_res res = {0};
            gd_op_write_broadcast(&b, &s->rec, &op, &res, c->player_id, NULL);
            relay(ss, s, c, &b, (int64_t)s->rec.opno, true, false);

            gd_buf_free(&b);
        }
    } else {
        int64_t opno;
        if (gd_session_apply_op(ss, s, &op, c, client_seq, &err, &opno) != 0)
            send_error(ss, c, err.code, err.message, client_seq, (int64_t)s->rec.opno);
    }
    gd_op_clear(&op);
out:
    free(client_seq);
    json_decref(msg);
}

/* ---- HTTP waiters ----------------------------------------------------- */

/* Puts c at the head of s's HTTP waiter list (c->wait already set). */
static void link_waiter(gd_session *s, gd_conn *c)
{
    c->session = s;
    c->wprev = NULL;
    c->wnext = s->waiters;
    if (s->waiters) s->waiters->wprev = c;
    s->waiters = c;
}

void gd_session_wait_load(gd_sessions *ss, gd_session *s, gd_conn *c, gd_session_wait_cb cb)
{
    touch_session(ss, s);
    if (s->st == GD_SESS_LIVE) {
        cb(c, s, 0);
        return;
    }
    c->wait = GD_WAIT_LOAD;
    c->wait_cb = cb;
    link_waiter(s, c);
}

void gd_session_wait_durable(gd_sessions *ss, gd_session *s, gd_conn *c, int64_t opno,
                             gd_session_wait_cb cb)
{
    if (s->durable_opno >= opno) {
        cb(c, s, 0);
        return;
    }
    c->wait = GD_WAIT_DURABLE;
    c->wait_opno = opno;
    c->wait_cb = cb;
    link_waiter(s, c);
}

void gd_session_unwait(gd_conn *c)
{
    gd_session *s = c->session;
    if (c->wait == GD_WAIT_NONE || !s) return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        s->waiters = c->wnext;
    if (c->wnext) c->wnext->wprev = c->wprev;
    c->wnext = c->wprev = NULL;
    c->wait = GD_WAIT_NONE;
    c->wait_cb = NULL;
    c->session = NULL;
}

/* ---- KV view, eviction, shutdown -------------------------------------- */

/* The store logs the result, and retries a failed write from the durable
 * store by itself, so the session may already be gone. */
static void on_kv_done(gd_job *job)
{
    gd_job_free(job);
}

static void kv_put(gd_sessions *ss, gd_session *s)
{
    gd_job *job = gd_job_new(GD_JOB_KV_PUT);
    if (!job) return;
    gd_buf b;
    gd_buf_init(&b);
    gd_record_write(&b, &s->rec, false);
    job->text = gd_buf_steal(&b, &job->len);
    if (!job->text) {
        gd_job_free(job);
        return;
    }
    snprintf(job->id, sizeof(job->id), "%s", s->id);
    job->updated_at = s->rec.updated_at;
    job->ckpt_opno = (int64_t)s->rec.opno; /* which version this write holds */
    job->arg = ss;
    job->done = on_kv_done;
    gd_store_submit(ss->store, job);
    s->kv_opno = (int64_t)s->rec.opno;
    ss->m->kv_writes_requested++;
    gd_log(GD_LOG_DEBUG, "session %s: KV view write queued (opno %llu)", s->id,
           (unsigned long long)s->rec.opno);
}

/* Writes the KV view once it would not be ahead of the durable store. */
static void try_kv_flush(gd_sessions *ss, gd_session *s)
{
    if (s->st != GD_SESS_LIVE || s->durable_opno != (int64_t)s->rec.opno)
        return; /* retried from release() when the batch commits */
    s->kv_flush_wanted = false;
    if (s->kv_opno != (int64_t)s->rec.opno) kv_put(ss, s);
}

/* Drops the state of a session whose players have all been silent for
 * --hibernate-after seconds, once its checkpoint is current and durable
 * (queued here when it is not; a later tick finishes). The players stay
 * connected; their next message reloads the state. */
static bool hibernate_if_silent(gd_sessions *ss, gd_session *s, int64_t now, bool force)
{
    int64_t after = (int64_t)ss->cfg->hibernate_after * 1000;
    for (int i = 0; i < s->nplayers; i++)
        if (!s->players[i]->joined || (!force && now - s->players[i]->last_message_at < after))
            return false;
    if (s->ckpt_opno != (int64_t)s->rec.opno || s->access_dirty) {
        add_checkpoint(ss, s, true);
        return false;
    }
    if (s->kv_opno != (int64_t)s->rec.opno) kv_put(ss, s);
    gd_log(GD_LOG_INFO, "session %s: hibernated (%d players silent for %llds, opno %llu)", s->id,
           s->nplayers, (long long)(after / 1000), (unsigned long long)s->rec.opno);
    ss->m->hibernations++;
    gd_record_clear(&s->rec);
    gd_state_init(&s->rec.state);
    s->st = GD_SESS_HIBERNATED;
    touch_session(ss, s);
    return true;
}

/* Evicts one idle, durable session: writes its KV view if behind, then frees
 * it now if its checkpoint is current, else once the checkpoint queued here
 * is durable (on_commit_done). Returns true when it was freed now. */
static bool evict_idle(gd_sessions *ss, gd_session *s, const char *why)
{
    if (s->kv_opno != (int64_t)s->rec.opno) kv_put(ss, s);
    if (s->ckpt_opno != (int64_t)s->rec.opno || s->access_dirty) {
        if (add_checkpoint(ss, s, true) == 0) s->evicting = true;
        return false;
    }
    gd_log(GD_LOG_INFO, "session %s: evicted (%s, opno %llu)", s->id, why,
           (unsigned long long)s->rec.opno);
    ss->m->evictions++;
    session_free(ss, s);
    return true;
}

static int by_last_active(const void *a, const void *b)
{
    const gd_session *x = *(gd_session *const *)a, *y = *(gd_session *const *)b;
    return x->last_active_ms < y->last_active_ms ? -1 : x->last_active_ms > y->last_active_ms;
}

/* Over the memory budget: evict sessions without players, and hibernate
 * those with players, least recently used first, until under it. */
static void enforce_budget(gd_sessions *ss)
{
    /* Sessions already on their way out (freed once their checkpoint is
     * durable) do not count: evicting more for them would overshoot. */
    size_t total = 0, n = 0;
    for (size_t i = 0; i < ss->nbuckets; i++)
        for (gd_session *s = ss->buckets[i]; s; s = s->hnext)
            total += s->evicting ? 0 : s->mem_bytes, n++;
    size_t budget = (size_t)ss->cfg->memory_budget_mb * 1024 * 1024;
    if (total <= budget) return;
    gd_session **cand = malloc(n * sizeof(*cand));
    if (!cand) return;
    size_t k = 0;
    for (size_t i = 0; i < ss->nbuckets; i++)
        for (gd_session *s = ss->buckets[i]; s; s = s->hnext)
            if (s->st == GD_SESS_LIVE && !s->waiters && !s->batch_refs && !s->evicting &&
                s->durable_opno == (int64_t)s->rec.opno)
                cand[k++] = s;
    qsort(cand, k, sizeof(*cand), by_last_active);
    int64_t now = gd_now_ms();
    for (size_t i = 0; i < k && total > budget; i++) {
        gd_session *s = cand[i];
        size_t before = s->mem_bytes;
        if (s->nplayers) {
            if (hibernate_if_silent(ss, s, now, true)) {
                ss->m->budget_evictions++;
                total -= before - s->mem_bytes;
            }
        } else if (evict_idle(ss, s, "memory budget")) { /* s is freed */
            ss->m->budget_evictions++;
            total -= before;
        } else if (s->evicting) { /* freed once its checkpoint is durable */
            ss->m->budget_evictions++;
            total -= before;
        }
    }
    free(cand);
}

/* Evicts sessions idle for --evict-after seconds: writes their KV view if it
 * is behind, and frees them at once when their checkpoint is current, or
 * once the checkpoint queued here is durable (on_commit_done). Loads can
 * then always start from a checkpoint alone. */
void gd_sessions_tick(gd_sessions *ss)
{
    int64_t now = gd_now_ms();
    int64_t after = (int64_t)ss->cfg->evict_after * 1000;
    int64_t mono = gd_now_us() / 1000;
    for (size_t i = 0; i < ss->nbuckets; i++) {
        for (gd_session *s = ss->buckets[i], *n; s; s = n) {
            n = s->hnext;
            if (s->st == GD_SESS_LOADING && s->reload_at_ms && mono >= s->reload_at_ms) {
                s->reload_at_ms = 0; /* a reload that failed: again (retry_reload) */
                submit_load(ss, s);
                continue;
            }
            if (s->st == GD_SESS_LIVE && !s->evicting && s->ckpt_opno != (int64_t)s->rec.opno &&
                s->durable_opno == (int64_t)s->rec.opno &&
                (now - s->last_op_ms >= (int64_t)ss->cfg->checkpoint_idle * 1000 ||
                 (s->unfolded_since_ms &&
                  now - s->unfolded_since_ms >= (int64_t)ss->cfg->checkpoint_max_age * 1000))) {
                /* Quiet for a while, or ops out of a checkpoint for too long
                 * (a trickle): fold them so the op log can be trimmed. */
                gd_log(GD_LOG_DEBUG, "session %s: checkpoint (ops unfolded for %llds)", s->id,
                       (long long)(now - s->unfolded_since_ms) / 1000);
                add_checkpoint(ss, s, true);
            }
            if (s->st == GD_SESS_LIVE && s->nplayers && !s->waiters && !s->batch_refs &&
                !s->evicting && s->durable_opno == (int64_t)s->rec.opno) {
                hibernate_if_silent(ss, s, now, false);
                continue;
            }
            if (s->st == GD_SESS_HIBERNATED && !s->nplayers && !s->waiters && !s->batch_refs) {
                /* Its checkpoint and KV view were written when it hibernated. */
                gd_log(GD_LOG_INFO, "session %s: evicted while hibernated", s->id);
                ss->m->evictions++;
                session_free(ss, s);
                continue;
            }
            if (s->kv_flush_wanted && s->st == GD_SESS_LIVE) try_kv_flush(ss, s);
            if (s->evicting || s->st != GD_SESS_LIVE || s->nplayers || s->waiters ||
                s->batch_refs || s->durable_opno != (int64_t)s->rec.opno ||
                now - s->empty_since_ms < after)
                continue;
            evict_idle(ss, s, "idle");
        }
    }
    enforce_budget(ss);
    gd_sessions_schedule_flush(ss);
}

bool gd_sessions_flush_all(gd_sessions *ss)
{
    bool done = true;
    for (size_t i = 0; i < ss->nbuckets; i++) {
        for (gd_session *s = ss->buckets[i]; s; s = s->hnext) {
            if (s->st != GD_SESS_LIVE)
                continue; /* a load in flight: nothing of it is ahead of the store */
            if (s->durable_opno != (int64_t)s->rec.opno) {
                done = false;
                continue;
            }
            if (s->kv_opno != (int64_t)s->rec.opno)
                kv_put(ss, s); /* if it fails, the store rewrites it at the next start */
            if (s->ckpt_opno != (int64_t)s->rec.opno || s->access_dirty) {
                add_checkpoint(ss, s, true);
                done = false;
            }
        }
    }
    gd_sessions_schedule_flush(ss);
    return done && !ss->inflight && (!ss->open || ss->open->job->nrows == 0) &&
           gd_store_pending(ss->store) == 0;
}
