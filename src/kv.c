/*
 * kv — backend registry. See kv.h.
 */
#include "kv.h"

#include <string.h>

const gd_kv_ops *gd_kv_find(const char *name)
{
    static const gd_kv_ops *const all[] = {&gd_kv_sqlite};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0) return all[i];
    return NULL;
}
