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
    char kv[32];
    char web_root[512];
    int evict_after;      /* seconds with no players before eviction */
    int hibernate_after;
    int memory_budget_mb; /* estimated session memory before LRU eviction */  /* seconds of silence from every player before state is dropped */
    int checkpoint_every; /* ops between checkpoints */
    int create_rate;      /* session creations per minute per client IP */
    char trusted_proxy[64];
    int ws_rate;          /* messages per second per connection (burst 2x) */
    int out_cap_kb;       /* per-connection output queue cap */
    int idle_timeout;     /* seconds of silence before a socket is closed */
    char log_level[16];
    int debug_routes;
} gd_config;

/* Fills cfg from defaults, environment and argv. Returns 0 to run, 1 when
 * --help was printed, or -EINVAL after printing one clear message to err. */
int gd_config_load(gd_config *cfg, int argc, char **argv, FILE *err);
void gd_config_help(FILE *out);
/* One line "key=value ..." for the startup log. */
void gd_config_describe(const gd_config *cfg, char *out, size_t len);

#endif
