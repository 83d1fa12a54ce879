/*
 * store — see store.h: the jobs, the two lanes and the KV view around a
 * durable-store backend (store_local.c: op log + SQLite checkpoints, the
 * default; store_pg.c: PostgreSQL). This file knows no storage format.
 *
 * Fault injection (tests): while the file named by GROOVED_FAULT_FILE
 * exists every commit fails with -EIO before reaching the backend;
 * GROOVED_KV_FAULT_FILE does the same for KV view writes;
 * GROOVED_TEST_LOAD_DELAY_MS makes every load sleep that long first (what
 * may happen while a load is slow). faults.h has finer sites.
 */
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "faults.h"
#include "idset.h"
#include "log.h"
#include "oplog.h"

enum { LANE_COMMIT = 0, LANE_READ = 1, NLANES };

typedef struct lane {
    gd_store *st;
    pthread_t thread;
    bool started;
    pthread_cond_t cv; /* with st->mu */
    gd_job *head, *tail;
    int id;
} lane;

/* A KV view the read lane must rewrite from the durable store. */
typedef struct behind {
    char id[37];
    int64_t due_ms; /* monotonic */
    int attempts;   /* failed writes so far */
} behind;

struct gd_store {
    const gd_durable_ops *ops;
    gd_durable *d;
    const gd_kv_ops *kv;
    void *kv_ctx; /* read lane (startup: the loop, before the lanes run) */
    void (*wake)(void *);
    void *wake_arg;
    const char *fault_file;    /* tests: commits fail while this file exists */
    const char *kv_fault_file; /* tests: KV view writes fail while this file exists */
    int load_delay_ms;         /* tests: each load sleeps this long first */
    gd_job_done_fn on_taken;   /* see gd_store_config */
    void *on_taken_arg;

    /* Read lane. */
    behind *behind;
    size_t nbehind, capbehind;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    lane lanes[NLANES];
    gd_job *done_head, *done_tail;
    bool stopping, intake_stopped;
    int pending;
    gd_store_stats stats;
};

static void *lane_main(void *arg);
static void run_commit(gd_store *st, gd_job *job);
static void run_load(gd_store *st, gd_job *job);
static void run_kv_put(gd_store *st, gd_job *job);
static void run_kv_list(gd_store *st, gd_job *job);
static void rewrite_behind(gd_store *st, behind *b);
static void mark_behind(gd_store *st, const char *id, int rc);

int64_t gd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t gd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t monotonic_ms(void)
{
    return gd_now_us() / 1000;
}

gd_job *gd_job_new(gd_job_type type)
{
    gd_job *job = calloc(1, sizeof(*job));
    if (job) job->type = type;
    return job;
}

int gd_job_add_row(gd_job *job, gd_row_kind kind, const char *id, int64_t opno, char *text,
                   size_t len)
{
    if (job->nrows == job->caprows) {
        size_t cap = job->caprows ? job->caprows * 2 : 16;
        gd_row *rows = realloc(job->rows, cap * sizeof(*rows));
        if (!rows) {
            free(text);
            return -ENOMEM;
        }
        job->rows = rows;
        job->caprows = cap;
    }
    gd_row *r = &job->rows[job->nrows++];
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->opno = opno;
    r->text = text;
    r->len = len;
    job->bytes += len;
    return 0;
}

void gd_job_free(gd_job *job)
{
    if (!job) return;
    for (size_t i = 0; i < job->nrows; i++)
        free(job->rows[i].text);
    free(job->rows);
    free(job->pinned);
    free(job->fenced);
    free(job->taken_epochs);
    free(job->text);
    gd_record_clear(&job->rec);
    free(job);
}

int gd_job_note_session(char (**list)[37], int *n, const char *id)
{
    if (*n >= GD_MAX_PINNED) return -ENOSPC;
    if (!*list && !(*list = calloc(GD_MAX_PINNED, sizeof(**list)))) return -ENOMEM;
    snprintf((*list)[(*n)++], 37, "%s", id);
    return 0;
}

int gd_checkpoint_parse(const char *text, size_t len, bool has_crc, uint32_t crc, const char *id,
                        int64_t opno, gd_record *rec, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *j = NULL;
    int rc = -EBADMSG;
    if (!text) {
        snprintf(why, whylen, "the checkpoint is empty");
    } else if (has_crc && gd_crc32((const uint8_t *)text, len) != crc) {
        snprintf(why, whylen, "the checkpoint fails its CRC");
    } else if (!(j = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &jerr))) {
        snprintf(why, whylen, "the checkpoint does not parse: %s (at byte %d)", jerr.text,
                 jerr.position);
    } else if (gd_record_from_json(j, rec) != 0) {
        snprintf(why, whylen, "the checkpoint is not a valid session record");
    } else if (strcmp(rec->id, id) != 0 || (int64_t)rec->opno != opno) {
        snprintf(why, whylen, "the checkpoint names session %s at op %llu", rec->id,
                 (unsigned long long)rec->opno);
        gd_record_clear(rec);
    } else {
        rc = 0;
    }
    json_decref(j);
    return rc;
}

/* ---- opening ---------------------------------------------------------- */

const gd_durable_ops *gd_durable_find(const char *store)
{
    if (!store || !*store || strcmp(store, "local") == 0) return &gd_durable_local;
    if (strncmp(store, "postgres://", 11) == 0 || strncmp(store, "postgresql://", 13) == 0)
        return &gd_durable_postgres;
    return NULL;
}

int gd_store_open(gd_store **out, const gd_store_config *cfg)
{
    *out = NULL;
    const gd_durable_ops *ops = gd_durable_find(cfg->store);
    if (!ops) {
        char shown[1024];
        gd_log_redact_url(shown, sizeof(shown), cfg->store);
        gd_log(GD_LOG_ERROR, "store: unknown durable store '%s'", shown);
        return -EINVAL;
    }
    gd_store *st = calloc(1, sizeof(*st));
    if (!st) return -ENOMEM;
    pthread_mutex_init(&st->mu, NULL);
    for (int i = 0; i < NLANES; i++) {
        st->lanes[i].st = st;
        st->lanes[i].id = i;
        pthread_cond_init(&st->lanes[i].cv, NULL);
    }
    st->ops = ops;
    st->kv = cfg->kv;
    st->wake = cfg->wake;
    st->wake_arg = cfg->wake_arg;
    st->on_taken = cfg->on_taken;
    st->on_taken_arg = cfg->on_taken_arg;
    st->fault_file = getenv("GROOVED_FAULT_FILE");
    st->kv_fault_file = getenv("GROOVED_KV_FAULT_FILE");
    const char *delay = getenv("GROOVED_TEST_LOAD_DELAY_MS");
    st->load_delay_ms = delay ? atoi(delay) : 0;
    const char *where = ops == &gd_durable_local ? cfg->data_dir : cfg->store;
    int rc = ops->open(&st->d, where, cfg->node_id);
    /* A SQLite view beside a remote durable store still lives in data_dir. */
    if (rc == 0 && !cfg->kv_where && ops != &gd_durable_local && mkdir(cfg->data_dir, 0755) != 0 &&
        errno != EEXIST)
        rc = -errno;
    if (rc == 0) rc = st->kv->open(&st->kv_ctx, cfg->kv_where ? cfg->kv_where : cfg->data_dir);
    if (rc) {
        gd_store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

typedef struct each_ctx {
    void (*fn)(void *arg, const char *id);
    void *arg;
} each_ctx;

static void each_kv_id(void *arg, const char *id, int64_t opno)
{
    (void)opno;
    each_ctx *e = arg;
    e->fn(e->arg, id);
}

int gd_store_each_id(gd_store *st, void (*fn)(void *arg, const char *id), void *arg)
{
    int rc = st->ops->each_id(st->d, fn, arg);
    if (rc) return rc;
    each_ctx e = {fn, arg};
    rc = st->kv->each_id(st->kv_ctx, each_kv_id, &e);
    if (rc != 0 && st->kv->reachable) {
        gd_log(GD_LOG_WARN,
               "store: the KV view (%s) cannot be listed now (%s); sessions that only it holds "
               "stay unknown here until the next start",
               st->kv->name, strerror(-rc));
        rc = 0;
    }
    return rc;
}

typedef struct kv_opnos {
    gd_store *st;
    gd_idset opno; /* id -> opno the KV view holds */
    bool all;      /* the view cannot be read: every one is behind */
    size_t behind;
} kv_opnos;

static void note_kv_opno(void *arg, const char *id, int64_t opno)
{
    kv_opnos *k = arg;
    gd_idset_put(&k->opno, id, opno);
}

static void note_checkpoint(void *arg, const char *id, int64_t opno)
{
    kv_opnos *k = arg;
    int64_t kv;
    if (k->all || !gd_idset_get(&k->opno, id, &kv) || kv < opno) {
        mark_behind(k->st, id, 0);
        k->behind++;
    }
}

/* Queues a rewrite of every KV view that is behind its durable checkpoint
 * (a write that failed, or was lost with the page cache: kv.db is written
 * with synchronous=NORMAL; or recovery just folded the log into newer
 * checkpoints). The read lane does them once it runs. */
static int find_behind_views(gd_store *st)
{
    kv_opnos k = {.st = st};
    gd_idset_init(&k.opno);
    int rc = st->kv->each_id(st->kv_ctx, note_kv_opno, &k);
    if (rc != 0 && st->kv->reachable) {
        /* A view server that is down: which views are behind cannot be
         * told, so all are rewritten once it is back (a put never replaces
         * a newer value). */
        gd_log(GD_LOG_WARN,
               "recovery: the KV view (%s) cannot be read now (%s); rewriting every "
               "session's view once it is reachable",
               st->kv->name, strerror(-rc));
        k.all = true;
        rc = 0;
    }
    if (rc == 0) rc = st->ops->each_checkpoint(st->d, note_checkpoint, &k);
    gd_idset_free(&k.opno);
    if (k.behind)
        gd_log(GD_LOG_INFO, "recovery: %zu KV views are behind; rewriting them", k.behind);
    return rc;
}

int gd_store_recover(gd_store *st, gd_damage_policy policy, size_t *quarantined)
{
    int rc = st->ops->recover(st->d, policy, quarantined);
    return rc ? rc : find_behind_views(st);
}

/* ---- operator garbage collection -------------------------------------- */

typedef struct gc_ctx {
    gd_store *st;
    int64_t cutoff;
    gd_idset durable; /* ids the durable store has */
    char (*old)[37];
    size_t nold, capold;
} gc_ctx;

static void gc_note(gc_ctx *g, const char *id)
{
    if (g->nold == g->capold) {
        size_t cap = g->capold ? g->capold * 2 : 64;
        char(*p)[37] = realloc(g->old, cap * sizeof(*p));
        if (!p) return;
        g->old = p;
        g->capold = cap;
    }
    snprintf(g->old[g->nold++], 37, "%s", id);
}

static void gc_durable_id(void *arg, const char *id)
{
    gd_idset_add(&((gc_ctx *)arg)->durable, id);
}

static void gc_removed(void *arg, const char *id)
{
    gc_note(arg, id);
}

/* KV-only sessions (never live here) are judged by their KV value. */
static void gc_kv_id(void *arg, const char *id, int64_t opno)
{
    (void)opno;
    gc_ctx *g = arg;
    char *text = NULL;
    if (gd_idset_has(&g->durable, id) || g->st->kv->get(g->st->kv_ctx, id, &text) != 0) return;
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_INT_AS_REAL, &e);
    json_t *la = json_object_get(j, "lastAccessedAt");
    if (!la) la = json_object_get(j, "updatedAt");
    if (json_is_number(la) && json_number_value(la) < (double)g->cutoff) gc_note(g, id);
    json_decref(j);
    free(text);
}

int gd_store_gc(gd_store *st, int64_t cutoff_ms, bool dry_run, size_t *removed)
{
    gc_ctx g = {.st = st, .cutoff = cutoff_ms};
    gd_idset_init(&g.durable);
    int rc = st->ops->each_id(st->d, gc_durable_id, &g);
    /* The durable store first: the view is only ever behind it. */
    if (rc == 0) rc = st->ops->gc(st->d, cutoff_ms, dry_run, gc_removed, &g);
    size_t ndurable = g.nold;
    if (rc == 0) rc = st->kv->each_id(st->kv_ctx, gc_kv_id, &g);
    for (size_t i = 0; rc == 0 && !dry_run && i < g.nold; i++)
        if (st->kv->del(st->kv_ctx, g.old[i]) != 0)
            gd_log(GD_LOG_WARN, "gc: KV value of %s not removed", g.old[i]);
    for (size_t i = 0; i < g.nold; i++)
        printf("%s %s%s\n", dry_run ? "would remove" : "removed", g.old[i],
               i >= ndurable ? " (KV view only)" : "");
    *removed = g.nold;
    free(g.old);
    gd_idset_free(&g.durable);
    return rc;
}

/* ---- lanes ------------------------------------------------------------ */

int gd_store_start(gd_store *st)
{
    for (int i = 0; i < NLANES; i++) {
        int rc = pthread_create(&st->lanes[i].thread, NULL, lane_main, &st->lanes[i]);
        if (rc != 0) return -rc;
        st->lanes[i].started = true;
    }
    return 0;
}

void gd_store_close(gd_store *st)
{
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    for (int i = 0; i < NLANES; i++)
        pthread_cond_signal(&st->lanes[i].cv);
    pthread_mutex_unlock(&st->mu);
    for (int i = 0; i < NLANES; i++)
        if (st->lanes[i].started) pthread_join(st->lanes[i].thread, NULL);
    for (gd_job *j = st->done_head, *n; j; j = n) {
        n = j->next;
        gd_job_free(j);
    }
    if (st->nbehind)
        gd_log(GD_LOG_WARN,
               "store: %zu KV views are behind the durable store; they are rewritten at the "
               "next start",
               st->nbehind);
    free(st->behind);
    if (st->d) st->ops->close(st->d);
    if (st->kv_ctx) st->kv->close(st->kv_ctx);
    for (int i = 0; i < NLANES; i++)
        pthread_cond_destroy(&st->lanes[i].cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Caller holds mu. */
static void push_done(gd_store *st, gd_job *job)
{
    job->next = NULL;
    if (st->done_tail)
        st->done_tail->next = job;
    else
        st->done_head = job;
    st->done_tail = job;
}

void gd_store_stop_intake(gd_store *st)
{
    pthread_mutex_lock(&st->mu);
    st->intake_stopped = true;
    pthread_mutex_unlock(&st->mu);
}

void gd_store_submit(gd_store *st, gd_job *job)
{
    job->next = NULL;
    job->submitted_us = gd_now_us();
    lane *l = &st->lanes[job->type == GD_JOB_COMMIT ? LANE_COMMIT : LANE_READ];
    pthread_mutex_lock(&st->mu);
    st->pending++;
    if (st->intake_stopped) {
        job->rc = -ECANCELED;
        job->finished_us = job->submitted_us;
        push_done(st, job);
        pthread_mutex_unlock(&st->mu);
        if (st->wake) st->wake(st->wake_arg);
        return;
    }
    if (l->tail)
        l->tail->next = job;
    else
        l->head = job;
    l->tail = job;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&st->mu);
}

int gd_store_drain(gd_store *st)
{
    pthread_mutex_lock(&st->mu);
    gd_job *list = st->done_head;
    st->done_head = st->done_tail = NULL;
    pthread_mutex_unlock(&st->mu);
    int n = 0;
    while (list) {
        gd_job *next = list->next;
        pthread_mutex_lock(&st->mu);
        st->pending--;
        pthread_mutex_unlock(&st->mu);
        list->next = NULL;
        list->done(list);
        list = next;
        n++;
    }
    return n;
}

int gd_store_pending(gd_store *st)
{
    pthread_mutex_lock(&st->mu);
    int n = st->pending;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void gd_store_get_stats(gd_store *st, gd_store_stats *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->stats;
    pthread_mutex_unlock(&st->mu);
}

/* The read lane's earliest due KV rewrite (monotonic ms), or -1. */
static int64_t next_behind_due(const gd_store *st, size_t *at)
{
    int64_t due = -1;
    for (size_t i = 0; i < st->nbehind; i++) {
        if (due < 0 || st->behind[i].due_ms < due) {
            due = st->behind[i].due_ms;
            *at = i;
        }
    }
    return due;
}

static void note_taken(void *arg, const char *id, int64_t epoch)
{
    gd_job **job = arg;
    if (!*job && (*job = gd_job_new(GD_JOB_TAKEN)) &&
        !((*job)->taken_epochs = calloc(GD_MAX_PINNED, sizeof(int64_t)))) {
        gd_job_free(*job);
        *job = NULL;
    }
    if (!*job) return;
    int n = (*job)->nfenced;
    if (gd_job_note_session(&(*job)->fenced, &(*job)->nfenced, id) == 0)
        (*job)->taken_epochs[n] = epoch;
}

/* Read lane: hands the loop the sessions other nodes took meanwhile. */
static void poll_taken(gd_store *st)
{
    if (!st->ops->poll_taken || !st->on_taken) return;
    gd_job *job = NULL;
    st->ops->poll_taken(st->d, note_taken, &job);
    if (!job) return;
    job->done = st->on_taken;
    job->arg = st->on_taken_arg;
    job->submitted_us = job->finished_us = gd_now_us();
    pthread_mutex_lock(&st->mu);
    st->pending++;
    push_done(st, job);
    pthread_mutex_unlock(&st->mu);
    st->wake(st->wake_arg);
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    gd_store *st = l->st;
    /* The read lane looks for takeovers at least every 250 ms. */
    bool polls = l->id == LANE_READ && st->ops->poll_taken && st->on_taken;
    for (;;) {
        size_t due_at = 0;
        if (polls) poll_taken(st);
        pthread_mutex_lock(&st->mu);
        for (;;) {
            if (l->head || st->stopping) break;
            int64_t due = l->id == LANE_READ ? next_behind_due(st, &due_at) : -1;
            if (polls && (due < 0 || due > monotonic_ms() + 250)) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 250 * 1000000;
                if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
                pthread_cond_timedwait(&l->cv, &st->mu, &ts);
                break; /* poll again, then come back */
            }
            if (due >= 0 && due <= monotonic_ms()) break;
            if (due < 0) {
                pthread_cond_wait(&l->cv, &st->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                int64_t wait_ms = due - monotonic_ms();
                ts.tv_sec += wait_ms / 1000;
                ts.tv_nsec += (wait_ms % 1000) * 1000000;
                if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
                pthread_cond_timedwait(&l->cv, &st->mu, &ts);
            }
        }
        gd_job *job = l->head;
        if (job) {
            l->head = job->next;
            if (!l->head) l->tail = NULL;
        }
        bool stop = !job && st->stopping;
        pthread_mutex_unlock(&st->mu);
        if (stop) return NULL;
        if (!job) { /* a KV view to rewrite, and nothing else to do */
            int64_t due = l->id == LANE_READ ? next_behind_due(st, &due_at) : -1;
            if (due >= 0 && due <= monotonic_ms()) rewrite_behind(st, &st->behind[due_at]);
            continue;
        }
        switch (job->type) {
        case GD_JOB_COMMIT:
            run_commit(st, job);
            break;
        case GD_JOB_LOAD:
            run_load(st, job);
            break;
        case GD_JOB_KV_PUT:
            run_kv_put(st, job);
            break;
        case GD_JOB_KV_LIST:
            run_kv_list(st, job);
            break;
        case GD_JOB_TAKEN: /* never submitted */
            break;
        }
        job->finished_us = gd_now_us();
        pthread_mutex_lock(&st->mu);
        push_done(st, job);
        pthread_mutex_unlock(&st->mu);
        st->wake(st->wake_arg);
    }
}

/* ---- commits and loads ------------------------------------------------ */

static void run_commit(gd_store *st, gd_job *job)
{
    uint64_t bytes = 0;
    if (gd_fault("commit-delay")) usleep(2000 * 1000); /* tests: hold a batch back */
    if (st->fault_file && access(st->fault_file, F_OK) == 0) {
        gd_log(GD_LOG_WARN, "store: injected commit failure (%s exists)", st->fault_file);
        job->rc = -EIO;
    } else {
        st->ops->commit(st->d, job, &bytes);
    }
    pthread_mutex_lock(&st->mu);
    if (job->rc == 0) {
        st->stats.commits++;
        st->stats.rows += job->nrows;
        st->stats.bytes += bytes;
    } else {
        st->stats.commit_failures++;
    }
    pthread_mutex_unlock(&st->mu);
}

/* Loads one session: the durable store first (which makes this node its
 * owner, where the backend has owners), the KV view for sessions that were
 * never live. Anything that exists but cannot be read fails. */
static void run_load(gd_store *st, gd_job *job)
{
    char why[512] = "";
    if (st->load_delay_ms) usleep((useconds_t)st->load_delay_ms * 1000);
    gd_durable_load out = {.rec = &job->rec};
    job->source = GD_SRC_NONE;
    int rc = st->ops->load(st->d, job->id, true, &out, why, sizeof(why));
    job->ckpt_opno = out.ckpt_opno;
    job->replayed = out.replayed;
    job->epoch = out.epoch;
    if (rc == 0 && out.found) {
        job->source = GD_SRC_DURABLE;
    } else if (rc == 0) {
        char *text = NULL;
        rc = st->kv->get(st->kv_ctx, job->id, &text);
        if (rc == 0) {
            rc = gd_record_from_text(job->id, text, strlen(text), &job->rec);
            if (rc == 0) {
                job->source = GD_SRC_KV;
                job->rec.opno = 0;
            } else {
                snprintf(why, sizeof(why), "its KV view value (%s) does not parse",
                         st->kv == &gd_kv_sqlite ? "kv.db" : st->kv->name);
            }
        } else if (rc == -ENOENT) {
            rc = 0;
        }
        free(text);
    }
    if (rc == -EBADMSG || rc == -EUCLEAN)
        gd_log(GD_LOG_ERROR, "session %s: stored data cannot be read, load refused: %s", job->id,
               why);
    job->rc = rc;
    pthread_mutex_lock(&st->mu);
    st->stats.loads++;
    if (rc) st->stats.load_failures++;
    pthread_mutex_unlock(&st->mu);
}

/* ---- the KV view ------------------------------------------------------ */

static void run_kv_list(gd_store *st, gd_job *job)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_puts(&b, "{\"sessions\":[");
    job->rc = st->kv->list(st->kv_ctx, job->updated_at, job->id, job->limit, &b, &job->next_at,
                           job->next_id);
    gd_buf_puts(&b, "],\"nextCursor\":");
    if (job->next_id[0])
        gd_buf_printf(&b, "\"%lld.%s\"}", (long long)job->next_at, job->next_id);
    else
        gd_buf_puts(&b, "null}");
    if (b.oom) job->rc = -ENOMEM;
    job->text = gd_buf_steal(&b, &job->len);
}

static int kv_write(gd_store *st, const char *id, const char *text, size_t len, int64_t updated_at,
                    int64_t opno)
{
    if (st->kv_fault_file && access(st->kv_fault_file, F_OK) == 0) return -EIO;
    return st->kv->put(st->kv_ctx, id, text, len, updated_at, opno);
}

static behind *find_behind(gd_store *st, const char *id)
{
    for (size_t i = 0; i < st->nbehind; i++)
        if (strcmp(st->behind[i].id, id) == 0) return &st->behind[i];
    return NULL;
}

static void drop_behind(gd_store *st, behind *b)
{
    *b = st->behind[--st->nbehind];
    pthread_mutex_lock(&st->mu);
    st->stats.kv_behind = st->nbehind;
    pthread_mutex_unlock(&st->mu);
}

/* Remembers that id's KV view is behind; the read lane rewrites it from the
 * durable store after a backoff of 0.5 s, doubling to 32 s (at once when rc
 * is 0: found behind, not failed). */
static void mark_behind(gd_store *st, const char *id, int rc)
{
    behind *b = find_behind(st, id);
    if (!b) {
        if (st->nbehind == st->capbehind) {
            size_t cap = st->capbehind ? st->capbehind * 2 : 16;
            behind *p = realloc(st->behind, cap * sizeof(*p));
            if (!p) {
                gd_log(GD_LOG_ERROR, "session %s: KV view left behind (out of memory)", id);
                return;
            }
            st->behind = p;
            st->capbehind = cap;
        }
        b = &st->behind[st->nbehind++];
        snprintf(b->id, sizeof(b->id), "%s", id);
        b->attempts = 0;
    }
    int64_t backoff = 0;
    if (rc) {
        b->attempts++;
        backoff = 500LL << (b->attempts < 7 ? b->attempts - 1 : 6); /* 0.5 s .. 32 s */
        gd_log(GD_LOG_WARN,
               "session %s: KV view write failed (%s, attempt %d); retrying in %lld ms", id,
               strerror(-rc), b->attempts, (long long)backoff);
    }
    b->due_ms = monotonic_ms() + backoff;
    pthread_mutex_lock(&st->mu);
    st->stats.kv_behind = st->nbehind;
    if (rc) st->stats.kv_failures++;
    pthread_mutex_unlock(&st->mu);
}

/* One attempt: a failed KV write is retried later from the durable store
 * (rewrite_behind), never by sleeping here. */
static void run_kv_put(gd_store *st, gd_job *job)
{
    int rc = kv_write(st, job->id, job->text, job->len, job->updated_at, job->ckpt_opno);
    job->rc = rc;
    if (rc == 0) {
        behind *b = find_behind(st, job->id);
        if (b) drop_behind(st, b);
        gd_log(GD_LOG_INFO, "session %s: KV view written (opno %lld)", job->id,
               (long long)job->ckpt_opno);
        pthread_mutex_lock(&st->mu);
        st->stats.kv_puts++;
        pthread_mutex_unlock(&st->mu);
    } else {
        mark_behind(st, job->id, rc);
    }
}

/* Rewrites one KV view that is behind from the durable state (read, never
 * taken: this node does not become the session's owner). */
static void rewrite_behind(gd_store *st, behind *b)
{
    char id[37], why[512] = "";
    snprintf(id, sizeof(id), "%s", b->id);
    if (st->kv->reachable && st->kv->reachable(st->kv_ctx) != 0) {
        mark_behind(st, id, -EIO); /* no load for a write that cannot be made */
        return;
    }
    gd_record rec;
    memset(&rec, 0, sizeof(rec));
    gd_state_init(&rec.state);
    gd_durable_load out = {.rec = &rec};
    int rc = st->ops->load(st->d, id, false, &out, why, sizeof(why));
    if (rc == 0 && out.found) {
        gd_buf buf;
        gd_buf_init(&buf);
        gd_record_write(&buf, &rec, false);
        rc =
            buf.oom ? -ENOMEM : kv_write(st, id, buf.p, buf.len, rec.updated_at, (int64_t)rec.opno);
        gd_buf_free(&buf);
        if (rc == 0) {
            gd_log(GD_LOG_INFO, "session %s: KV view written (opno %llu)", id,
                   (unsigned long long)rec.opno);
            pthread_mutex_lock(&st->mu);
            st->stats.kv_puts++;
            pthread_mutex_unlock(&st->mu);
        }
    } else if (rc != 0 && rc != -EIO && rc != -ENOMEM) {
        /* Damaged or quarantined: there is nothing right to write. */
        gd_log(GD_LOG_ERROR, "session %s: KV view not rewritten: %s", id, why);
        rc = 0;
    }
    gd_record_clear(&rec);
    b = find_behind(st, id);
    if (!b) return;
    if (rc == 0)
        drop_behind(st, b);
    else
        mark_behind(st, id, rc);
}

void gd_verify_vreport(const gd_verify_sink *sink, gd_verify_counts *counts, gd_verify_level level,
                       const char *subject, const char *fmt, va_list ap)
{
    char text[1400];
    vsnprintf(text, sizeof(text), fmt, ap);
    if (level == GD_VERIFY_DAMAGE)
        counts->damage++;
    else if (level == GD_VERIFY_WARN)
        counts->warnings++;
    else
        counts->ok++;
    sink->line(sink->arg, level, subject, text);
}
