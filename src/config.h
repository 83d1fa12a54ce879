/*
 * config — grooved's configuration as one table: each entry has a flag, an
 * environment variable, a type, a default, bounds and help text. Flags beat
 * environment variables beat defaults. --help and the startup log line are
 * generated from the same table. Startup (main thread) only.
 */
#ifndef GD_CONFIG_H
#define GD_CONFIG_H

#include <stdio.h>

typedef struct gd_config {
    char host[128];
    int port;
    char data_dir[512];
    char kv[256];      /* "sqlite" or a redis:// URL */
    char store[1024];  /* "local" or a postgres:// URL */
    char node_id[128]; /* empty: hostname:port, filled in at startup */
    char web_root[512];
    /* Seconds a session with no players stays in memory. */
    int evict_after;
    /* Seconds of silence from every player before a session's state leaves memory. */
    int hibernate_after;
    /* Estimated session memory before least-recently-used sessions are evicted. */
    int memory_budget_mb;
    /* Ops between full checkpoints of a session. */
    int checkpoint_every;
    /* Seconds after a session's last op before its state is checkpointed, so
     * quiet sessions never pin old op log segments. */
    int checkpoint_idle;
    /* Seconds an op may stay out of a checkpoint while its session is busy. */
    int checkpoint_max_age;
    /* "refuse" or "quarantine": startup with stored data that cannot be read. */
    char on_damage[16];
    /* Session creations per minute per client IP (create, remix, publish). */
    int create_rate;
    /* Listings (GET /api/sessions) per minute per client IP. */
    int list_rate;
    /* Requests per minute per client IP that load a session from storage. */
    int load_rate;
    /* Open connections per client IP (IPv6: per /64). */
    int max_conns_per_ip;
    char trusted_proxy[64];
    /* WebSocket messages per second per connection (bursts of twice that). */
    int ws_rate;
    /* KiB per second one connection's messages may make the others receive. */
    int fanout_kb;
    /* KiB queued to one connection before it is closed as a slow reader. */
    int out_cap_kb;
    /* Seconds without a frame or pong before a socket is closed. */
    int idle_timeout;
    /* Seconds a stopping server goes on serving with /healthz answering 503
     * before it flushes and closes (0: none), for the load balancer. */
    int drain_seconds;
    char log_level[16];
    char log_format[16]; /* text or json */
    int debug_routes;
} gd_config;

/* Fills cfg from defaults, environment and argv. Returns 0 to run, 1 when
 * --help was printed, or -EINVAL after printing one clear message to err. */
int gd_config_load(gd_config *cfg, int argc, char **argv, FILE *err);
void gd_config_help(FILE *out);
/* The web root used when none is given, decided at run time from where the
 * binary is (/proc/self/exe): PREFIX/share/grooved/web when the binary is
 * PREFIX/bin/grooved and that directory has index.html (an installed
 * grooved), else web/ beside the binary (the build tree, where CMake links
 * it to the repository's web/). When neither has index.html, the first. */
void gd_config_default_web_root(char *out, size_t len);
/* One line "key=value ..." for the startup log; URLs redacted. */
void gd_config_describe(const gd_config *cfg, char *out, size_t len);

#endif
