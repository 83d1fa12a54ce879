/*
 * identity — see identity.h.
 */
#include "identity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static const char *const colors[18] = {"#E53935", "#D81B60", "#8E24AA", "#5E35B1", "#3949AB",
                                       "#1E88E5", "#039BE5", "#00ACC1", "#00897B", "#43A047",
                                       "#7CB342", "#C0CA33", "#FDD835", "#FFB300", "#FB8C00",
                                       "#F4511E", "#6D4C41", "#757575"};
static const char *const color_names[18] = {
    "Red",   "Pink", "Purple", "Violet", "Indigo", "Blue",   "Sky",   "Cyan",  "Teal",
    "Green", "Lime", "Olive",  "Yellow", "Amber",  "Orange", "Coral", "Brown", "Grey"};
static const char *const animals[73] = {
    "Ant",       "Badger",   "Bat",     "Bear",    "Beaver",  "Bee",      "Bird",     "Bison",
    "Butterfly", "Camel",    "Cat",     "Cheetah", "Chicken", "Crab",     "Crow",     "Deer",
    "Dog",       "Dolphin",  "Dove",    "Dragon",  "Duck",    "Eagle",    "Elephant", "Falcon",
    "Fish",      "Flamingo", "Fox",     "Frog",    "Giraffe", "Goat",     "Gorilla",  "Hamster",
    "Hawk",      "Hedgehog", "Hippo",   "Horse",   "Jaguar",  "Kangaroo", "Koala",    "Lemur",
    "Leopard",   "Lion",     "Llama",   "Lobster", "Monkey",  "Moose",    "Mouse",    "Octopus",
    "Otter",     "Owl",      "Panda",   "Panther", "Parrot",  "Peacock",  "Penguin",  "Pig",
    "Puma",      "Rabbit",   "Raccoon", "Raven",   "Rhino",   "Seal",     "Shark",    "Sheep",
    "Snake",     "Spider",   "Squid",   "Swan",    "Tiger",   "Turtle",   "Whale",    "Wolf",
    "Zebra"};

void gd_identity_derive(const char *id, gd_identity *out)
{
    uint32_t h = 0;
    const unsigned char *s = (const unsigned char *)id;
    while (*s) {
        uint32_t c = *s;
        int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (n == 2)
            c = ((c & 0x1F) << 6) | (s[1] & 0x3F);
        else if (n == 3)
            c = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        else if (n == 4)
            c = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        s += n;
        if (c >= 0x10000) {
            c -= 0x10000;
            h = h * 31 + (0xD800 + (c >> 10));
            h = h * 31 + (0xDC00 + (c & 0x3FF));
        } else {
            h = h * 31 + c;
        }
    }
    int32_t sh = (int32_t)h;
    /* |INT32_MIN| stays negative in JS int32 arithmetic; map it like the
     * reference would not: clamp to index 0 instead of undefined. */
    uint32_t a = sh == INT32_MIN ? 0 : (uint32_t)(sh < 0 ? -sh : sh);
    out->hash = sh;
    out->color_index = (int)(a % 18);
    out->animal_index = (int)((a >> 8) % 73);
    out->color = colors[out->color_index];
    out->color_name = color_names[out->color_index];
    out->animal = animals[out->animal_index];
    snprintf(out->name, sizeof(out->name), "%s %s", out->color_name, out->animal);
}

int gd_uuid_v4(char out[37])
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) return -EIO;
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
    return 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool gd_uuid_shape_ok(const char *s, int len)
{
    if (len != 36) return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) return false;
    }
    return true;
}

bool gd_id_pattern_ok(const char *s, int len)
{
    if (len != 36) return false;
    for (int i = 0; i < 36; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
            return false;
    return true;
}
