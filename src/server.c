/*
 * server — the lws context and its single protocol callback, the periodic
 * tick, signal handling and the graceful-shutdown sequence:
 *
 *   RUNNING ──SIGINT/SIGTERM──▶ [DRAINING] ──▶ FLUSHING (commit everything,
 *   write KV views and checkpoints) ──▶ CLOSING (sockets closed with 1012)
 *   ──▶ DONE
 *
 * DRAINING (--drain-seconds, 0 skips it; a second signal ends it) serves
 * everything as RUNNING does except /healthz, which answers 503, so that a
 * load balancer stops sending requests here before the players are closed
 * and reconnect through it to another node. The service manager hears
 * READY=1 once the port listens and STOPPING=1 when the stop begins
 * (notify.h). The loop thread runs everything here; the storage thread only
 * wakes it.
 */
#include "server.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "door.h"
#include "http_api.h"
#include "log.h"
#include "notify.h"
#include "session.h"
#include "static.h"
#include "ws.h"

gd_server *gd_server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

void gd_server_want_write(gd_conn *c)
{
    if (!c->in_writable) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    /* lws's raw-descriptor role turns POLLOUT off after the writable
     * callback returns, which would undo a request made inside it: ask
     * again from the connection's timer, on the next loop turn (callback()
     * below, LWS_CALLBACK_TIMER). */
    c->rearm_write = true;
    lws_set_timer_usecs(c->wsi, 1);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    gd_server *srv = gd_server_of(wsi);
    gd_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (srv && srv->store) gd_store_drain(srv->store);
        if (srv && srv->web) gd_static_drain(srv->web);
        return 0;
    /* Every socket is a raw descriptor to lws: the door reads request heads,
     * http_api answers requests, ws runs WebSockets. */
    case LWS_CALLBACK_RAW_RX_FILE:
        if (c->kind == GD_CONN_WS) return gd_ws_on_readable(srv, c);
        return gd_door_on_readable(srv, wsi, c);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE: {
        c->in_writable = true;
        int rc = c->kind == GD_CONN_HTTP ? gd_http_on_writable(srv, c) : gd_ws_on_writable(srv, c);
        c->in_writable = false;
        return rc;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (c->kind == GD_CONN_NEW) gd_door_on_closed(srv, wsi, c);
        if (c->kind == GD_CONN_HTTP) gd_http_on_closed(srv, c);
        gd_ws_on_closed(srv, c);
        return 0;
    case LWS_CALLBACK_TIMER:
        if (!c) return 0;
        if (c->rearm_write) {
            c->rearm_write = false;
            lws_callback_on_writable(wsi);
        }
        return gd_ws_on_timer(srv, c);
    case LWS_CALLBACK_WSI_DESTROY: /* the last wsi of a socket: its door ticket */
        if (srv) gd_door_on_destroy(srv, wsi);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"grooved", callback, sizeof(gd_conn), GD_MAX_MESSAGE, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static gd_server *signal_target;

static void on_signal(int sig)
{
    (void)sig;
    if (signal_target) {
        signal_target->stop_requested++;
        lws_cancel_service(signal_target->ctx);
    }
}

static void wake_loop(void *arg)
{
    gd_server *srv = arg;
    lws_cancel_service(srv->ctx);
}

static void collect_id(void *arg, const char *id)
{
    gd_server *srv = arg;
    if (gd_idset_add(&srv->sessions.ids, id) != 0)
        gd_event(GD_LOG_WARN, "stored_id_malformed", NULL, "id",
                 "ignoring stored session with malformed id '%.40s'", id);
}

static void close_all_players(gd_server *srv)
{
    for (gd_conn *c = srv->ws_conns; c; c = c->ws_next)
        gd_ws_close(c, 1012, "server restart");
}

static size_t count_players(gd_server *srv)
{
    size_t n = 0;
    for (size_t i = 0; i < srv->sessions.nbuckets; i++)
        for (gd_session *s = srv->sessions.buckets[i]; s; s = s->hnext)
            n += (size_t)s->nplayers;
    return n;
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    gd_server *srv = lws_container_of(sul, gd_server, tick_sul);
    if (srv->shutdown_phase == 0) gd_sessions_tick(&srv->sessions);
    gd_ws_tick(srv);
    lws_sul_schedule(srv->ctx, 0, &srv->tick_sul, tick_cb,
                     srv->shutdown_phase ? 20 * LWS_US_PER_MS : LWS_US_PER_SEC);
}

/* The end of the drain: its only job is to make lws_service return, so
 * that shutdown_step() runs. */
static void drain_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

static int64_t mono_ms(void)
{
    return gd_now_us() / 1000;
}

bool gd_server_draining(const gd_server *srv)
{
    return srv->drain_until_ms != 0 || srv->shutdown_phase != 0;
}

/* Advances the shutdown sequence; called after every loop turn. */
static void shutdown_step(gd_server *srv)
{
    if (srv->stop_requested && srv->shutdown_phase == 0 && srv->drain_until_ms == 0 &&
        srv->cfg.drain_seconds > 0) {
        srv->drain_until_ms = mono_ms() + (int64_t)srv->cfg.drain_seconds * 1000;
        gd_event(GD_LOG_INFO, "shutdown_draining", NULL, "seconds,sessions",
                 "stopping: draining for %d s (/healthz answers 503) with %zu sessions in memory",
                 srv->cfg.drain_seconds, srv->sessions.n);
        gd_notify("STOPPING=1\nSTATUS=draining: /healthz answers 503");
        lws_sul_schedule(srv->ctx, 0, &srv->drain_sul, drain_cb,
                         (lws_usec_t)srv->cfg.drain_seconds * LWS_US_PER_SEC);
    }
    bool drained =
        srv->drain_until_ms == 0 || mono_ms() >= srv->drain_until_ms || srv->stop_requested > 1;
    if (srv->stop_requested && srv->shutdown_phase == 0 && drained) {
        lws_sul_cancel(&srv->drain_sul);
        srv->shutdown_phase = 1;
        srv->shutdown_started_ms = gd_now_ms();
        gd_event(GD_LOG_INFO, "shutdown_started", NULL, "sessions",
                 "shutting down: committing and writing KV views of %zu sessions", srv->sessions.n);
        if (srv->drain_until_ms == 0)
            gd_notify("STOPPING=1\nSTATUS=shutting down: committing and writing KV views");
        else
            gd_notify("STATUS=shutting down: committing and writing KV views");
        lws_sul_schedule(srv->ctx, 0, &srv->tick_sul, tick_cb, 20 * LWS_US_PER_MS);
    }
    int64_t waited = gd_now_ms() - srv->shutdown_started_ms;
    if (srv->shutdown_phase == 1) {
        if (gd_sessions_flush_all(&srv->sessions) || waited > 15000) {
            if (waited > 15000)
                gd_event(GD_LOG_ERROR, "shutdown_storage_timeout", NULL, "seconds",
                         "shutdown: storage did not settle in %d s; closing anyway", 15);
            srv->shutdown_phase = 2;
            close_all_players(srv);
        }
    } else if (srv->shutdown_phase == 2) {
        if ((count_players(srv) == 0 && !srv->ws_conns) || waited > 20000) srv->shutdown_phase = 3;
    }
}

/* lws's own error lines, as events, so that json mode stays JSON. */
static void lws_line(int level, const char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    gd_event(level == LLL_ERR ? GD_LOG_ERROR : GD_LOG_WARN, "lws", NULL, NULL, "%.*s", (int)n,
             line);
}

int gd_server_run(const gd_config *cfg)
{
    static gd_server srv_storage;
    gd_server *srv = &srv_storage;
    memset(srv, 0, sizeof(*srv));
    srv->cfg = *cfg;
    gd_log_level = gd_log_level_from_name(cfg->log_level);
    gd_log_format = gd_log_format_from_name(cfg->log_format);
    int rc = gd_sessions_init(&srv->sessions, &srv->cfg, &srv->m, &gd_ws_player_ops);
    if (rc) return 1;
    if (gd_ratelimit_init(&srv->create_rate, cfg->create_rate, cfg->create_rate, 16384) ||
        gd_ratelimit_init(&srv->list_rate, cfg->list_rate, cfg->list_rate, 16384) ||
        gd_ratelimit_init(&srv->load_rate, cfg->load_rate, cfg->load_rate, 16384))
        return 1;

    const char *kv_where;
    const gd_kv_ops *kv = gd_kv_find(cfg->kv, &kv_where);
    if (!kv) {
        char shown[sizeof(cfg->kv)];
        gd_log_redact_url(shown, sizeof(shown), cfg->kv);
        gd_event(GD_LOG_ERROR, "kv_backend_unknown", NULL, "kv",
                 "unknown KV backend '%s' (known: sqlite, "
                 "redis://[[user]:password@]host[:port][/db])",
                 shown);
        return 1;
    }
    if (!srv->cfg.node_id[0]) { /* the default owner name: hostname:port */
        char host[64] = "grooved";
        gethostname(host, sizeof(host) - 1);
        snprintf(srv->cfg.node_id, sizeof(srv->cfg.node_id), "%.63s:%d", host,
                 cfg->port ? cfg->port : (int)getpid());
    }
    gd_store_config sc = {
        .store = cfg->store,
        .data_dir = cfg->data_dir,
        .kv = kv,
        .kv_where = kv_where,
        .node_id = srv->cfg.node_id,
        .wake = wake_loop,
        .wake_arg = srv,
        .on_taken = gd_sessions_on_taken,
        .on_taken_arg = &srv->sessions,
    };
    /* In cluster mode other nodes create sessions: ids are looked up. */
    srv->sessions.ids_complete = gd_durable_find(cfg->store) == &gd_durable_local;
    if ((rc = gd_store_open(&srv->store, &sc)) != 0) {
        gd_event(GD_LOG_ERROR, "store_open_failed", NULL, "data_dir,error",
                 "cannot open the store in %s: %s", cfg->data_dir, strerror(-rc));
        return 1;
    }
    srv->sessions.store = srv->store;
    size_t quarantined = 0;
    gd_damage_policy on_damage =
        strcmp(cfg->on_damage, "quarantine") == 0 ? GD_DAMAGE_QUARANTINE : GD_DAMAGE_REFUSE;
    if ((rc = gd_store_recover(srv->store, on_damage, &quarantined)) != 0) {
        gd_event(GD_LOG_ERROR, "recovery_failed", NULL, "error",
                 "crash recovery failed: %s; not starting",
                 rc == -EBADMSG ? "stored data cannot be read (see above)" : strerror(-rc));
        gd_store_close(srv->store);
        return 1;
    }
    if (quarantined)
        gd_event(GD_LOG_ERROR, "recovery_quarantined", NULL, "sessions,data_dir",
                 "recovery set %zu sessions aside in %s/quarantine/ (--on-damage quarantine); "
                 "they answer with an error until the operator acts",
                 quarantined, cfg->data_dir);
    if ((rc = gd_store_each_id(srv->store, collect_id, srv)) != 0) {
        gd_event(GD_LOG_ERROR, "store_list_failed", NULL, "error",
                 "cannot list stored sessions: %s", strerror(-rc));
        gd_store_close(srv->store);
        return 1;
    }

    /* Each player is a socket: allow as many as the hard limit permits. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* The listening sockets, bound to exactly --host: before anything runs. */
    if (gd_door_listen(srv) != 0) {
        gd_store_close(srv->store);
        return 1;
    }

    lws_set_log_level(LLL_ERR, gd_log_format == GD_LOG_JSON ? lws_line : NULL);
    static const lws_retry_bo_t retry = {
        .secs_since_valid_ping = 30,
        .secs_since_valid_hangup = 90,
    };
    lws_retry_bo_t *policy = malloc(sizeof(*policy));
    if (!policy) {
        gd_store_close(srv->store);
        return 1;
    }
    *policy = retry;
    policy->secs_since_valid_hangup = (uint16_t)cfg->idle_timeout;
    if (policy->secs_since_valid_ping >= policy->secs_since_valid_hangup)
        policy->secs_since_valid_ping = (uint16_t)(cfg->idle_timeout / 3);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* the door listens (door.c) */
    info.protocols = protocols;
    info.max_http_header_data = GD_DOOR_MAX_HEAD;
    info.user = srv;
    info.vhost_name = "grooved";
    info.retry_and_idle_policy = policy;
    info.timeout_secs = 30;
    info.pt_serv_buf_size = 32 * 1024;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    srv->ctx = lws_create_context(&info);
    srv->sessions.ctx = srv->ctx;
    srv->vhost = srv->ctx ? lws_get_vhost_by_name(srv->ctx, "grooved") : NULL;
    if (!srv->vhost || gd_door_start(srv) != 0) {
        gd_event(GD_LOG_ERROR, "listen_failed", NULL, "host,port",
                 "cannot start the network loop on %s:%d", cfg->host, cfg->port);
        if (srv->ctx) lws_context_destroy(srv->ctx);
        gd_door_close(srv);
        gd_store_close(srv->store);
        free(policy);
        return 1;
    }
    if ((rc = gd_store_start(srv->store)) != 0) {
        gd_event(GD_LOG_ERROR, "storage_thread_failed", NULL, "error",
                 "cannot start the storage thread: %s", strerror(-rc));
        lws_context_destroy(srv->ctx);
        gd_store_close(srv->store);
        free(policy);
        return 1;
    }
    if ((rc = gd_static_open(&srv->web, cfg->web_root, wake_loop, srv)) != 0) {
        gd_log(GD_LOG_ERROR, "cannot start the web root's worker: %s", strerror(-rc));
        lws_context_destroy(srv->ctx);
        gd_store_close(srv->store);
        free(policy);
        return 1;
    }

    signal_target = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char desc[1024];
    gd_config_describe(cfg, desc, sizeof(desc));
    gd_event(GD_LOG_INFO, "config", NULL, NULL, "config: %s", desc);
    char index[600];
    snprintf(index, sizeof(index), "%s/index.html", cfg->web_root);
    if (access(index, R_OK) != 0)
        gd_event(GD_LOG_WARN, "web_root_missing", NULL, "web_root",
                 "no index.html in the web root %s: the web page will not load (see --web-root)",
                 cfg->web_root);
    /* Every address --host named (a name may give several), exactly. */
    char also[400] = "";
    for (int i = 1; i < srv->door.nfds; i++)
        snprintf(also + strlen(also), sizeof(also) - strlen(also), "%shttp://%s%s%s:%d",
                 i > 1 ? ", " : " and ", srv->door.v6[i] ? "[" : "", srv->door.hosts[i],
                 srv->door.v6[i] ? "]" : "", srv->port);
    const gd_door *d = &srv->door;
    gd_event(GD_LOG_INFO, "listening", NULL,
             ",host,,port,,data_dir,kv,sessions_known,max_connections,max_conns_per_ip",
             "grooved listening on http://%s%s%s:%d%s (data dir %s, KV view %s, %zu sessions "
             "known, at most %zu connections, %d per client address)",
             d->v6[0] ? "[" : "", d->hosts[0], d->v6[0] ? "]" : "", srv->port, also, cfg->data_dir,
             kv->name, srv->sessions.ids.n, d->global_cap, cfg->max_conns_per_ip);
    char status[256];
    snprintf(status, sizeof(status), "READY=1\nSTATUS=listening on %s:%d, %zu sessions known",
             cfg->host, srv->port, srv->sessions.ids.n);
    gd_notify(status);

    lws_sul_schedule(srv->ctx, 0, &srv->tick_sul, tick_cb, LWS_US_PER_SEC);
    while (srv->shutdown_phase < 3) {
        if (lws_service(srv->ctx, 0) < 0) break;
        shutdown_step(srv);
    }
    lws_sul_cancel(&srv->tick_sul);
    lws_sul_cancel(&srv->drain_sul);
    gd_sessions_cancel_timers(&srv->sessions);

    srv->shutdown_phase = 3;
    /* No new work from here; what is still queued finishes (or is
     * cancelled) and its callbacks run while the lws context is alive, and
     * the storage threads are joined before the context goes, so that
     * their wake-ups never touch freed memory. */
    gd_store_stop_intake(srv->store);
    while (gd_store_pending(srv->store) > 0) {
        if (gd_store_drain(srv->store) == 0) usleep(1000);
    }
    gd_store_close(srv->store);
    srv->store = srv->sessions.store = NULL;
    /* The web root's worker stays up while connections close (an abandoned
     * file is closed by it) but wakes nobody from here on. */
    gd_static_detach(srv->web);
    lws_context_destroy(srv->ctx);
    gd_static_close(srv->web);
    gd_sessions_free(&srv->sessions);
    gd_ratelimit_free(&srv->create_rate);
    gd_ratelimit_free(&srv->list_rate);
    gd_ratelimit_free(&srv->load_rate);
    gd_conncount_free(&srv->door.conns);
    if (srv->door.spare_fd >= 0) close(srv->door.spare_fd);
    gd_msg_unref(srv->pong_msg);
    free(policy);
    gd_event(GD_LOG_INFO, "stopped", NULL, "", "stopped");
    return 0;
}
