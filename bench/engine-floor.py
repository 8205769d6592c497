#!/usr/bin/env python3
"""The engine's own floor for a cold deploy of a bundle (docs/benchmarks.md).

What no orchestrator can do faster on this engine: the bundle's networks
made, its containers created on the same networks, and all of them started,
every request as parallel as the engine takes it, with no dependency order
and no health check awaited. A deploy does at least this much.

    engine-floor.py topology ASSOCIATION > topology.json   # while the bundle runs
    engine-floor.py run topology.json [RUNS]                 # with the bundle down

`topology` reads, from the running bundle, each container's networks (in the
order the engine lists them); the helpers voisin makes for itself (the lock,
the record) are left out. `run` makes the same shape under other names
(`floor-…`) from the tests' busybox image, whatever image each container
had: starting a container costs its network attachments, not its image.
"""
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

SOCKET = "/var/run/docker.sock"
IMAGE = "voisin-test-busybox:1.0.0"


class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost")

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(SOCKET)


def call(method, path, body=None):
    conn = Unix()
    payload = json.dumps(body) if body is not None else None
    conn.request(method, path, payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    # 404: nothing to remove; 304: already started.
    if response.status >= 300 and response.status not in (304, 404):
        raise SystemExit(f"engine-floor: {method} {path}: {response.status} {data!r}")
    return data


def parallel(jobs):
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def topology(association):
    filters = urllib.parse.quote(json.dumps({"label": [f"voisin.association={association}"]}))
    listed = json.loads(call("GET", f"/containers/json?filters={filters}"))
    shape = {}
    for c in listed:
        if "voisin.kind" in c["Labels"]:
            continue
        name = c["Names"][0].lstrip("/")
        shape[name] = sorted(c["NetworkSettings"]["Networks"])
    if not shape:
        raise SystemExit(f"engine-floor: no running container of `{association}`: deploy it first")
    return shape


def run(shape, runs):
    networks = sorted({n for ns in shape.values() for n in ns})
    floor = {n: f"floor-{n}" for n in networks}

    def clean():
        for c in shape:
            call("DELETE", f"/containers/floor-{c}?force=true")
        for n in floor.values():
            call("DELETE", f"/networks/{n}")

    def make(container, ns):
        call("POST", f"/containers/create?name=floor-{container}", {
            "Image": IMAGE,
            "Cmd": ["/bin/busybox", "sleep", "100000"],
            "HostConfig": {"NetworkMode": floor[ns[0]]},
        })
        for n in ns[1:]:
            call("POST", f"/networks/{floor[n]}/connect", {"Container": f"floor-{container}"})

    totals = []
    try:
        for _ in range(runs):
            clean()
            time.sleep(1)
            t0 = time.monotonic()
            parallel([lambda n=n: call("POST", "/networks/create", {"Name": n, "CheckDuplicate": True})
                      for n in floor.values()])
            t1 = time.monotonic()
            parallel([lambda c=c, ns=ns: make(c, ns) for c, ns in shape.items()])
            t2 = time.monotonic()
            parallel([lambda c=c: call("POST", f"/containers/floor-{c}/start") for c in shape])
            t3 = time.monotonic()
            totals.append(t3 - t0)
            print(f"networks {t1 - t0:.3f} s, create and attach {t2 - t1:.3f} s, "
                  f"start {t3 - t2:.3f} s, total {t3 - t0:.3f} s", file=sys.stderr)
    finally:
        clean()
    attachments = sum(len(ns) for ns in shape.values())
    totals.sort()
    print(json.dumps({
        "containers": len(shape),
        "networks": len(networks),
        "attachments": attachments,
        "median_seconds": totals[len(totals) // 2],
        "min_seconds": totals[0],
    }))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "topology":
        print(json.dumps(topology(sys.argv[2])))
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        with open(sys.argv[2]) as f:
            shape = json.load(f)
        run(shape, int(sys.argv[3]) if len(sys.argv) > 3 else 5)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
