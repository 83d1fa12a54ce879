/*
 * grooved-bench — a load generator that speaks grooved's protocol.
 *
 * Creates S sessions over REST (each with one 16-step track), opens C
 * WebSocket clients per session, waits for every snapshot, then each client
 * sends toggle_step with a `seq` and measures the time until it receives its
 * own step_toggled carrying that clientSeq (the acknowledgement, which the
 * server sends only after the op is durable). Modes:
 *   latency     one outstanding mutation per client
 *   throughput  a window of W outstanding mutations per client
 *   idle        connect, wait for snapshots, hold the sockets (memory figures)
 * Always bounded: stops after --duration seconds or --ops acks per client.
 * Over the measured window it reads utime+stime from /proc/PID/stat of the
 * server (--pid, repeatable: the sum over several nodes) and, on its own, of a
 * balancer in front (--proxy-pid) and of other processes (--other-pid,
 * repeatable, summed: e.g. PostgreSQL's); also its own CPU and the machine's
 * (/proc/stat), so that what else ran meanwhile shows.
 * Single thread, one lws loop. Prints a report, or JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct client {
    struct lws *wsi;
    int session;
    bool open, snapshot, done, failed;
    char player_id[40];
    uint64_t next_seq; /* next seq to send */
    uint64_t acked;    /* acks received */
    int outstanding;
    int64_t *sent_at; /* ring of send times by seq % window */
    int64_t connect_us;
} client;

static struct {
    const char *host;
    int port;
    int sessions, clients, window, duration, max_ops;
    int pids[16], npids;     /* the server's processes (--pid, repeatable: all nodes) */
    int proxy_pid;           /* a balancer in front (--proxy-pid): its CPU on its own */
    int others[64], nothers; /* more processes (--other-pid, e.g. PostgreSQL's): summed */
    const char *mode;
    bool json;
} opt = {.host = "127.0.0.1",
         .port = 8787,
         .sessions = 1,
         .clients = 1,
         .window = 1,
         .duration = 10,
         .mode = "latency"};

static client *clients;
static int nclients;
static char (*session_ids)[37];
static int64_t *lat; /* ack latencies, microseconds */
static size_t nlat, caplat;
static int64_t *snap_lat;
static size_t nsnap;
static uint64_t broadcasts, errors, timeouts, acks_total;
static int open_count, snapshot_count, closed_count;
static int64_t t_start_us, t_measure_us, t_end_us;
static volatile sig_atomic_t interrupted;
static bool measuring, stopping;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Blocking REST call used only for setup. Returns the HTTP status. */
/* Blocking HTTP/1.1 request used only for setup and the wake mode: body
 * NULL sends a GET. The response (cut to outlen) lands in out. Returns the
 * HTTP status, or -1. */
static int http_request(const char *path, const char *body, char *out, size_t outlen)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    snprintf(port, sizeof(port), "%d", opt.port);
    if (getaddrinfo(opt.host, port, &hints, &ai) != 0) return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        freeaddrinfo(ai);
        if (fd >= 0) close(fd);
        return -1;
    }
    freeaddrinfo(ai);
    char req[512];
    size_t blen = body ? strlen(body) : 0;
    int n =
        body ? snprintf(req, sizeof(req),
                        "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        path, opt.host, blen)
             : snprintf(req, sizeof(req),
                        "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, opt.host);
    if (write(fd, req, (size_t)n) != n || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < outlen && (r = read(fd, out + got, outlen - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    int status = 0;
    sscanf(out, "HTTP/1.%*d %d", &status);
    return status;
}

static void record_latency(int64_t us)
{
    if (nlat == caplat) {
        size_t cap = caplat ? caplat * 2 : 1 << 16;
        int64_t *p = realloc(lat, cap * sizeof(*p));
        if (!p) return;
        lat = p;
        caplat = cap;
    }
    lat[nlat++] = us;
}

static bool should_send(client *c)
{
    if (!measuring || stopping || c->done || strcmp(opt.mode, "idle") == 0) return false;
    if (opt.max_ops && c->next_seq - 1 >= (uint64_t)opt.max_ops) return false;
    return c->outstanding < opt.window;
}

/* Finds "key": in a message and returns a pointer to its value. */
static const char *field(const char *msg, const char *key)
{
    const char *p = strstr(msg, key);
    return p ? p + strlen(key) : NULL;
}

static void on_message(client *c, const char *msg, size_t len)
{
    (void)len;
    const char *type = field(msg, "\"type\":\"");
    if (!type) return;
    if (strncmp(type, "snapshot\"", 9) == 0) {
        if (!c->snapshot) {
            c->snapshot = true;
            snapshot_count++;
            snap_lat[nsnap++] = now_us() - c->connect_us;
            const char *pid = field(msg, "\"playerId\":\"");
            if (pid) snprintf(c->player_id, sizeof(c->player_id), "%.36s", pid);
        }
        return;
    }
    if (strncmp(type, "error\"", 6) == 0) {
        errors++;
        const char *cs = field(msg, "\"clientSeq\":");
        if (cs && c->outstanding > 0) c->outstanding--;
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (strncmp(type, "step_toggled\"", 13) != 0) return;
    if (measuring) broadcasts++;
    const char *pid = field(msg, "\"playerId\":\"");
    if (!pid || strncmp(pid, c->player_id, 36) != 0) return;
    const char *cs = field(msg, "\"clientSeq\":");
    if (!cs) return;
    uint64_t seq = strtoull(cs, NULL, 10);
    int64_t t = c->sent_at[seq % (uint64_t)opt.window];
    if (measuring && t) record_latency(now_us() - t);
    c->outstanding--;
    c->acked++;
    acks_total++;
    if (should_send(c)) lws_callback_on_writable(c->wsi);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    client *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->open = true;
        open_count++;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        /* Messages are small; lws delivers each in one piece here. */
        char buf[65536 + 1];
        size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
        memcpy(buf, in, n);
        buf[n] = '\0';
        on_message(c, buf, n);
        if (c->snapshot && should_send(c)) lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (stopping) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
            return -1;
        }
        if (!c->snapshot || !should_send(c)) break;
        unsigned char buf[LWS_PRE + 256];
        uint64_t seq = c->next_seq++;
        int n = snprintf((char *)buf + LWS_PRE, 256,
                         "{\"type\":\"toggle_step\",\"trackId\":\"t1\",\"step\":%d,\"seq\":%llu}",
                         (int)(seq % 16), (unsigned long long)seq);
        c->sent_at[seq % (uint64_t)opt.window] = now_us();
        c->outstanding++;
        if (lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_TEXT) < n) return -1;
        if (should_send(c)) lws_callback_on_writable(wsi);
        break;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            c->failed = true;
            c->done = true;
            closed_count++;
            fprintf(stderr, "grooved-bench: connection failed: %s\n", in ? (char *)in : "?");
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (c) {
            c->done = true;
            closed_count++;
        }
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"bench", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Wakes lws_service every 50 ms so the loops below can check their clocks
 * even when no socket is active (idle mode). */
static lws_sorted_usec_list_t tick;
static struct lws_context *tick_ctx;

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(tick_ctx, 0, sul, tick_cb, 50 * LWS_US_PER_MS);
}

static void on_signal(int s)
{
    (void)s;
    interrupted = 1;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

typedef struct proc_sample {
    double cpu_s;
    long rss_kb;
    long long write_bytes; /* bytes the server caused to be written to storage */
} proc_sample;

static proc_sample sample_one(int pid)
{
    proc_sample s = {0, 0, 0};
    if (!pid) return s;
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(buf, sizeof(buf), f)) {
            const char *p = strrchr(buf, ')');
            unsigned long ut = 0, st = 0;
            if (p &&
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                s.cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
        }
        fclose(f);
    }
    snprintf(path, sizeof(path), "/proc/%d/io", pid);
    f = fopen(path, "r");
    while (f && fgets(buf, sizeof(buf), f))
        if (strncmp(buf, "write_bytes:", 12) == 0) s.write_bytes = strtoll(buf + 12, NULL, 10);
    if (f) fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    while (f && fgets(buf, sizeof(buf), f))
        if (strncmp(buf, "VmRSS:", 6) == 0) s.rss_kb = strtol(buf + 6, NULL, 10);
    if (f) fclose(f);
    return s;
}

/* The CPU seconds of the --other-pid processes, summed. */
static double others_cpu(void)
{
    double s = 0;
    for (int i = 0; i < opt.nothers; i++)
        s += sample_one(opt.others[i]).cpu_s;
    return s;
}

/* CPU seconds this process used (the load generator's own cost). */
static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds every core of the machine spent busy (not idle or iowait), from
 * /proc/stat: with the figures above, what else ran meanwhile. */
static double machine_busy(void)
{
    unsigned long long v[10] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8) return 0;
    /* user nice system [idle iowait] irq softirq steal (guest is inside user) */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* The sum over the --pid processes (several nodes behind a balancer). */
static proc_sample sample_proc(void)
{
    proc_sample s = {0, 0, 0};
    for (int i = 0; i < opt.npids; i++) {
        proc_sample one = sample_one(opt.pids[i]);
        s.cpu_s += one.cpu_s;
        s.rss_kb += one.rss_kb;
        s.write_bytes += one.write_bytes;
    }
    return s;
}

/*
 * wake: creates S sessions with 16 full tracks, waits --duration seconds (run
 * the server with a shorter --evict-after so they are evicted), then times a
 * GET of each: a cold load of checkpoint + op log from the durable store.
 */
static int run_wake(void)
{
    static char body[60000];
    size_t used = (size_t)snprintf(body, sizeof(body), "{\"state\":{\"tracks\":[");
    for (int t = 0; t < 16; t++) {
        used += (size_t)snprintf(body + used, sizeof(body) - used,
                                 "%s{\"id\":\"t%d\",\"name\":\"Track %d\",\"sampleId\":\"kick\","
                                 "\"steps\":[",
                                 t ? "," : "", t, t);
        for (int k = 0; k < 128; k++)
            used += (size_t)snprintf(body + used, sizeof(body) - used, "%s%s", k ? "," : "",
                                     (k + t) % 3 ? "false" : "true");
        used += (size_t)snprintf(body + used, sizeof(body) - used, "]}");
    }
    snprintf(body + used, sizeof(body) - used, "]}}");
    char(*ids)[37] = calloc((size_t)opt.sessions, 37);
    int64_t *t = calloc((size_t)opt.sessions, sizeof(int64_t));
    if (!ids || !t) return 1;
    for (int i = 0; i < opt.sessions; i++) {
        char resp[4096];
        const char *id = http_request("/api/sessions", body, resp, sizeof(resp)) == 201
                             ? strstr(resp, "{\"id\":\"")
                             : NULL;
        if (!id) {
            fprintf(stderr, "grooved-bench: create failed\n");
            return 1;
        }
        snprintf(ids[i], 37, "%.36s", id + 7);
    }
    sleep((unsigned)opt.duration);
    int bad = 0;
    for (int i = 0; i < opt.sessions; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/sessions/%s", ids[i]);
        int64_t t0 = now_us();
        char resp[65536];
        bad += http_request(path, NULL, resp, sizeof(resp)) != 200;
        t[i] = now_us() - t0;
    }
    qsort(t, (size_t)opt.sessions, sizeof(*t), cmp64);
    printf("mode wake: %d sessions of 16 tracks, GET after %d s idle\n", opt.sessions,
           opt.duration);
    printf("  GET latency ms: p50 %.3f  p99 %.3f  max %.3f  (failures %d)\n",
           pct(t, (size_t)opt.sessions, 50), pct(t, (size_t)opt.sessions, 99),
           (double)t[opt.sessions - 1] / 1000, bad);
    free(ids);
    free(t);
    return bad ? 1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: grooved-bench [--host H] [--port P] [--sessions S] [--clients C]\n"
                    "                     [--mode latency|throughput|idle|wake] [--window W]\n"
                    "                     [--duration SECONDS] [--ops N] [--pid SERVER_PID]...\n"
                    "                     [--proxy-pid BALANCER_PID] [--other-pid PID]...\n"
                    "                     [--json]\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"host", 1, 0, 'h'},      {"port", 1, 0, 'p'},
                                             {"sessions", 1, 0, 's'},  {"clients", 1, 0, 'c'},
                                             {"mode", 1, 0, 'm'},      {"window", 1, 0, 'w'},
                                             {"duration", 1, 0, 'd'},  {"ops", 1, 0, 'n'},
                                             {"pid", 1, 0, 'P'},       {"proxy-pid", 1, 0, 'X'},
                                             {"other-pid", 1, 0, 'O'}, {"json", 0, 0, 'j'},
                                             {"help", 0, 0, '?'},      {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 's':
            opt.sessions = atoi(optarg);
            break;
        case 'c':
            opt.clients = atoi(optarg);
            break;
        case 'm':
            opt.mode = optarg;
            break;
        case 'w':
            opt.window = atoi(optarg);
            break;
        case 'd':
            opt.duration = atoi(optarg);
            break;
        case 'n':
            opt.max_ops = atoi(optarg);
            break;
        case 'P':
            if (opt.npids == (int)(sizeof(opt.pids) / sizeof(opt.pids[0]))) {
                usage();
                return 2;
            }
            opt.pids[opt.npids++] = atoi(optarg);
            break;
        case 'X':
            opt.proxy_pid = atoi(optarg);
            break;
        case 'O':
            if (opt.nothers == (int)(sizeof(opt.others) / sizeof(opt.others[0]))) {
                usage();
                return 2;
            }
            opt.others[opt.nothers++] = atoi(optarg);
            break;
        case 'j':
            opt.json = true;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (opt.sessions < 1 || opt.clients < 1 || opt.clients > 10 || opt.window < 1 ||
        opt.duration < 1 || opt.duration > 3600 ||
        (strcmp(opt.mode, "latency") && strcmp(opt.mode, "throughput") &&
         strcmp(opt.mode, "idle") && strcmp(opt.mode, "wake"))) {
        usage();
        return 2;
    }
    if (strcmp(opt.mode, "latency") == 0) opt.window = 1;
    if (strcmp(opt.mode, "wake") == 0) return run_wake();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    session_ids = calloc((size_t)opt.sessions, sizeof(*session_ids));
    nclients = opt.sessions * opt.clients;
    clients = calloc((size_t)nclients, sizeof(*clients));
    snap_lat = calloc((size_t)nclients, sizeof(*snap_lat));
    if (!session_ids || !clients || !snap_lat) return 1;
    const char *body = "{\"state\":{\"tracks\":[{\"id\":\"t1\",\"name\":\"Kick\",\"sampleId\":"
                       "\"kick\",\"steps\":[]}]}}";
    for (int i = 0; i < opt.sessions; i++) {
        char resp[4096];
        int st = http_request("/api/sessions", body, resp, sizeof(resp));
        const char *id = st == 201 ? strstr(resp, "{\"id\":\"") : NULL;
        if (!id) {
            fprintf(stderr, "grooved-bench: creating session %d failed (HTTP %d)\n", i, st);
            return 1;
        }
        snprintf(session_ids[i], 37, "%.36s", id + 7);
    }

    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.fd_limit_per_thread = (unsigned)nclients + 64;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) return 1;
    tick_ctx = ctx;
    lws_sul_schedule(ctx, 0, &tick, tick_cb, 50 * LWS_US_PER_MS);

    t_start_us = now_us();
    for (int i = 0; i < nclients; i++) {
        client *c = &clients[i];
        c->session = i / opt.clients;
        c->next_seq = 1;
        c->sent_at = calloc((size_t)opt.window, sizeof(int64_t));
        char path[128];
        snprintf(path, sizeof(path), "/api/sessions/%s/ws", session_ids[c->session]);
        struct lws_client_connect_info cc;
        memset(&cc, 0, sizeof(cc));
        cc.context = ctx;
        cc.address = opt.host;
        cc.port = opt.port;
        cc.path = path;
        cc.host = opt.host;
        cc.origin = opt.host;
        cc.local_protocol_name = "bench";
        cc.userdata = c;
        cc.pwsi = &c->wsi;
        c->connect_us = now_us();
        if (!lws_client_connect_via_info(&cc)) {
            c->failed = c->done = true;
            closed_count++;
        }
        if (i % 64 == 63) lws_service(ctx, 0); /* let early connections progress */
    }
    /* Wait for every snapshot (bounded), then measure. */
    int64_t deadline = now_us() + 60 * 1000000LL;
    while (!interrupted && snapshot_count + closed_count < nclients && now_us() < deadline)
        lws_service(ctx, 0);
    proc_sample p0 = sample_proc();
    double x0 = sample_one(opt.proxy_pid).cpu_s, o0 = others_cpu(), b0 = self_cpu(),
           m0 = machine_busy();
    measuring = true;
    t_measure_us = now_us();
    for (int i = 0; i < nclients; i++)
        if (clients[i].snapshot) lws_callback_on_writable(clients[i].wsi);
    int64_t stop_at = t_measure_us + (int64_t)opt.duration * 1000000;
    while (!interrupted && now_us() < stop_at) {
        lws_service(ctx, 0);
        if (opt.max_ops) {
            bool all = true;
            for (int i = 0; i < nclients && all; i++)
                all = clients[i].done || clients[i].acked >= (uint64_t)opt.max_ops;
            if (all) break;
        }
    }
    measuring = false;
    t_end_us = now_us();
    proc_sample p1 = sample_proc();
    double xcpu = sample_one(opt.proxy_pid).cpu_s - x0, ocpu = others_cpu() - o0,
           bcpu = self_cpu() - b0, mbusy = machine_busy() - m0;
    for (int i = 0; i < nclients; i++)
        timeouts += (uint64_t)(clients[i].outstanding > 0 ? clients[i].outstanding : 0);
    stopping = true;
    for (int i = 0; i < nclients; i++)
        if (!clients[i].done && clients[i].wsi) lws_callback_on_writable(clients[i].wsi);
    int64_t close_deadline = now_us() + 5 * 1000000LL;
    while (closed_count < nclients && now_us() < close_deadline)
        lws_service(ctx, 0);
    lws_sul_cancel(&tick);
    lws_context_destroy(ctx);

    qsort(lat, nlat, sizeof(*lat), cmp64);
    qsort(snap_lat, nsnap, sizeof(*snap_lat), cmp64);
    double secs = (double)(t_end_us - t_measure_us) / 1e6;
    double ops_s = (double)nlat / secs;
    double cpu = p1.cpu_s - p0.cpu_s;
    int failed = 0;
    for (int i = 0; i < nclients; i++)
        failed += clients[i].failed;
    if (opt.json) {
        printf("{\"mode\":\"%s\",\"sessions\":%d,\"clients\":%d,\"window\":%d,\"seconds\":%.3f,"
               "\"acked\":%zu,\"acked_per_s\":%.1f,\"broadcasts_per_s\":%.1f,"
               "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
               "\"connect_to_snapshot_ms\":{\"p50\":%.3f,\"p99\":%.3f},\"errors\":%llu,"
               "\"timeouts\":%llu,\"failed_connections\":%d,\"server_cpu_s\":%.3f,"
               "\"server_cpu_us_per_mutation\":%.2f,\"server_rss_kb\":%ld,"
               "\"server_disk_bytes_per_mutation\":%.1f,\"proxy_cpu_s\":%.3f,"
               "\"proxy_cpu_us_per_mutation\":%.2f,\"others_cpu_s\":%.3f,\"bench_cpu_s\":%.3f,"
               "\"machine_busy_cpu_s\":%.3f}\n",
               opt.mode, opt.sessions, opt.clients, opt.window, secs, nlat, ops_s,
               (double)broadcasts / secs, pct(lat, nlat, 50), pct(lat, nlat, 90),
               pct(lat, nlat, 99), pct(lat, nlat, 99.9), nlat ? (double)lat[nlat - 1] / 1000 : 0,
               pct(snap_lat, nsnap, 50), pct(snap_lat, nsnap, 99), (unsigned long long)errors,
               (unsigned long long)timeouts, failed, cpu, nlat ? cpu * 1e6 / (double)nlat : 0,
               p1.rss_kb, nlat ? (double)(p1.write_bytes - p0.write_bytes) / (double)nlat : 0, xcpu,
               nlat ? xcpu * 1e6 / (double)nlat : 0, ocpu, bcpu, mbusy);
    } else {
        printf("mode %s: %d sessions x %d clients, window %d, %.2f s measured\n", opt.mode,
               opt.sessions, opt.clients, opt.window, secs);
        printf("  acknowledged mutations: %zu (%.0f/s), broadcasts received %.0f/s\n", nlat, ops_s,
               (double)broadcasts / secs);
        printf("  ack latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
               pct(lat, nlat, 50), pct(lat, nlat, 90), pct(lat, nlat, 99), pct(lat, nlat, 99.9),
               nlat ? (double)lat[nlat - 1] / 1000 : 0);
        printf("  connect->snapshot ms: p50 %.3f  p99 %.3f (%zu of %d)\n", pct(snap_lat, nsnap, 50),
               pct(snap_lat, nsnap, 99), nsnap, nclients);
        printf("  errors %llu, unanswered at stop %llu, failed connections %d\n",
               (unsigned long long)errors, (unsigned long long)timeouts, failed);
        if (opt.npids)
            printf("  server: %.3f CPU s (%.1f us per mutation), RSS %ld KiB, "
                   "%.1f bytes written to disk per mutation\n",
                   cpu, nlat ? cpu * 1e6 / (double)nlat : 0, p1.rss_kb,
                   nlat ? (double)(p1.write_bytes - p0.write_bytes) / (double)nlat : 0);
        if (opt.proxy_pid)
            printf("  proxy: %.3f CPU s (%.1f %% of one core, %.1f us per mutation)\n", xcpu,
                   secs > 0 ? 100 * xcpu / secs : 0, nlat ? xcpu * 1e6 / (double)nlat : 0);
        if (opt.nothers) printf("  other processes: %.3f CPU s\n", ocpu);
        printf("  this load generator: %.3f CPU s; the whole machine: %.3f CPU s busy\n", bcpu,
               mbusy);
    }
    for (int i = 0; i < nclients; i++)
        free(clients[i].sent_at);
    free(clients);
    free(session_ids);
    free(lat);
    free(snap_lat);
    return failed == nclients ? 1 : 0;
}
