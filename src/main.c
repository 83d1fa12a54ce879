/*
 * main — `grooved [flags]` runs the server; `grooved gc --data-dir DIR
 * --older-than-days N [--dry-run]` garbage-collects sessions nobody has
 * accessed for N days (offline: it refuses while a server holds the data
 * directory).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "store.h"

static int gc_main(int argc, char **argv)
{
    const char *dir = "./data";
    long days = -1;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--older-than-days") == 0 && i + 1 < argc)
            days = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry = true;
        else {
            fprintf(stderr, "usage: grooved gc --data-dir DIR --older-than-days N [--dry-run]\n");
            return 2;
        }
    }
    if (days < 1) {
        fprintf(stderr, "grooved gc: --older-than-days must be a whole number of days >= 1\n");
        return 2;
    }
    gd_store *st;
    int rc = gd_store_open(&st, dir, &gd_kv_sqlite, NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "grooved gc: cannot open %s: %s%s\n", dir, strerror(-rc),
                rc == -EBUSY ? " (stop grooved first)" : "");
        return 1;
    }
    size_t removed = 0;
    rc = gd_store_recover(st, GD_DAMAGE_REFUSE, NULL);
    if (rc == 0) rc = gd_store_gc(st, gd_now_ms() - days * 86400000LL, dry, &removed);
    gd_store_close(st);
    if (rc != 0) {
        fprintf(stderr, "grooved gc: failed: %s\n", strerror(-rc));
        return 1;
    }
    printf("%s %zu sessions not accessed for %ld days\n", dry ? "would remove" : "removed", removed,
           days);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "gc") == 0) return gc_main(argc - 1, argv + 1);
    gd_config cfg;
    int rc = gd_config_load(&cfg, argc, argv, stderr);
    if (rc > 0) return 0;
    if (rc < 0) return 2;
    return gd_server_run(&cfg);
}
