/*
 * session — live sessions: the single writer of every session's state.
 *
 * A session is in memory at most once per process (the registry). Every
 * change, WebSocket or REST, goes through gd_session_apply_op: validate →
 * apply in memory → append to the open batch → queue its broadcast behind
 * the output gate. The open batch goes to the storage thread as one
 * transaction (group commit); while it commits the next one gathers. When a
 * batch is durable its sessions' durable_opno advances and their queued
 * output is released. If it fails, its ops are not broadcast, their senders
 * get STORAGE_UNAVAILABLE, and the sessions reload from the durable store.
 *
 *   (absent) ──acquire──▶ LOADING ──load done──▶ LIVE ──idle, flushed──▶ (evicted)
 *                            ▲  ▲                 │  │
 *                            │  └─ commit failed ─┘  │ players silent, checkpoint durable
 *                            └──── next message ── HIBERNATED (players kept, state dropped)
 *
 * It knows nothing of the network layer above it (README, "Layers"): it
 * reaches its players' sockets through the gd_player_ops it was given, and
 * tells a request waiting on a session through the callback the request
 * gave. Its context is a gd_sessions, not the server. Loop thread only.
 */
#ifndef GD_SESSION_H
#define GD_SESSION_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "idset.h"
#include "metrics.h"
#include "op.h"
#include "store.h"

#define GD_MAX_PLAYERS 10

typedef struct gd_batch gd_batch;

/*
 * What the session asks of its players' connections. The transport gives
 * it to gd_sessions_init (ws.c's gd_ws_player_ops), so that the session
 * never calls into the network layer. Each function runs on the loop
 * thread, returns at once and never calls back into the session.
 */
typedef struct gd_player_ops {
    /* Stops reading c's messages (the session is not in memory), until
     * release_reads; bytes already read wait, in order. */
    void (*hold_reads)(gd_conn *c);
    void (*release_reads)(gd_conn *c);
    /* Closes c with a WebSocket close code and reason (a static string)
     * once what is queued to it has been sent; for 1008 (slow reader) at
     * once. Nothing queued afterwards is sent. */
    void (*close)(gd_conn *c, uint16_t code, const char *reason);
    /* Something queued to c may be sent now: asks for a writable callback. */
    void (*want_write)(gd_conn *c);
} gd_player_ops;

/*
 * The sessions module's context: the registry of sessions in memory, the
 * group-commit batches, and what the module borrows from the process. One
 * per server, owned by whoever embeds it (gd_server), loop thread only.
 */
typedef struct gd_sessions {
    /* Borrowed: set before the loop runs, valid until gd_sessions_free. */
    const gd_config *cfg;
    gd_metrics *m;
    gd_store *store;         /* set once the store is open */
    struct lws_context *ctx; /* the event loop, for the flush and budget timers; set once created */
    const gd_player_ops *player_ops;
    /* Owned. */
    gd_idset ids;         /* every session id the store or KV view knows */
    bool ids_complete;    /* ids names every session (one process per store); in cluster
                           * mode others create sessions: an unknown id is looked up */
    gd_session **buckets; /* sessions in memory, a hash table by id */
    size_t nbuckets, n;
    gd_batch *open;     /* ops accepted since the last submission */
    gd_batch *inflight; /* the batch being committed, or NULL */
    bool flush_scheduled, budget_scheduled;
    lws_sorted_usec_list_t flush_sul, budget_sul;
} gd_sessions;

typedef enum { GD_SESS_LOADING, GD_SESS_LIVE, GD_SESS_HIBERNATED } gd_sess_state;

struct gd_session {
    char id[37];
    gd_session *hnext;
    gd_sess_state st;
    gd_record rec;        /* applied state (may be ahead of durable) */
    int64_t durable_opno; /* highest opno known committed; -1: not yet created */
    int64_t ckpt_opno;    /* opno of the newest checkpoint written or queued */
    int64_t kv_opno;      /* opno the KV view holds; -1 when unknown */
    /* In join order, as the reference lists them. */
    gd_conn *players[GD_MAX_PLAYERS];
    int nplayers;
    /* Play messages that started a player so far: orders playingPlayerIds. */
    uint64_t play_starts;
    gd_conn *waiters;      /* HTTP requests waiting for load or durability */
    int batch_refs;        /* batches (open, inflight) holding rows of this session */
    gd_batch *touch_batch; /* the open batch, when it holds rows of this session */
    size_t touch_idx;      /* this session's entry in touch_batch */
    int64_t empty_since_ms;
    bool kv_flush_wanted;
    bool evicting;             /* idle; freed once its final checkpoint is durable */
    bool resync;               /* send every player a snapshot when the load completes */
    bool access_dirty;         /* lastAccessedAt changed since the last checkpoint */
    int64_t unfolded_since_ms; /* when its oldest op not in a checkpoint was applied; 0: none */
    int64_t last_active_ms;    /* last op, join, leave or REST read: the LRU order */
    int64_t last_op_ms;        /* when its last op was applied */
    size_t mem_bytes;          /* estimate of the memory its state holds */
    /* Cluster mode: the ownership epoch this node took (1 for a session it
     * creates), and whether its creating checkpoint is already in a batch. */
    int64_t epoch;
    bool creation_queued;
    /* A reload after a failed commit that failed too: tried again at
     * reload_at_ms (monotonic) with the players kept; reload_attempts so far. */
    int64_t reload_at_ms;
    int reload_attempts;
    bool moved; /* taken by another node: leaves memory when its batches are done */
};

/* Initialises ss; players are reached through player_ops (static). Its
 * borrowed store and ctx start NULL: the caller sets them before the loop
 * runs. 0 or -ENOMEM. */
int gd_sessions_init(gd_sessions *ss, const gd_config *cfg, gd_metrics *m,
                     const gd_player_ops *player_ops);
/* Cancels the flush and budget timers (before the event loop goes). */
void gd_sessions_cancel_timers(gd_sessions *ss);
/* Frees every session, the open batch and the id set. */
void gd_sessions_free(gd_sessions *ss);

gd_session *gd_session_find(gd_sessions *ss, const char *id);
/* Whether id may name a session: it is known, or (cluster mode) it may be
 * another node's and a load will tell. */
bool gd_sessions_may_exist(gd_sessions *ss, const char *id);
/* The store's GD_JOB_TAKEN callback (arg: the gd_sessions): sessions another
 * node took are dropped here, their players closed with 1012. Frees job. */
void gd_sessions_on_taken(gd_job *job);
/* The session in memory, or a new LOADING one whose load was submitted.
 * NULL on OOM. The caller must check gd_idset_has first. */
gd_session *gd_session_acquire(gd_sessions *ss, const char *id);
/* A new session from rec (moved into it; rec is left empty), durable once the
 * open batch commits. NULL on OOM. */
gd_session *gd_session_create(gd_sessions *ss, gd_record *rec);

/* Applies op (already validated) as `sender` (NULL for REST) and queues its
 * broadcast. Returns 0 and sets *opno to the op's number, or a negative errno
 * with err filled. The op stays owned by the caller. */
int gd_session_apply_op(gd_sessions *ss, gd_session *s, gd_op *op, gd_conn *sender,
                        const char *client_seq, gd_op_err *err, int64_t *opno);

/* WebSocket players. */
void gd_session_join(gd_sessions *ss, gd_session *s, gd_conn *c);
void gd_session_leave(gd_sessions *ss, gd_conn *c);
void gd_session_on_message(gd_sessions *ss, gd_conn *c, const char *data, size_t len);
/* A message refused by the connection's rate limit: answers RATE_LIMITED
 * with the message's clientSeq when it has one. */
void gd_session_on_rate_limited(gd_sessions *ss, gd_conn *c, const char *data, size_t len);
/* Queues m to c, closing c if its queue is over the cap. */
void gd_session_send(gd_sessions *ss, gd_conn *c, gd_msg *m, int64_t gate);
void gd_session_send_error(gd_sessions *ss, gd_conn *c, const char *code, const char *message,
                           const char *client_seq);
/* Sends a fresh snapshot to every player (after a REST replace). */
void gd_session_snapshot_all(gd_sessions *ss, gd_session *s);

/*
 * Requests waiting on a session (HTTP requests, through their connection):
 * wait_load until s is in memory (LIVE), wait_durable until its op opno is
 * durable. The session calls cb(c, s, rc) exactly once when the wait is
 * over, possibly before the call returns (s already LIVE, opno already
 * durable), unless gd_session_unwait(c) cancels the wait first. rc is
 *
 *   0         what c waited for happened: s is LIVE (and opno durable)
 *   -ENOENT   load: the session does not exist
 *   -EBADMSG  load: its stored data cannot be read (or was set aside)
 *   -ENOMEM   load: out of memory starting the load
 *   -EIO      load: storage failed and s could not be loaded;
 *             durable: the commit holding opno failed, the change was
 *             rolled back and is not applied
 *
 * c->session is s while c waits; cb runs once the wait is unlinked, and may
 * wait again. s is valid during cb; after a failure (rc != 0) it may be
 * freed as soon as cb returns. The caller owns c, and unwaits it before it
 * goes away.
 */
void gd_session_wait_load(gd_sessions *ss, gd_session *s, gd_conn *c, gd_session_wait_cb cb);
void gd_session_wait_durable(gd_sessions *ss, gd_session *s, gd_conn *c, int64_t opno,
                             gd_session_wait_cb cb);
void gd_session_unwait(gd_conn *c);

/* Flushes the open batch to the storage thread when it is idle. */
void gd_sessions_schedule_flush(gd_sessions *ss);
/* Once a second: eviction of idle sessions, KV flushes. */
void gd_sessions_tick(gd_sessions *ss);
/* Shutdown: writes every behind KV view and checkpoint. True when done. */
bool gd_sessions_flush_all(gd_sessions *ss);

#endif
