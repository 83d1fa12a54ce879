"""The layering of src/ (README, "Architecture"): every module belongs to one
layer, and a file may include only headers of its own layer or of layers
below it. So the session never includes a network header, the store never
includes a session header, and the free-standing core includes nothing of
the server. A new file must be given a layer here before the test passes.

    python3 tests/check_layers.py [SRC_DIR]

Exits 1 listing every include that points up, or every file in no layer.
Before checking src/, it checks a small tree with a known upward include,
so that a checker that finds nothing cannot pass."""
import os
import re
import sys
import tempfile

# Lowest first. Within a layer, modules may include each other.
LAYERS = [
    ("core", "pure and free-standing: no files, sockets or threads, no server header",
     ["jsonw", "model", "op", "hash", "identity", "idset", "reqhead", "wsframe", "ratelimit",
      "webfile"]),
    ("base", "process-wide services any layer may use; they read nothing of the layers above",
     ["log", "faults", "config", "metrics", "notify"]),
    ("store", "durable store backends, op log, KV view backends, backup and verify",
     ["oplog", "dbcheck", "store", "store_local", "store_pg", "kv", "kv_sqlite", "kv_redis",
      "backup"]),
    ("session", "the single writer: sessions, batches, the output gate, and the connection "
     "record (conn) it shares with the network layer",
     ["conn", "session"]),
    ("net", "sockets, HTTP, WebSocket, the web root, and the loop that runs them",
     ["door", "http_api", "ws", "static", "server"]),
    ("main", "the entry point", ["main"]),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of():
    table = {}
    for rank, (name, _, modules) in enumerate(LAYERS):
        for m in modules:
            assert m not in table, f"{m} is in two layers"
            table[m] = (rank, name)
    return table


def check(src):
    """Problems found in the .c and .h files of src, as lines of text."""
    table = layer_of()
    problems = []
    for f in sorted(os.listdir(src)):
        if not f.endswith((".c", ".h")):
            continue
        module = f.rsplit(".", 1)[0]
        if module not in table:
            problems.append(f"{f}: in no layer (add '{module}' to LAYERS in {__file__})")
            continue
        rank, name = table[module]
        with open(os.path.join(src, f), encoding="utf-8") as fh:
            text = fh.read()
        for header in INCLUDE.findall(text):
            inc = os.path.basename(header).rsplit(".", 1)[0]
            if inc not in table:
                problems.append(f"{f}: includes \"{header}\", which is in no layer")
                continue
            irank, iname = table[inc]
            if irank > rank:
                problems.append(f"{f} ({name}) includes \"{header}\" ({iname}): "
                                f"a lower layer must not depend on a higher one")
    return problems


def self_check():
    """The checker must see an upward include and a file in no layer."""
    with tempfile.TemporaryDirectory() as d:
        files = {"session.c": '#include "session.h"\n#include "ws.h"\n', "session.h": "",
                 "ws.h": '#include "session.h"\n', "stray.c": ""}
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as fh:
                fh.write(text)
        found = check(d)
    assert any(p.startswith("session.c (session) includes \"ws.h\" (net)") for p in found), found
    assert any(p.startswith("stray.c: in no layer") for p in found), found
    assert len(found) == 2, found


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../src")
    self_check()
    problems = check(src)
    for p in problems:
        print("layering: " + p)
    if problems:
        print(f"{len(problems)} problem(s); the layers, lowest first:")
        for name, what, modules in LAYERS:
            print(f"  {name:8} {what}: {', '.join(modules)}")
        return 1
    n = sum(1 for f in os.listdir(src) if f.endswith((".c", ".h")))
    print(f"layering: {n} files, every include points to the same layer or down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
