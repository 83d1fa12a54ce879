/*
 * door — see door.h.
 */
#define _GNU_SOURCE
#include "door.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "http_api.h"
#include "reqhead.h"
#include "ws.h"

typedef struct gd_ticket {
    gd_addr addr;
    bool counted; /* holds one of its address's --max-conns-per-ip */
    bool reserve; /* holds one of the health-check reserve instead */
    bool kicked;  /* its socket is being closed to make room in the reserve */
} gd_ticket;

static const char *reason_of(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

void gd_door_reply(int fd, int status, const char *type, const char *body, const char *extra)
{
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n"
                     "access-control-allow-origin: *\r\nconnection: close\r\n%s\r\n%s",
                     status, reason_of(status), type, strlen(body), extra ? extra : "", body);
    if (n > 0 && (size_t)n < sizeof(buf)) {
        ssize_t w = send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w; /* a peer that cannot take a few hundred bytes gets nothing */
    }
}

void gd_door_client_addr(const gd_server *srv, const gd_addr *peer, const char *xff, gd_addr *out)
{
    gd_addr_client(peer, srv->door.has_proxy ? &srv->door.proxy : NULL, xff, out);
}

/* ---- listening -------------------------------------------------------- */

static int listen_on(gd_server *srv, const struct addrinfo *ai, int port)
{
    gd_door *d = &srv->door;
    if (d->nfds >= (int)(sizeof(d->fds) / sizeof(d->fds[0]))) return -ENOSPC;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    int bound;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, d->hosts[d->nfds],
                  sizeof(d->hosts[0]));
        bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, d->hosts[d->nfds],
                  sizeof(d->hosts[0]));
        bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        d->v6[d->nfds] = true;
    }
    d->fds[d->nfds++] = fd;
    return bound;
}

int gd_door_listen(gd_server *srv)
{
    gd_door *d = &srv->door;
    d->spare_fd = -1;
    const char *host = srv->cfg.host[0] ? srv->cfg.host : NULL;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        gd_log(GD_LOG_ERROR, "cannot resolve --host '%s': %s", srv->cfg.host, gai_strerror(rc));
        return -EINVAL;
    }
    /* Port 0 picks a free port on the first address; the others must get
     * the same one (retried a few times if another process holds it there). */
    for (int attempt = 0; attempt < 8; attempt++) {
        int port = srv->cfg.port, err = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            bool dup = false;
            for (struct addrinfo *p = res; p != ai; p = p->ai_next)
                dup |= p->ai_addrlen == ai->ai_addrlen &&
                       memcmp(p->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0;
            if (dup || (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) continue;
            int bound = listen_on(srv, ai, port);
            if (bound >= 0) {
                port = bound;
                continue;
            }
            if (bound == -EADDRNOTAVAIL || bound == -EAFNOSUPPORT) {
                /* e.g. "localhost" names ::1 on a machine without IPv6 */
                gd_log(GD_LOG_WARN, "--host %s: one of its addresses is not available here",
                       srv->cfg.host);
                continue;
            }
            err = bound;
            break;
        }
        if (!err && d->nfds > 0) {
            srv->port = port;
            freeaddrinfo(res);
            return 0;
        }
        gd_door_close(srv);
        if (!err) err = -EADDRNOTAVAIL;
        if (err != -EADDRINUSE || srv->cfg.port != 0) {
            gd_log(GD_LOG_ERROR, "cannot listen on %s port %d: %s", srv->cfg.host, srv->cfg.port,
                   strerror(-err));
            freeaddrinfo(res);
            return err;
        }
    }
    freeaddrinfo(res);
    gd_log(GD_LOG_ERROR, "cannot find a free port on every address of %s", srv->cfg.host);
    return -EADDRINUSE;
}

void gd_door_close(gd_server *srv)
{
    gd_door *d = &srv->door;
    for (int i = 0; i < d->nfds; i++)
        if (!d->adopted[i]) close(d->fds[i]);
    d->nfds = 0;
}

int gd_door_start(gd_server *srv)
{
    gd_door *d = &srv->door;
    struct rlimit rl;
    size_t nofile = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (size_t)rl.rlim_cur : 1024;
    /* Descriptors kept back: those open now (store, SQLite, op log, lws),
     * 64 more for files opened later (log segments, web root files being
     * served), the health-check reserve and the sockets still closing. */
    size_t open_now = 0;
    DIR *dir = opendir("/proc/self/fd");
    for (struct dirent *e; dir && (e = readdir(dir));)
        open_now += e->d_name[0] != '.';
    if (dir) closedir(dir);
    size_t keep = (open_now ? open_now : 64) + 64 + GD_DOOR_HEALTH_RESERVE + 4;
    d->global_cap = nofile > keep + 16 ? nofile - keep : 16;
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    gd_conncount_init(&d->conns);
    if (srv->cfg.trusted_proxy[0]) {
        gd_addr_parse(srv->cfg.trusted_proxy, &d->proxy); /* validated by config */
        d->has_proxy = true;
    }
    for (int i = 0; i < d->nfds; i++) {
        lws_sock_file_fd_type fd = {.filefd = d->fds[i]};
        struct lws *wsi =
            lws_adopt_descriptor_vhost(srv->vhost, LWS_ADOPT_RAW_FILE_DESC, fd, "grooved", NULL);
        if (!wsi) return -ENOMEM;
        d->adopted[i] = true;
        gd_conn *c = lws_wsi_user(wsi);
        c->wsi = wsi;
        c->kind = GD_CONN_LISTEN;
    }
    return 0;
}

/* ---- accepting -------------------------------------------------------- */

static void ticket_release(gd_server *srv, gd_ticket *t)
{
    if (!t) return;
    if (t->counted) gd_conncount_remove(&srv->door.conns, &t->addr);
    if (t->reserve) srv->door.reserve_used--;
    if (t->kicked) srv->door.kills_pending--;
    free(t);
}

static void reserve_link(gd_door *d, gd_conn *c)
{
    c->rprev = d->reserve_tail;
    c->rnext = NULL;
    if (d->reserve_tail)
        d->reserve_tail->rnext = c;
    else
        d->reserve_head = c;
    d->reserve_tail = c;
    c->in_reserve = true;
}

/* Takes c off the list of reserve connections still waiting for a head. */
static void reserve_unlink(gd_door *d, gd_conn *c)
{
    if (!c->in_reserve) return;
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        d->reserve_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        d->reserve_tail = c->rprev;
    c->rnext = c->rprev = NULL;
    c->in_reserve = false;
}

/* Answers an idle reserve connection 503 and closes it, freeing its slot now. */
static void reserve_kick(gd_server *srv, gd_conn *c)
{
    gd_ticket *t = lws_get_opaque_user_data(c->wsi);
    reserve_unlink(&srv->door, c);
    if (t && t->reserve) {
        /* Its slot counts as free now, its descriptor only once it is
         * closed (on the next loop turn): kills_pending bounds the two. */
        t->reserve = false;
        t->kicked = true;
        srv->door.reserve_used--;
        srv->door.kills_pending++;
    }
    gd_door_reply(lws_get_socket_fd(c->wsi), 503, "application/json",
                  "{\"error\":\"Too many connections\"}", "retry-after: 5\r\n");
    c->answered = true;
    srv->door.refused++;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
}

static void refuse(gd_server *srv, int fd, const gd_addr *a, const char *why)
{
    gd_door *d = &srv->door;
    /* Read what already arrived, so that closing sends FIN, not RST. */
    char sink[4096];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {
    }
    gd_door_reply(fd, 503, "application/json", "{\"error\":\"Too many connections\"}",
                  "retry-after: 5\r\n");
    close(fd);
    d->refused++;
    int64_t now = gd_now_ms();
    if (now - d->warned_ms >= 1000) { /* one line a second at most, under a flood */
        d->warned_ms = now;
        char ip[64];
        gd_addr_format(a, ip, sizeof(ip));
        gd_log(GD_LOG_WARN, "refusing connections from %s: %s (%llu refused so far)", ip, why,
               (unsigned long long)d->refused);
    }
}

static void admit(gd_server *srv, int fd, const struct sockaddr *sa)
{
    gd_door *d = &srv->door;
    /* Every message is written whole and at once: Nagle's algorithm would
     * only hold acks and broadcasts back behind the peer's delayed ACK. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    gd_ticket *t = calloc(1, sizeof(*t));
    if (!t || gd_addr_from_sockaddr(sa, &t->addr) != 0) {
        free(t);
        close(fd);
        return;
    }
    bool proxy = d->has_proxy && gd_addr_equal(&t->addr, &d->proxy);
    int limit = proxy ? 1 << 30 : srv->cfg.max_conns_per_ip;
    const char *why = NULL;
    if (d->conns.total >= d->global_cap)
        why = "the server is at its connection limit";
    else if (gd_conncount_add(&d->conns, &t->addr, limit) != 0)
        why = "too many connections from this address";
    else
        t->counted = true;
    if (!t->counted) {
        /* The reserve is full: the connection that has waited longest
         * without sending a request makes room (a health check sends its
         * request at once, so idle sockets cannot hold the reserve). */
        if (d->reserve_used >= GD_DOOR_HEALTH_RESERVE && d->reserve_head && d->kills_pending < 4)
            reserve_kick(srv, d->reserve_head);
        if (d->reserve_used >= GD_DOOR_HEALTH_RESERVE) {
            refuse(srv, fd, &t->addr, why);
            free(t);
            return;
        }
        t->reserve = true; /* may only ask for /healthz */
        d->reserve_used++;
    }
    lws_adopt_desc_t info;
    memset(&info, 0, sizeof(info));
    info.vh = srv->vhost;
    info.type = LWS_ADOPT_RAW_FILE_DESC;
    info.fd.filefd = fd;
    info.vh_prot_name = "grooved";
    info.opaque = t;
    struct lws *wsi = lws_adopt_descriptor_vhost_via_info(&info);
    if (!wsi) { /* lws closed fd */
        ticket_release(srv, t);
        return;
    }
    gd_conn *c = lws_wsi_user(wsi);
    c->wsi = wsi;
    c->kind = GD_CONN_NEW;
    c->addr = t->addr;
    c->health_only = t->reserve;
    c->serial = ++srv->next_serial;
    if (t->reserve) reserve_link(d, c);
    d->accepted++;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE, t->reserve ? 2 : 10);
}

static int accept_some(gd_server *srv, gd_conn *lc)
{
    gd_door *d = &srv->door;
    int lfd = lws_get_socket_fd(lc->wsi);
    for (int i = 0; i < 64; i++) { /* then let the others have the loop */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(srv, fd, (struct sockaddr *)&ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && d->spare_fd >= 0) {
            /* Out of descriptors: free the spare one to take the connection
             * off the queue (else poll reports it forever) and refuse it. */
            close(d->spare_fd);
            fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                gd_addr a;
                memset(&a, 0, sizeof(a));
                gd_addr_from_sockaddr((struct sockaddr *)&ss, &a);
                refuse(srv, fd, &a, "out of file descriptors");
            }
            d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        break;
    }
    return 0;
}

/* ---- reading the request head ----------------------------------------- */

static bool is_health(const gd_reqhead *h)
{
    return (strcmp(h->method, "GET") == 0 || strcmp(h->method, "HEAD") == 0) &&
           h->target.len == 8 && memcmp(h->target.p, "/healthz", 8) == 0;
}

/* Consumes n bytes that a peek has already seen. */
static int consume(int fd, size_t n)
{
    char sink[4096];
    while (n) {
        ssize_t r = recv(fd, sink, n < sizeof(sink) ? n : sizeof(sink), MSG_DONTWAIT);
        if (r <= 0) return -1;
        n -= (size_t)r;
    }
    return 0;
}

static void set_lowat(int fd, int bytes)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
}

/* A request body, as it arrives; then the request runs. */
static int read_body(gd_server *srv, struct lws *wsi, gd_conn *c)
{
    char buf[16384];
    size_t want = c->body_left < (long long)sizeof(buf) ? (size_t)c->body_left : sizeof(buf);
    ssize_t n = recv(lws_get_socket_fd(wsi), buf, want, MSG_DONTWAIT);
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    gd_http_on_body(srv, c, buf, (size_t)n);
    c->body_left -= n;
    if (c->body_left > 0) return 0;
    lws_rx_flow_control(wsi, 0); /* one request per connection: nothing more is parsed */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    gd_http_on_body_done(srv, c);
    return 0;
}

/* After the response: input is read and dropped until the client closes. */
static int drain(struct lws *wsi)
{
    char sink[16384];
    ssize_t n = recv(lws_get_socket_fd(wsi), sink, sizeof(sink), MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    return n == 0 ? -1 : 0;
}

static int read_head(gd_server *srv, struct lws *wsi, gd_conn *c)
{
    int fd = lws_get_socket_fd(wsi);
    char buf[GD_DOOR_MAX_HEAD + 1];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    c->answered = n <= 0; /* gone: nobody to answer */
    if (n == 0) return -1;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    gd_reqhead h;
    int rc = gd_reqhead_parse(buf, (size_t)n, GD_DOOR_MAX_HEAD, &h);
    if (rc == -EAGAIN) {
        /* Wake again only when more bytes have come. */
        c->head_peeked = (int)n;
        set_lowat(fd, (int)n + 1);
        return 0;
    }
    if (rc != 0) {
        char body[128];
        snprintf(body, sizeof(body), "{\"error\":\"%s\"}", h.error);
        consume(fd, (size_t)n);
        gd_door_reply(fd, h.status, "application/json", body, NULL);
        c->answered = true;
        srv->m.bad_requests++;
        return -1;
    }
    c->answered = true; /* from here on, whoever takes the request answers it */
    reserve_unlink(&srv->door, c);
    if (c->health_only && !is_health(&h)) {
        srv->door.refused++;
        consume(fd, (size_t)n);
        gd_door_reply(fd, 503, "application/json", "{\"error\":\"Too many connections\"}",
                      "retry-after: 5\r\n");
        return -1;
    }
    if (consume(fd, h.head_len) != 0) return -1;
    if (c->head_peeked) set_lowat(fd, 1);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (h.upgrade_websocket) return gd_ws_upgrade(srv, c, &h);
    c->body_left = gd_http_begin(srv, c, &h);
    if (c->body_left > 0)
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_REASON_BASE, 30); /* for the whole body */
    else
        lws_rx_flow_control(wsi, 0);
    return 0;
}

int gd_door_on_readable(gd_server *srv, struct lws *wsi, gd_conn *c)
{
    if (c->kind == GD_CONN_LISTEN) return accept_some(srv, c);
    if (c->kind == GD_CONN_HTTP) {
        if (c->lingering) return drain(wsi);
        return c->body_left > 0 ? read_body(srv, wsi, c) : 0;
    }
    if (srv->shutdown_phase >= 2) return -1; /* no new requests while closing */
    return read_head(srv, wsi, c);
}

void gd_door_on_closed(gd_server *srv, struct lws *wsi, gd_conn *c)
{
    reserve_unlink(&srv->door, c);
    if (c->kind != GD_CONN_NEW || c->answered) return;
    /* The head did not come in time. */
    c->answered = true;
    if (c->health_only) {
        srv->door.refused++;
        gd_door_reply(lws_get_socket_fd(wsi), 503, "application/json",
                      "{\"error\":\"Too many connections\"}", "retry-after: 5\r\n");
    } else {
        gd_door_reply(lws_get_socket_fd(wsi), 408, "application/json",
                      "{\"error\":\"Request head not received in time\"}", NULL);
    }
}

void gd_door_on_destroy(gd_server *srv, struct lws *wsi)
{
    gd_ticket *t = lws_get_opaque_user_data(wsi);
    if (!t) return;
    lws_set_opaque_user_data(wsi, NULL);
    ticket_release(srv, t);
}
