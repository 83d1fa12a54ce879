/*
 * store — the durable store and the two threads that own it.
 *
 * The durable store has two parts: the op log (oplog.h), append-only segment
 * files that take every accepted op, one write and one fdatasync per group
 * commit; and SQLite (durable.db) in WAL mode with synchronous=FULL, whose
 * table sessions(id, opno, record, crc) holds each session's latest
 * checkpoint with a CRC-32 of its text. A batch commits when both are on
 * disk. Recovery = checkpoint + replay of later log records through gd_apply.
 *
 * A stored row or record that exists but cannot be read is never taken for
 * absent: the load fails (-EBADMSG), is logged at error level, and nothing is
 * written over it. At startup such damage stops recovery, or, when the
 * operator chose quarantine, the session's checkpoint and log records are
 * copied to <dir>/quarantine/ and the session answers with an error until
 * the operator acts (-EUCLEAN). gd_store_verify checks a stopped data
 * directory by the same rules, changing nothing (grooved verify).
 *
 * Threads: the loop thread builds gd_jobs and submits them. Two lanes run
 * them, each strictly in submission order (FIFO): the commit lane runs
 * commits only, so a commit never waits behind a load, a listing or a KV
 * write; the read lane runs loads and every KV view job, on its own SQLite
 * connection, and rewrites KV views that fell behind (a failed KV write is
 * retried from the durable store with backoff, even after the session left
 * memory). A load never overlaps a commit of its own session (the loop
 * guarantees it), and reads the log only up to the durable end of the
 * commits done before it was submitted. Finished jobs go to one done queue
 * and the loop is woken through the `wake` callback; the loop calls
 * gd_store_drain, which runs each job's `done` callback on the loop thread.
 *
 *   loop: submit ─┬▶ [commit FIFO] ─▶ commit lane ─┬▶ [done] ──wake──▶ loop: drain
 *                 └▶ [read FIFO]   ─▶ read lane   ─┘
 */
#ifndef GD_STORE_H
#define GD_STORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

typedef enum {
    GD_JOB_COMMIT,
    GD_JOB_LOAD,
    GD_JOB_KV_PUT,
    GD_JOB_KV_LIST,
    GD_JOB_TAKEN
} gd_job_type;
typedef enum { GD_ROW_OP, GD_ROW_CKPT } gd_row_kind;
typedef enum { GD_SRC_NONE = 0, GD_SRC_DURABLE, GD_SRC_KV, GD_SRC_DEFAULT } gd_load_source;
typedef enum { GD_DAMAGE_REFUSE = 0, GD_DAMAGE_QUARANTINE } gd_damage_policy;

/* At most this many sessions per commit are asked to checkpoint because
 * their oldest unfolded log record pins old segments. */
#define GD_MAX_PINNED 64

typedef struct gd_row {
    gd_row_kind kind;
    char id[37];
    int64_t opno;
    char *text; /* owned: op (compact form) or checkpoint record JSON */
    size_t len;
    int64_t epoch; /* the ownership epoch this node holds for the session (0: no owners) */
    bool create;   /* GD_ROW_CKPT: the session's first checkpoint, which creates it */
} gd_row;

typedef struct gd_job gd_job;
typedef void (*gd_job_done_fn)(gd_job *job);

struct gd_job {
    gd_job_type type;
    gd_job *next;         /* queue link, owned by the store while queued */
    int rc;               /* result: 0 or negative errno, set by the storage thread */
    gd_job_done_fn done;  /* runs on the loop thread; must free the job */
    void *arg;            /* loop-side context */
    void *owner;          /* loop-side requester; NULLed by the loop if it goes away */
    int64_t submitted_us; /* monotonic clock */
    int64_t finished_us;

    /* GD_JOB_COMMIT: rows applied in order in one transaction. Out: the
     * sessions whose oldest unfolded record keeps more than one old segment
     * on disk, which the loop should checkpoint. */
    gd_row *rows;
    size_t nrows, caprows;
    size_t bytes;
    char (*pinned)[37]; /* owned */
    int npinned;
    /* Out: sessions another node took over since this node loaded them
     * (a newer epoch): none of their rows were written; the rest were.
     * GD_JOB_TAKEN (made by the store, never submitted): sessions another
     * node just took, from the backend's notifications. */
    char (*fenced)[37]; /* owned */
    int nfenced;
    int64_t *taken_epochs; /* GD_JOB_TAKEN: the epoch each fenced session was taken at */

    /* GD_JOB_LOAD: in id; out rec, source, ckpt_opno, epoch (this node's
     * ownership epoch; 0 where the backend has no owners). rc -EBADMSG:
     * stored data that cannot be read; -EUCLEAN: quarantined; else -EIO. */
    char id[37];
    gd_record rec;
    gd_load_source source;
    int64_t ckpt_opno;
    int replayed;
    int64_t epoch;

    /* GD_JOB_KV_PUT: id, text (owned), updated_at; ckpt_opno is the opno of
     * the version the value holds. A failed put is retried by the store.
     * GD_JOB_KV_LIST: in id + updated_at (cursor), limit; out text (the JSON
     * body), next_at + next_id. */
    char *text;
    size_t len;
    int64_t updated_at;
    int limit;
    int64_t next_at;
    char next_id[37];
};

typedef struct gd_store gd_store;

/* ---- durable-store backends ------------------------------------------- */

/* What a backend's load gives: the durable state of a session. */
typedef struct gd_durable_load {
    gd_record *rec;    /* filled when found (caller's, initialised empty) */
    bool found;        /* false: the durable store has no such session */
    int64_t ckpt_opno; /* opno of the checkpoint it started from */
    int replayed;      /* ops replayed on top of it */
    int64_t epoch;     /* the ownership epoch taken (take = true), or 0 */
} gd_durable_load;

typedef struct gd_durable gd_durable;

/*
 * A durable store: where commits and loads go. `local` (store_local.c) is
 * the embedded op log + SQLite checkpoints; `postgres` (store_pg.c) is
 * PostgreSQL, with one owner per session across the cluster (fencing
 * epochs). Every function returns 0 or -errno. open, close, recover,
 * each_id, each_checkpoint and gc run at startup (or offline) before the
 * lanes; commit runs on the commit lane; load on the read lane, concurrently
 * with commits but never with a commit of the same session, except for a
 * read with take = false (KV view rewrites), which must tolerate that.
 */
typedef struct gd_durable_ops {
    const char *name;
    /* where: the data directory (local) or a connection string (postgres);
     * node_id names this process as a session's owner. */
    int (*open)(gd_durable **out, const char *where, const char *node_id);
    void (*close)(gd_durable *d); /* NULL ok */
    int (*recover)(gd_durable *d, gd_damage_policy policy, size_t *quarantined);
    /* Every session id the store knows, quarantined ones too. */
    int (*each_id)(gd_durable *d, void (*fn)(void *arg, const char *id), void *arg);
    /* Every checkpoint's id and opno (to find KV views that are behind). */
    int (*each_checkpoint)(gd_durable *d, void (*fn)(void *arg, const char *id, int64_t opno),
                           void *arg);
    /* One group commit, all or nothing except for fenced sessions: sets
     * job->rc and may fill job->pinned and job->fenced; *bytes = bytes
     * written. */
    void (*commit)(gd_durable *d, gd_job *job, uint64_t *bytes);
    /* The durable state of id into out (why says what is wrong on
     * -EBADMSG / -EUCLEAN). take: this node becomes the session's owner. */
    int (*load)(gd_durable *d, const char *id, bool take, gd_durable_load *out, char *why,
                size_t whylen);
    /* Removes (unless dry_run) every session not accessed since cutoff_ms,
     * calling fn for each. */
    int (*gc)(gd_durable *d, int64_t cutoff_ms, bool dry_run, void (*fn)(void *arg, const char *id),
              void *arg);
    /* Optional, read lane: calls fn for each session another node took
     * since the last call (without waiting). */
    int (*poll_taken)(gd_durable *d, void (*fn)(void *arg, const char *id, int64_t epoch),
                      void *arg);
} gd_durable_ops;

extern const gd_durable_ops gd_durable_local;
extern const gd_durable_ops gd_durable_postgres;

/* The backend for --store: "local" (or empty), or a postgres:// URL; NULL
 * when unknown. */
const gd_durable_ops *gd_durable_find(const char *store);

/* For backends: reads a stored checkpoint (text, len; its CRC-32 when
 * has_crc) that must be session id at op opno, into *rec (initialised
 * empty). 0, or -EBADMSG with why saying what is wrong (rec left empty). */
int gd_checkpoint_parse(const char *text, size_t len, bool has_crc, uint32_t crc, const char *id,
                        int64_t opno, gd_record *rec, char *why, size_t whylen);

/* Appends id to a job's list of sessions (pinned, fenced): at most
 * GD_MAX_PINNED. 0, -ENOSPC or -ENOMEM. */
int gd_job_note_session(char (**list)[37], int *n, const char *id);

typedef struct gd_store_config {
    const char *store;    /* --store: "local" or a postgres:// URL */
    const char *data_dir; /* the local store's directory (and the SQLite KV view's) */
    const gd_kv_ops *kv;  /* the KV view backend */
    const char *kv_where; /* where it lives: NULL for the data directory */
    const char *node_id;  /* this process, as a session's owner */
    void (*wake)(void *); /* called from a lane after a job finishes */
    void *wake_arg;
    /* Runs on the loop thread (at a drain) with a GD_JOB_TAKEN job listing
     * sessions another node took; must free the job. NULL: not told. */
    gd_job_done_fn on_taken;
    void *on_taken_arg;
} gd_store_config;

typedef struct gd_store_stats {
    uint64_t commits, commit_failures, rows, bytes, kv_puts, kv_failures, loads, load_failures;
    uint64_t kv_behind; /* KV views the store still has to rewrite */
} gd_store_stats;

/* Opens (creating if needed) the durable store and the KV view cfg names.
 * Returns 0 or a negative errno; on success *out is owned by the caller. */
int gd_store_open(gd_store **out, const gd_store_config *cfg);
/* Crash recovery, startup only, before gd_store_start: folds every log
 * record into its session's checkpoint, and queues a rewrite of every KV
 * view that is behind the durable store. A session whose stored
 * data cannot be read stops recovery (-EBADMSG; every such session is logged
 * at error level with the file) unless policy is GD_DAMAGE_QUARANTINE, which
 * sets it aside (see above). Damage inside the op log (intact records after
 * a bad one) always stops it: the records it hides cannot be attributed.
 * 0 or -errno; *quarantined counts sessions set aside (may be NULL). */
int gd_store_recover(gd_store *st, gd_damage_policy policy, size_t *quarantined);
/* Operator garbage collection, offline (the data directory is locked):
 * removes every session whose lastAccessedAt is before cutoff_ms from the
 * durable store, then from the KV view; lists them on stdout. Call after
 * gd_store_recover. 0 or -errno; *removed counts them. */
int gd_store_gc(gd_store *st, int64_t cutoff_ms, bool dry_run, size_t *removed);
/* What gd_store_verify found, one finding at a time. */
typedef enum { GD_VERIFY_OK = 0, GD_VERIFY_WARN, GD_VERIFY_DAMAGE } gd_verify_level;

typedef struct gd_verify_sink {
    /* One finding: subject names the file (relative to the data directory,
     * e.g. "log/0000000000000003.log") or the check; text says what was
     * checked and found, with counts. Both borrowed for the call. */
    void (*line)(void *arg, gd_verify_level level, const char *subject, const char *text);
    /* Each session that reads and folds cleanly, with the op number and
     * serverSeq recovery would give it. May be NULL. */
    void (*session)(void *arg, const char *id, int64_t opno, int64_t server_seq);
    void *arg;
} gd_verify_sink;

typedef struct gd_verify_counts {
    size_t ok, warnings, damage; /* findings reported at each level */
} gd_verify_counts;

/* One finding: formats fmt, counts it in *counts at its level and hands it
 * to sink->line. For gd_store_verify and the checks around it (backup.c). */
void gd_verify_vreport(const gd_verify_sink *sink, gd_verify_counts *counts, gd_verify_level level,
                       const char *subject, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

/* Offline check of the data directory dir (grooved verify), changing
 * nothing: it opens every file read-only and holds a shared flock on
 * <dir>/LOCK meanwhile (a server cannot start), but creates no LOCK file.
 * Checks PRAGMA integrity_check of durable.db; every op log segment's
 * records and CRCs, rotation headers and the sequence; that the log starts
 * and ends where durable.db's meta says; every checkpoint row (CRC, parses,
 * names its own id and op number); that every session folds, through the
 * first half of gd_store_recover without its writes; the KV view through
 * kv->verify (NULL skips it); and lists quarantined sessions. A torn tail
 * is a warning, as it is for recovery. Reports through sink (main thread,
 * synchronously). Returns 0 when the check ran (counts says what it found),
 * -EBUSY when a server holds the directory, -ENOENT / -ENOTDIR when dir is
 * not a directory, or another -errno. */
int gd_store_verify(const char *dir, const gd_kv_ops *kv, const gd_verify_sink *sink,
                    gd_verify_counts *counts);
/* Calls fn for each session id in the durable store and the KV view.
 * Startup only, before gd_store_start. */
int gd_store_each_id(gd_store *st, void (*fn)(void *arg, const char *id), void *arg);
int gd_store_start(gd_store *st);
/* Stops the threads after every queued job has run, then frees everything.
 * Jobs still in the done queue are freed without their callbacks; call
 * gd_store_stop_intake and drain first so that none are left. NULL ok. */
void gd_store_close(gd_store *st);
/* From now on submitted jobs are not run: they go straight to the done
 * queue with rc -ECANCELED (their callbacks still run at the next drain). */
void gd_store_stop_intake(gd_store *st);

/* Loop thread. Takes ownership of job until its done callback runs. */
void gd_store_submit(gd_store *st, gd_job *job);
/* Loop thread: runs the done callbacks of finished jobs. Returns how many. */
int gd_store_drain(gd_store *st);
/* Number of jobs submitted and not yet drained. */
int gd_store_pending(gd_store *st);
void gd_store_get_stats(gd_store *st, gd_store_stats *out);

gd_job *gd_job_new(gd_job_type type);
/* Appends a row; takes ownership of text. 0 or -ENOMEM (text is freed). */
int gd_job_add_row(gd_job *job, gd_row_kind kind, const char *id, int64_t opno, char *text,
                   size_t len);
void gd_job_free(gd_job *job);

int64_t gd_now_us(void); /* monotonic */
int64_t gd_now_ms(void); /* wall clock, ms since the epoch */

#endif
