#!/usr/bin/env python3
"""Registry CPU per kind of request, for docs/benchmarks.md.

    scripts/registry-cost.py HOST:PORT PID [COUNT]

Sends COUNT (default 40) requests of each kind over one keep-alive connection (as kubectl-ko
keeps its connections) to the plain-HTTP registry at HOST:PORT, whose process is PID, and
prints the registry's CPU time (user + system, from /proc/PID/stat) per request. Writes only
to the repository `registry-cost`; start a throw-away registry for it (scripts/registry.sh).
"""

import hashlib
import http.client
import json
import os
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: " + __doc__.strip().splitlines()[2].strip())
    host, port = sys.argv[1].rsplit(":", 1)
    pid, count = sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else 40
    ticks = os.sysconf("SC_CLK_TCK")
    conn = http.client.HTTPConnection(host, int(port))

    def cpu_ms():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / ticks

    def request(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response

    def path_of(location):
        return location.split(f":{port}", 1)[1] if location.startswith("http") else location

    def upload(data, patch):
        location = path_of(request("POST", "/v2/registry-cost/blobs/uploads/").getheader("Location"))
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        octets = {"Content-Type": "application/octet-stream"}
        if patch:
            location = path_of(request("PATCH", location, data, octets).getheader("Location"))
            response = request("PUT", f"{location}&digest={digest}", b"")
        else:
            response = request("PUT", f"{location}&digest={digest}", data, octets)
        if response.status != 201:
            sys.exit(f"upload answered {response.status}")
        return digest

    config = upload(b"{}", False)
    layer = upload(os.urandom(32), False)
    two_mb = os.urandom(2_000_000)

    def manifest(i):
        body = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 32}],
            "annotations": {"n": str(i)},
        }
        kind = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if request("PUT", f"/v2/registry-cost/manifests/t{i}", json.dumps(body).encode(), kind).status != 201:
            sys.exit("manifest PUT refused")

    kinds = [
        ("GET /v2/", lambda i: request("GET", "/v2/")),
        ("HEAD of a blob it has", lambda i: request("HEAD", f"/v2/registry-cost/blobs/{config}")),
        ("GET of a missing manifest", lambda i: request("GET", f"/v2/registry-cost/manifests/missing{i}")),
        ("manifest PUT", manifest),
        ("small blob, POST + PUT", lambda i: upload(json.dumps({"n": i, "r": os.urandom(8).hex()}).encode(), False)),
        ("2 MB blob, POST + PUT", lambda i: upload(os.urandom(16) + two_mb, False)),
        ("2 MB blob, POST + PATCH + PUT", lambda i: upload(os.urandom(16) + two_mb, True)),
    ]
    for name, send in kinds:
        before = cpu_ms()
        for i in range(count):
            send(i)
        print(f"{name}: {(cpu_ms() - before) / count:.1f} ms of registry CPU each")


if __name__ == "__main__":
    main()
