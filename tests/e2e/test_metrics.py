"""/metrics follows the Prometheus text exposition format strictly: the
whole output parses with prometheus_client's parser (Debian's
python3-prometheus-client), and every metric family has a # HELP line and a
# TYPE line, with every sample inside a declared family."""
import http.client
import re

from prometheus_client.parser import text_string_to_metric_families

from harness import TRACK, Client, Server, run


async def test_every_family_has_help_and_the_output_parses():
    s = Server().start()
    try:
        # Some activity, so that labelled series and histograms have data.
        sid = s.create({"state": {"tracks": [TRACK]}})
        c = await Client.join(s, sid)
        await c.request({"type": "toggle_step", "trackId": "t1", "step": 1}, "step_toggled")
        await c.request({"type": "set_tempo", "tempo": "fast"}, "tempo_changed")  # rejected
        await c.close()
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=15)
        conn.request("GET", "/app.js", headers={"Accept-Encoding": "gzip"})  # the repo's web/
        assert conn.getresponse().read()
        conn.close()
        status, headers, text = s.http("GET", "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        assert text.endswith("\n")

        families = list(text_string_to_metric_families(text))  # raises on any malformed line
        assert len(families) >= 20, [f.name for f in families]
        for f in families:
            assert f.documentation.strip(), f"family {f.name} has no # HELP"
            assert f.type in ("counter", "gauge", "histogram", "summary"), (f.name, f.type)
            assert f.samples, f"family {f.name} has no samples"

        # The same, read line by line: HELP right before TYPE, once per family,
        # and each sample belongs to the family declared last.
        lines = text.splitlines()
        helped, typed, current = set(), {}, None
        for i, line in enumerate(lines):
            if line.startswith("# HELP "):
                name = line.split()[2]
                assert name not in helped, f"second # HELP for {name}"
                assert len(line.split(None, 3)) == 4, f"empty # HELP for {name}"
                helped.add(name)
            elif line.startswith("# TYPE "):
                name, kind = line.split()[2:4]
                assert lines[i - 1].startswith(f"# HELP {name} "), f"# TYPE {name} without # HELP before it"
                assert name not in typed, f"second # TYPE for {name}"
                typed[name] = kind
                current = name
            else:
                sample = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line).group(1)
                allowed = {current}
                if typed.get(current) == "histogram":
                    allowed |= {current + "_bucket", current + "_sum", current + "_count"}
                assert sample in allowed, f"sample {sample} outside its family ({current})"
        assert helped == set(typed), helped ^ set(typed)
        counters = {f.name: f for f in families}
        assert sum(x.value for x in counters["grooved_mutations"].samples) >= 1
        assert sum(x.value for x in counters["grooved_rejected"].samples) >= 1
    finally:
        s.cleanup()


if __name__ == "__main__":
    run([test_every_family_has_help_and_the_output_parses])
