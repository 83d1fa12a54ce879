/*
 * fuzz_recovery — libFuzzer target for recovery and loads over damaged data
 * directories.
 *
 * The input drives, first, a workload through the real store: up to three
 * sessions created by checkpoint rows, group commits of 1-6 rows (ops of
 * several kinds through gd_op_write_compact, and checkpoints), KV view
 * writes, with 600-byte log segments so that the log rotates and trims. An
 * oracle keeps every session's record after each of its ops. Then the rest
 * of the input damages the stopped data directory: bit flips in any segment
 * or in durable.db or kv.db, truncation of a segment that is not the last,
 * deleted, duplicated and swapped segments, a checkpoint row that does not
 * parse, a KV value that disagrees. Then the store is opened, recovered and
 * every session loaded.
 *
 * The rule: refuse (an error anywhere on the way) or quarantine, never
 * silently drop or invent. When recovery and a load succeed, the session is
 * exactly its oracle state after one of its own ops, at or after the last
 * one acknowledged; only the final batch, which a crash could have torn, may
 * be missing. Damage that no format can see is left out (a deleted or
 * shortened last segment looks like a log that ended there).
 *
 * Before recovery, gd_store_verify checks the damaged directory: it must
 * change nothing, and a directory it finds clean must open, recover and
 * load every session (grooved verify never calls damage clean).
 *
 * Built with clang by `make fuzz`; fuzz_replay.c replays the committed
 * corpus (tests/fuzz/corpus-recovery) in every test run. Works in a
 * temporary directory under /dev/shm when it exists.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonw.h"
#include "log.h"
#include "model.h"
#include "op.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSESS 3
#define MAXOPS 256

static const char *const ids[NSESS] = {"3f2504e0-4f89-41d3-9a0c-0305e82c3301",
                                       "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
                                       "1b4e28ba-2fa1-41d2-883f-0016d3cca427"};

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static unsigned byte(input *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

typedef struct oracle {
    bool created, created_acked;
    gd_record rec;
    char *at[MAXOPS + 1]; /* the record written after op k (with serverSeq and opno) */
    int64_t acked;        /* highest op acknowledged: in a batch before the last */
} oracle;

static sem_t done_sem;
static int last_rc;

static void wake(void *arg)
{
    (void)arg;
    sem_post(&done_sem);
}

static void job_done(gd_job *job)
{
    last_rc = job->rc;
    if (job->type == GD_JOB_LOAD) return; /* the caller reads it, then frees */
    gd_job_free(job);
}

/* Submits job and waits for its done callback. */
static int run(gd_store *st, gd_job *job)
{
    job->done = job_done;
    gd_store_submit(st, job);
    while (gd_store_drain(st) == 0)
        sem_wait(&done_sem);
    return last_rc;
}

static char *record_text(const gd_record *r, bool with_seq)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_record_write(&b, r, with_seq);
    return gd_buf_steal(&b, NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int list_segments(const char *dir, char names[][64], int max)
{
    char path[1100];
    snprintf(path, sizeof(path), "%s/log", dir);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max)
        if (strstr(e->d_name, ".log")) snprintf(names[n++], 64, "%.63s", e->d_name);
    if (d) closedir(d);
    /* in order: the names are fixed-width hex */
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            char t[64];
            memcpy(t, names[k], 64);
            memcpy(names[k], names[k - 1], 64);
            memcpy(names[k - 1], t, 64);
        }
    return n;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void flip(const char *path, unsigned where, unsigned bit)
{
    long size = file_size(path);
    if (size <= 0) return;
    int fd = open(path, O_RDWR);
    if (fd < 0) return;
    off_t at = (off_t)(where % (unsigned long)size);
    uint8_t b;
    if (pread(fd, &b, 1, at) == 1) {
        b ^= (uint8_t)(1u << (bit % 8));
        if (pwrite(fd, &b, 1, at) != 1) abort();
    }
    close(fd);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[4096];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n) abort();
    if (in) fclose(in);
    if (out) fclose(out);
}

static void sql(const char *db, const char *stmt, const char *a, const char *b)
{
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK) {
        sqlite3_close(h);
        return;
    }
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(h, stmt, -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, a, -1, SQLITE_TRANSIENT);
        if (b) sqlite3_bind_text(q, 2, b, -1, SQLITE_TRANSIENT);
        sqlite3_step(q);
        sqlite3_finalize(q);
    }
    sqlite3_close(h);
}

/* One op for session o, chosen by the input; applied to the oracle. */
static bool next_op(input *in, oracle *o, gd_op *op)
{
    memset(op, 0, sizeof(*op));
    op->at = 1700000000000 + (int64_t)o->rec.opno;
    switch (byte(in) % 5) {
    case 0:
        op->type = GD_OP_SET_TEMPO;
        op->num = 60 + byte(in) % 120;
        break;
    case 1:
        op->type = GD_OP_SET_SWING;
        op->num = byte(in) % 100;
        break;
    case 2:
        op->type = GD_OP_SET_TRACK_VOLUME;
        op->track_id = strdup("t1");
        op->num = (byte(in) % 101) / 100.0;
        break;
    default:
        op->type = GD_OP_TOGGLE_STEP;
        op->track_id = strdup("t1");
        op->step = (int)(byte(in) % 128);
        break;
    }
    gd_apply_res res;
    gd_op_err err;
    return gd_apply(&o->rec, op, &res, &err) == 0;
}

static void workload(gd_store *st, input *in, oracle * or, int *nsess)
{
    *nsess = 1 + (int)(byte(in) % NSESS);
    int nbatches = 2 + (int)(byte(in) % 40);
    for (int b = 0; b < nbatches && in->n; b++) {
        bool last = b == nbatches - 1 || in->n < 8;
        gd_job *job = gd_job_new(GD_JOB_COMMIT);
        int rows = 1 + (int)(byte(in) % 6);
        for (int r = 0; r < rows; r++) {
            oracle *o = & or [byte(in) % (unsigned)*nsess];
            int id = (int)(o - or);
            if (!o->created) { /* its creation: a checkpoint of opno 0 */
                gd_record_init(&o->rec, ids[id], 1000);
                gd_track *t = gd_track_new();
                t->id = strdup("t1");
                t->name = strdup("Kick");
                t->sample_id = strdup("kick");
                o->rec.state.tracks[o->rec.state.ntracks++] = t;
                o->created = true;
                o->at[0] = record_text(&o->rec, true);
                gd_job_add_row(job, GD_ROW_CKPT, ids[id], 0, strdup(o->at[0]), strlen(o->at[0]));
                continue;
            }
            if (o->rec.opno >= MAXOPS) continue;
            if (byte(in) % 8 == 0) { /* a checkpoint of what it has */
                char *t = record_text(&o->rec, true);
                gd_job_add_row(job, GD_ROW_CKPT, ids[id], (int64_t)o->rec.opno, t, strlen(t));
                continue;
            }
            gd_op op;
            if (!next_op(in, o, &op)) {
                gd_op_clear(&op);
                continue;
            }
            gd_buf c;
            gd_buf_init(&c);
            gd_op_write_compact(&c, &op);
            size_t len;
            char *text = gd_buf_steal(&c, &len);
            gd_job_add_row(job, GD_ROW_OP, ids[id], (int64_t)o->rec.opno, text, len);
            o->at[o->rec.opno] = record_text(&o->rec, true);
            gd_op_clear(&op);
        }
        if (run(st, job) != 0) abort(); /* the workload itself must commit */
        if (!last)                      /* acknowledged: only the final batch may be torn away */
            for (int i = 0; i < *nsess; i++) {
                or [i].acked = or [i].created ? (int64_t) or [i].rec.opno : -1;
                or [i].created_acked = or [i].created;
            }
        if (byte(in) % 4 == 0) { /* a KV view write of what is durable */
            oracle *o = & or [byte(in) % (unsigned)*nsess];
            if (o->created) {
                gd_job *kv = gd_job_new(GD_JOB_KV_PUT);
                snprintf(kv->id, sizeof(kv->id), "%s", o->rec.id);
                kv->text = record_text(&o->rec, false);
                kv->len = strlen(kv->text);
                kv->updated_at = o->rec.updated_at;
                kv->ckpt_opno = (int64_t)o->rec.opno;
                run(st, kv);
            }
        }
    }
}

static void damage(const char *dir, input *in, oracle * or, int nsess)
{
    char segs[64][64], path[1200], other[1200], db[1100], kv[1100];
    snprintf(db, sizeof(db), "%s/durable.db", dir);
    snprintf(kv, sizeof(kv), "%s/kv.db", dir);
    int ndamage = (int)(byte(in) % 4);
    for (int d = 0; d < ndamage; d++) {
        int n = list_segments(dir, segs, 64);
        unsigned kind = byte(in) % 9, which = byte(in), where = byte(in) << 8 | byte(in);
        unsigned bit = byte(in);
        if (n) snprintf(path, sizeof(path), "%s/log/%s", dir, segs[which % (unsigned)n]);
        switch (kind) {
        case 0: /* bit rot in the log */
            if (n) flip(path, where, bit);
            break;
        case 1: /* a segment that is not the last loses its end */
            if (n > 1) {
                snprintf(path, sizeof(path), "%s/log/%s", dir, segs[which % (unsigned)(n - 1)]);
                long size = file_size(path);
                if (size > 0 && truncate(path, (off_t)(where % (unsigned long)size)) != 0) abort();
            }
            break;
        case 2: /* a segment that is not the last disappears */
            if (n > 1) {
                snprintf(path, sizeof(path), "%s/log/%s", dir, segs[which % (unsigned)(n - 1)]);
                unlink(path);
            }
            break;
        case 3: /* a segment is duplicated after the last */
            if (n) {
                unsigned long long hi = strtoull(segs[n - 1], NULL, 16);
                snprintf(other, sizeof(other), "%s/log/%016llx.log", dir, hi + 1);
                copy_file(path, other);
            }
            break;
        case 4: /* two segments swap their contents */
            if (n > 1 && bit % (unsigned)n != which % (unsigned)n) {
                snprintf(other, sizeof(other), "%s/log/%s", dir, segs[bit % (unsigned)n]);
                char tmp[1300];
                snprintf(tmp, sizeof(tmp), "%s.swap", path);
                if (rename(path, tmp) != 0 || rename(other, path) != 0 || rename(tmp, other) != 0)
                    abort();
            }
            break;
        case 5: /* bit rot in the checkpoint database */
            flip(db, where * 7u, bit);
            break;
        case 6: /* a checkpoint row that does not parse */
            sql(db,
                "UPDATE sessions SET record = substr(record, 1, length(record) / 2) WHERE id = ?1",
                ids[which % (unsigned)nsess], NULL);
            break;
        case 7: { /* a KV value that disagrees with the durable store */
            oracle *o = & or [which % (unsigned) nsess];
            if (!o->created) break;
            gd_record r;
            gd_record_copy(&r, &o->rec);
            r.state.tempo = 61;
            char *t = record_text(&r, false);
            sql(kv, "UPDATE kv SET value = ?2 WHERE id = ?1", o->rec.id, t);
            free(t);
            gd_record_clear(&r);
            break;
        }
        default: /* bit rot in the KV view */
            flip(kv, where * 3u, bit);
            break;
        }
    }
}

static uint64_t digest; /* FNV-1a of the names and contents nftw visits */

static int digest_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(path);
    if (flag != FTW_F || (n > 4 && strcmp(path + n - 4, "-shm") == 0)) return 0;
    for (size_t i = 0; i < n; i++)
        digest = (digest ^ (uint8_t)path[i]) * 0x100000001b3ull;
    FILE *f = fopen(path, "rb");
    int c;
    while (f && (c = fgetc(f)) != EOF)
        digest = (digest ^ (uint8_t)c) * 0x100000001b3ull;
    if (f) fclose(f);
    return 0;
}

/* Every file but SQLite's -shm index, in the order nftw walks them. */
static uint64_t dir_digest(const char *dir)
{
    digest = 0xcbf29ce484222325ull;
    nftw(dir, digest_file, 16, FTW_PHYS);
    return digest;
}

static void quiet_line(void *arg, gd_verify_level level, const char *subject, const char *text)
{
    (void)arg;
    (void)level;
    (void)subject;
    (void)text;
}

static void check(const char *dir, oracle * or, int nsess)
{
    /* grooved verify agrees with recovery: it changes nothing, and what it
     * finds clean opens, recovers and loads every session. */
    uint64_t before = dir_digest(dir);
    gd_verify_counts vc;
    gd_verify_sink sink = {.line = quiet_line};
    if (gd_store_verify(dir, &gd_kv_sqlite, &sink, &vc) != 0) abort();
    if (dir_digest(dir) != before) abort(); /* verify wrote something */
    bool clean = vc.damage == 0;
    gd_store *st;
    if (gd_store_open(&st, dir, &gd_kv_sqlite, NULL, wake, NULL) != 0) {
        if (clean) abort(); /* verify missed what stops the server */
        return;             /* refused */
    }
    if (gd_store_recover(st, GD_DAMAGE_REFUSE, NULL) != 0 || gd_store_start(st) != 0) {
        if (clean) abort(); /* verify missed what recovery refuses */
        gd_store_close(st);
        return; /* refused */
    }
    for (int i = 0; i < nsess; i++) {
        oracle *o = & or [i];
        gd_job *job = gd_job_new(GD_JOB_LOAD);
        snprintf(job->id, sizeof(job->id), "%s", ids[i]);
        int rc = run(st, job);
        if (rc != 0 && clean) abort(); /* verify missed what fails a load */
        if (rc == 0) {
            if (job->source == GD_SRC_NONE || job->source == GD_SRC_KV) {
                /* Nothing durable of it: only an unacknowledged creation may vanish. */
                if (o->created_acked) abort();
            } else {
                int64_t k = (int64_t)job->rec.opno;
                if (!o->created || k < o->acked || k > (int64_t)o->rec.opno || !o->at[k])
                    abort(); /* an acknowledged op was dropped, or one invented */
                char *got = record_text(&job->rec, true);
                if (strcmp(got, o->at[k]) != 0) abort(); /* not the state after op k */
                free(got);
            }
        }
        gd_job_free(job);
    }
    gd_store_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[256];
    static bool ready;
    if (!ready) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof(dir), "%s/grooved-fuzz-recovery-%d", base, (int)getpid());
        setenv("GROOVED_LOG_SEGMENT_BYTES", "600", 1);
        sem_init(&done_sem, 0, 0);
        gd_log_level = GD_LOG_ERROR - 1; /* quiet: damage is expected */
        ready = true;
    }
    rm_rf(dir);
    input in = {data, size};
    oracle or [NSESS];
    memset(or, 0, sizeof(or));
    for (int i = 0; i < NSESS; i++) {
        gd_state_init(& or [i].rec.state);
        or [i].acked = -1;
    }
    int nsess = 0;
    gd_store *st;
    if (gd_store_open(&st, dir, &gd_kv_sqlite, NULL, wake, NULL) != 0 ||
        gd_store_recover(st, GD_DAMAGE_REFUSE, NULL) != 0 || gd_store_start(st) != 0)
        abort();
    workload(st, &in, or, &nsess);
    gd_store_close(st);
    damage(dir, &in, or, nsess);
    check(dir, or, nsess);
    for (int i = 0; i < NSESS; i++) {
        for (int k = 0; k <= MAXOPS; k++)
            free(or [i].at[k]);
        gd_record_clear(& or [i].rec);
    }
    rm_rf(dir);
    return 0;
}
