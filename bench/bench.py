#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0.
"""The perchild benchmark: Debian's apache2 with worker, event, mpm-itk
and perchild, side by side, driven by wrk.  Run it through bench/run.sh,
which installs what is needed and builds the module and the channel
micro-benchmark first; see bench/README.md.

    bench.py [--quick] [--rounds N] [--duration S] [--json FILE]

Everything runs on 127.0.0.1.  Each server has its own ServerRoot, pid
file, logs and runtime directory under one temporary directory and is
stopped by the pid in its own pid file; /etc/apache2 and the system's
apache2 service are never touched.  Nothing here asserts anything about
speed: the exit status is non-zero only if a server cannot be started or
does not serve its vhosts correctly.
"""

import argparse
import json
import os
import pwd
import grp
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
APACHE2 = "/usr/sbin/apache2"
MODDIR = "/usr/lib/apache2/modules"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
LUA = BENCH / "load.lua"

USERS = ("pcalice", "pcbob", "pccarol")
HOSTS = ("alice.test", "bob.test", "carol.test")
DISPATCH_USER = "pcdispatch"
MANY_USERS = tuple("pcu%02d" % i for i in range(1, 51))
DEFAULT_USER = "www-data"

# Equal tuning: 25 threads per child everywhere; 150 request workers for
# worker, event and prefork/itk (httpd's default MaxRequestWorkers);
# ListenCoresBucketsRatio 1 for all.
# perchild has no shared pool of workers: each user's pool gets
# PERCHILD_CHILDREN_PER_USER children of 25 threads, the default
# (www-data) pool one child, the dispatch pool DISPATCH_CHILDREN.
THREADS_PER_CHILD = 25
PERCHILD_CHILDREN_PER_USER = 2
DISPATCH_CHILDREN = 2

CONNS = 51          # 17 per user when pinned


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# Files


def account(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def make_file(path, size, marker):
    line = (marker + " ").encode()
    data = (line * (size // len(line) + 1))[:size - 1] + b"\n"
    path.write_bytes(data)


CGI = """#!/bin/sh
# A small CGI: no fork beyond the shell itself.
echo "Content-Type: text/plain"
echo
echo "hello from %s"
while read k v rest; do
    if [ "$k" = "Uid:" ]; then echo "uid=$v"; break; fi
done < /proc/self/status
"""


def make_sites(base):
    """base/public/<user>/{htdocs,cgi-bin}: root-owned, world-readable
    copies (worker, event).  base/private/<user>/...: owned by the user,
    mode 0700/0600 (mpm-itk, perchild).  base/default: the default vhost,
    world-readable."""
    for kind in ("public", "private"):
        for user, host in zip(USERS, HOSTS):
            uid, gid = account(user)
            top = base / kind / user
            for sub in ("htdocs", "cgi-bin"):
                (top / sub).mkdir(parents=True, exist_ok=True)
            make_file(top / "htdocs" / "1k.txt", 1024, host)
            make_file(top / "htdocs" / "100k.txt", 100 * 1024, host)
            (top / "cgi-bin" / "hello.cgi").write_text(CGI % host)
            if kind == "public":
                for p in (top, top / "htdocs", top / "cgi-bin",
                          top / "cgi-bin" / "hello.cgi"):
                    os.chmod(p, 0o755)
                for f in ("1k.txt", "100k.txt"):
                    os.chmod(top / "htdocs" / f, 0o644)
            else:
                for p in (top, top / "htdocs", top / "cgi-bin",
                          top / "cgi-bin" / "hello.cgi"):
                    os.chown(p, uid, gid)
                    os.chmod(p, 0o700)
                for f in ("1k.txt", "100k.txt"):
                    os.chown(top / "htdocs" / f, uid, gid)
                    os.chmod(top / "htdocs" / f, 0o600)
        os.chmod(base / kind, 0o755)
    d = base / "default"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    make_file(d / "1k.txt", 1024, "default")
    os.chmod(d / "1k.txt", 0o644)


# --------------------------------------------------------------------------
# Servers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def lm(name, so=None):
    return 'LoadModule %s_module "%s/%s"' % (name, MODDIR,
                                            so or "mod_%s.so" % name)


class Server:
    """One apache2 instance.  kind: worker, event, itk, perchild."""

    def __init__(self, name, kind, base, module_so, *, dispatch=False,
                 ports_per_user=False, users=USERS, hosts=HOSTS):
        self.name = name
        self.kind = kind
        self.base = base
        self.root = base / "srv" / name
        self.module_so = module_so
        self.dispatch = dispatch
        self.ports_per_user = ports_per_user
        self.users = users
        self.hosts = hosts
        self.private = kind in ("itk", "perchild")
        self.port = free_port()
        self.user_ports = [free_port() for _ in users] \
            if ports_per_user else []
        self.pid = None
        for sub in ("conf", "logs", "run", "lock"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for p in (self.root, self.root.parent):
            os.chmod(p, 0o755)
        (self.root / "conf" / "mime.types").write_text(
            "text/plain txt\ntext/html html\n")
        self.conf = self.root / "conf" / "httpd.conf"
        self.pidfile = self.root / "run" / "httpd.pid"
        self.conf.write_text(self.config())

    def tuning(self):
        t = THREADS_PER_CHILD
        if self.kind in ("worker", "event"):
            n = 150 // t
            return [lm("mpm_%s" % self.kind),
                    "StartServers %d" % n, "ServerLimit %d" % n,
                    "ThreadLimit %d" % t, "ThreadsPerChild %d" % t,
                    "MaxRequestWorkers %d" % (n * t),
                    "MinSpareThreads %d" % t,
                    "MaxSpareThreads %d" % (n * t)]
        if self.kind == "itk":
            return [lm("mpm_prefork"), lm("mpm_itk", "mpm_itk.so"),
                    "StartServers 150", "MinSpareServers 150",
                    "MaxSpareServers 150", "ServerLimit 150",
                    "MaxRequestWorkers 150"]
        lines = ['LoadModule mpm_perchild_module "%s"' % self.module_so,
                 "ThreadLimit %d" % t, "ThreadsPerChild %d" % t,
                 "NumServers 1"]
        if len(self.users) <= 3:
            lines += ["ChildPerUserID %s %s %d" % (u, grp.getgrgid(
                account(u)[1]).gr_name, PERCHILD_CHILDREN_PER_USER)
                for u in self.users]
        if self.dispatch:
            lines.append("DispatchUserID %s %s %d" % (
                DISPATCH_USER, DISPATCH_USER, DISPATCH_CHILDREN))
        # perchild's recommended setting where pools have a child per CPU:
        # hand-offs stay on the CPU they start on (docs/directives.md).
        lines.append("PerchildCPUAffinity On")
        return lines

    def config(self):
        r = self.root
        lines = [
            'ServerRoot "%s"' % r,
            'DefaultRuntimeDir "%s/run"' % r,
            'PidFile "%s"' % self.pidfile,
            'Mutex file:%s/lock default' % r,
            'ErrorLog "%s/logs/error_log"' % r,
        ]
        lines += self.tuning()
        # For every MPM: one listener bucket per CPU (SO_REUSEPORT), so the
        # kernel spreads new connections over the children.
        lines.append("ListenCoresBucketsRatio 1")
        lines += [lm("authz_core"), lm("mime"), lm("alias"), lm("cgi")]
        lines += [
            "LogLevel warn",
            "ServerName 127.0.0.1",
            "User %s" % DEFAULT_USER,
            "Group %s" % DEFAULT_USER,
            "Listen 127.0.0.1:%d" % self.port,
        ]
        lines += ["Listen 127.0.0.1:%d" % p for p in self.user_ports]
        lines += [
            # No access log for any MPM; error log at warn.
            "Timeout 30",
            "KeepAlive On",
            "MaxKeepAliveRequests 0",
            "KeepAliveTimeout 5",
            'TypesConfig "%s/conf/mime.types"' % r,
            'DocumentRoot "%s/sites/default"' % self.base,
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            '<Directory "%s/sites/default">' % self.base,
            "    Require all granted",
            "</Directory>",
            '<Directory "%s/sites">' % self.base,
            "    Require all granted",
            "</Directory>",
            '<DirectoryMatch "^%s/sites/[^/]+/[^/]+/cgi-bin">' % self.base,
            "    Options +ExecCGI",
            "    SetHandler cgi-script",
            "</DirectoryMatch>",
            "<VirtualHost 127.0.0.1:%d>" % self.port,
            "    ServerName default.test",
            "</VirtualHost>",
        ]
        kind = "private" if self.private else "public"
        for i, (user, host) in enumerate(zip(self.users, self.hosts)):
            port = self.user_ports[i] if self.ports_per_user else self.port
            top = "%s/sites/%s/%s" % (self.base, kind,
                                      user if user in USERS else "many")
            lines += [
                "<VirtualHost 127.0.0.1:%d>" % port,
                "    ServerName %s" % host,
                '    DocumentRoot "%s/htdocs"' % top,
                '    ScriptAlias /cgi-bin/ "%s/cgi-bin/"' % top,
            ]
            if self.private:
                lines.append("    AssignUserID %s %s" % (
                    user, grp.getgrgid(account(user)[1]).gr_name))
            lines.append("</VirtualHost>")
        return "\n".join(lines) + "\n"

    # -- control ------------------------------------------------------------

    def apache2(self, *args, timeout=60):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        return subprocess.run([APACHE2, "-f", str(self.conf)] + list(args),
                              capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)

    def error_log(self):
        try:
            return (self.root / "logs" / "error_log").read_text(
                errors="replace")
        except OSError:
            return ""

    def start(self):
        r = self.apache2("-k", "start")
        if r.returncode != 0:
            raise RuntimeError("%s: apache2 -k start failed (rc %d):\n%s%s"
                               % (self.name, r.returncode, r.stdout,
                                  r.stderr + self.error_log()[-3000:]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.pid = int(self.pidfile.read_text().split()[0])
                break
            except (OSError, ValueError, IndexError):
                time.sleep(0.1)
        if self.pid is None:
            raise RuntimeError("%s: no pid file" % self.name)

    def wait_ready(self, timeout=30):
        """Until every vhost answers with its own file."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                for i, host in enumerate(self.hosts):
                    port = self.user_ports[i] if self.ports_per_user \
                        else self.port
                    status, body = http_get(port, "/1k.txt", host)
                    if status != 200 or (self.users == USERS
                                         and not body.startswith(host)):
                        raise RuntimeError("%s: %s -> %s %r" % (
                            self.name, host, status, body[:60]))
                return
            except (OSError, RuntimeError) as e:
                last = e
                time.sleep(0.2)
        raise RuntimeError("%s: not ready: %s\n%s" % (
            self.name, last, self.error_log()[-3000:]))

    def check_cgi(self):
        """Each vhost's CGI runs as the vhost's user (itk, perchild) or
        www-data (worker, event)."""
        for i, (user, host) in enumerate(zip(self.users, self.hosts)):
            port = self.user_ports[i] if self.ports_per_user else self.port
            status, body = http_get(port, "/cgi-bin/hello.cgi", host)
            want = account(user if self.private else DEFAULT_USER)[0]
            ident = dict(line.split("=", 1) for line in body.splitlines()
                         if "=" in line)
            if status != 200 or ("hello from %s" % host) not in body \
                    or ident.get("uid", "").split()[:1] != [str(want)]:
                raise RuntimeError("%s: CGI of %s: %s %r (want uid %d)\n%s"
                                   % (self.name, host, status, body[:200],
                                      want, self.error_log()[-2000:]))

    def stop(self):
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        procs = tree(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not alive(pid):
                break
            time.sleep(0.1)
        # Last resort: the processes of this server only (found from its
        # parent's pid before the stop).
        for p in [pid] + [q for q in procs if q != pid]:
            if alive(p) and p in tree(pid) | set(procs):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def http_get(port, path, host, timeout=10):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"Host": host,
                                          "Connection": "close"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Processes and memory


def proc_stat(pid):
    """(ppid, comm, state, cpu ticks incl. reaped children) or None."""
    try:
        text = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    # f[0] = state (field 3); utime..cstime are fields 14..17.
    return int(f[1]), comm, f[0], sum(int(x) for x in f[11:15])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[2] not in ("Z", "X")


def tree(root):
    """pid -> comm of root and its descendants named apache2."""
    children = {}
    comms = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st is None:
            continue
        children.setdefault(st[0], []).append(int(name))
        comms[int(name)] = st[1]
    out = {}
    todo = [root]
    while todo:
        p = todo.pop()
        if p in out or p not in comms:
            continue
        if comms[p] == "apache2":
            out[p] = comms[p]
        todo.extend(children.get(p, []))
    return out


def kib_field(path, field):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(root):
    """(processes, total RSS KiB, total PSS KiB) of a server."""
    pids = tree(root)
    rss = pss = 0
    n = 0
    for p in pids:
        r = kib_field("/proc/%d/status" % p, "VmRSS:")
        if r == 0:
            continue
        n += 1
        rss += r
        pss += kib_field("/proc/%d/smaps_rollup" % p, "Pss:")
    return n, rss, pss


def cpu_ticks(root):
    out = {}
    for p in tree(root):
        st = proc_stat(p)
        if st is not None:
            out[p] = st[3]
    return out


def ctx_switches(root):
    """(pid, tid) -> voluntary + involuntary context switches."""
    out = {}
    for p in tree(root):
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/status" % (p, t)) as f:
                    n = sum(int(line.split()[1]) for line in f
                            if "ctxt_switches:" in line)
            except (OSError, ValueError, IndexError):
                continue
            out[(p, t)] = n
    return out


class MemSampler(threading.Thread):
    def __init__(self, root, interval=0.25):
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak = (0, 0, 0)
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            n, rss, pss = memory(self.root)
            self.peak = (max(self.peak[0], n), max(self.peak[1], rss),
                         max(self.peak[2], pss))
            self.stop_ev.wait(self.interval)


# --------------------------------------------------------------------------
# Load


class Scenario:
    def __init__(self, key, title, path, mode, threads, close=False,
                 ports=False):
        self.key = key
        self.title = title
        self.path = path
        self.mode = mode
        self.threads = threads
        self.close = close
        self.ports = ports


# 'alternate' with one connection per wrk thread: wrk's request() has
# no notion of connections, so only then does every connection change
# Host on every request.
S1 = Scenario("S1", "1 KiB, keep-alive, pinned", "/1k.txt", "pinned", 3)
S2 = Scenario("S2", "1 KiB, keep-alive, alternating", "/1k.txt",
              "alternate", CONNS)
S3 = Scenario("S3", "1 KiB, new connection per request, alternating",
              "/1k.txt", "alternate", 3, close=True)
S4 = Scenario("S4", "100 KiB, keep-alive, alternating", "/100k.txt",
              "alternate", CONNS)
S5 = Scenario("S5", "CGI, keep-alive, alternating", "/cgi-bin/hello.cgi",
              "alternate", CONNS)
P1 = Scenario("S1", "port per user, keep-alive", "/1k.txt", "pinned", 3,
              ports=True)
P3 = Scenario("S3", "port per user, new connection per request",
              "/1k.txt", "pinned", 3, close=True, ports=True)


def run_wrk(server, sc, duration, hosts=HOSTS):
    env = dict(os.environ)
    env.update({"BENCH_HOSTS": ",".join(hosts), "BENCH_MODE": sc.mode,
                "BENCH_CLOSE": "1" if sc.close else "0",
                "BENCH_PORTS": ",".join(str(p) for p in server.user_ports)
                if sc.ports else ""})
    cmd = [WRK, "-t%d" % sc.threads, "-c%d" % CONNS, "-d%ds" % max(1, round(duration)),
           "--timeout", "5s", "-s", str(LUA),
           "http://127.0.0.1:%d%s" % (server.port, sc.path)]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=duration + 60, check=False)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = None
    for line in r.stdout.splitlines():
        if line.startswith("BENCHRESULT"):
            res = {k: int(v) for k, v in
                   (kv.split("=") for kv in line.split()[1:])}
    if res is None:
        raise RuntimeError("wrk failed (rc %d): %s %s" % (
            r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    res["rate"] = res["requests"] / (res["duration_us"] / 1e6)
    res["socket_errors"] = (res["connect"] + res["read"] + res["write"]
                            + res["timeout"])
    res["failed"] = res["socket_errors"] + res["status"]
    res["client_cpu_s"] = (ru1.ru_utime - ru0.ru_utime
                           + ru1.ru_stime - ru0.ru_stime)
    return res


def machine_busy_ticks():
    """Jiffies all CPUs spent on anything but idling, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: not idle, iowait
    return sum(v[:8]) - v[3] - v[4]


def cell(server, sc, duration):
    t0 = cpu_ticks(server.pid)
    cs0 = ctx_switches(server.pid)
    b0, w0 = machine_busy_ticks(), time.monotonic()
    res = run_wrk(server, sc, duration)
    b1, w1 = machine_busy_ticks(), time.monotonic()
    cs1 = ctx_switches(server.pid)
    t1 = cpu_ticks(server.pid)
    hz = os.sysconf("SC_CLK_TCK")
    ticks = sum(t1[p] - t0[p] for p in t1 if p in t0)
    res["server_cpu_s"] = ticks / hz
    # What neither the server nor wrk used: other work on the machine
    # (a share of the CPUs' time, 0 on an otherwise idle machine).
    res["other_cpu_share"] = max(0.0, ((b1 - b0) / hz - res["server_cpu_s"]
                                       - res["client_cpu_s"])
                                 / ((w1 - w0) * os.cpu_count()))
    n = max(res["requests"], 1)
    res["server_us_per_req"] = res["server_cpu_s"] * 1e6 / n
    res["client_us_per_req"] = res["client_cpu_s"] * 1e6 / n
    res["cs_per_req"] = sum(cs1[k] - cs0[k] for k in cs1 if k in cs0) / n
    return res


# --------------------------------------------------------------------------
# Reporting


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_rate(x):
    return "%.0f" % x if x == x else "-"


def fmt_ratio(x):
    return "%.2fx" % x if x == x else "-"


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows))
              for i, h in enumerate(headers)]
    out = ["| " + " | ".join(str(h).ljust(w) for h, w in
                             zip(headers, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in
                                     zip(r, widths)) + " |")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="short cells, fewer rounds (about 3 minutes)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=int, help="seconds per cell")
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--module", default=str(REPO / ".libs" /
                                            "mod_mpm_perchild.so"))
    ap.add_argument("--chanbench", default=str(BENCH / "chanbench"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--scenarios", default="S1,S2,S3,S4,S5",
                    help="comma-separated subset of S1..S5 to run")
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to skip: matrix,memory,"
                    "idle50,channel")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.py: must run as root (mpm-itk and perchild switch "
                 "users): sudo bench/run.sh")
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    duration = args.duration or (2 if quick else 5)
    warm = 1
    mem_duration = 1 if quick else 4
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()

    base = Path(tempfile.mkdtemp(prefix="perchild-bench."))
    os.chmod(base, 0o755)
    sites = base / "sites"
    sites.mkdir()
    os.chmod(sites, 0o755)
    make_sites(sites)
    shutil.copytree(sites / "private" / USERS[0], sites / "private" /
                    "many", symlinks=True)
    shutil.copytree(sites / "public" / USERS[0], sites / "public" / "many",
                    symlinks=True)
    os.chmod(sites / "private" / "many", 0o755)
    # The 50-user test serves nothing; its vhosts share one readable tree.
    for p in (sites / "private" / "many").rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() or p.suffix == ".cgi" else 0o644)

    log("perchild benchmark: %s mode, %d round(s), %g s per cell, "
        "temporary directory %s" % ("quick" if quick else "full", rounds,
                                   duration, base))
    log("machine: %d CPU(s); load average now %s" % (
        os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3])))

    so = Path(args.module)
    servers = [
        Server("worker", "worker", base, so),
        Server("event", "event", base, so),
        Server("itk", "itk", base, so),
        Server("perchild", "perchild", base, so),
        Server("pc-dispatch", "perchild", base, so, dispatch=True),
        Server("pc-ports", "perchild", base, so, ports_per_user=True),
    ]
    by_name = {s.name: s for s in servers}
    results = {"cells": [], "idle": {}, "memory": {}, "idle50": {},
               "channel": None, "config": {
                   "rounds": rounds, "duration": duration, "quick": quick,
                   "connections": CONNS}}
    main_mpms = ["worker", "event", "itk", "perchild"]
    plan = [(S1, main_mpms + ["pc-dispatch", "pc-ports"]),
            (S2, main_mpms + ["pc-dispatch"]),
            (S3, main_mpms + ["pc-dispatch", "pc-ports"]),
            (S4, main_mpms),
            (S5, main_mpms)]
    wanted = set(args.scenarios.split(","))
    plan = [(sc, names) for sc, names in plan if sc.key in wanted]
    failed = False
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready()
            s.check_cgi()
        time.sleep(2)
        for s in servers:
            results["idle"][s.name] = memory(s.pid)
        log("all %d servers up and serving; idle memory measured"
            % len(servers))

        if "matrix" not in skip:
            log("warm-up: %g s per server and file" % warm)
            for s in servers:
                for sc in ((S2, S5) if quick else (S1, S2, S4, S5)):
                    if s.ports_per_user:
                        sc = P1
                    run_wrk(s, sc, warm)
            for rnd in range(rounds):
                log("round %d/%d" % (rnd + 1, rounds))
                for sc, names in plan:
                    # Rotate the order each round: no server always runs
                    # right after the same one.
                    k = rnd % len(names)
                    for name in names[k:] + names[:k]:
                        s = by_name[name]
                        use = sc
                        if s.ports_per_user:
                            use = P1 if sc is S1 else P3
                        res = cell(s, use, duration)
                        res.update({"round": rnd + 1, "scenario": sc.key,
                                    "server": name})
                        results["cells"].append(res)
                        log("  %-3s %-12s %9.0f req/s  failed %-6d "
                            "server %6.1f us/req  p99 %6.1f ms" % (
                                sc.key, name, res["rate"], res["failed"],
                                res["server_us_per_req"],
                                res["p99_us"] / 1000))

        if "memory" not in skip:
            log("memory under load (%g s of S2 and of S3 per server)"
                % mem_duration)
            for s in servers:
                peak = [0, 0, 0]
                for sc in (S2, S3):
                    if s.ports_per_user:
                        sc = P1 if sc is S2 else P3
                    m = MemSampler(s.pid)
                    m.start()
                    run_wrk(s, sc, mem_duration)
                    m.stop_ev.set()
                    m.join()
                    peak = [max(a, b) for a, b in zip(peak, m.peak)]
                results["memory"][s.name] = peak
    except Exception as e:          # report, stop the servers, fail
        failed = True
        log("ERROR: %s" % e)
    finally:
        for s in servers:
            s.stop()

    if not failed and "idle50" not in skip:
        log("idle memory with 50 users configured")
        many_hosts = tuple("u%02d.test" % i for i in range(1, 51))
        for kind in ("worker", "event", "itk", "perchild"):
            s = Server("%s-50" % kind, kind, base, so, users=MANY_USERS,
                       hosts=many_hosts)
            try:
                s.start()
                s.wait_ready(timeout=60)
                time.sleep(3)
                results["idle50"][kind] = memory(s.pid)
            except Exception as e:
                failed = True
                log("ERROR: %s" % e)
            finally:
                s.stop()

    if not failed and "channel" not in skip:
        cb = Path(args.chanbench)
        log("channel micro-benchmark (%s)" % cb)
        r = subprocess.run([str(cb), "-t", "0.5" if quick else "1",
                            "-r", "3" if quick else "7"],
                           capture_output=True, text=True, timeout=300,
                           check=False)
        if r.returncode != 0:
            failed = True
            log("ERROR: chanbench: %s %s" % (r.stdout, r.stderr))
        else:
            med = {}
            for line in r.stdout.splitlines():
                if line.startswith("MEDIAN"):
                    kv = dict(x.split("=") for x in line.split()[1:])
                    med[kv["variant"]] = (float(kv["rate"]),
                                          float(kv["cpu_us"]))
            results["channel"] = med

    results["elapsed_s"] = time.monotonic() - started
    results["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    report(results, quick)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        log("raw results: %s" % args.json)
    if args.keep:
        log("kept %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


def report(results, quick):
    cells = results["cells"]
    med = {}
    failed = {}
    cpu = {}
    csw = {}
    for c in cells:
        key = (c["scenario"], c["server"])
        med.setdefault(key, []).append(c["rate"])
        failed[key] = failed.get(key, 0) + c["failed"]
        cpu.setdefault(key, []).append(c["server_us_per_req"])
        csw.setdefault(key, []).append(c.get("cs_per_req", float("nan")))
    m = {k: median(v) for k, v in med.items()}

    def ratio(sc, a, b):
        if (sc, a) in m and (sc, b) in m and m[(sc, b)] > 0:
            return m[(sc, a)] / m[(sc, b)]
        return float("nan")

    log("")
    log("RESULTS (%s mode, %d round(s) of %g s per cell; medians)" % (
        "quick" if quick else "full", results["config"]["rounds"],
        results["config"]["duration"]))
    rows = []
    titles = {"S1": "S1 1 KiB keep-alive, pinned",
              "S2": "S2 1 KiB keep-alive, alternating",
              "S3": "S3 1 KiB new conn/request, alternating",
              "S4": "S4 100 KiB keep-alive, alternating",
              "S5": "S5 CGI keep-alive, alternating"}
    servers = ["worker", "event", "itk", "perchild", "pc-dispatch",
               "pc-ports"]
    for sc in ("S1", "S2", "S3", "S4", "S5"):
        for s in servers:
            if (sc, s) not in m:
                continue
            rows.append([titles[sc] if s == "worker" else "", s,
                         fmt_rate(m[(sc, s)]),
                         fmt_ratio(ratio(sc, s, "worker")),
                         fmt_ratio(ratio(sc, s, "itk"))
                         if s.startswith("p") else "",
                         "%.0f" % median(cpu[(sc, s)]),
                         "%.1f" % median(csw[(sc, s)]),
                         failed[(sc, s)]])
    if rows:
        log(table(["scenario", "server", "req/s", "vs worker", "vs itk",
                   "server CPU us/req", "ctx sw/req", "failed"], rows))
        log("failed = non-2xx (HTTP status >= 400) + socket errors "
            "(connect, read, write, timeout), summed over all rounds; "
            "server CPU and context switches per request: medians, all "
            "of the server's processes and threads (itk: processes that "
            "exited during the cell are left out of the switches)")

    def mib(k):
        return "%.1f" % (k / 1024)

    if results["memory"] or results["idle"]:
        log("")
        rows = []
        for s in servers:
            idle = results["idle"].get(s)
            peak = results["memory"].get(s)
            rows.append([s,
                         idle[0] if idle else "-",
                         mib(idle[1]) if idle else "-",
                         mib(idle[2]) if idle else "-",
                         peak[0] if peak else "-",
                         mib(peak[1]) if peak else "-",
                         mib(peak[2]) if peak else "-"])
        log(table(["server (3 users)", "idle procs", "idle RSS MiB",
                   "idle PSS MiB", "load procs (peak)", "load RSS MiB (peak)",
                   "load PSS MiB (peak)"], rows))
    if results["idle50"]:
        log("")
        rows = [[k, v[0], mib(v[1]), mib(v[2])]
                for k, v in results["idle50"].items()]
        log(table(["server (50 users)", "idle procs", "idle RSS MiB",
                   "idle PSS MiB"], rows))
    ch = results["channel"]
    if ch:
        log("")
        # pingpong relays one record with a wake-up per hop: a floor
        # for a hand-off, not a stream to compare with the bare loop.
        rows = [[k, "%.0f" % v[0], "%.2f" % v[1],
                 "(one wake-up per record)" if k == "pingpong"
                 else fmt_ratio(v[0] / ch["bare"][0])]
                for k, v in ch.items()]
        log(table(["channel (400 B + 1 fd per record)", "records/s",
                   "CPU us/record", "rate vs bare"], rows))

    # Targets: printed, never enforced.
    log("")
    tg = []

    def target(name, value, ok):
        tg.append([name, value, "met" if ok else "MISSED"])

    def r(sc, a, b="worker"):
        return ratio(sc, a, b)

    if m:
        target("S1 >= 0.95x worker", fmt_ratio(r("S1", "perchild")),
               r("S1", "perchild") >= 0.95)
        target("S2 >= 0.75x worker", fmt_ratio(r("S2", "perchild")),
               r("S2", "perchild") >= 0.75)
        target("S2 >= 4x itk", fmt_ratio(r("S2", "perchild", "itk")),
               r("S2", "perchild", "itk") >= 4)
        target("S3 >= 0.85x worker", fmt_ratio(r("S3", "perchild")),
               r("S3", "perchild") >= 0.85)
        target("S3 >= 5x itk", fmt_ratio(r("S3", "perchild", "itk")),
               r("S3", "perchild", "itk") >= 5)
        target("S4 >= 0.9x worker", fmt_ratio(r("S4", "perchild")),
               r("S4", "perchild") >= 0.9)
        target("S5 >= 0.9x worker (itk ~0.6x)",
               "%s (itk %s)" % (fmt_ratio(r("S5", "perchild")),
                                fmt_ratio(r("S5", "itk"))),
               r("S5", "perchild") >= 0.9)
        target("port per user >= 0.95x worker (S1)",
               fmt_ratio(r("S1", "pc-ports")), r("S1", "pc-ports") >= 0.95)
        pcf = sum(v for (sc, s), v in failed.items() if s.startswith("p"))
        target("zero failed requests for perchild (all cells)", str(pcf),
               pcf == 0)
    mem = results["memory"]
    if "perchild" in mem and "worker" in mem:
        x = mem["perchild"][1] / max(mem["worker"][1], 1)
        target("load RSS (3 users) <= 3x worker", fmt_ratio(x), x <= 3)
    if "perchild" in results["idle50"]:
        x = results["idle50"]["perchild"][1] / 1024
        target("idle RSS, 50 users < 250 MiB", "%.1f MiB" % x, x < 250)
    if ch:
        x = ch["channel"][0] / ch["bare"][0]
        target("channel >= 0.9x bare sendmsg/recvmsg", fmt_ratio(x),
               x >= 0.9)
    if tg:
        log(table(["target", "measured", ""], tg))
    log("elapsed: %.0f s; load average at the end: %s (wrk's threads "
        "count in it)" % (results["elapsed_s"], " ".join(results.get(
            "loadavg_end", []))))
    other = [c["other_cpu_share"] for c in results["cells"]
             if "other_cpu_share" in c]
    if other:
        log("CPU time used by neither the servers nor wrk during the "
            "cells: median %.1f%%, highest %.1f%% of the machine (more "
            "than a few %% means other work competed: rerun)"
            % (100 * median(other), 100 * max(other)))


if __name__ == "__main__":
    sys.exit(main())
