/*
 * main — parses the configuration and runs the server.
 */
#include <stdio.h>

#include "config.h"
#include "server.h"

int main(int argc, char **argv)
{
    gd_config cfg;
    int rc = gd_config_load(&cfg, argc, argv, stderr);
    if (rc > 0)
        return 0;
    if (rc < 0)
        return 2;
    return gd_server_run(&cfg);
}
