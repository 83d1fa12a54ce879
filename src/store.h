/*
 * store — the durable store and the storage thread that owns it.
 *
 * The durable store has two parts: the op log (oplog.h), append-only segment
 * files that take every accepted op, one write and one fdatasync per group
 * commit; and SQLite in WAL mode with synchronous=FULL, whose table
 * sessions(id, opno, record) holds each session's latest checkpoint. A batch
 * commits when both are on disk. Recovery = checkpoint + replay of later
 * log records through gd_apply.
 *
 * Threads: the loop thread builds gd_jobs and submits them; the storage
 * thread runs them strictly in submission order (FIFO), so a KV write or a
 * load submitted after a commit sees that commit. Finished jobs go to a done
 * queue and the loop is woken through the `wake` callback; the loop calls
 * gd_store_drain, which runs each job's `done` callback on the loop thread.
 * Both queues are guarded by one mutex; nothing else is shared.
 *
 *   loop: submit ──▶ [todo FIFO] ──▶ storage thread: run ──▶ [done] ──wake──▶ loop: drain
 */
#ifndef GD_STORE_H
#define GD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "model.h"

typedef enum { GD_JOB_COMMIT, GD_JOB_LOAD, GD_JOB_KV_PUT, GD_JOB_KV_LIST } gd_job_type;
typedef enum { GD_ROW_OP, GD_ROW_CKPT } gd_row_kind;
typedef enum { GD_SRC_NONE = 0, GD_SRC_DURABLE, GD_SRC_KV, GD_SRC_DEFAULT } gd_load_source;

typedef struct gd_row {
    gd_row_kind kind;
    char id[37];
    int64_t opno;
    char *text; /* owned: op JSON or checkpoint record JSON */
    size_t len;
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

    /* GD_JOB_COMMIT: rows applied in order in one transaction */
    gd_row *rows;
    size_t nrows, caprows;
    size_t bytes;

    /* GD_JOB_LOAD: in id; out rec, source, ckpt_opno */
    char id[37];
    gd_record rec;
    gd_load_source source;
    int64_t ckpt_opno;
    int replayed;

    /* GD_JOB_KV_PUT: id, text (owned), updated_at; ckpt_opno names the version
     * the value holds (for the log).
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

typedef struct gd_store_stats {
    uint64_t commits, commit_failures, rows, bytes, kv_puts, kv_failures, loads;
} gd_store_stats;

/* Opens (creating if needed) the durable store and the KV view in dir.
 * wake(wake_arg) is called from the storage thread after a job finishes.
 * Returns 0 or a negative errno; on success *out is owned by the caller. */
int gd_store_open(gd_store **out, const char *dir, const gd_kv_ops *kv, void (*wake)(void *),
                  void *wake_arg);
/* Crash recovery, startup only, before gd_store_start: folds every log row
 * into its session's checkpoint and refreshes their KV views. 0 or -errno. */
int gd_store_recover(gd_store *st);
/* Operator garbage collection, offline (the data directory is locked):
 * removes every session whose lastAccessedAt is before cutoff_ms from the
 * durable store, then from the KV view; lists them on stdout. Call after
 * gd_store_recover. 0 or -errno; *removed counts them. */
int gd_store_gc(gd_store *st, int64_t cutoff_ms, bool dry_run, size_t *removed);
/* Calls fn for each session id in the durable store and the KV view.
 * Startup only, before gd_store_start. */
int gd_store_each_id(gd_store *st, void (*fn)(void *arg, const char *id), void *arg);
int gd_store_start(gd_store *st);
/* Stops the thread after every queued job has run, then frees everything.
 * Jobs still in the done queue are freed without their callbacks. NULL ok. */
void gd_store_close(gd_store *st);

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
