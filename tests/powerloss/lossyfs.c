/*
 * lossyfs — a FUSE filesystem that forgets everything that was not made
 * durable, for power-loss tests (the idea of LazyFS and ALICE, built small).
 *
 * It is a passthrough over a backing directory that holds exactly the
 * durable state. Every change that is not yet durable lives in this
 * process's memory only; reads see that in-memory view, as they would see a
 * real page cache. A change becomes durable only as POSIX and Linux ext4
 * at their weakest allow:
 *
 *   write, truncate          durable when the file is fsync'd or fdatasync'd
 *                            (data and size; fsync also the permission bits)
 *   create, mkdir, unlink,   durable when the directory holding the name is
 *   rmdir, rename            fsync'd; a new file's data needs its own fsync
 *                            too. A file renamed across directories keeps its
 *                            old durable name until the old directory is
 *                            fsync'd (so after a cut it may have both)
 *
 * A power cut discards everything that is not durable, at once; the mount
 * then answers EIO to everything (the machine is off) until it is unmounted.
 * Mounting the backing directory again is the reboot. Optionally the cut
 * keeps a random prefix of the unsynced data writes, in the order they were
 * made, cut at 512-byte or 4 KiB boundaries of the file (torn writes); the
 * prefix is drawn from a seeded generator, so a seed and the same sequence of
 * writes give the same result. Killing this process (kill -9) is a power cut
 * without torn writes. A clean unmount makes everything durable first (as a
 * real unmount does).
 *
 * Usage (root, or a user allowed to use /dev/fuse):
 *
 *   lossyfs [-o torn=0|512|4096,seed=N] BACKING MOUNTPOINT [-f] [FUSE options]
 *   fusermount3 -u MOUNTPOINT           # or umount -l MOUNTPOINT
 *
 * By hand, for example (-f: foreground; -o auto_unmount: no stale mount if
 * lossyfs dies):
 *
 *   mkdir -p /tmp/b /tmp/m && lossyfs /tmp/b /tmp/m -f -o auto_unmount &
 *   echo hello > /tmp/m/f                      # not durable: memory only
 *   echo 'cut torn=512 seed=7' > /tmp/m/.lossyfs-ctl
 *   cat /tmp/m/.lossyfs-ctl                    # state dead, last_cut ...
 *   fusermount3 -u /tmp/m; ls /tmp/b           # what survived (no f)
 *   lossyfs /tmp/b /tmp/m -f &                 # the reboot
 *
 * Control: the file MOUNTPOINT/.lossyfs-ctl (not listed by readdir). Read it
 * for the state and counters; write one command per line to it:
 *
 *   cut [torn=0|512|4096] [seed=N] [kill=PID]
 *        power cut now; kill=PID also sends SIGKILL to PID at the same
 *        instant (under the filesystem's lock, so no operation falls between)
 *   arm OP SUBSTR N [torn=..] [seed=..] [kill=PID]
 *        cut right after the N-th successful OP whose path contains SUBSTR.
 *        OP: write fsync fdatasync fsyncdir create mkdir unlink rmdir rename
 *        truncate any ("fsync" also matches fdatasync)
 *   fail OP SUBSTR N [count=K]
 *        the N-th OP whose path contains SUBSTR, and the K-1 matching ones
 *        after it (K = 1 by default), fail with EIO and change nothing: a
 *        transient disk error (a failed fsync makes nothing durable). OP as
 *        for arm, of write fsync fdatasync fsyncdir create unlink truncate
 *   disarm    forget an armed cut and an armed failure
 *   sync      make everything durable now (like sync(2))
 *
 * SIGUSR1 to this process is `cut` with the mount's torn and seed options.
 *
 * Scope: regular files and directories only (no hard links, symlinks or
 * device nodes: EPERM); a directory cannot be renamed into another
 * directory (EXDEV, so mv copies); POSIX and flock locks are the kernel's
 * own (the filesystem implements neither, so the kernel keeps them locally);
 * timestamps and ownership are kept in memory and are not modelled as
 * durable. Shared writable mmap works (the kernel page cache is used, never
 * direct I/O), as SQLite's WAL index needs. Every change is held in memory,
 * so it suits test-sized trees.
 *
 * Layout of the backing directory: the durable tree itself, plus
 * .lossyfs/<ino>, a hidden hard link of every file's content that this
 * process holds (so a file whose durable names all went away can be named
 * again); it is emptied at mount and at unmount.
 *
 * Threads: one thread serves every FUSE request (fuse_session_loop); a
 * second waits for SIGUSR1. Both take the one global lock, G.mu, for all
 * state, and every reply is sent with it held.
 */
#define FUSE_USE_VERSION 35
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define HIDDEN ".lossyfs"
#define CTL_NAME ".lossyfs-ctl"
#define TLOG_CAP_BYTES (64u << 20) /* unsynced writes remembered for torn cuts */

typedef struct node node;

typedef struct dent {
    char *name;
    node *n;
} dent;

typedef struct dmap {
    dent *v;
    size_t n, cap;
} dmap;

typedef struct page {
    uint64_t idx;
    uint8_t *buf;
} page;

struct node {
    uint64_t ino;
    mode_t mode;  /* current type and permission bits */
    mode_t dmode; /* permission bits as last made durable */
    uid_t uid;
    gid_t gid;
    struct timespec atime, mtime, ctime;
    int refs;         /* current names + durable names + open handles + 1 if looked up */
    int links;        /* current names */
    uint64_t nlookup; /* the kernel's references (lookup minus forget) */
    char *label;      /* a path it had (for `arm` matching and messages only) */
    node *prev_all, *next_all;
    /* regular files */
    int bfd;     /* the durable content (.lossyfs/<ino>), -1 while there is none */
    off_t size;  /* current size */
    off_t bsize; /* size of the durable content */
    off_t valid; /* durable content still shows through below this offset */
    page *pages; /* dirty pages, sorted by idx */
    size_t npages, cappages;
    uint64_t synced; /* torn-log sequence number of the last fsync */
    /* directories */
    node *parent;  /* fixed for life: directories never change parent */
    dmap cur, dur; /* current names; durable names */
};

typedef struct handle {
    node *n;
    int ctl;    /* the control file */
    char *text; /* control file: status snapshot */
    size_t len;
    dent *ents; /* directory: its names when opened (readdir serves these) */
    size_t nents;
} handle;

typedef struct tlog_ent {
    node *n;
    uint64_t seq;
    off_t off;
    size_t len;
    uint8_t *data;
} tlog_ent;

typedef struct cut_opts {
    unsigned torn;
    uint64_t seed;
    pid_t kill_pid;
} cut_opts;

static struct {
    pthread_mutex_t mu;
    char *backing;
    int rootfd;
    node *root;
    node *ctl; /* the control file: in no directory, never freed */
    node *all;
    uint64_t next_ino;
    int dead;
    unsigned torn; /* mount defaults for cut */
    uint64_t seed;
    tlog_ent *tlog;
    size_t ntlog, captlog, tlog_bytes;
    uint64_t wseq;
    struct {
        uint64_t writes, fsyncs, fdatasyncs, fsyncdirs, creates, mkdirs, unlinks, rmdirs, renames,
            truncates, cuts, injected;
    } count;
    struct {
        int on;
        char op[16];
        char substr[256];
        long remaining;
        cut_opts o;
    } arm;
    struct {
        int on;
        char op[16];
        char substr[256];
        long pass;  /* matching operations still to let through */
        long count; /* then this many fail */
    } fail;
    char last_cut[256];
} G = {.mu = PTHREAD_MUTEX_INITIALIZER, .rootfd = -1};

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lossyfs: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* ---- nodes and name maps ---------------------------------------------- */

static void node_unref(node *n);

static long dmap_find(const dmap *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0) return (long)i;
    return -1;
}

static node *dmap_get(const dmap *m, const char *name)
{
    long i = dmap_find(m, name);
    return i < 0 ? NULL : m->v[i].n;
}

/* Sets name -> n, taking a reference on n and dropping the replaced one. */
static int dmap_set(dmap *m, const char *name, node *n)
{
    long i = dmap_find(m, name);
    if (i >= 0) {
        node *old = m->v[i].n;
        n->refs++;
        m->v[i].n = n;
        node_unref(old);
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        dent *v = realloc(m->v, cap * sizeof(*v));
        if (!v) return -ENOMEM;
        m->v = v;
        m->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return -ENOMEM;
    m->v[m->n].name = copy;
    m->v[m->n].n = n;
    m->n++;
    n->refs++;
    return 0;
}

static void dmap_del(dmap *m, long i)
{
    node *old = m->v[i].n;
    free(m->v[i].name);
    m->v[i] = m->v[--m->n];
    node_unref(old);
}

static void dmap_clear(dmap *m)
{
    while (m->n)
        dmap_del(m, (long)m->n - 1);
    free(m->v);
    m->v = NULL;
    m->cap = 0;
}

static void now(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
}

static node *node_new(mode_t mode)
{
    node *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->ino = G.next_ino++;
    n->mode = mode;
    n->dmode = mode & 07777;
    n->bfd = -1;
    now(&n->mtime);
    n->atime = n->ctime = n->mtime;
    n->next_all = G.all;
    if (G.all) G.all->prev_all = n;
    G.all = n;
    return n;
}

static void tlog_forget_node(node *n)
{
    size_t j = 0;
    for (size_t i = 0; i < G.ntlog; i++) {
        if (G.tlog[i].n == n) {
            G.tlog_bytes -= G.tlog[i].len;
            free(G.tlog[i].data);
        } else {
            G.tlog[j++] = G.tlog[i];
        }
    }
    G.ntlog = j;
}

static void hidden_name(const node *n, char *buf, size_t len)
{
    snprintf(buf, len, HIDDEN "/%" PRIu64, n->ino);
}

static void drop_pages(node *n)
{
    for (size_t i = 0; i < n->npages; i++)
        free(n->pages[i].buf);
    free(n->pages);
    n->pages = NULL;
    n->npages = n->cappages = 0;
}

static void node_free(node *n)
{
    if (n->prev_all)
        n->prev_all->next_all = n->next_all;
    else
        G.all = n->next_all;
    if (n->next_all) n->next_all->prev_all = n->prev_all;
    tlog_forget_node(n);
    drop_pages(n);
    if (n->bfd >= 0) {
        char h[64];
        hidden_name(n, h, sizeof(h));
        close(n->bfd);
        unlinkat(G.rootfd, h, 0);
    }
    dmap_clear(&n->cur);
    dmap_clear(&n->dur);
    free(n->label);
    free(n);
}

static void node_unref(node *n)
{
    if (n && --n->refs == 0) node_free(n);
}

/* ---- where a directory lives in the backing tree ------------------------ */

/* The backing path of a directory if it is durably reachable from the root
 * (relative to rootfd), or -ENOENT. */
static int dir_bpath(const node *d, char *buf, size_t len)
{
    if (d == G.root) {
        snprintf(buf, len, ".");
        return 0;
    }
    if (!d->parent) return -ENOENT;
    const dmap *m = &d->parent->dur;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].n != d) continue;
        int rc = dir_bpath(d->parent, buf, len);
        if (rc) return rc;
        size_t used = strlen(buf);
        if (used + 1 + strlen(m->v[i].name) + 1 > len) return -ENAMETOOLONG;
        snprintf(buf + used, len - used, "/%s", m->v[i].name);
        return 0;
    }
    return -ENOENT;
}

/* ---- file content: durable backing + dirty pages ------------------------ */

static long page_find(const node *n, uint64_t idx)
{
    size_t lo = 0, hi = n->npages;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (n->pages[mid].idx < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n->npages && n->pages[lo].idx == idx ? (long)lo : -(long)lo - 1;
}

/* The durable content as it shows through: backing bytes below `valid`,
 * zeros elsewhere. */
static int read_clean(node *n, uint8_t *buf, size_t len, off_t off)
{
    memset(buf, 0, len);
    if (n->bfd < 0 || off >= n->valid) return 0;
    size_t want = (size_t)(n->valid - off) < len ? (size_t)(n->valid - off) : len;
    size_t done = 0;
    while (done < want) {
        ssize_t r = pread(n->bfd, buf + done, want - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        if (r == 0) break; /* past the backing file's end: zeros */
        done += (size_t)r;
    }
    return 0;
}

static int page_get(node *n, uint64_t idx, uint8_t **out)
{
    long at = page_find(n, idx);
    if (at >= 0) {
        *out = n->pages[at].buf;
        return 0;
    }
    size_t pos = (size_t)(-at - 1);
    if (n->npages == n->cappages) {
        size_t cap = n->cappages ? n->cappages * 2 : 16;
        page *p = realloc(n->pages, cap * sizeof(*p));
        if (!p) return -ENOMEM;
        n->pages = p;
        n->cappages = cap;
    }
    uint8_t *buf = malloc(PAGE);
    if (!buf) return -ENOMEM;
    int rc = read_clean(n, buf, PAGE, (off_t)(idx * PAGE));
    if (rc) {
        free(buf);
        return rc;
    }
    memmove(n->pages + pos + 1, n->pages + pos, (n->npages - pos) * sizeof(page));
    n->pages[pos].idx = idx;
    n->pages[pos].buf = buf;
    n->npages++;
    *out = buf;
    return 0;
}

static int file_read(node *n, char *buf, size_t len, off_t off, size_t *got)
{
    *got = 0;
    if (off >= n->size) return 0;
    if ((off_t)len > n->size - off) len = (size_t)(n->size - off);
    size_t done = 0;
    while (done < len) {
        uint64_t idx = (uint64_t)(off + (off_t)done) / PAGE;
        size_t in = (size_t)((uint64_t)(off + (off_t)done) % PAGE);
        size_t chunk = PAGE - in < len - done ? PAGE - in : len - done;
        long at = page_find(n, idx);
        if (at >= 0) {
            memcpy(buf + done, n->pages[at].buf + in, chunk);
        } else {
            int rc = read_clean(n, (uint8_t *)buf + done, chunk, off + (off_t)done);
            if (rc) return rc;
        }
        done += chunk;
    }
    *got = len;
    return 0;
}

/* Remembers an unsynced write for a torn cut; the oldest are forgotten past
 * TLOG_CAP_BYTES (they then count as not written at all). */
static void tlog_add(node *n, const char *buf, size_t len, off_t off)
{
    if (len > TLOG_CAP_BYTES) return;
    while (G.tlog_bytes + len > TLOG_CAP_BYTES && G.ntlog) {
        G.tlog_bytes -= G.tlog[0].len;
        free(G.tlog[0].data);
        memmove(G.tlog, G.tlog + 1, (G.ntlog - 1) * sizeof(*G.tlog));
        G.ntlog--;
    }
    if (G.ntlog == G.captlog) {
        size_t cap = G.captlog ? G.captlog * 2 : 256;
        tlog_ent *t = realloc(G.tlog, cap * sizeof(*t));
        if (!t) return;
        G.tlog = t;
        G.captlog = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return;
    memcpy(copy, buf, len);
    G.tlog[G.ntlog++] = (tlog_ent){.n = n, .seq = ++G.wseq, .off = off, .len = len, .data = copy};
    G.tlog_bytes += len;
}

static int file_write(node *n, const char *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        uint64_t idx = (uint64_t)(off + (off_t)done) / PAGE;
        size_t in = (size_t)((uint64_t)(off + (off_t)done) % PAGE);
        size_t chunk = PAGE - in < len - done ? PAGE - in : len - done;
        uint8_t *p;
        int rc = page_get(n, idx, &p);
        if (rc) return rc;
        memcpy(p + in, buf + done, chunk);
        done += chunk;
    }
    if (off + (off_t)len > n->size) n->size = off + (off_t)len;
    tlog_add(n, buf, len, off);
    now(&n->mtime);
    n->ctime = n->mtime;
    return 0;
}

static int file_truncate(node *n, off_t size)
{
    if (size < 0) return -EINVAL;
    if (size < n->size) {
        if (size < n->valid) n->valid = size;
        size_t j = 0;
        for (size_t i = 0; i < n->npages; i++) {
            off_t start = (off_t)(n->pages[i].idx * PAGE);
            if (start >= size) {
                free(n->pages[i].buf);
                continue;
            }
            if (start + (off_t)PAGE > size)
                memset(n->pages[i].buf + (size - start), 0, (size_t)(start + PAGE - size));
            n->pages[j++] = n->pages[i];
        }
        n->npages = j;
    }
    n->size = size;
    now(&n->mtime);
    n->ctime = n->mtime;
    return 0;
}

/* Gives a file its durable content file (empty) if it has none. */
static int ensure_backing(node *n)
{
    if (n->bfd >= 0) return 0;
    char h[64];
    hidden_name(n, h, sizeof(h));
    int fd = openat(G.rootfd, h, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, n->dmode & 07777);
    if (fd < 0) return -errno;
    n->bfd = fd;
    n->bsize = 0;
    n->valid = 0;
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, (const uint8_t *)buf + done, len - done, off + (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        done += (size_t)w;
    }
    return 0;
}

/* fsync / fdatasync: the durable content becomes the current content. */
static int file_sync(node *n, int datasync)
{
    int rc = ensure_backing(n);
    if (rc) return rc;
    if (n->bsize > n->valid && ftruncate(n->bfd, n->valid) != 0) return -errno;
    for (size_t i = 0; i < n->npages; i++) {
        off_t start = (off_t)(n->pages[i].idx * PAGE);
        if (start >= n->size) continue;
        size_t len = n->size - start < (off_t)PAGE ? (size_t)(n->size - start) : PAGE;
        if ((rc = pwrite_all(n->bfd, n->pages[i].buf, len, start)) != 0) return rc;
    }
    if (ftruncate(n->bfd, n->size) != 0) return -errno;
    drop_pages(n);
    n->bsize = n->valid = n->size;
    if (!datasync) {
        n->dmode = n->mode & 07777;
        if (fchmod(n->bfd, n->dmode) != 0) return -errno;
    }
    n->synced = ++G.wseq;
    /* Its logged writes are durable now; forget them unless the log is big. */
    if (G.tlog_bytes > TLOG_CAP_BYTES / 4) {
        size_t j = 0;
        for (size_t i = 0; i < G.ntlog; i++) {
            if (G.tlog[i].seq < G.tlog[i].n->synced) {
                G.tlog_bytes -= G.tlog[i].len;
                free(G.tlog[i].data);
            } else {
                G.tlog[j++] = G.tlog[i];
            }
        }
        G.ntlog = j;
    }
    return 0;
}

/* ---- directories: making names durable ---------------------------------- */

static int remove_backing(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode)) return unlinkat(dfd, name, 0) == 0 ? 0 : -errno;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            rc = remove_backing(dirfd(d), e->d_name);
    closedir(d);
    if (rc) return rc;
    return unlinkat(dfd, name, AT_REMOVEDIR) == 0 ? 0 : -errno;
}

/* Creates name in dirfd as n's durable form: a hard link of a file's content,
 * or a directory holding its own durable names. */
static int materialize(node *n, int dirfd, const char *name)
{
    int rc = 0;
    if (S_ISREG(n->mode)) {
        if ((rc = ensure_backing(n)) != 0) return rc;
        char h[64];
        hidden_name(n, h, sizeof(h));
        /* A name the scan skipped (a symlink, say) may be in the way. */
        if (linkat(G.rootfd, h, dirfd, name, 0) != 0 &&
            (errno != EEXIST || (rc = remove_backing(dirfd, name)) != 0 ||
             linkat(G.rootfd, h, dirfd, name, 0) != 0))
            return rc ? rc : -errno;
        return 0;
    }
    if (mkdirat(dirfd, name, n->dmode & 07777) != 0 &&
        (errno != EEXIST || (rc = remove_backing(dirfd, name)) != 0 ||
         mkdirat(dirfd, name, n->dmode & 07777) != 0))
        return rc ? rc : -errno;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    for (size_t i = 0; rc == 0 && i < n->dur.n; i++)
        rc = materialize(n->dur.v[i].n, fd, n->dur.v[i].name);
    close(fd);
    return rc;
}

/* fsync of a directory: its durable names become its current names. */
static int dir_sync(node *d)
{
    char bpath[PATH_MAX];
    int dfd = -1, rc = 0;
    if (dir_bpath(d, bpath, sizeof(bpath)) == 0) {
        dfd = openat(G.rootfd, bpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) return -errno;
    }
    if (dfd >= 0) {
        for (size_t i = 0; rc == 0 && i < d->dur.n; i++)
            if (dmap_get(&d->cur, d->dur.v[i].name) != d->dur.v[i].n)
                rc = remove_backing(dfd, d->dur.v[i].name);
        for (size_t i = 0; rc == 0 && i < d->cur.n; i++)
            if (dmap_get(&d->dur, d->cur.v[i].name) != d->cur.v[i].n)
                rc = materialize(d->cur.v[i].n, dfd, d->cur.v[i].name);
        close(dfd);
        if (rc) return rc;
    }
    dmap fresh = {0};
    for (size_t i = 0; rc == 0 && i < d->cur.n; i++)
        rc = dmap_set(&fresh, d->cur.v[i].name, d->cur.v[i].n);
    if (rc) {
        dmap_clear(&fresh);
        return rc;
    }
    dmap old = d->dur;
    d->dur = fresh;
    dmap_clear(&old);
    return 0;
}

static int sync_tree(node *d)
{
    int rc = dir_sync(d);
    for (size_t i = 0; rc == 0 && i < d->cur.n; i++)
        if (S_ISDIR(d->cur.v[i].n->mode)) rc = sync_tree(d->cur.v[i].n);
    return rc;
}

/* Everything durable, as sync(2): file contents first, then the names. */
static int sync_all(void)
{
    for (node *n = G.all; n; n = n->next_all) {
        if (!S_ISREG(n->mode) || n == G.ctl) continue;
        int rc = file_sync(n, 0);
        if (rc) return rc;
    }
    return sync_tree(G.root);
}

/* ---- power cut ------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t pieces_of(const tlog_ent *t, unsigned g)
{
    if (!t->len) return 0;
    uint64_t first = (uint64_t)t->off / g, last = ((uint64_t)t->off + t->len - 1) / g;
    return (size_t)(last - first + 1);
}

/* The power goes off: optionally a prefix of the unsynced writes reached the
 * disk first; everything else not durable is gone, and the mount is dead. */
static void power_cut(const cut_opts *o, const char *why)
{
    if (o->kill_pid > 0 && kill(o->kill_pid, SIGKILL) != 0)
        warnx("cut: kill %d failed: %s", (int)o->kill_pid, strerror(errno));
    size_t total = 0, kept = 0, live = 0;
    uint64_t bytes = 0;
    if (o->torn) {
        for (size_t i = 0; i < G.ntlog; i++)
            if (G.tlog[i].seq > G.tlog[i].n->synced) {
                total += pieces_of(&G.tlog[i], o->torn);
                live++;
            }
        uint64_t s = o->seed;
        size_t keep = total ? (size_t)(splitmix(&s) % (total + 1)) : 0;
        for (size_t i = 0; i < G.ntlog && kept < keep; i++) {
            tlog_ent *t = &G.tlog[i];
            if (t->seq <= t->n->synced) continue;
            uint64_t pos = (uint64_t)t->off, end = pos + t->len;
            while (pos < end && kept < keep) {
                uint64_t stop = (pos / o->torn + 1) * o->torn;
                if (stop > end) stop = end;
                /* A file with no durable content has no durable name either:
                 * what reached its blocks is unreachable. */
                if (t->n->bfd >= 0 && pwrite_all(t->n->bfd, t->data + (pos - (uint64_t)t->off),
                                                 stop - pos, (off_t)pos) != 0)
                    warnx("cut: torn write failed: %s", strerror(errno));
                bytes += stop - pos;
                pos = stop;
                kept++;
            }
        }
    }
    G.dead = 1;
    G.count.cuts++;
    G.arm.on = 0;
    snprintf(G.last_cut, sizeof(G.last_cut),
             "%s; torn=%u seed=%" PRIu64 " kept %zu of %zu pieces (%" PRIu64
             " bytes) of %zu unsynced writes",
             why, o->torn, o->seed, kept, total, bytes, live);
    warnx("power cut: %s", G.last_cut);
}

static const char *const arm_ops[] = {"write",  "fsync", "fdatasync", "fsyncdir", "create", "mkdir",
                                      "unlink", "rmdir", "rename",    "truncate", "any"};

static int op_matches(const char *want, const char *substr, const char *op, const char *path)
{
    if (strcmp(want, "any") != 0 && strcmp(want, op) != 0 &&
        !(strcmp(want, "fsync") == 0 && strcmp(op, "fdatasync") == 0))
        return 0;
    return path && strstr(path, substr);
}

/* Called after every successful mutating operation. */
static void armed(const char *op, const char *path)
{
    if (!G.arm.on || G.dead || !op_matches(G.arm.op, G.arm.substr, op, path)) return;
    if (--G.arm.remaining > 0) return;
    char why[400];
    snprintf(why, sizeof(why), "armed: after %s %s", op, path);
    power_cut(&G.arm.o, why);
}

/* Called before a mutating operation: 1 if `fail` says it fails with EIO
 * (having changed nothing). */
static int injected(const char *op, const char *path)
{
    if (!G.fail.on || G.dead || !op_matches(G.fail.op, G.fail.substr, op, path)) return 0;
    if (G.fail.pass > 0) {
        G.fail.pass--;
        return 0;
    }
    if (--G.fail.count <= 0) G.fail.on = 0;
    G.count.injected++;
    warnx("injected EIO: %s %s", op, path);
    return 1;
}

/* ---- control file ----------------------------------------------------------- */

static char *status_text(size_t *len)
{
    size_t dirty_pages = 0, dirty_files = 0, live = 0;
    for (node *n = G.all; n; n = n->next_all)
        if (n->npages || n->valid < n->bsize || (S_ISREG(n->mode) && n->size != n->bsize)) {
            dirty_files++;
            dirty_pages += n->npages;
        }
    for (size_t i = 0; i < G.ntlog; i++)
        live += G.tlog[i].seq > G.tlog[i].n->synced;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    fprintf(f, "state %s\n", G.dead ? "dead" : "alive");
    fprintf(f, "backing %s\n", G.backing);
    fprintf(f,
            "ops writes=%" PRIu64 " fsyncs=%" PRIu64 " fdatasyncs=%" PRIu64 " fsyncdirs=%" PRIu64
            " creates=%" PRIu64 " mkdirs=%" PRIu64 " unlinks=%" PRIu64 " rmdirs=%" PRIu64
            " renames=%" PRIu64 " truncates=%" PRIu64 " cuts=%" PRIu64 " injected=%" PRIu64 "\n",
            G.count.writes, G.count.fsyncs, G.count.fdatasyncs, G.count.fsyncdirs, G.count.creates,
            G.count.mkdirs, G.count.unlinks, G.count.rmdirs, G.count.renames, G.count.truncates,
            G.count.cuts, G.count.injected);
    fprintf(f, "unsynced files=%zu dirty_pages=%zu writes=%zu\n", dirty_files, dirty_pages, live);
    if (G.arm.on)
        fprintf(f, "armed %s %s %ld torn=%u seed=%" PRIu64 " kill=%d\n", G.arm.op, G.arm.substr,
                G.arm.remaining, G.arm.o.torn, G.arm.o.seed, (int)G.arm.o.kill_pid);
    else
        fprintf(f, "armed no\n");
    if (G.fail.on)
        fprintf(f, "failing %s %s pass=%ld count=%ld\n", G.fail.op, G.fail.substr, G.fail.pass,
                G.fail.count);
    else
        fprintf(f, "failing no\n");
    fprintf(f, "last_cut %s\n", G.last_cut[0] ? G.last_cut : "none");
    fclose(f);
    *len = size;
    return text;
}

static int parse_cut_opt(const char *tok, cut_opts *o)
{
    char *end;
    if (strncmp(tok, "torn=", 5) == 0) {
        unsigned long v = strtoul(tok + 5, &end, 10);
        if (*end || (v != 0 && v != 512 && v != 4096)) return -EINVAL;
        o->torn = (unsigned)v;
    } else if (strncmp(tok, "seed=", 5) == 0) {
        o->seed = strtoull(tok + 5, &end, 10);
        if (*end) return -EINVAL;
    } else if (strncmp(tok, "kill=", 5) == 0) {
        long v = strtol(tok + 5, &end, 10);
        if (*end || v <= 0) return -EINVAL;
        o->kill_pid = (pid_t)v;
    } else {
        return -EINVAL;
    }
    return 0;
}

static int ctl_command(char *line)
{
    char *save = NULL, *tok[8];
    int n = 0;
    for (char *t = strtok_r(line, " \t", &save); t && n < 8; t = strtok_r(NULL, " \t", &save))
        tok[n++] = t;
    if (n == 0) return 0;
    cut_opts o = {.torn = G.torn, .seed = G.seed};
    if (strcmp(tok[0], "cut") == 0) {
        if (G.dead) return -EIO;
        for (int i = 1; i < n; i++)
            if (parse_cut_opt(tok[i], &o)) return -EINVAL;
        power_cut(&o, "control file");
        return 0;
    }
    int arm = strcmp(tok[0], "arm") == 0, fail = strcmp(tok[0], "fail") == 0;
    long nth = 0;
    if (arm || fail) { /* OP SUBSTR N ... */
        if (n < 4 || G.dead) return -EINVAL;
        size_t k;
        for (k = 0; k < sizeof(arm_ops) / sizeof(*arm_ops); k++)
            if (strcmp(tok[1], arm_ops[k]) == 0) break;
        char *end;
        nth = strtol(tok[3], &end, 10);
        if (k == sizeof(arm_ops) / sizeof(*arm_ops) || *end || nth < 1 ||
            strlen(tok[2]) >= sizeof(G.arm.substr))
            return -EINVAL;
    }
    if (fail) {
        long count = 1;
        for (int i = 4; i < n; i++) {
            char *end;
            if (strncmp(tok[i], "count=", 6) != 0) return -EINVAL;
            count = strtol(tok[i] + 6, &end, 10);
            if (*end || count < 1) return -EINVAL;
        }
        snprintf(G.fail.op, sizeof(G.fail.op), "%s", tok[1]);
        snprintf(G.fail.substr, sizeof(G.fail.substr), "%s", tok[2]);
        G.fail.pass = nth - 1;
        G.fail.count = count;
        G.fail.on = 1;
        return 0;
    }
    if (arm) {
        long count = nth;
        for (int i = 4; i < n; i++)
            if (parse_cut_opt(tok[i], &o)) return -EINVAL;
        snprintf(G.arm.op, sizeof(G.arm.op), "%s", tok[1]);
        snprintf(G.arm.substr, sizeof(G.arm.substr), "%s", tok[2]);
        G.arm.remaining = count;
        G.arm.o = o;
        G.arm.on = 1;
        return 0;
    }
    if (strcmp(tok[0], "disarm") == 0 && n == 1) {
        G.arm.on = 0;
        G.fail.on = 0;
        return 0;
    }
    if (strcmp(tok[0], "sync") == 0 && n == 1) return G.dead ? -EIO : sync_all();
    return -EINVAL;
}

/* ---- FUSE operations (low-level API: node pointers are the node ids) ------ */

#define LOCK() pthread_mutex_lock(&G.mu)
#define UNLOCK() pthread_mutex_unlock(&G.mu)
#define TIMEOUT 1.0 /* every change passes through the kernel: its caches stay right */

static node *N(fuse_ino_t ino)
{
    return ino == FUSE_ROOT_ID ? G.root : (node *)(uintptr_t)ino;
}

static fuse_ino_t ID(const node *n)
{
    return n == G.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static handle *H(struct fuse_file_info *fi)
{
    return (handle *)(uintptr_t)fi->fh;
}

/* Names a caller may not create: the control file and the hidden
 * directory, both at the root. */
static int reserved(const node *d, const char *name)
{
    return d == G.root && (strcmp(name, CTL_NAME) == 0 || strcmp(name, HIDDEN) == 0);
}

static void child_label(const node *dir, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir == G.root ? "" : dir->label ? dir->label : "?", name);
}

static void set_label(node *n, const node *dir, const char *name)
{
    char buf[PATH_MAX];
    child_label(dir, name, buf, sizeof(buf));
    free(n->label);
    n->label = strdup(buf);
}

static void fill_stat(const node *n, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = n->ino;
    st->st_mode = n->mode;
    st->st_uid = n->uid;
    st->st_gid = n->gid;
    st->st_atim = n->atime;
    st->st_mtim = n->mtime;
    st->st_ctim = n->ctime;
    st->st_blksize = PAGE;
    if (S_ISDIR(n->mode)) {
        nlink_t links = 2;
        for (size_t i = 0; i < n->cur.n; i++)
            links += S_ISDIR(n->cur.v[i].n->mode);
        st->st_nlink = links;
        st->st_size = PAGE;
    } else {
        st->st_nlink = n == G.ctl ? 1 : (nlink_t)n->links;
        st->st_size = n->size;
    }
    st->st_blocks = (st->st_size + 511) / 512;
}

/* Answers a lookup-like request; the kernel now holds a reference. */
static void reply_entry(fuse_req_t req, node *n)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    e.ino = ID(n);
    e.attr_timeout = e.entry_timeout = TIMEOUT;
    fill_stat(n, &e.attr);
    if (n != G.ctl && n != G.root && n->nlookup++ == 0) n->refs++;
    fuse_reply_entry(req, &e);
}

static void forget_one(fuse_ino_t ino, uint64_t count)
{
    node *n = N(ino);
    if (n == G.root || n == G.ctl) return;
    n->nlookup = count < n->nlookup ? n->nlookup - count : 0;
    if (n->nlookup == 0) node_unref(n);
}

static int new_handle(struct fuse_file_info *fi, node *n)
{
    handle *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->n = n;
    h->ctl = n == G.ctl;
    if (!h->ctl) n->refs++;
    fi->fh = (uint64_t)(uintptr_t)h;
    return 0;
}

static void free_handle(handle *h)
{
    if (!h) return;
    if (!h->ctl) node_unref(h->n);
    for (size_t i = 0; i < h->nents; i++) {
        free(h->ents[i].name);
        node_unref(h->ents[i].n);
    }
    free(h->ents);
    free(h->text);
    free(h);
}

/* Every reply below is made with the lock held, so a cut (from SIGUSR1 or
 * an armed operation) can never fall between an operation and its answer. */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    LOCK();
    node *d = N(parent), *n = NULL;
    int rc = 0;
    if (d == G.root && strcmp(name, CTL_NAME) == 0) /* it works after a cut too */
        n = G.ctl;
    else if (G.dead)
        rc = EIO;
    else if (!S_ISDIR(d->mode))
        rc = ENOTDIR;
    else if (!(n = dmap_get(&d->cur, name)))
        rc = ENOENT;
    if (rc)
        fuse_reply_err(req, rc);
    else
        reply_entry(req, n);
    UNLOCK();
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    LOCK();
    forget_one(ino, nlookup);
    UNLOCK();
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    LOCK();
    for (size_t i = 0; i < count; i++)
        forget_one(forgets[i].ino, forgets[i].nlookup);
    UNLOCK();
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    LOCK();
    node *n = N(ino);
    if (G.dead && n != G.root && n != G.ctl) {
        fuse_reply_err(req, EIO);
    } else {
        struct stat st;
        fill_stat(n, &st);
        fuse_reply_attr(req, &st, TIMEOUT);
    }
    UNLOCK();
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    LOCK();
    node *n = N(ino);
    int rc = 0;
    if (n == G.ctl) {
        to_set = 0; /* `echo cut > .lossyfs-ctl` truncates first: ignore */
    } else if (G.dead) {
        rc = EIO;
    } else if ((to_set & FUSE_SET_ATTR_SIZE) && !S_ISREG(n->mode)) {
        rc = EISDIR;
    } else if ((to_set & FUSE_SET_ATTR_SIZE) && injected("truncate", n->label)) {
        rc = EIO;
    }
    struct timespec t;
    now(&t);
    if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
        rc = -file_truncate(n, attr->st_size);
        if (rc == 0) {
            G.count.truncates++;
            armed("truncate", n->label);
        }
    }
    if (rc == 0 && (to_set & FUSE_SET_ATTR_MODE))
        n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
    if (rc == 0 && (to_set & FUSE_SET_ATTR_UID)) n->uid = attr->st_uid;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_GID)) n->gid = attr->st_gid;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_ATIME))
        n->atime = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? t : attr->st_atim;
    if (rc == 0 && (to_set & FUSE_SET_ATTR_MTIME))
        n->mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? t : attr->st_mtim;
    if (rc == 0 && to_set) n->ctime = t;
    if (rc) {
        fuse_reply_err(req, rc);
    } else {
        struct stat st;
        fill_stat(n, &st);
        fuse_reply_attr(req, &st, TIMEOUT);
    }
    UNLOCK();
}

/* Checks that name may be added to parent; 0 or an errno. */
static int check_new(node *d, const char *name)
{
    if (G.dead) return EIO;
    if (!S_ISDIR(d->mode)) return ENOTDIR;
    if (strlen(name) > NAME_MAX) return ENAMETOOLONG;
    if (reserved(d, name)) return EPERM;
    if (dmap_get(&d->cur, name)) return EEXIST;
    return 0;
}

/* Links a new node into d under name; 0 or an errno. */
static int add_new(fuse_req_t req, node *d, const char *name, node *n)
{
    const struct fuse_ctx *c = fuse_req_ctx(req);
    n->uid = c->uid;
    n->gid = c->gid;
    set_label(n, d, name);
    n->refs++; /* held while inserting */
    int rc = -dmap_set(&d->cur, name, n);
    if (rc == 0) n->links = 1;
    now(&d->mtime);
    d->ctime = d->mtime;
    node_unref(n);
    return rc;
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    LOCK();
    node *d = N(parent), *n = NULL;
    int rc = check_new(d, name);
    if (rc == 0 && !(n = node_new(S_IFDIR | (mode & 07777)))) rc = ENOMEM;
    if (rc == 0) {
        n->parent = d; /* for life: directories never change parent */
        rc = add_new(req, d, name, n);
    }
    if (rc) {
        fuse_reply_err(req, rc);
    } else {
        G.count.mkdirs++;
        armed("mkdir", n->label);
        reply_entry(req, n);
    }
    UNLOCK();
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    LOCK();
    node *d = N(parent), *n = NULL;
    int rc = check_new(d, name);
    if (rc == EEXIST && !(fi->flags & O_EXCL)) { /* lost a race with another creator */
        n = dmap_get(&d->cur, name);
        rc = S_ISDIR(n->mode) ? EISDIR : 0;
        if (rc == 0 && (fi->flags & O_TRUNC)) rc = -file_truncate(n, 0);
    } else if (rc == 0) {
        char label[PATH_MAX];
        child_label(d, name, label, sizeof(label));
        if ((mode & S_IFMT) && !S_ISREG(mode))
            rc = EPERM;
        else if (injected("create", label))
            rc = EIO;
        else if (!(n = node_new(S_IFREG | (mode & 07777))))
            rc = ENOMEM;
        if (rc == 0 && (rc = add_new(req, d, name, n)) == 0) {
            G.count.creates++;
            armed("create", n->label);
        }
    }
    if (rc == 0) rc = -new_handle(fi, n);
    if (rc) {
        fuse_reply_err(req, rc);
    } else {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.ino = ID(n);
        e.attr_timeout = e.entry_timeout = TIMEOUT;
        fill_stat(n, &e.attr);
        if (n->nlookup++ == 0) n->refs++;
        if (fuse_reply_create(req, &e, fi) != 0) free_handle(H(fi));
    }
    UNLOCK();
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    LOCK();
    node *d = N(parent);
    long i = G.dead ? -1 : dmap_find(&d->cur, name);
    int rc = G.dead ? EIO : i < 0 ? ENOENT : S_ISDIR(d->cur.v[i].n->mode) ? EISDIR : 0;
    if (rc == 0 && injected("unlink", d->cur.v[i].n->label)) rc = EIO;
    if (rc == 0) {
        node *n = d->cur.v[i].n;
        n->links--;
        now(&n->ctime);
        d->mtime = d->ctime = n->ctime;
        G.count.unlinks++;
        char label[PATH_MAX];
        snprintf(label, sizeof(label), "%s", n->label ? n->label : name);
        dmap_del(&d->cur, i);
        armed("unlink", label);
    }
    fuse_reply_err(req, rc);
    UNLOCK();
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    LOCK();
    node *d = N(parent);
    long i = G.dead ? -1 : dmap_find(&d->cur, name);
    int rc = G.dead ? EIO : i < 0 ? ENOENT : 0;
    if (rc == 0 && !S_ISDIR(d->cur.v[i].n->mode)) rc = ENOTDIR;
    if (rc == 0 && d->cur.v[i].n->cur.n) rc = ENOTEMPTY;
    if (rc == 0) {
        node *n = d->cur.v[i].n;
        n->links = 0;
        now(&d->mtime);
        d->ctime = d->mtime;
        G.count.rmdirs++;
        char label[PATH_MAX];
        snprintf(label, sizeof(label), "%s", n->label ? n->label : name);
        dmap_del(&d->cur, i);
        armed("rmdir", label);
    }
    fuse_reply_err(req, rc);
    UNLOCK();
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    LOCK();
    node *d1 = N(parent), *d2 = N(newparent);
    int rc = G.dead ? EIO : 0;
    if (rc == 0 && (flags & ~RENAME_NOREPLACE)) rc = EINVAL; /* no RENAME_EXCHANGE */
    if (rc == 0 && strlen(newname) > NAME_MAX) rc = ENAMETOOLONG;
    node *x = rc == 0 ? dmap_get(&d1->cur, name) : NULL;
    node *y = rc == 0 ? dmap_get(&d2->cur, newname) : NULL;
    if (rc == 0 && !x) rc = ENOENT;
    if (rc == 0 && reserved(d2, newname)) rc = EPERM;
    if (rc == 0 && S_ISDIR(x->mode) && d1 != d2) rc = EXDEV; /* see the header */
    if (rc == 0 && y && (flags & RENAME_NOREPLACE)) rc = EEXIST;
    if (rc == 0 && y && y != x) {
        if (S_ISDIR(x->mode) && !S_ISDIR(y->mode)) rc = ENOTDIR;
        if (!S_ISDIR(x->mode) && S_ISDIR(y->mode)) rc = EISDIR;
        if (S_ISDIR(y->mode) && y->cur.n) rc = ENOTEMPTY;
    }
    if (rc == 0 && y != x) {
        char label[PATH_MAX];
        snprintf(label, sizeof(label), "%s", x->label ? x->label : name);
        x->refs++;
        if (y) y->links = S_ISDIR(y->mode) ? 0 : y->links - 1;
        rc = -dmap_set(&d2->cur, newname, x); /* drops y */
        if (rc == 0) dmap_del(&d1->cur, dmap_find(&d1->cur, name));
        now(&x->ctime);
        d1->mtime = d1->ctime = d2->mtime = d2->ctime = x->ctime;
        set_label(x, d2, newname);
        node_unref(x);
        if (rc == 0) {
            G.count.renames++;
            armed("rename", label);
        }
    }
    fuse_reply_err(req, rc);
    UNLOCK();
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    LOCK();
    node *n = N(ino);
    int rc = 0;
    if (n == G.ctl) {
        rc = -new_handle(fi, n);
        if (rc == 0) {
            H(fi)->text = status_text(&H(fi)->len);
            fi->direct_io = 1; /* fresh status on every read */
        }
    } else {
        rc = G.dead ? EIO : S_ISDIR(n->mode) ? EISDIR : 0;
        if (rc == 0 && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
            rc = -file_truncate(n, 0);
            if (rc == 0) {
                G.count.truncates++;
                armed("truncate", n->label);
            }
        }
        if (rc == 0) rc = -new_handle(fi, n);
    }
    if (rc)
        fuse_reply_err(req, rc);
    else if (fuse_reply_open(req, fi) != 0)
        free_handle(H(fi));
    UNLOCK();
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    LOCK();
    free_handle(H(fi));
    UNLOCK();
    fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0); /* close(2) is not a sync */
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    LOCK();
    handle *h = H(fi);
    if (h->ctl) {
        size_t got = 0;
        if ((size_t)off < h->len) got = h->len - (size_t)off < size ? h->len - (size_t)off : size;
        fuse_reply_buf(req, got ? h->text + off : NULL, got);
    } else if (G.dead) {
        fuse_reply_err(req, EIO);
    } else {
        char *buf = malloc(size ? size : 1);
        size_t got = 0;
        int rc = buf ? file_read(h->n, buf, size, off, &got) : -ENOMEM;
        if (rc)
            fuse_reply_err(req, -rc);
        else
            fuse_reply_buf(req, buf, got);
        free(buf);
    }
    UNLOCK();
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    LOCK();
    handle *h = H(fi);
    int rc;
    if (h->ctl) {
        char *copy = strndup(buf, size);
        rc = copy ? 0 : -ENOMEM;
        char *save = NULL;
        for (char *line = copy ? strtok_r(copy, "\n", &save) : NULL; rc == 0 && line;
             line = strtok_r(NULL, "\n", &save))
            rc = ctl_command(line);
        free(copy);
    } else if (G.dead || injected("write", h->n->label)) {
        rc = -EIO;
    } else if ((rc = file_write(h->n, buf, size, off)) == 0) {
        G.count.writes++;
        armed("write", h->n->label);
    }
    if (rc)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, size);
    UNLOCK();
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    LOCK();
    handle *h = H(fi);
    int rc = 0;
    if (!h->ctl) {
        if (G.dead || injected(datasync ? "fdatasync" : "fsync", h->n->label))
            rc = EIO; /* a failed sync makes nothing durable */
        else
            rc = -file_sync(h->n, datasync);
        if (rc == 0) {
            if (datasync)
                G.count.fdatasyncs++;
            else
                G.count.fsyncs++;
            armed(datasync ? "fdatasync" : "fsync", h->n->label);
        }
    }
    fuse_reply_err(req, rc);
    UNLOCK();
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    LOCK();
    node *d = N(ino);
    int rc = G.dead ? EIO : !S_ISDIR(d->mode) ? ENOTDIR : -new_handle(fi, d);
    if (rc == 0) { /* readdir serves a snapshot, so offsets stay valid */
        handle *h = H(fi);
        h->ents = calloc(d->cur.n ? d->cur.n : 1, sizeof(dent));
        for (size_t i = 0; h->ents && i < d->cur.n; i++) {
            h->ents[i].name = strdup(d->cur.v[i].name);
            if (!h->ents[i].name) break;
            h->ents[i].n = d->cur.v[i].n;
            h->ents[i].n->refs++;
            h->nents++;
        }
        if (h->nents != d->cur.n) {
            free_handle(h);
            rc = ENOMEM;
        }
    }
    if (rc)
        fuse_reply_err(req, rc);
    else if (fuse_reply_open(req, fi) != 0)
        free_handle(H(fi));
    UNLOCK();
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    LOCK();
    handle *h = H(fi);
    char *buf = malloc(size ? size : 1);
    if (G.dead || !buf) {
        fuse_reply_err(req, G.dead ? EIO : ENOMEM);
        free(buf);
        UNLOCK();
        return;
    }
    size_t used = 0;
    for (size_t i = (size_t)off; i < h->nents + 2; i++) {
        struct stat st;
        const char *name;
        if (i < 2) {
            memset(&st, 0, sizeof(st));
            st.st_mode = S_IFDIR;
            name = i == 0 ? "." : "..";
        } else {
            fill_stat(h->ents[i - 2].n, &st);
            name = h->ents[i - 2].name;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)i + 1);
        if (need > size - used) break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
    UNLOCK();
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    LOCK();
    free_handle(H(fi));
    UNLOCK();
    fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    LOCK();
    node *d = N(ino);
    const char *label = d == G.root ? "/" : d->label;
    int rc = G.dead || injected("fsyncdir", label) ? EIO : -dir_sync(d);
    if (rc == 0) {
        G.count.fsyncdirs++;
        armed("fsyncdir", label);
    }
    fuse_reply_err(req, rc);
    UNLOCK();
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs st;
    if (fstatvfs(G.rootfd, &st) != 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_statfs(req, &st);
}

static void op_eperm_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    fuse_reply_err(req, EPERM);
}

static void op_eperm_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EPERM);
}

static void op_eperm_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                           dev_t rdev)
{
    fuse_reply_err(req, EPERM);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    fuse_reply_err(req, EOPNOTSUPP); /* glibc's posix_fallocate then writes zeros */
}

/* ---- mount, unmount ---------------------------------------------------------- */

typedef struct seen_ino {
    dev_t dev;
    ino_t ino;
    node *n;
} seen_ino;

static struct {
    seen_ino *v;
    size_t n, cap;
} scan_seen;

/* Loads the backing tree: every name is both current and durable. Hard
 * links in the backing tree become one node. */
static int scan_dir(node *d, int dfd)
{
    int fd = dup(dfd);
    if (fd < 0) return -errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(dir))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (reserved(d, e->d_name)) continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = -errno;
            break;
        }
        node *n = NULL;
        if (S_ISREG(st.st_mode)) {
            for (size_t i = 0; i < scan_seen.n; i++)
                if (scan_seen.v[i].dev == st.st_dev && scan_seen.v[i].ino == st.st_ino)
                    n = scan_seen.v[i].n;
            if (!n) {
                if (!(n = node_new(st.st_mode))) {
                    rc = -ENOMEM;
                    break;
                }
                char h[64];
                hidden_name(n, h, sizeof(h));
                if (linkat(dfd, e->d_name, G.rootfd, h, 0) != 0 ||
                    (n->bfd = openat(G.rootfd, h, O_RDWR | O_CLOEXEC)) < 0) {
                    rc = -errno;
                    node_free(n);
                    break;
                }
                n->size = n->bsize = n->valid = st.st_size;
                if (scan_seen.n == scan_seen.cap) {
                    size_t cap = scan_seen.cap ? scan_seen.cap * 2 : 64;
                    seen_ino *v = realloc(scan_seen.v, cap * sizeof(*v));
                    if (!v) {
                        rc = -ENOMEM;
                        break;
                    }
                    scan_seen.v = v;
                    scan_seen.cap = cap;
                }
                scan_seen.v[scan_seen.n++] = (seen_ino){st.st_dev, st.st_ino, n};
            }
        } else if (S_ISDIR(st.st_mode)) {
            if (!(n = node_new(st.st_mode))) {
                rc = -ENOMEM;
                break;
            }
            n->parent = d;
        } else {
            warnx("ignoring %s (neither a regular file nor a directory)", e->d_name);
            continue;
        }
        n->uid = st.st_uid;
        n->gid = st.st_gid;
        n->atime = st.st_atim;
        n->mtime = st.st_mtim;
        n->ctime = st.st_ctim;
        n->links++;
        set_label(n, d, e->d_name);
        if ((rc = dmap_set(&d->cur, e->d_name, n)) == 0) rc = dmap_set(&d->dur, e->d_name, n);
        if (rc == 0 && S_ISDIR(n->mode)) {
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            rc = sub < 0 ? -errno : scan_dir(n, sub);
            if (sub >= 0) close(sub);
        }
    }
    closedir(dir);
    return rc;
}

static void *cut_on_signal(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0) continue;
        LOCK();
        if (!G.dead) {
            cut_opts o = {.torn = G.torn, .seed = G.seed};
            power_cut(&o, "SIGUSR1");
        }
        UNLOCK();
    }
    return NULL;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* Writes reach this process before write(2) returns; the page cache
     * still serves reads and shared mmap (never direct I/O, which would
     * refuse SQLite's shared-memory file). */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    pthread_t t;
    if (pthread_create(&t, NULL, cut_on_signal, NULL) == 0) pthread_detach(t);
}

static void op_destroy(void *userdata)
{
    LOCK();
    if (!G.dead) {
        int rc = sync_all();
        if (rc) warnx("unmount: could not make everything durable: %s", strerror(-rc));
    }
    UNLOCK();
}

/* Frees every node at exit, whatever references remain. */
static void free_all(void)
{
    while (G.all) {
        node *n = G.all;
        G.all = n->next_all;
        if (n->bfd >= 0) close(n->bfd);
        drop_pages(n);
        for (size_t i = 0; i < n->cur.n; i++)
            free(n->cur.v[i].name);
        for (size_t i = 0; i < n->dur.n; i++)
            free(n->dur.v[i].name);
        free(n->cur.v);
        free(n->dur.v);
        free(n->label);
        free(n);
    }
    for (size_t i = 0; i < G.ntlog; i++)
        free(G.tlog[i].data);
    free(G.tlog);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .destroy = op_destroy,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .mkdir = op_mkdir,
    .create = op_create,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .rename = op_rename,
    .open = op_open,
    .release = op_release,
    .flush = op_flush,
    .read = op_read,
    .write = op_write,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .link = op_eperm_link,
    .symlink = op_eperm_symlink,
    .mknod = op_eperm_mknod,
    .fallocate = op_fallocate,
};

struct cmdline {
    unsigned torn;
    unsigned long seed;
    char *backing;
};
static struct cmdline opts;

static const struct fuse_opt opt_spec[] = {
    {"torn=%u", offsetof(struct cmdline, torn), 0},
    {"seed=%lu", offsetof(struct cmdline, seed), 0},
    FUSE_OPT_END,
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *out)
{
    if (key == FUSE_OPT_KEY_NONOPT && !opts.backing) {
        opts.backing = strdup(arg);
        return 0; /* consumed: the first non-option is the backing directory */
    }
    return 1;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-o torn=0|512|4096,seed=N] BACKING MOUNTPOINT [-f] [-d] [-o "
            "FUSE options]\n(see the header comment of tests/powerloss/lossyfs.c)\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts co;
    memset(&co, 0, sizeof(co));
    if (fuse_opt_parse(&args, &opts, opt_spec, opt_proc) != 0 ||
        fuse_parse_cmdline(&args, &co) != 0)
        return usage(argv[0]);
    if (co.show_help || !opts.backing || !co.mountpoint) return usage(argv[0]);
    if (opts.torn != 0 && opts.torn != 512 && opts.torn != 4096) {
        fprintf(stderr, "lossyfs: torn must be 0, 512 or 4096\n");
        return 2;
    }
    G.torn = opts.torn;
    G.seed = opts.seed;
    G.backing = realpath(opts.backing, NULL);
    if (!G.backing || (G.rootfd = open(G.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "lossyfs: cannot open backing directory %s: %s\n", opts.backing,
                strerror(errno));
        return 1;
    }
    G.next_ino = 3;                   /* 1 is the root, 2 the control file */
    remove_backing(G.rootfd, HIDDEN); /* stale after a kill -9 */
    if (mkdirat(G.rootfd, HIDDEN, 0700) != 0) {
        fprintf(stderr, "lossyfs: cannot create %s/%s: %s\n", G.backing, HIDDEN, strerror(errno));
        return 1;
    }
    struct stat st;
    fstat(G.rootfd, &st);
    G.root = node_new(st.st_mode);
    G.ctl = node_new(S_IFREG | 0600);
    if (!G.root || !G.ctl) return 1;
    G.root->ino = 1;
    G.root->refs = G.root->links = 1;
    G.ctl->ino = 2;
    G.ctl->refs = 1;
    int rc = scan_dir(G.root, G.rootfd);
    free(scan_seen.v);
    if (rc) {
        fprintf(stderr, "lossyfs: cannot read backing directory %s: %s\n", G.backing,
                strerror(-rc));
        return 1;
    }

    /* SIGUSR1 is taken by a thread of its own (op_init): block it here so
     * every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    fuse_opt_add_arg(&args, "-ofsname=lossyfs,subtype=lossyfs");
    rc = 1;
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
    if (se && fuse_set_signal_handlers(se) == 0) {
        if (fuse_session_mount(se, co.mountpoint) == 0) {
            fuse_daemonize(co.foreground);
            rc = fuse_session_loop(se) == 0 ? 0 : 1; /* one thread: see the header */
            fuse_session_unmount(se);
        }
        fuse_remove_signal_handlers(se);
    }
    if (se) fuse_session_destroy(se); /* calls op_destroy */
    remove_backing(G.rootfd, HIDDEN);
    free_all();
    fuse_opt_free_args(&args);
    free(co.mountpoint);
    close(G.rootfd);
    free(G.backing);
    free(opts.backing);
    return rc;
}
