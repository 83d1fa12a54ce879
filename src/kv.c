/*
 * kv — backend registry and the listing entry shared by the backends. See
 * kv.h. Any thread; no state.
 */
#include "kv.h"

#include <jansson.h>
#include <string.h>

const gd_kv_ops *gd_kv_find(const char *spec, const char **where)
{
    *where = NULL;
    if (strcmp(spec, gd_kv_sqlite.name) == 0) return &gd_kv_sqlite;
    if (strncmp(spec, "redis://", 8) == 0) {
        *where = spec;
        return &gd_kv_redis;
    }
    return NULL;
}

void gd_kv_list_item(gd_buf *out, int n, const char *id, int64_t updated_at, const char *value)
{
    json_error_t e;
    json_t *v = json_loads(value, 0, &e);
    if (n) gd_buf_putc(out, ',');
    gd_buf_puts(out, "{\"id\":");
    gd_json_str(out, id);
    gd_buf_puts(out, ",\"name\":");
    json_t *name = json_object_get(v, "name");
    if (json_is_string(name))
        gd_json_str(out, json_string_value(name));
    else
        gd_buf_puts(out, "null");
    gd_buf_printf(out, ",\"updatedAt\":%lld,\"trackCount\":%zu,\"immutable\":%s}",
                  (long long)updated_at,
                  json_array_size(json_object_get(json_object_get(v, "state"), "tracks")),
                  json_is_true(json_object_get(v, "immutable")) ? "true" : "false");
    json_decref(v);
}
