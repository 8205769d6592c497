#!/usr/bin/env python3
"""The engine's own floor for a cold deploy of a bundle (docs/benchmarks.md).

What no orchestrator can do faster on this engine: the bundle's networks
made, its containers created on the same networks, and all of them started,
with no dependency order and no health check awaited. Every container goes
at once, each as soon as its own networks exist (made once, by the first
container that needs each); that was faster here than making every network
first (1.5 s against 1.86 s for the test bundle), and than starting the
containers one after another (2.3 s). A deploy does at least this much.

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

    made = {n: threading.Lock() for n in networks}
    done = set()

    def network(n):
        # Each network once, by the first container that needs it.
        with made[n]:
            if n not in done:
                call("POST", "/networks/create", {"Name": floor[n], "CheckDuplicate": True})
                done.add(n)

    def container(name, ns):
        for n in ns:
            network(n)
        call("POST", f"/containers/create?name=floor-{name}", {
            "Image": IMAGE,
            "Cmd": ["/bin/busybox", "sleep", "100000"],
            "HostConfig": {"NetworkMode": floor[ns[0]]},
        })
        for n in ns[1:]:
            call("POST", f"/networks/{floor[n]}/connect", {"Container": f"floor-{name}"})
        call("POST", f"/containers/floor-{name}/start")

    totals = []
    try:
        for _ in range(runs):
            clean()
            done.clear()
            time.sleep(1)
            t0 = time.monotonic()
            parallel([lambda c=c, ns=ns: container(c, ns) for c, ns in shape.items()])
            totals.append(time.monotonic() - t0)
            print(f"total {totals[-1]:.3f} s", file=sys.stderr)
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
