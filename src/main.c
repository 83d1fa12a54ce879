/*
 * main — `grooved [flags]` runs the server; `grooved gc --data-dir DIR
 * --older-than-days N [--dry-run]` garbage-collects sessions nobody has
 * accessed for N days (offline: it refuses while a server holds the data
 * directory); `grooved backup` and `grooved verify` are in backup.c. Exit
 * status: 0 success, 1 failure at run time, 2 bad usage.
 * Main thread only.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "store.h"

static const char gc_usage[] =
    "usage: grooved gc --data-dir DIR --older-than-days N [--dry-run] [--log-format text|json]\n";

static int gc_main(int argc, char **argv)
{
    const char *dir = "./data";
    long days = -1;
    bool dry = false;
    const char *fmt = getenv("GROOVED_LOG_FORMAT");
    if (fmt && gd_log_format_from_name(fmt) >= 0) gd_log_format = gd_log_format_from_name(fmt);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--older-than-days") == 0 && i + 1 < argc) {
            days = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry = true;
        } else if (strcmp(argv[i], "--log-format") == 0 && i + 1 < argc &&
                   gd_log_format_from_name(argv[i + 1]) >= 0) {
            gd_log_format = gd_log_format_from_name(argv[++i]);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(gc_usage, stdout);
            return 0;
        } else {
            fputs(gc_usage, stderr);
            return 2;
        }
    }
    if (days < 1) {
        gd_log_usage(stderr, "grooved gc", "gc_usage", "",
                     "--older-than-days must be a whole number of days >= 1");
        return 2;
    }
    gd_store *st;
    int rc = gd_store_open(&st, dir, &gd_kv_sqlite, NULL, NULL, NULL);
    if (rc != 0) {
        gd_log_usage(stderr, "grooved gc", "gc_failed", "data_dir,error,hint",
                     "cannot open %s: %s%s", dir, strerror(-rc),
                     rc == -EBUSY ? " (stop grooved first)" : "");
        return 1;
    }
    size_t removed = 0;
    rc = gd_store_recover(st, GD_DAMAGE_REFUSE, NULL);
    if (rc == 0) rc = gd_store_gc(st, gd_now_ms() - days * 86400000LL, dry, &removed);
    gd_store_close(st);
    if (rc != 0) {
        gd_log_usage(stderr, "grooved gc", "gc_failed", "error", "failed: %s", strerror(-rc));
        return 1;
    }
    printf("%s %zu sessions not accessed for %ld days\n", dry ? "would remove" : "removed", removed,
           days);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "gc") == 0) return gc_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "backup") == 0) return gd_backup_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "verify") == 0) return gd_verify_main(argc - 1, argv + 1);
    gd_config cfg;
    int rc = gd_config_load(&cfg, argc, argv, stderr);
    if (rc > 0) return 0;
    if (rc < 0) return 2;
    return gd_server_run(&cfg);
}
