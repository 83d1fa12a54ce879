/*
 * static — see static.h. The request's life:
 *
 *   NEW ─serve─▶ WORKER(open) ─drain─▶ LOOP: head written ─▶ body done ─▶ completed
 *                                         │        ▲
 *                                         └─▶ WORKER(read next chunk) (file bodies)
 *
 * `busy` (loop thread only) says the worker has the request; while it does,
 * the loop touches only `owner` and the queue link. A connection that closes
 * meanwhile only clears `owner`; drain frees the request when it comes back.
 *
 * Containment: a path is opened by name under the root's realpath, and the
 * descriptor's own path (/proc/self/fd) must lie inside that root; so no
 * symlink, ".." or encoding trick can serve a file from outside it.
 *
 * Compression cache (worker thread only, but for blob refcounts): copies of
 * text files up to COMPRESS_MAX bytes, keyed by (device, inode, size,
 * mtime in ns, coding), at most CACHE_BYTES in all and CACHE_ENTRIES
 * entries, least recently used out first. A changed file has a new key; its
 * stale entry ages out. A blob is refcounted: a response still sending it
 * keeps it alive after eviction.
 */
#define _GNU_SOURCE
#include "static.h"

#include <brotli/encode.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "http_api.h"
#include "log.h"
#include "reqhead.h"
#include "server.h"
#include "webfile.h"

#define CHUNK (64 * 1024)
#define COMPRESS_MAX (8 * 1024 * 1024)
#define CACHE_BYTES (32 * 1024 * 1024)
#define CACHE_ENTRIES 256
/* Brotli quality: on the original UI's 713 KB bundle q9 gives 182 KB in 0.36 s, q11
 * 168 KB in 2.5 s, time the first visitor and every queued file request would
 * wait. Precompressed .br siblings can carry q11. */
#define BROTLI_QUALITY 9
#define URI_MAX 2048
#define NAME_CAP (URI_MAX + 32) /* a path below the root, with "/index.html" or ".br" added */

static const char cc_immutable[] = "public, max-age=31536000, immutable";
static const char cc_revalidate[] = "no-cache";
static const char not_found_body[] = "{\"error\":\"Not found\"}";
static const char bad_path_body[] = "{\"error\":\"Bad path\"}";
static const char too_long_body[] = "{\"error\":\"Path too long\"}";

typedef struct blob {
    atomic_int refs;
    size_t len;
    unsigned char data[];
} blob;

typedef struct cache_entry {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    int enc;
    blob *b; /* one reference held by the cache; NULL = free slot */
    uint64_t used;
} cache_entry;

typedef enum { OP_OPEN, OP_READ, OP_CLOSE } req_op;

struct gd_static_req {
    gd_static_req *next; /* queue link */
    gd_conn *owner;      /* loop thread; NULL once the connection has gone */
    bool busy;           /* loop thread: the worker has it */
    req_op op;

    /* The request (loop → worker). */
    bool head;
    char uri[URI_MAX];
    char accept_encoding[256];
    char if_none_match[512];
    char if_modified_since[64];

    /* The response head (worker → loop). */
    int status;
    const char *type;
    const char *cache_control;
    const char *encoding; /* "br", "gzip" or NULL */
    bool vary;
    char etag[80];
    char last_modified[40];
    uint64_t length; /* of the body */

    /* The body: from fd (read by the worker one chunk at a time), from a
     * cached blob, or from a constant string. */
    int fd;
    blob *b;
    const char *text;
    uint64_t read_off;  /* worker: file bytes read so far */
    uint64_t sent;      /* loop: body bytes written */
    unsigned char *buf; /* LWS_PRE + CHUNK bytes */
    size_t buf_len;     /* bytes ready at buf + LWS_PRE */
    int err;            /* worker: the body cannot be completed */
    bool headers_sent;
};

struct gd_static {
    char root[PATH_MAX];
    void (*wake)(void *); /* guarded by mu; NULL once detached */
    void *wake_arg;
    pthread_t thread;
    bool started;

    pthread_mutex_t mu; /* guards the queues, the flags and wstats below */
    pthread_cond_t cv;
    gd_static_req *todo_head, *todo_tail, *done_head, *done_tail;
    bool stopping;
    bool wake_pending; /* a wakeup is on its way: later finishes need none */
    gd_static_stats wstats;

    gd_static_stats lstats; /* loop thread only */

    cache_entry cache[CACHE_ENTRIES]; /* worker thread only */
    size_t cache_bytes;
    uint64_t cache_tick;
};

/* ---- blobs and the compression cache (worker) -------------------------- */

static blob *blob_new(size_t cap)
{
    blob *b = malloc(sizeof(*b) + (cap ? cap : 1));
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->len = 0;
    return b;
}

static void blob_unref(blob *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}

static cache_entry *cache_find(gd_static *st, const struct stat *sb, int enc)
{
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        cache_entry *e = &st->cache[i];
        if (e->b && e->dev == sb->st_dev && e->ino == sb->st_ino && e->size == sb->st_size &&
            e->mtime_ns == (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec &&
            e->enc == enc) {
            e->used = ++st->cache_tick;
            return e;
        }
    }
    return NULL;
}

static void cache_drop(gd_static *st, cache_entry *e)
{
    st->cache_bytes -= e->b->len;
    blob_unref(e->b);
    e->b = NULL;
}

/* Takes one reference of b into the cache, evicting the least recently used
 * entries until it fits. A blob larger than the whole cache is not kept. */
static void cache_put(gd_static *st, const struct stat *sb, int enc, blob *b)
{
    if (b->len > CACHE_BYTES) return;
    for (;;) {
        cache_entry *lru = NULL, *free_slot = NULL;
        for (int i = 0; i < CACHE_ENTRIES; i++) {
            cache_entry *e = &st->cache[i];
            if (!e->b)
                free_slot = free_slot ? free_slot : e;
            else if (!lru || e->used < lru->used)
                lru = e;
        }
        if (free_slot && st->cache_bytes + b->len <= CACHE_BYTES) {
            atomic_fetch_add(&b->refs, 1);
            *free_slot = (cache_entry){.dev = sb->st_dev,
                                       .ino = sb->st_ino,
                                       .size = sb->st_size,
                                       .mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 +
                                                   sb->st_mtim.tv_nsec,
                                       .enc = enc,
                                       .b = b,
                                       .used = ++st->cache_tick};
            st->cache_bytes += b->len;
            return;
        }
        if (!lru) return;
        cache_drop(st, lru);
    }
}

/* Reads len bytes at off; 0, or -EIO when the file is shorter or fails. */
static int read_full(int fd, unsigned char *dst, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, dst + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -EIO;
        got += (size_t)n;
    }
    return 0;
}

/* Compresses the whole file fd (size bytes) with enc. Returns a new blob
 * (one reference, the caller's) or NULL. Worker thread. */
static blob *compress_file(int fd, size_t size, int enc)
{
    unsigned char *in = malloc(size ? size : 1);
    if (!in) return NULL;
    if (read_full(fd, in, size, 0) != 0) {
        free(in);
        return NULL;
    }
    blob *b = NULL;
    if (enc == GD_ENC_GZIP) {
        z_stream z;
        memset(&z, 0, sizeof(z));
        /* windowBits 15 + 16: a gzip wrapper, not zlib's. */
        if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) goto out;
        size_t cap = deflateBound(&z, (uLong)size);
        b = blob_new(cap);
        if (b) {
            z.next_in = in;
            z.avail_in = (uInt)size;
            z.next_out = b->data;
            z.avail_out = (uInt)cap;
            if (deflate(&z, Z_FINISH) == Z_STREAM_END) {
                b->len = z.total_out;
            } else {
                blob_unref(b);
                b = NULL;
            }
        }
        deflateEnd(&z);
    } else {
        size_t cap = BrotliEncoderMaxCompressedSize(size);
        if (!cap) goto out;
        b = blob_new(cap);
        if (b) {
            size_t outlen = cap;
            if (BrotliEncoderCompress(BROTLI_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, size,
                                      in, &outlen, b->data)) {
                b->len = outlen;
            } else {
                blob_unref(b);
                b = NULL;
            }
        }
    }
out:
    free(in);
    if (b) { /* give back the slack of the worst-case bound */
        blob *shrunk = realloc(b, sizeof(*b) + (b->len ? b->len : 1));
        if (shrunk) b = shrunk;
    }
    return b;
}

/* ---- resolving paths (worker) ------------------------------------------ */

typedef struct file {
    int fd;
    struct stat sb;
} file;

static bool inside(const char *root, const char *real)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return real[0] == '/';
    return strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

/* Opens root/rel ("" = the root itself) and checks that what was opened
 * lies inside root after every symlink. 0 with f filled (the caller closes
 * f->fd), -EXDEV when it leaves the root, or another negative errno. */
static int open_inside(const char *root, const char *rel, file *f)
{
    char path[PATH_MAX + NAME_CAP + 2], real[PATH_MAX + 1];
    int n = snprintf(path, sizeof(path), "%s/%s", strcmp(root, "/") ? root : "", rel);
    if (n < 0 || (size_t)n >= sizeof(path)) return -ENAMETOOLONG;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) return -errno;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    ssize_t len = readlink(proc, real, sizeof(real) - 1);
    if (len >= 0) {
        real[len] = '\0';
    } else if (!realpath(path, real)) { /* no /proc: the name's resolution instead */
        close(fd);
        return -EXDEV;
    }
    if (!inside(root, real) || fstat(fd, &f->sb) != 0) {
        close(fd);
        return -EXDEV;
    }
    if (!S_ISREG(f->sb.st_mode) && !S_ISDIR(f->sb.st_mode)) {
        close(fd);
        return -ENOENT;
    }
    f->fd = fd;
    return 0;
}

/* Opens a regular file: root/rel, else root/rel/index.html when rel is a
 * directory. *name gets the served file's path (for its type and name
 * rules). 0, -EXDEV, or -ENOENT. */
static int open_file(const char *root, const char *rel, file *f, char *name, size_t cap)
{
    int rc = open_inside(root, rel, f);
    if (rc) return rc;
    if (S_ISREG(f->sb.st_mode)) {
        if ((size_t)snprintf(name, cap, "%s", rel) < cap) return 0;
        close(f->fd);
        return -ENAMETOOLONG;
    }
    close(f->fd);
    char idx[NAME_CAP];
    if ((size_t)snprintf(idx, sizeof(idx), "%s%sindex.html", rel, rel[0] ? "/" : "") >= sizeof(idx))
        return -ENAMETOOLONG;
    rc = open_inside(root, idx, f);
    if (rc) return rc;
    if (!S_ISREG(f->sb.st_mode)) {
        close(f->fd);
        return -ENOENT;
    }
    if ((size_t)snprintf(name, cap, "%s", idx) < cap) return 0;
    close(f->fd);
    return -ENAMETOOLONG;
}

static void set_error(gd_static_req *r, int status, const char *body)
{
    r->status = status;
    r->type = "application/json";
    r->cache_control = NULL;
    r->encoding = NULL;
    r->vary = false;
    r->etag[0] = r->last_modified[0] = '\0';
    r->text = body;
    r->length = strlen(body);
}

static void http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static bool not_modified_since(const char *ims, time_t mtime)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return false;
    return mtime <= timegm(&tm);
}

static void make_etag(char *out, size_t cap, const struct stat *sb, const char *suffix)
{
    snprintf(out, cap, "\"%llx-%llx-%llx%s\"", (unsigned long long)sb->st_ino,
             (unsigned long long)sb->st_size,
             (unsigned long long)sb->st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)sb->st_mtim.tv_nsec,
             suffix);
}

static void count(gd_static *st, uint64_t *field)
{
    pthread_mutex_lock(&st->mu);
    (*field)++;
    st->wstats.cache_bytes = st->cache_bytes;
    st->wstats.cache_entries = 0;
    for (int i = 0; i < CACHE_ENTRIES; i++)
        st->wstats.cache_entries += st->cache[i].b != NULL;
    pthread_mutex_unlock(&st->mu);
}

/* Reads the next chunk of a file body into r->buf. Worker thread. */
static void read_chunk(gd_static_req *r)
{
    size_t want = r->length - r->read_off < CHUNK ? (size_t)(r->length - r->read_off) : CHUNK;
    if (!r->buf) r->buf = malloc(LWS_PRE + CHUNK);
    if (!r->buf || read_full(r->fd, r->buf + LWS_PRE, want, r->read_off) != 0) {
        r->err = -EIO; /* e.g. the file shrank: the promised length cannot be sent */
        close(r->fd);
        r->fd = -1;
        return;
    }
    r->buf_len = want;
    r->read_off += want;
    if (r->read_off == r->length) {
        close(r->fd);
        r->fd = -1;
    }
}

/* Chooses the representation of the regular file f (named `name` under
 * root): a precompressed sibling, a cached or new compressed copy, or the
 * file itself. Fills r's head; leaves r->fd or r->b as the body. */
static void choose(gd_static *st, gd_static_req *r, const char *root, file *f, const char *name)
{
    bool compressible;
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    r->status = 200;
    r->type = gd_webfile_mime(name, &compressible);
    r->cache_control = gd_webfile_is_hashed(name) && strcmp(base, "index.html") != 0
                           ? cc_immutable
                           : cc_revalidate;
    r->vary = compressible;
    r->encoding = NULL;
    r->fd = f->fd;
    r->length = (uint64_t)f->sb.st_size;
    make_etag(r->etag, sizeof(r->etag), &f->sb, "");
    http_date(f->sb.st_mtim.tv_sec, r->last_modified, sizeof(r->last_modified));
    unsigned acc = compressible ? gd_webfile_accepted(r->accept_encoding) : 0;
    if (!(acc & (GD_ENC_GZIP | GD_ENC_BR)) || f->sb.st_size == 0) return;

    int order[2] = {GD_ENC_BR, GD_ENC_GZIP};
    if (acc & GD_ENC_PREFER_GZIP) order[0] = GD_ENC_GZIP, order[1] = GD_ENC_BR;
    for (int i = 0; i < 2; i++) {
        if (!(acc & order[i])) continue;
        const char *ext = order[i] == GD_ENC_BR ? ".br" : ".gz";
        char sib_name[NAME_CAP + 4];
        file sib;
        if ((size_t)snprintf(sib_name, sizeof(sib_name), "%s%s", name, ext) >= sizeof(sib_name) ||
            open_inside(root, sib_name, &sib) != 0)
            continue;
        /* A sibling older than the file would serve stale content. */
        if (!S_ISREG(sib.sb.st_mode) || sib.sb.st_mtim.tv_sec < f->sb.st_mtim.tv_sec) {
            close(sib.fd);
            continue;
        }
        close(f->fd);
        f->fd = -1;
        r->fd = sib.fd;
        r->length = (uint64_t)sib.sb.st_size;
        r->encoding = order[i] == GD_ENC_BR ? "br" : "gzip";
        make_etag(r->etag, sizeof(r->etag), &sib.sb, order[i] == GD_ENC_BR ? "-br" : "-gz");
        count(st, &st->wstats.precompressed);
        return;
    }

    int enc = (acc & order[0]) ? order[0] : order[1];
    if (f->sb.st_size > COMPRESS_MAX) return;
    cache_entry *e = cache_find(st, &f->sb, enc);
    blob *b = NULL;
    if (e) {
        b = e->b;
        atomic_fetch_add(&b->refs, 1);
        count(st, &st->wstats.cache_hits);
    } else {
        b = compress_file(f->fd, (size_t)f->sb.st_size, enc);
        if (!b) return; /* send it uncompressed */
        cache_put(st, &f->sb, enc, b);
        count(st, enc == GD_ENC_BR ? &st->wstats.compressions_br : &st->wstats.compressions_gzip);
    }
    if (b->len >= (size_t)f->sb.st_size) { /* tiny files grow: send them as they are */
        blob_unref(b);
        return;
    }
    close(f->fd);
    f->fd = -1;
    r->fd = -1;
    r->b = b;
    r->length = b->len;
    r->encoding = enc == GD_ENC_BR ? "br" : "gzip";
    make_etag(r->etag, sizeof(r->etag), &f->sb, enc == GD_ENC_BR ? "-br" : "-gz");
}

/* OP_OPEN: everything up to the first chunk of the body. Worker thread. */
static void do_open(gd_static *st, gd_static_req *r)
{
    char rel[URI_MAX], name[NAME_CAP], root[PATH_MAX];
    int rc = gd_webfile_rel_path(r->uri, rel, sizeof(rel));
    if (rc == -EINVAL) {
        gd_log(GD_LOG_INFO, "static: refused path %.200s", r->uri);
        set_error(r, 400, bad_path_body);
        return;
    }
    if (rc == -ENAMETOOLONG) {
        set_error(r, 414, too_long_body);
        return;
    }
    if (rc != 0 || !realpath(st->root, root)) {
        set_error(r, 404, not_found_body);
        return;
    }
    file f;
    rc = open_file(root, rel, &f, name, sizeof(name));
    if (rc == -EXDEV) gd_log(GD_LOG_INFO, "static: %.200s leaves the web root: refused", r->uri);
    if (rc && rc != -EXDEV && gd_webfile_is_route(rel))
        rc = open_file(root, "index.html", &f, name, sizeof(name));
    if (rc) {
        set_error(r, 404, not_found_body);
        return;
    }
    choose(st, r, root, &f, name);
    bool unchanged = r->if_none_match[0]
                         ? gd_webfile_etag_match(r->if_none_match, r->etag)
                         : r->if_modified_since[0] &&
                               not_modified_since(r->if_modified_since, f.sb.st_mtim.tv_sec);
    if (unchanged || r->head) {
        if (unchanged) {
            r->status = 304;
            r->length = 0;
        }
        if (r->fd >= 0) close(r->fd);
        r->fd = -1;
        blob_unref(r->b);
        r->b = NULL;
        return;
    }
    if (r->fd >= 0 && r->length) read_chunk(r);
}

static void *worker_main(void *arg)
{
    gd_static *st = arg;
    struct stat sb;
    if (stat(st->root, &sb) != 0 || !S_ISDIR(sb.st_mode))
        gd_log(GD_LOG_WARN, "web root %s is not a directory: web pages will answer 404", st->root);
    for (;;) {
        pthread_mutex_lock(&st->mu);
        while (!st->todo_head && !st->stopping)
            pthread_cond_wait(&st->cv, &st->mu);
        gd_static_req *r = st->todo_head;
        if (!r) {
            pthread_mutex_unlock(&st->mu);
            return NULL;
        }
        st->todo_head = r->next;
        if (!st->todo_head) st->todo_tail = NULL;
        pthread_mutex_unlock(&st->mu);

        switch (r->op) {
        case OP_OPEN:
            do_open(st, r);
            break;
        case OP_READ:
            read_chunk(r);
            break;
        case OP_CLOSE:
            if (r->fd >= 0) close(r->fd);
            r->fd = -1;
            break;
        }

        pthread_mutex_lock(&st->mu);
        r->next = NULL;
        if (st->done_tail)
            st->done_tail->next = r;
        else
            st->done_head = r;
        st->done_tail = r;
        /* Woken under the lock, so that gd_static_detach can promise that
         * no wakeup reaches a context being destroyed. */
        if (!st->wake_pending && st->wake) st->wake(st->wake_arg);
        st->wake_pending = true;
        pthread_mutex_unlock(&st->mu);
    }
}

/* ---- loop thread -------------------------------------------------------- */

static void req_free(gd_static_req *r)
{
    if (r->fd >= 0) close(r->fd); /* at gd_static_close only: else the worker closes files */
    blob_unref(r->b);
    free(r->buf);
    free(r);
}

static void submit(gd_static *st, gd_static_req *r, req_op op)
{
    r->op = op;
    r->busy = true;
    r->next = NULL;
    pthread_mutex_lock(&st->mu);
    if (st->todo_tail)
        st->todo_tail->next = r;
    else
        st->todo_head = r;
    st->todo_tail = r;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

/* Lets go of a request nobody will write: its file is closed by the worker. */
static void release(gd_static *st, gd_static_req *r)
{
    if (r->fd >= 0)
        submit(st, r, OP_CLOSE); /* drain frees it */
    else
        req_free(r);
}

static void copy_header(char *dst, size_t cap, gd_span v)
{
    dst[0] = '\0';
    if (!v.p || v.len >= cap) return; /* absent, or too long to be honest: as if absent */
    memcpy(dst, v.p, v.len);
    dst[v.len] = '\0';
}

int gd_static_serve(gd_static *st, gd_conn *c, bool head)
{
    gd_static_req *r = calloc(1, sizeof(*r));
    if (!r) return -ENOMEM;
    r->fd = -1;
    r->owner = c;
    r->head = head;
    c->static_req = r;
    /* The request head the door read (http_api.c), the path decoded. */
    const gd_reqhead *h = c->req;
    const char *q = memchr(h->target.p, '?', h->target.len);
    size_t plen = q ? (size_t)(q - h->target.p) : h->target.len;
    if (!gd_percent_decode(h->target.p, plen, r->uri, sizeof(r->uri))) {
        set_error(r, 414, too_long_body);
        gd_server_want_write(c);
        return 0;
    }
    copy_header(r->accept_encoding, sizeof(r->accept_encoding), h->accept_encoding);
    copy_header(r->if_none_match, sizeof(r->if_none_match), h->if_none_match);
    copy_header(r->if_modified_since, sizeof(r->if_modified_since), h->if_modified_since);
    submit(st, r, OP_OPEN);
    return 0;
}

int gd_static_drain(gd_static *st)
{
    pthread_mutex_lock(&st->mu);
    gd_static_req *list = st->done_head;
    st->done_head = st->done_tail = NULL;
    st->wake_pending = false;
    pthread_mutex_unlock(&st->mu);
    int n = 0;
    while (list) {
        gd_static_req *r = list;
        list = r->next;
        r->next = NULL;
        r->busy = false;
        n++;
        if (!r->owner)
            release(st, r);
        else
            gd_server_want_write(r->owner);
    }
    return n;
}

/* The status line and header fields, handed to the connection's writer. */
static int write_head(gd_static_req *r, gd_conn *c)
{
    gd_buf b;
    gd_buf_init(&b);
    gd_buf_printf(&b, "HTTP/1.1 %d %s\r\n", r->status, gd_http_status_text(r->status));
    if (r->status != 304)
        gd_buf_printf(&b, "content-type: %s\r\ncontent-length: %llu\r\n", r->type,
                      (unsigned long long)r->length);
    if (r->encoding) gd_buf_printf(&b, "content-encoding: %s\r\n", r->encoding);
    if (r->vary) gd_buf_puts(&b, "vary: Accept-Encoding\r\n");
    if (r->etag[0]) gd_buf_printf(&b, "etag: %s\r\n", r->etag);
    if (r->last_modified[0]) gd_buf_printf(&b, "last-modified: %s\r\n", r->last_modified);
    if (r->cache_control) gd_buf_printf(&b, "cache-control: %s\r\n", r->cache_control);
    gd_buf_puts(&b, "x-content-type-options: nosniff\r\nconnection: close\r\n\r\n");
    int rc = b.oom ? -1 : gd_http_send(c, b.p, b.len);
    gd_buf_free(&b);
    return rc;
}

static int complete(gd_static *st, gd_conn *c)
{
    gd_static_req *r = c->static_req;
    c->static_req = NULL;
    st->lstats.responses++;
    if (r->status == 304) st->lstats.not_modified++;
    st->lstats.bytes_sent += r->sent;
    release(st, r);
    gd_http_finish(c); /* one request per connection: it closes once this has left */
    return 0;
}

int gd_static_on_writable(gd_static *st, gd_conn *c)
{
    gd_static_req *r = c->static_req;
    if (r->busy) return 0;
    if (r->err) {
        gd_log(GD_LOG_WARN, "static: %.200s: file changed while being sent; closing", r->uri);
        return -1;
    }
    if (!r->headers_sent) {
        if (write_head(r, c)) return -1;
        r->headers_sent = true;
        if (r->head || r->status == 304 || r->length == 0) return complete(st, c);
        gd_server_want_write(c);
        return 0;
    }
    size_t n;
    if (r->b || r->text) {
        if (!r->buf && !(r->buf = malloc(LWS_PRE + CHUNK))) return -1;
        n = r->length - r->sent < CHUNK ? (size_t)(r->length - r->sent) : CHUNK;
        memcpy(r->buf + LWS_PRE, (r->b ? (const char *)r->b->data : r->text) + r->sent, n);
    } else {
        n = r->buf_len;
        if (!n) return 0; /* the chunk is not read yet */
    }
    bool last = r->sent + n == r->length;
    /* What the socket does not take now waits in the connection and goes
     * first on the next writable callbacks: one chunk at most. */
    if (gd_http_send(c, r->buf + LWS_PRE, n) != 0) return -1;
    r->sent += n;
    r->buf_len = 0;
    if (last) return complete(st, c);
    if (r->b || r->text)
        gd_server_want_write(c);
    else
        submit(st, r, OP_READ);
    return 0;
}

void gd_static_on_closed(gd_static *st, gd_conn *c)
{
    gd_static_req *r = c->static_req;
    if (!r) return;
    c->static_req = NULL;
    r->owner = NULL;
    if (!r->busy) release(st, r);
}

/* ---- life --------------------------------------------------------------- */

int gd_static_open(gd_static **out, const char *web_root, void (*wake)(void *), void *wake_arg)
{
    gd_static *st = calloc(1, sizeof(*st));
    if (!st) return -ENOMEM;
    snprintf(st->root, sizeof(st->root), "%s", web_root);
    st->wake = wake;
    st->wake_arg = wake_arg;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    int rc = pthread_create(&st->thread, NULL, worker_main, st);
    if (rc != 0) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cv);
        free(st);
        return -rc;
    }
    st->started = true;
    *out = st;
    return 0;
}

void gd_static_detach(gd_static *st)
{
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->wake = NULL;
    pthread_mutex_unlock(&st->mu);
}

void gd_static_close(gd_static *st)
{
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (st->started) pthread_join(st->thread, NULL);
    /* The worker ran every queued request before it stopped; their
     * connections are gone, so each is freed here. */
    for (gd_static_req *r = st->done_head, *n; r; r = n) {
        n = r->next;
        req_free(r);
    }
    for (int i = 0; i < CACHE_ENTRIES; i++)
        if (st->cache[i].b) blob_unref(st->cache[i].b);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
}

void gd_static_get_stats(gd_static *st, gd_static_stats *out)
{
    pthread_mutex_lock(&st->mu);
    *out = st->wstats;
    pthread_mutex_unlock(&st->mu);
    out->responses = st->lstats.responses;
    out->not_modified = st->lstats.not_modified;
    out->bytes_sent = st->lstats.bytes_sent;
}
