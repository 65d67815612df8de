#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0.
"""Instructions per request, worker against perchild, counted by
callgrind: what a hand-off costs in user space, free of the noise that
makes throughput ratios move by +-0.1 from round to round.  Run it
through bench/instructions.sh (installs valgrind, builds the module).

    instructions.py [--module SO] [--requests N] [--keep]

Each server (the benchmark's own configuration, bench.py, with 4 threads
per child and one child per user so that valgrind stays quick) runs in
the foreground under callgrind twice: once for N and once for 3N
requests on one keep-alive connection.  The difference of the two totals
(every process: parent, children), divided by 2N, is the cost of one
request without start-up and stop.  Two patterns: "pinned" (every
request for alice.test: no hand-off) and "alternating" (alice, bob,
carol in turn: a hand-off per request under perchild).  Counts are user
space only (httpd, APR, libc, modules); the kernel's part (system calls,
the wake-up of the owner's thread, the switch between processes) and the
cost of cold caches are not in them.  That is the point: the difference
between these counts and the CPU time the benchmark measures is what a
hand-off costs beyond the instructions it runs.
"""

import argparse
import collections
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench

PATTERNS = {
    "pinned": ("alice.test",),
    "alternating": ("alice.test", "bob.test", "carol.test"),
}


def read_response(sock, buf):
    """One response on a keep-alive connection: (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(262144)
        if not data:
            raise RuntimeError("connection closed before a response")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = sock.recv(262144)
        if not data:
            raise RuntimeError("connection closed inside a body")
        rest += data
    return int(lines[0].split()[1]), rest[:length], rest[length:]


def drive(port, hosts, n, path="/1k.txt"):
    """n requests on one keep-alive connection, the Host taken in turn
    from hosts; every answer must be 200 from the right vhost."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    buf = b""
    try:
        for i in range(n):
            host = hosts[i % len(hosts)]
            sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                          % (path, host)).encode())
            status, body, buf = read_response(sock, buf)
            if status != 200 or not body.startswith(host.encode()):
                raise RuntimeError("request %d for %s: %d %r"
                                   % (i, host, status, body[:40]))
    finally:
        sock.close()


def callgrind_run(server, outdir, hosts, n):
    """Start server under callgrind, send n requests, stop it; returns
    the callgrind files (one per process)."""
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    os.chmod(outdir, 0o1777)       # children write as their users
    vg = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=no",
         "--callgrind-out-file=%s/%%p.out" % outdir,
         bench.APACHE2, "-f", str(server.conf), "-DFOREGROUND"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        server.pid = None
        server.wait_ready(timeout=120)
        drive(server.port, hosts, 3)       # every child warm
        drive(server.port, hosts, n)
    finally:
        try:
            os.kill(vg.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            vg.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(vg.pid, signal.SIGKILL)
            vg.wait()
        # Children finish writing their files after the parent is gone.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = subprocess.run(["pgrep", "-s", str(vg.pid)],
                                  capture_output=True, text=True).stdout
            if not left.strip():
                break
            time.sleep(0.2)
    return sorted(glob.glob("%s/*.out" % outdir))


LINE = re.compile(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)$")


def costs(files):
    """Self cost per function and per object, summed over files."""
    by_fn, by_obj = collections.Counter(), collections.Counter()
    total = 0
    for f in files:
        out = subprocess.run(["callgrind_annotate", "--threshold=100",
                              "--auto=no", "--inclusive=no", f],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = LINE.match(line)
            if not m:
                continue
            n = int(m.group(1).replace(",", ""))
            what = m.group(2)
            if what.startswith("PROGRAM TOTALS"):
                total += n
                continue
            if re.match(r"(=>|[{}]|events)", what):
                continue
            obj = re.search(r"\[([^\]]+)\]\s*$", what)
            name = what.split(" [")[0]
            name = name.rsplit(":", 1)[-1] if ":" in name else name
            by_fn[name] += n
            by_obj[object_name(obj.group(1) if obj else "")] += n
    return total, by_fn, by_obj


def object_name(path):
    base = os.path.basename(path)
    for key, label in (("apache2", "httpd"), ("libaprutil", "APR-util"),
                       ("libapr", "APR"), ("libc.so", "libc"),
                       ("mod_mpm_perchild", "perchild"),
                       ("mod_mpm_worker", "worker MPM"),
                       ("ld-linux", "dynamic loader")):
        if key in base:
            return label
    return base or "?"


def per_request(small, large, n):
    """(large - small) / 2n for totals and counters."""
    tot = (large[0] - small[0]) / (2.0 * n)
    fns = {k: (large[1][k] - small[1][k]) / (2.0 * n)
           for k in set(large[1]) | set(small[1])}
    objs = {k: (large[2][k] - small[2][k]) / (2.0 * n)
            for k in set(large[2]) | set(small[2])}
    return tot, fns, objs


class SmallServer(bench.Server):
    """The benchmark's server with few threads: valgrind runs a
    process's threads one at a time, and fewer threads start quicker."""

    def tuning(self):
        if self.kind != "worker":
            return super().tuning()
        # Two children: one per listener bucket (ListenCoresBucketsRatio
        # 1 on two CPUs); worker's parent crashes with fewer.
        return [bench.lm("mpm_worker"), "StartServers 2", "ServerLimit 2",
                "ThreadLimit 4", "ThreadsPerChild 4",
                "MaxRequestWorkers 8", "MinSpareThreads 1",
                "MaxSpareThreads 8"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--module", default=str(bench.REPO / ".libs" /
                                            "mod_mpm_perchild.so"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("instructions.py: must run as root: "
                 "sudo bench/instructions.sh")
    if not shutil.which("valgrind"):
        sys.exit("instructions.py: needs valgrind (bench/instructions.sh "
                 "installs it)")
    bench.THREADS_PER_CHILD = 4
    bench.PERCHILD_CHILDREN_PER_USER = 1
    n = args.requests
    base = Path(tempfile.mkdtemp(prefix="perchild-instr."))
    os.chmod(base, 0o755)
    sites = base / "sites"
    sites.mkdir()
    os.chmod(sites, 0o755)
    bench.make_sites(sites)
    so = Path(args.module)
    started = time.monotonic()
    results = {}
    try:
        for kind in ("worker", "perchild"):
            server = SmallServer(kind, kind, base, so)
            for pattern, hosts in PATTERNS.items():
                runs = []
                for count in (n, 3 * n):
                    out = base / "cg" / kind / pattern / str(count)
                    runs.append(costs(callgrind_run(server, out, hosts,
                                                    count)))
                results[(kind, pattern)] = per_request(runs[0], runs[1], n)
                bench.log("  %-8s %-11s %8.0f instructions per request"
                          % (kind, pattern, results[(kind, pattern)][0]))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            bench.log("kept %s" % base)
    report(results)
    bench.log("%.0f s" % (time.monotonic() - started))


def report(results):
    bench.log("\nUser-space instructions per request (callgrind; all "
              "processes; 1 KiB file, one keep-alive connection):\n")
    rows = []
    for pattern in PATTERNS:
        w = results[("worker", pattern)][0]
        p = results[("perchild", pattern)][0]
        rows.append([pattern, "%.0f" % w, "%.0f" % p, "%+.0f" % (p - w),
                     "%.2fx" % (p / w)])
    bench.log(bench.table(["pattern", "worker", "perchild", "difference",
                           "perchild/worker"], rows))
    for pattern in PATTERNS:
        w_fn, w_obj = results[("worker", pattern)][1:]
        p_fn, p_obj = results[("perchild", pattern)][1:]
        bench.log("\n%s: where perchild's extra instructions are, by "
                  "object and the 12 functions with the largest "
                  "difference:\n" % pattern.capitalize())
        bench.log(difference_table("object", w_obj, p_obj, None, 50))
        bench.log("")
        bench.log(difference_table("function", w_fn, p_fn, 12, 0))


def difference_table(what, worker, perchild, top, least):
    keys = sorted(set(worker) | set(perchild),
                  key=lambda k: -(perchild.get(k, 0) - worker.get(k, 0)))
    rows = []
    for k in keys[:top]:
        d = perchild.get(k, 0) - worker.get(k, 0)
        if abs(d) >= least:
            rows.append([k[:48], "%.0f" % worker.get(k, 0),
                         "%.0f" % perchild.get(k, 0), "%+.0f" % d])
    return bench.table([what, "worker", "perchild", "difference"], rows)

if __name__ == "__main__":
    main()
