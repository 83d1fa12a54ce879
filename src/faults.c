/*
 * faults — see faults.h.
 */
#include "faults.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *dir;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    dir = getenv("GROOVED_TEST_FAULT_DIR");
}

bool gd_fault(const char *site)
{
    pthread_once(&once, read_env);
    if (!dir) return false;
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, site);
    return access(path, F_OK) == 0;
}
