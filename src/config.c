/*
 * config — see config.h.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "ratelimit.h"

typedef enum { T_INT, T_STR } opt_type;

typedef struct opt {
    const char *flag; /* without leading -- */
    const char *env;
    opt_type type;
    size_t off;
    size_t size; /* T_STR buffer size */
    const char *def;
    long min, max; /* T_INT bounds */
    const char *help;
} opt;

#define STR(f) T_STR, offsetof(gd_config, f), sizeof(((gd_config *)0)->f)
#define INT(f) T_INT, offsetof(gd_config, f), 0

static const opt opts[] = {
    {"host", "GROOVED_HOST", STR(host), "127.0.0.1", 0, 0, "address to listen on"},
    {"port", "GROOVED_PORT", INT(port), "8787", 0, 65535, "TCP port (0 picks a free port)"},
    {"data-dir", "GROOVED_DATA_DIR", STR(data_dir), "./data", 0, 0,
     "directory of the durable store and the embedded KV view"},
    {"store", "GROOVED_STORE", STR(store), "local", 0, 0,
     "durable store: local (op log and checkpoints in the data directory) or "
     "postgres://[user@]host[:port][,host2[:port]...]/db (cluster mode)"},
    {"node-id", "GROOVED_NODE_ID", STR(node_id), "", 0, 0,
     "this node's name as a session's owner in cluster mode (default: hostname:port)"},
    {"kv", "GROOVED_KV", STR(kv), "sqlite", 0, 0,
     "KV view backend: sqlite (kv.db in the data directory) or "
     "redis://[[user]:password@]host[:port][/db]"},
    {"web-root", "GROOVED_WEB_ROOT", STR(web_root), "", 0, 0,
     "directory of the web page's files; default: BIN/../share/grooved/web if it has "
     "index.html (installed), else BIN/web (build tree), BIN being the binary's directory"},
    {"evict-after", "GROOVED_EVICT_AFTER", INT(evict_after), "30", 0, 86400,
     "seconds a session with no players stays in memory"},
    {"hibernate-after", "GROOVED_HIBERNATE_AFTER", INT(hibernate_after), "300", 1, 86400,
     "seconds of silence after which a session's state leaves memory (players stay)"},
    {"memory-budget-mb", "GROOVED_MEMORY_BUDGET_MB", INT(memory_budget_mb), "1024", 1, 1048576,
     "session state kept in memory before least-recently-used sessions are evicted"},
    {"checkpoint-every", "GROOVED_CHECKPOINT_EVERY", INT(checkpoint_every), "1000", 1, 1000000,
     "ops between full checkpoints of a session"},
    {"checkpoint-idle", "GROOVED_CHECKPOINT_IDLE", INT(checkpoint_idle), "60", 1, 86400,
     "seconds after a session's last op before it is checkpointed (lets the op log be trimmed)"},
    {"checkpoint-max-age", "GROOVED_CHECKPOINT_MAX_AGE", INT(checkpoint_max_age), "300", 1, 86400,
     "seconds an op may stay out of a checkpoint, however busy its session (bounds the op log "
     "and recovery)"},
    {"on-damage", "GROOVED_ON_DAMAGE", STR(on_damage), "refuse", 0, 0,
     "startup with a session whose stored data cannot be read: refuse (do not start) or "
     "quarantine (set it aside in <data-dir>/quarantine/ and start)"},
    {"create-rate", "GROOVED_CREATE_RATE", INT(create_rate), "100", 1, 1000000,
     "sessions one client IP may create per minute (create, remix, publish)"},
    {"list-rate", "GROOVED_LIST_RATE", INT(list_rate), "60", 1, 1000000,
     "session listings (GET /api/sessions) one client IP may request per minute"},
    {"load-rate", "GROOVED_LOAD_RATE", INT(load_rate), "120", 1, 1000000,
     "requests per minute one client IP may make that load a session from storage"},
    {"max-conns-per-ip", "GROOVED_MAX_CONNS_PER_IP", INT(max_conns_per_ip), "256", 1, 1000000,
     "open connections per client IP (IPv6: per /64); more are answered 503 at accept"},
    {"trusted-proxy", "GROOVED_TRUSTED_PROXY", STR(trusted_proxy), "", 0, 0,
     "IP address of the proxy whose right-most X-Forwarded-For entry is believed"},
    {"ws-rate", "GROOVED_WS_RATE", INT(ws_rate), "200", 1, 1000000,
     "WebSocket messages per second per connection (bursts of twice that)"},
    {"fanout-kb", "GROOVED_FANOUT_KB", INT(fanout_kb), "512", 1, 1048576,
     "KiB per second one connection may make the other players receive (bursts of twice that)"},
    {"out-cap-kb", "GROOVED_OUT_CAP_KB", INT(out_cap_kb), "4096", 64, 1048576,
     "KiB queued to one slow reader before it is disconnected"},
    {"idle-timeout", "GROOVED_IDLE_TIMEOUT", INT(idle_timeout), "90", 5, 86400,
     "seconds without any frame or pong before a socket is closed"},
    {"drain-seconds", "GROOVED_DRAIN_SECONDS", INT(drain_seconds), "0", 0, 300,
     "seconds a stopping server keeps serving while /healthz answers 503 (draining), so that "
     "load balancers stop sending it requests before its players are closed; 0: stop at once"},
    {"log-level", "GROOVED_LOG_LEVEL", STR(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"log-format", "GROOVED_LOG_FORMAT", STR(log_format), "text", 0, 0,
     "text (one line per event) or json (one JSON object per line, for log shippers)"},
    {"debug-routes", "GROOVED_DEBUG_ROUTES", INT(debug_routes), "0", 0, 1,
     "1 enables /api/debug/..."},
};

static const size_t nopts = sizeof(opts) / sizeof(opts[0]);

static bool has_index(const char *dir)
{
    char path[PATH_MAX];
    struct stat sb;
    if (snprintf(path, sizeof(path), "%s/index.html", dir) >= (int)sizeof(path)) return false;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

void gd_config_default_web_root(char *out, size_t len)
{
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 || (size_t)n >= sizeof(exe) - 1) {
        snprintf(out, len, "web");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0'; /* exe is now the binary's directory */
    char prefix[512];
    snprintf(prefix, sizeof(prefix), "%s", exe);
    if ((slash = strrchr(prefix, '/')) != NULL) *slash = '\0'; /* its parent: PREFIX */
    snprintf(out, len, "%s/share/grooved/web", prefix);
    if (has_index(out)) return;
    char tree[600];
    if (snprintf(tree, sizeof(tree), "%s/web", exe) < (int)sizeof(tree) && has_index(tree))
        snprintf(out, len, "%s", tree);
}

static int set_value(gd_config *cfg, const opt *o, const char *v, const char *src, FILE *err)
{
    char *p = (char *)cfg + o->off;
    if (o->type == T_STR) {
        if (strlen(v) >= o->size) {
            gd_log_usage(err, "grooved", "config_invalid", "source,flag,max",
                         "%s %s: value too long (max %zu bytes)", src, o->flag, o->size - 1);
            return -EINVAL;
        }
        memcpy(p, v, strlen(v) + 1);
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *v == '\0' || *end != '\0' || n < o->min || n > o->max) {
        gd_log_usage(err, "grooved", "config_invalid", "source,flag,value,min,max",
                     "%s %s: '%s' is not an integer from %ld to %ld", src, o->flag, v, o->min,
                     o->max);
        return -EINVAL;
    }
    *(int *)p = (int)n;
    return 0;
}

void gd_config_help(FILE *out)
{
    fprintf(out, "usage: grooved [--flag value]...\n\n"
                 "Real-time collaborative step-sequencer server.\n\n");
    char web_root[512];
    gd_config_default_web_root(web_root, sizeof(web_root));
    for (size_t i = 0; i < nopts; i++) {
        const char *def = opts[i].off == offsetof(gd_config, web_root) ? web_root : opts[i].def;
        fprintf(out, "  --%-18s %s (env %s, default \"%s\")\n", opts[i].flag, opts[i].help,
                opts[i].env, def);
    }
    fprintf(out, "  --%-18s print this help\n", "help");
    fprintf(out, "\nsubcommands:\n"
                 "  grooved gc --data-dir DIR --older-than-days N [--dry-run]\n"
                 "      remove sessions nobody has opened for N days (server stopped)\n"
                 "\nSIGINT or SIGTERM stops gracefully. Exit status: 0 after a graceful stop,\n"
                 "1 when the server cannot start or run, 2 for a bad flag or value.\n"
                 "See grooved(1).\n");
}

/* Error messages about the configuration itself follow --log-format, so the
 * format is settled before anything else is read. */
static void preset_log_format(int argc, char **argv)
{
    const char *v = getenv("GROOVED_LOG_FORMAT");
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--log-format") == 0 && a + 1 < argc)
            v = argv[++a];
        else if (strncmp(argv[a], "--log-format=", 13) == 0)
            v = argv[a] + 13;
    }
    int f = v ? gd_log_format_from_name(v) : -1;
    if (f >= 0) gd_log_format = f;
}

int gd_config_load(gd_config *cfg, int argc, char **argv, FILE *err)
{
    memset(cfg, 0, sizeof(*cfg));
    preset_log_format(argc, argv);
    size_t n = nopts;
    for (size_t i = 0; i < n; i++)
        if (set_value(cfg, &opts[i], opts[i].def, "default", err)) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(opts[i].env);
        if (v && set_value(cfg, &opts[i], v, "environment", err)) return -EINVAL;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            gd_config_help(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            gd_log_usage(err, "grooved", "config_invalid", "argument",
                         "unexpected argument '%s' (see --help)", arg);
            return -EINVAL;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt *o = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(opts[i].flag) == nlen && strncmp(opts[i].flag, name, nlen) == 0)
                o = &opts[i];
        if (!o) {
            gd_log_usage(err, "grooved", "config_invalid", "flag", "unknown flag '%s' (see --help)",
                         arg);
            return -EINVAL;
        }
        const char *v = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        if (!v) {
            gd_log_usage(err, "grooved", "config_invalid", "flag", "flag --%s needs a value",
                         o->flag);
            return -EINVAL;
        }
        if (set_value(cfg, o, v, "flag", err)) return -EINVAL;
    }
    if (strcmp(cfg->on_damage, "refuse") != 0 && strcmp(cfg->on_damage, "quarantine") != 0) {
        fprintf(err, "grooved: on-damage '%s' is not one of refuse, quarantine\n", cfg->on_damage);
        return -EINVAL;
    }
    gd_addr proxy;
    if (cfg->trusted_proxy[0] && gd_addr_parse(cfg->trusted_proxy, &proxy) != 0) {
        gd_log_usage(err, "grooved", "config_invalid", "value",
                     "trusted-proxy '%s' is not an IPv4 or IPv6 address", cfg->trusted_proxy);
        return -EINVAL;
    }
    if (gd_log_level_from_name(cfg->log_level) < 0) {
        gd_log_usage(err, "grooved", "config_invalid", "value",
                     "log-level '%s' is not one of error, warn, info, debug", cfg->log_level);
        return -EINVAL;
    }
    if (gd_log_format_from_name(cfg->log_format) < 0) {
        gd_log_usage(err, "grooved", "config_invalid", "value",
                     "log-format '%s' is not one of text, json", cfg->log_format);
        return -EINVAL;
    }
    if (cfg->web_root[0] == '\0') gd_config_default_web_root(cfg->web_root, sizeof(cfg->web_root));
    return 0;
}

void gd_config_describe(const gd_config *cfg, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < nopts && used < len; i++) {
        const char *p = (const char *)cfg + opts[i].off;
        char shown[1100];
        if (strcmp(opts[i].flag, "store") == 0 || strcmp(opts[i].flag, "kv") == 0) {
            gd_log_redact_url(shown, sizeof(shown), p);
            p = shown;
        }
        int w = opts[i].type == T_STR
                    ? snprintf(out + used, len - used, "%s%s=%s", i ? " " : "", opts[i].flag, p)
                    : snprintf(out + used, len - used, "%s%s=%d", i ? " " : "", opts[i].flag,
                               *(const int *)p);
        if (w < 0) break;
        used += (size_t)w;
    }
}
