"""What an HTTP request waiting on a session is answered when the session
cannot give it what it waits for, byte for byte: a write whose commit fails,
a creation, remix or publish whose new session cannot be committed, a load
that cannot be allocated, stored data that cannot be read. The session tells
the request through the callback it was given (session.c) and http_api.c
turns the result code into these statuses and bodies; they are part of the
API, so they must never drift."""
import asyncio
import http.client
import os
import re
import shutil
import tempfile

import storefiles
from harness import TRACK, Client, Server, run

UNSAVED = ('{"error":"Storage unavailable","message":"The change could not be saved; '
           'it was not applied"}')


def raw(s, method, path, body=None):
    """(status, content-type, body text) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=15)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    text = r.read().decode()
    ctype = r.getheader("content-type")
    conn.close()
    return r.status, ctype, text


async def test_a_failed_commit_answers_every_waiting_write():
    fault = tempfile.mktemp(prefix="grooved-fault-")
    s = Server(env={"GROOVED_FAULT_FILE": fault}).start()
    try:
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)  # the session stays in memory
        open(fault, "w").close()  # every commit fails from here
        expect = (503, "application/json", UNSAVED)
        assert raw(s, "PATCH", f"/api/sessions/{sid}", '{"name":"x"}') == expect
        assert raw(s, "POST", "/api/sessions", "{}") == expect
        assert raw(s, "POST", f"/api/sessions/{sid}/remix") == expect
        assert raw(s, "POST", f"/api/sessions/{sid}/publish") == expect
        os.unlink(fault)
        st, _, body = raw(s, "PATCH", f"/api/sessions/{sid}", '{"name":"y"}')
        assert st == 200 and '"name":"y"' in body, (st, body)
        await c.close()
    finally:
        if os.path.exists(fault):
            os.unlink(fault)
        s.cleanup()


async def test_a_failed_load_answers_the_waiting_request():
    faults = tempfile.mkdtemp(prefix="grooved-faults-")
    s = Server(env={"GROOVED_TEST_FAULT_DIR": faults})
    try:
        s.start()
        sid = s.create({"state": {"tracks": [TRACK]}})
        assert s.stop() == 0
        s.start()  # sid is on disk, not in memory: the next request loads it
        open(os.path.join(faults, "load-job"), "w").close()
        assert raw(s, "GET", f"/api/sessions/{sid}") == (
            503, "application/json", '{"error":"Out of memory"}')
        os.unlink(os.path.join(faults, "load-job"))
        assert raw(s, "GET", f"/api/sessions/{sid}")[0] == 200
        assert s.stop() == 0

        _, text = storefiles.checkpoint(s.data_dir, sid)
        storefiles.set_checkpoint_text(s.data_dir, sid, text[: len(text) // 2])
        s.start()
        for method, path, body in (("GET", f"/api/sessions/{sid}", None),
                                   ("PATCH", f"/api/sessions/{sid}", '{"name":"z"}'),
                                   ("POST", f"/api/sessions/{sid}/remix", None)):
            assert raw(s, method, path, body) == (
                500, "application/json",
                '{"error":"Session unavailable","message":"The session\'s stored data cannot be '
                'read; nothing was changed. The operator has been told."}'), (method, path)
        assert re.search(rf"session {sid}: load failed", s.read_log())
        assert raw(s, "GET", "/api/sessions/00000000-0000-4000-8000-000000000000") == (
            404, "application/json", '{"error":"Session not found"}')
    finally:
        shutil.rmtree(faults, ignore_errors=True)
        s.cleanup()


if __name__ == "__main__":
    run([test_a_failed_commit_answers_every_waiting_write,
         test_a_failed_load_answers_the_waiting_request])
