"""The socket hand-off: one Listen port shared by the vhosts of four pools.

Any child may accept a connection on a shared listener.  A request for
another pool's vhost is passed, with the client socket, the exact request
head and any read-ahead (body, pipelined requests), to a child of the
owner pool, which serves it and keeps the connection alive; a later
request for yet another pool is passed on again.  So every request must
be served by its vhost's uid, whatever child accepted the connection.

The server ("shared"): ThreadsPerChild 4, one port, four name-based vhosts:

    c.test        pccarol   implicit pool (AssignUserID only), 1 child;
                            listed first, so it is the port's default
                            name-based vhost (unknown or missing Host)
    default.test  www-data  no AssignUserID: the User/Group pool, 1 child
    a.test        pcalice   ChildPerUserID pcalice pcalice 2
    b.test        pcbob     ChildPerUserID pcbob pcbob

The "dispatch" server is the same plus `DispatchUserID pcdisp pcdisp 1`
(the only acceptor of the shared port; it serves nothing) and a port of
pcbob's alone ("solo"); "dispatch-all" adds `PerchildDispatchAll On`.

Every server logs (besides the suite's access log) to logs/handoff_log
"%P %{remote}p %>s %m "%U%q" "%{Host}i"", and every request carries a
unique query string t=<token>, so each request can be found in the log
exactly once, with the pid of the child that served it and the client
port of its connection.  The error log runs at mpm_perchild:trace1, where
every pass is logged (PC0303, PC0304 "... to pool user:group").
"""

import ctypes
import hashlib
import os
import random
import re
import select
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest

from pchelpers import (DEFAULT_USER, DISPATCH_USER, KeepAliveClient,
                       MISROUTE_TAG, RawConnection, free_port, http_get,
                       proc_status, raw_request, wait_until)

ID = "/cgi-bin/id.cgi"
HASH = "/cgi-bin/hash.cgi"
ENV = "/cgi-bin/env.cgi"

# Host -> the user whose pool owns the vhost.
HOSTS = {
    "c.test": "pccarol",
    "default.test": DEFAULT_USER,
    "a.test": "pcalice",
    "b.test": "pcbob",
}
CYCLE = ["a.test", "b.test", "c.test", "default.test"]
# The first vhost listed for the port: gets unknown and missing Hosts.
FIRST_VHOST = "c.test"

VHOSTS = """
ThreadsPerChild 4
NumServers 1
ChildPerUserID pcalice pcalice 2
ChildPerUserID pcbob pcbob
LogFormat "%P %{{remote}}p %>s %m \\"%U%q\\" \\"%{{Host}}i\\"" handoff
CustomLog "{root}/logs/handoff_log" handoff
Listen 127.0.0.1:{port_shared}
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName c.test
    DocumentRoot {htdocs}/pccarol
    AssignUserID pccarol pccarol
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName default.test
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName a.test
    DocumentRoot {htdocs}/pcalice
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName b.test
    DocumentRoot {htdocs}/pcbob
    AssignUserID pcbob pcbob
</VirtualHost>
"""

SOLO = """
Listen 127.0.0.1:{port_solo}
<VirtualHost 127.0.0.1:{port_solo}>
    ServerName solo.test
    DocumentRoot {htdocs}/pcbob
    AssignUserID pcbob pcbob
</VirtualHost>
"""

DISPATCH = VHOSTS + SOLO + "DispatchUserID %s %s 1\n" % (DISPATCH_USER,
                                                        DISPATCH_USER)
DISPATCH_ALL = DISPATCH + "PerchildDispatchAll On\n"
# Two listener buckets on two CPUs: pcalice's two children pinned one per
# CPU with a channel each; the pools of one child take both buckets.
AFFINE = VHOSTS + "ListenCoresBucketsRatio 1\nPerchildCPUAffinity On\n"
# The same behind a dispatch pool of two children, one per CPU.
DISPATCH_AFFINE = VHOSTS + SOLO + "DispatchUserID %s %s 2\n" % (
    DISPATCH_USER, DISPATCH_USER) \
    + "ListenCoresBucketsRatio 1\nPerchildCPUAffinity On\n"

LOG_RE = re.compile(r'^(\d+) (\d+) (\d+) (\S+) "([^"]*)" "([^"]*)"$')
TOKEN_RE = re.compile(r"[?&]t=([0-9a-f]+)")
# Default ErrorLogFormat: [time] [module:level] [pid P:tid T] file(line):
# [client ip:port] message
ERR_PID_RE = re.compile(r"\[pid (\d+)(?::tid \d+)?\]")
ERR_CLIENT_RE = re.compile(r"\[client [0-9.]+:(\d+)\]")
PASS_RE = re.compile(r"PC0304: passing (\d+) head and (\d+) read-ahead "
                     r"bytes to pool (\S+)")

MiB = 1024 * 1024


def label(user):
    return "%s:%s" % (user, user)


def tok():
    return uuid.uuid4().hex[:20]


def loglevel(module):
    return "info %s:trace1" % module.log_name


def wait_ready(h, hosts=None, port_name="shared"):
    """Httpd.start() returns at the first HTTP answer, which may come
    before the last pool's child is forked (a request for that pool is
    then refused: no live child).  Wait until every vhost's owner
    answers."""
    port = h.port(port_name)
    for host in hosts or HOSTS:
        r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
            http_get(port, ID, host=host, timeout=3)), 20)
        assert r, "%s never answered 200:\n%s" % (host, h.error_log())


def serve_vhosts(httpd_factory, module, name, body):
    """Like pchelpers.serve, plus wait_ready."""
    h = httpd_factory(name)
    h.write_config(body, loglevel=loglevel(module))
    try:
        h.start()
        wait_ready(h)
        if "{port_solo}" in body:
            wait_ready(h, ["solo.test"], "solo")
        yield h
        h.stop()
    finally:
        h.kill_all()


@pytest.fixture(scope="module")
def shared(httpd_factory, module):
    yield from serve_vhosts(httpd_factory, module, "handoff", VHOSTS)


@pytest.fixture(scope="module")
def dispatch(httpd_factory, module, dispatch_user):
    yield from serve_vhosts(httpd_factory, module, "dispatch", DISPATCH)


@pytest.fixture(scope="module")
def dispatch_all(httpd_factory, module, dispatch_user):
    yield from serve_vhosts(httpd_factory, module, "dispatchall",
                            DISPATCH_ALL)


@pytest.fixture(scope="module")
def affine(httpd_factory, module):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("PerchildCPUAffinity needs two CPUs")
    yield from serve_vhosts(httpd_factory, module, "affine", AFFINE)


@pytest.fixture(scope="module")
def dispatch_affine(httpd_factory, module, dispatch_user):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("PerchildCPUAffinity needs two CPUs")
    yield from serve_vhosts(httpd_factory, module, "dispatchaffine",
                            DISPATCH_AFFINE)


@pytest.fixture(scope="module", params=["direct", "dispatch", "affine",
                                        "dispatch_affine"])
def srv(request):
    """Tests 1-4 run against the plain shared port, the same vhosts behind
    a dispatch pool, and both with listener buckets and CPU affinity."""
    return request.getfixturevalue({"direct": "shared"}.get(
        request.param, request.param))


@pytest.fixture(scope="module")
def body_file(tmp_path_factory):
    """1 MiB of random bytes, and their sha256."""
    data = os.urandom(MiB)
    path = tmp_path_factory.mktemp("bodies") / "body.bin"
    path.write_bytes(data)
    os.chmod(path, 0o644)
    return path, data, hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# Checks


def verdict(r, host, users, status=200):
    """None if `r` is `status` served by the uid of `host`'s owner, else
    a description of what is wrong."""
    want = users[HOSTS[host]].uid
    if r.status is None:
        return "no response for %s: %s" % (host, r.error)
    ident = r.ident
    if "uid" in ident:
        uid = int(ident["uid"])
        if uid != want:
            return "WRONG UID %d for %s (want %d, status %s)" % (
                uid, host, want, r.status)
    elif r.status == 200:
        return "no uid in the answer for %s: %r" % (host, r)
    if r.status != status:
        return "status %s for %s: %r" % (r.status, host, r)
    return None


def assert_all_ok(results, users, what):
    """results: [(host, response)]"""
    bad = [(h, v) for h, r in results
           for v in [verdict(r, h, users)] if v is not None]
    wrong = [b for b in bad if b[1].startswith("WRONG")]
    assert not wrong, "%s: %d requests under the wrong uid: %s" % (
        what, len(wrong), wrong[:5])
    assert not bad, "%s: %d of %d failed: %s" % (what, len(bad),
                                                 len(results), bad[:5])


def get_req(path, host, t=None, version="HTTP/1.1", headers=(), method="GET"):
    if t is not None:
        path += ("&" if "?" in path else "?") + "t=" + t
    return raw_request(method, path, host, version=version, headers=headers)


class LogEntry:
    def __init__(self, m):
        self.pid = int(m[1])
        self.client_port = int(m[2])
        self.status = int(m[3])
        self.method = m[4]
        self.uri = m[5]
        self.host = m[6]
        t = TOKEN_RE.search(self.uri)
        self.token = t.group(1) if t else None

    def __repr__(self):
        return "<%d %d %d %s %s %s>" % (self.pid, self.client_port,
                                        self.status, self.method, self.uri,
                                        self.host)


def handoff_log(h):
    try:
        text = (h.root / "logs" / "handoff_log").read_text(errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        m = LOG_RE.match(line)
        if m:
            out.append(LogEntry(m))
    return out


def log_entries_for(h, tokens, timeout=5.0):
    """{token: [LogEntry]} once every token is logged (a request is
    logged after its response is sent: wait a little)."""
    tokens = set(tokens)

    def collect():
        got = {}
        for e in handoff_log(h):
            if e.token in tokens:
                got.setdefault(e.token, []).append(e)
        return got

    got = wait_until(lambda: (lambda g: g if set(g) == tokens else None)(
        collect()), timeout)
    return got or collect()


def pid_pools(h):
    """pid -> pool label, from the 'Child .. started' lines."""
    return {pid: pool for _, pid, _, pool in h.started()}


def pids_of(h, user):
    return [pid for pid, pool in pid_pools(h).items()
            if pool == label(user)]


def proc_uid(pid):
    st = proc_status(pid)
    return int(st["Uid"].split()[0]) if st else None


def error_passes(h, since=0):
    """[(pid, client_port, head, read_ahead, to_pool)] of PC0304 lines,
    from byte offset 'since' of the error log on (client ports are
    reused: earlier tests' passes must not count)."""
    out = []
    for line in h.error_log()[since:].splitlines():
        m = PASS_RE.search(line)
        if not m:
            continue
        p = ERR_PID_RE.search(line)
        c = ERR_CLIENT_RE.search(line)
        out.append((int(p.group(1)) if p else None,
                    int(c.group(1)) if c else None,
                    int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def error_excerpt(h, n=40):
    lines = [l for l in h.error_log().splitlines()
             if "PC03" in l or "error" in l.lower() or "warn" in l.lower()]
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------
# 1. Fresh connections


ROUNDS = 15


def test_fresh_connections_alternating(srv, users):
    """60 connections, one request each, cycling through all four vhosts:
    each answered 200 by its vhost's uid (whatever child accepted it)."""
    port = srv.port("shared")
    results = []
    for i in range(ROUNDS):
        for host in CYCLE:
            results.append((host, http_get(port, ID + "?t=" + tok(),
                                           host=host)))
    assert_all_ok(results, users, "fresh connections")
    for host in CYCLE:
        uids = {r.ident["uid"] for h, r in results if h == host}
        assert uids == {str(users[HOSTS[host]].uid)}, (host, uids)
    # Five children (six with a dispatcher) accept: at 60 connections some
    # must have reached a child of another pool and been passed on.
    assert "PC0303: passed the connection" in srv.error_log(), \
        "no hand-off logged at all:\n" + error_excerpt(srv)


# --------------------------------------------------------------------------
# 2. One keep-alive connection across all pools


def keepalive_cycle(h, users, n=12, path=ID):
    """n requests on ONE raw connection, cycling the vhosts; returns
    (connection's client port, [(host, token, response)])."""
    out = []
    with RawConnection(h.port("shared")) as c:
        for i in range(n):
            host = CYCLE[i % len(CYCLE)]
            t = tok()
            r = c.request(get_req(path, host, t))
            out.append((host, t, r))
            assert verdict(r, host, users) is None, (
                "request %d (%s) on the keep-alive connection: %s\n%s"
                % (i + 1, host, verdict(r, host, users), error_excerpt(h)))
            assert not r.closes, "request %d: server closes: %r" % (
                i + 1, r.header_list)
        # Still the same, open connection after the last answer.
        assert not c.closed_by_server(wait=0.3), \
            "the server closed the keep-alive connection"
        port = c.local_port
    return port, out


def test_keepalive_switching_pools(srv, users):
    """One TCP connection, 12 requests cycling a.test, b.test, c.test,
    default.test: every answer from the right uid, the connection never
    closed; the access log shows all 12 on the same client port, served by
    children of the four pools."""
    port, out = keepalive_cycle(srv, users)
    logged = log_entries_for(srv, [t for _, t, _ in out])
    pools = pid_pools(srv)
    for host, t, r in out:
        assert len(logged.get(t, [])) == 1, (t, logged.get(t))
        e = logged[t][0]
        assert e.client_port == port, \
            "request for %s logged with client port %d, the connection " \
            "had %d: a reconnect?" % (host, e.client_port, port)
        assert pools.get(e.pid) == label(HOSTS[host]), (host, e, pools)
        assert int(r.ident["ppid"]) == e.pid
    assert len({logged[t][0].pid for _, t, _ in out}) >= len(CYCLE)


def test_passed_before_parsing_by_host(srv, users):
    """Once a child has seen httpd give a Host to another pool's vhost, it
    passes later requests with that Host before httpd parses them (PC0304
    with a 0-byte head: everything travels as read-ahead).  Every answer
    still comes from the right uid, and requests the hint must not route
    (an absolute URI naming another vhost than the Host, a Host in other
    letter case or with the port) are served by httpd's own choice."""
    since = len(srv.error_log())
    port = srv.port("shared")
    results = []
    with RawConnection(port) as c:
        for i in range(48):
            host = CYCLE[i % len(CYCLE)]
            results.append((host, c.request(get_req(ID, host, tok()))))
        tricky = [
            ("b.test", raw_request("GET", "http://b.test%s?t=%s" % (ID, tok()),
                                   "a.test")),
            ("a.test", raw_request("GET", ID + "?t=" + tok(), "A.Test")),
            ("c.test", raw_request("GET", ID + "?t=" + tok(),
                                   "c.test:%d" % port)),
        ]
        for host, req in tricky:
            results.append((host, c.request(req)))
        local = c.local_port
    assert_all_ok(results, users, "hinted keep-alive")
    passes = [p for p in error_passes(srv, since) if p[1] == local]
    hinted = [p for p in passes if p[2] == 0 and p[3] > 0]
    assert len(hinted) >= 10, \
        "only %d of %d passes made before parsing:\n%s" % (
            len(hinted), len(passes), error_excerpt(srv))
    assert any(p[2] > 0 for p in passes), "no pass after parsing at all"


def test_idle_keepalive_closed_after_one_timeout(shared, users):
    """The look at a request's head before httpd reads it waits as httpd's
    own read would, once: an idle keep-alive connection is closed after
    KeepAliveTimeout (3 s here, no mod_reqtimeout), not after two."""
    with RawConnection(shared.port("shared")) as c:
        r = c.request(get_req(ID, "a.test", tok()))
        assert verdict(r, "a.test", users) is None, verdict(r, "a.test", users)
        t0 = time.monotonic()
        assert c.closed_by_server(wait=8), "keep-alive connection never closed"
        waited = time.monotonic() - t0
    assert 2.0 < waited < 4.8, \
        "idle keep-alive connection closed after %.1f s (KeepAliveTimeout 3)" \
        % waited


@pytest.fixture(scope="module")
def dispatch_errors(httpd_factory, module, dispatch_user):
    yield from serve_vhosts(httpd_factory, module, "dispatch-errors",
                            DISPATCH)


@pytest.mark.parametrize("second", ["keepalive", "fresh"])
def test_dispatch_keeps_early_errors(dispatch_errors, users, second):
    """With a dispatch pool, a request httpd refuses before it has chosen
    the vhost from the Host (here a bad Content-Length) is answered by the
    dispatcher: passing it to the address's first vhost (c.test, pccarol)
    would let that tenant read a request naming b.test with its cookie.
    On a connection a tenant gave back (after a request for a.test) and
    on a fresh one."""
    h = dispatch_errors
    since = len(h.error_log())
    t = tok()
    bad = get_req(ID, "b.test", t, method="POST",
                  headers=[("Cookie", "bob-session=SECRET"),
                           ("Content-Length", "x")])
    with RawConnection(h.port("shared")) as c:
        if second == "keepalive":
            r0 = c.request(get_req(ID, "a.test", tok()))
            assert verdict(r0, "a.test", users) is None
        r = c.request(bad)
        local = c.local_port
    assert r.status == 400, r
    logged = log_entries_for(h, [t])
    assert len(logged.get(t, [])) == 1, logged
    disp = set(pids_of(h, DISPATCH_USER))
    assert logged[t][0].pid in disp, \
        "the 400 for b.test was answered by %s, not the dispatcher" % (
            pid_pools(h).get(logged[t][0].pid),)
    to_carol = [p for p in error_passes(h, since)
                if p[1] == local and p[4] == label("pccarol")]
    assert not to_carol, to_carol


# --------------------------------------------------------------------------
# 3. Pipelining across pools

PIPELINES = [
    ("a.test", "b.test"),
    ("b.test", "a.test"),
    ("c.test", "default.test"),
    ("a.test", "b.test", "c.test"),
    ("default.test", "c.test", "a.test"),
    ("a.test", "a.test", "b.test"),
]


@pytest.mark.parametrize("hosts", PIPELINES, ids=["-".join(
    h.split(".")[0] for h in p) for p in PIPELINES])
def test_pipelined_in_one_write(srv, users, hosts):
    """Requests for different pools in ONE write: answered in order, each
    by its vhost's uid (the receiver gets the not yet served requests as
    read-ahead and writes only after the earlier answers are out)."""
    tokens = [tok() for _ in hosts]
    data = b"".join(get_req(HASH, h, t) for h, t in zip(hosts, tokens))
    with RawConnection(srv.port("shared")) as c:
        c.send(data)
        responses = []
        for h in hosts:
            try:
                responses.append(c.read_response())
            except (OSError, EOFError, ValueError) as e:
                pytest.fail("after %d answers: %s: %s\n%s" % (
                    len(responses), type(e).__name__, e, error_excerpt(srv)))
        assert not c.closed_by_server(wait=0.2)
    assert_all_ok(list(zip(hosts, responses)), users, "pipelined")
    assert [r.ident["query"] for r in responses] == \
        ["t=" + t for t in tokens], "answers out of order"


def test_pipelined_with_body(shared, users, body_file):
    """A POST with a 64 KiB body for one pool and a GET for another in one
    write: the read-ahead (the rest of the body and the second request)
    travels with the connection."""
    _, data, _ = body_file
    body = data[:65536]
    digest = hashlib.sha256(body).hexdigest()
    for first, second in (("a.test", "b.test"), ("c.test", "a.test"),
                          ("default.test", "b.test")):
        t1, t2 = tok(), tok()
        req = raw_request("POST", HASH + "?t=" + t1, first, body=body) + \
            get_req(HASH, second, t2)
        with RawConnection(shared.port("shared")) as c:
            c.send(req)
            r1 = c.read_response()
            r2 = c.read_response()
        assert_all_ok([(first, r1), (second, r2)], users, "body+pipeline")
        assert r1.ident["sha256"] == digest and r1.ident["len"] == "65536"
        assert r2.ident["query"] == "t=" + t2 and r2.ident["len"] == "0"


EXIT_LATE = """#!/bin/sh
# Answers, closes its output and errors, and exits a few milliseconds
# later: as a script does that still has work after its output.
trap 'echo "$QUERY_STRING" >> {log}' TERM
echo "Content-Type: text/plain"
echo
echo "n=$QUERY_STRING"
exec 1>&- 2>&-
sleep 0.005
"""


def test_pipelined_cgi_not_killed_by_the_pass(shared, users):
    """Pipelined CGI requests that switch pools on every request.  Each
    response httpd holds back is written out when the connection moves;
    that ends its request, and APR, finding its script still alive, would
    send it SIGTERM and sleep 47 ms before the connection can move.  The
    child lets the script exit first: no script is killed but maybe the
    last (its response is not held back, as under worker)."""
    logdir = shared.root / "termlog"
    logdir.mkdir(exist_ok=True)
    os.chmod(logdir, 0o1777)
    log = logdir / "term"
    script = shared.root / "cgi-bin" / "exitlate.cgi"
    script.write_text(EXIT_LATE.format(log=log))
    os.chmod(script, 0o755)
    # Every worker learns where a.test and b.test go (pc_hint.c): the
    # pass then comes right after the response, before httpd parses.
    for _ in range(12):
        k = KeepAliveClient(shared.port("shared"))
        for h in ("a.test", "b.test") * 3:
            assert k.get("/index.html", h).status == 200
        k.close()
    hosts = ["a.test", "b.test"] * 4
    req = b"".join(raw_request("GET", "/cgi-bin/exitlate.cgi?%d" % i, h)
                   for i, h in enumerate(hosts))
    with RawConnection(shared.port("shared"), timeout=20) as c:
        c.send(req)
        for i, h in enumerate(hosts):
            r = c.read_response()
            assert r.status == 200 and "n=%d" % i in r.body, r
    time.sleep(1)
    killed = log.read_text().split() if log.exists() else []
    assert not [k for k in killed if int(k) < len(hosts) - 1], killed


# --------------------------------------------------------------------------
# 4. 1 MiB bodies


def curl_post(port, host, path, body_path, extra):
    cmd = ["curl", "-v", "-sS", "--max-time", "30", "-o", "-",
           "-w", "\nhttp_code=%{http_code}\n",
           "-H", "Host: " + host,
           "-H", "Content-Type: application/octet-stream",
           "--data-binary", "@%s" % body_path] + extra + \
        ["http://127.0.0.1:%d%s" % (port, path)]
    r = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    return r.returncode, r.stdout.decode("utf-8", "replace"), \
        r.stderr.decode("utf-8", "replace")


CURL_MODES = {
    "length": ["-H", "Expect:"],
    "length-default": [],
    "length-expect": ["-H", "Expect: 100-continue"],
    "chunked": ["-H", "Expect:", "-H", "Transfer-Encoding: chunked"],
    "chunked-expect": ["-H", "Expect: 100-continue",
                       "-H", "Transfer-Encoding: chunked"],
}


@pytest.mark.parametrize("mode", sorted(CURL_MODES))
def test_big_body_curl(srv, users, body_file, mode):
    """curl POSTs 1 MiB (Content-Length or chunked, with or without
    Expect: 100-continue) to hash.cgi on every vhost over the shared port:
    the right uid reads exactly the bytes sent.  With Expect the 100
    Continue comes from the receiving child (curl would otherwise wait
    1 s and send anyway: we require the 100)."""
    path, data, digest = body_file
    for host in CYCLE:
        t = tok()
        rc, out, err = curl_post(srv.port("shared"), host, HASH + "?t=" + t,
                                 path, CURL_MODES[mode])
        assert rc == 0, "curl rc %d for %s: %s\n%s" % (rc, host, err[-2000:],
                                                     error_excerpt(srv))
        ident = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        assert ident.get("http_code") == "200", (host, out[-500:])
        assert ident.get("uid") == str(users[HOSTS[host]].uid), (host, out)
        assert ident.get("len") == str(MiB), (host, out)
        assert ident.get("sha256") == digest, (host, out)
        assert ident.get("query") == "t=" + t
        if "chunked" in mode:
            assert "> Transfer-Encoding: chunked" in err
            assert ident.get("content_length") == ""
        else:
            assert ident.get("content_length") == str(MiB)
        if mode.endswith("expect"):
            assert "> Expect: 100-continue" in err
            assert "< HTTP/1.1 100 Continue" in err, \
                "no 100 Continue for %s:\n%s" % (host, err[-3000:])


@pytest.mark.parametrize("chunked", [False, True], ids=["length",
                                                        "chunked"])
def test_big_body_one_write(srv, users, body_file, chunked):
    """A raw client sends head and 1 MiB body in ONE write, on a
    keep-alive connection that first asks another pool, then asks again
    afterwards: hash and uid right, connection still usable."""
    _, data, digest = body_file
    for i, host in enumerate(CYCLE):
        before = CYCLE[(i + 1) % len(CYCLE)]
        with RawConnection(srv.port("shared"), timeout=30) as c:
            r0 = c.request(get_req(ID, before, tok()))
            t = tok()
            r = c.request(raw_request("POST", HASH + "?t=" + t, host,
                                      body=data, chunked=chunked),
                          method="POST")
            r2 = c.request(get_req(ID, before, tok()))
        assert_all_ok([(before, r0), (host, r), (before, r2)], users,
                      "1 MiB body")
        assert r.ident["len"] == str(MiB) and r.ident["sha256"] == digest, \
            (host, r)
        assert r.ident["query"] == "t=" + t


def test_big_body_expect_continue_raw(srv, users, body_file):
    """Raw: head with Expect: 100-continue, wait for the 100 (it must come
    from the owner's child after the hand-off), then the 1 MiB body."""
    _, data, digest = body_file
    for host in CYCLE:
        t = tok()
        head = raw_request("POST", HASH + "?t=" + t, host,
                           headers=[("Expect", "100-continue"),
                                    ("Content-Length", str(MiB))])
        with RawConnection(srv.port("shared"), timeout=30) as c:
            c.send(head)
            try:
                status = c.read_interim(timeout=5)
            except (OSError, EOFError, ValueError) as e:
                pytest.fail("no 100 Continue for %s: %s\n%s" % (
                    host, e, error_excerpt(srv)))
            assert status == 100
            c.send(data)
            r = c.read_response("POST")
        assert verdict(r, host, users) is None, verdict(r, host, users)
        assert r.ident["len"] == str(MiB) and r.ident["sha256"] == digest


# --------------------------------------------------------------------------
# 5. Large request heads


def big_headers(n=60):
    """n X-Test-N headers of ~120 bytes (about 7 KiB), plus a repeated
    X-Multi whose merged value shows the order."""
    hdrs = []
    for i in range(n):
        h = hashlib.sha256(b"%d" % i).hexdigest()
        hdrs.append(("X-Test-%d" % i, "%d %s ;,=:/ %s" % (i, h[:48],
                                                         h[16:64])))
    multi = [("X-Multi", "one"), ("X-Multi", "two"), ("X-Multi", "three")]
    return hdrs[:n // 2] + multi + hdrs[n // 2:]


def check_env(r, hdrs):
    lines = [l[2:] for l in r.body.splitlines() if l.startswith("h:")]
    env = [l.partition("=")[::2] for l in lines]
    names = [k for k, _ in env]
    d = dict(env)
    tests = [(k, v) for k, v in hdrs if k.startswith("X-Test-")]
    for k, v in tests:
        name = "HTTP_" + k.upper().replace("-", "_")
        assert d.get(name) == v, "%s: %r != %r" % (name, d.get(name), v)
    order = [names.index("HTTP_" + k.upper().replace("-", "_"))
             for k, _ in tests]
    assert order == sorted(order), "headers out of order"
    assert d.get("HTTP_X_MULTI") == "one, two, three"


def test_large_head_forwarded_intact(shared, users):
    """~7 KiB of request headers reach the owner's CGI intact and in
    order: on a fresh connection and as the second request of a
    keep-alive connection whose first request was for another pool (so
    that this one certainly arrived by hand-off)."""
    hdrs = big_headers()
    size = len(get_req(ENV, "x", tok(), headers=hdrs))
    assert 7000 < size < 8190, size
    for i, host in enumerate(CYCLE):
        other = CYCLE[(i + 1) % len(CYCLE)]
        # fresh
        with RawConnection(shared.port("shared")) as c:
            r = c.request(get_req(ENV, host, tok(), headers=hdrs))
        assert verdict(r, host, users) is None, verdict(r, host, users)
        check_env(r, hdrs)
        # second on a connection that another pool served first
        with RawConnection(shared.port("shared")) as c:
            r0 = c.request(get_req(ID, other, tok()))
            r = c.request(get_req(ENV, host, tok(), headers=hdrs))
            r2 = c.request(get_req(ENV, other, tok(), headers=hdrs))
        assert_all_ok([(other, r0), (host, r), (other, r2)], users,
                      "large head")
        check_env(r, hdrs)
        check_env(r2, hdrs)


# --------------------------------------------------------------------------
# 6. Concurrency


def test_concurrent_clients(shared, users):
    """8 threads x 25 requests, random vhosts; even threads keep one
    connection alive, odd ones open one per request.  No failure, no
    wrong uid."""
    results = [[] for _ in range(8)]
    reconnects = [0] * 8

    def run(i):
        rng = random.Random(i)
        c = None
        try:
            for n in range(25):
                host = rng.choice(CYCLE)
                if i % 2:
                    r = http_get(shared.port("shared"), ID + "?t=" + tok(),
                                 host=host)
                else:
                    if c is None:
                        c = RawConnection(shared.port("shared"))
                    r = c.request(get_req(ID, host, tok()))
                    if r.status is None or r.closes:
                        c.close()
                        c = None
                        reconnects[i] += 1
                results[i].append((host, r))
        except Exception as e:      # noqa: BLE001 - reported below
            results[i].append(("?", "exception %r" % e))
        finally:
            if c is not None:
                c.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True)
               for i in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1, 120 - (time.monotonic() - t0)))
    assert not any(t.is_alive() for t in threads), \
        "clients still running after 120 s\n" + error_excerpt(shared)
    flat = [x for res in results for x in res]
    odd = [x for x in flat if isinstance(x[1], str)]
    assert not odd, odd
    assert len(flat) == 200
    assert_all_ok(flat, users, "concurrent")
    print("concurrent: 200 requests in %.1f s, keep-alive reconnects %s"
          % (time.monotonic() - t0, reconnects))
    assert sum(reconnects) == 0, \
        "keep-alive connections were closed: %s" % reconnects


# --------------------------------------------------------------------------
# 7. Descriptors of a CGI that got its request by hand-off


def test_cgi_fds_after_handoff(shared, users, body_file):
    """Every request after the first on a connection cycling the pools
    arrived by hand-off; neither id.cgi nor hash.cgi (reading a body that
    partly came as read-ahead) inherits any descriptor: no channel, no
    listener, no client socket."""
    _, data, _ = body_file
    results = []
    with RawConnection(shared.port("shared")) as c:
        for i in range(8):
            host = CYCLE[i % len(CYCLE)]
            results.append((host, c.request(get_req(ID, host, tok()))))
            results.append((host, c.request(raw_request(
                "POST", HASH + "?t=" + tok(), host, body=data[:200000]),
                method="POST")))
    assert_all_ok(results, users, "fds")
    leaked = [(h, r.ident["fds"]) for h, r in results if r.ident["fds"]]
    assert not leaked, "CGI inherited descriptors: %s" % leaked[:4]


# --------------------------------------------------------------------------
# 8. Access log


def test_access_log_once_by_server(shared, users):
    """Each request is logged exactly once, by the child that served it:
    its pid belongs to the vhost's pool, runs as the vhost's uid and is
    the CGI's parent.  Requests: fresh, keep-alive cycling, pipelined."""
    sent = []       # (host, token, response)
    for host in CYCLE * 3:
        t = tok()
        sent.append((host, t, http_get(shared.port("shared"),
                                       ID + "?t=" + t, host=host)))
    with RawConnection(shared.port("shared")) as c:
        for host in CYCLE * 3:
            t = tok()
            sent.append((host, t, c.request(get_req(ID, host, t))))
    hosts = ["b.test", "a.test", "default.test", "c.test"]
    tokens = [tok() for _ in hosts]
    with RawConnection(shared.port("shared")) as c:
        c.send(b"".join(get_req(ID, h, t) for h, t in zip(hosts, tokens)))
        for h, t in zip(hosts, tokens):
            sent.append((h, t, c.read_response()))
    assert_all_ok([(h, r) for h, _, r in sent], users, "access log")

    logged = log_entries_for(shared, [t for _, t, _ in sent])
    pools = pid_pools(shared)
    for host, t, r in sent:
        entries = logged.get(t, [])
        assert len(entries) == 1, "token %s (%s) logged %d times: %s" % (
            t, host, len(entries), entries)
        e = entries[0]
        assert e.status == 200 and e.host == host, e
        assert pools.get(e.pid) == label(HOSTS[host]), \
            "%s logged by pid %d of pool %s" % (host, e.pid,
                                                pools.get(e.pid))
        assert proc_uid(e.pid) == users[HOSTS[host]].uid, (e, host)
        assert int(r.ident["ppid"]) == e.pid, (e, r.ident)
    # The suite's own access log (LogFormat "pc"): once per token too.
    text = shared.access_log()
    for _, t, _ in sent:
        assert text.count("t=" + t) == 1, t


# --------------------------------------------------------------------------
# 9. HEAD, HTTP/1.0, unknown Host


def test_head_through_handoff(shared, users):
    """HEAD on a connection that another pool served first: headers from
    the owner's CGI (X-Uid), no body, and the connection stays in sync for
    a following GET."""
    for i, host in enumerate(CYCLE):
        other = CYCLE[(i + 2) % len(CYCLE)]
        with RawConnection(shared.port("shared")) as c:
            r0 = c.request(get_req(ID, other, tok()))
            t = tok()
            h = c.request(get_req(HASH, host, t, method="HEAD"),
                          method="HEAD")
            r2 = c.request(get_req(ID, other, tok()))
        assert_all_ok([(other, r0), (other, r2)], users, "around HEAD")
        assert h.status == 200, h
        assert h.raw_body == b""
        assert h.header("X-Uid") == str(users[HOSTS[host]].uid), \
            (host, h.header_list)
        assert h.header("X-Query") == "t=" + t


def test_http10_through_handoff(shared, users):
    """HTTP/1.0 requests (no keep-alive: answered, then closed) for every
    vhost; and HTTP/1.0 keep-alive of a static file across two pools."""
    for host in CYCLE * 2:
        with RawConnection(shared.port("shared")) as c:
            r = c.request(get_req(ID, host, tok(), version="HTTP/1.0"))
            assert verdict(r, host, users) is None, verdict(r, host, users)
            assert r.closes
            assert c.closed_by_server(wait=3), "1.0 connection left open"
    # Static index.html has a Content-Length: 1.0 keep-alive works.
    ka = [("Connection", "keep-alive")]
    with RawConnection(shared.port("shared")) as c:
        seen = []
        for host in ("a.test", "b.test", "c.test", "a.test"):
            t = tok()
            r = c.request(get_req("/index.html", host, t, version="HTTP/1.0",
                                  headers=ka))
            assert r.status == 200, (host, r)
            assert r.body == HOSTS[host] + "\n", (host, r.body)
            assert not r.closes, r.header_list
            seen.append((host, t))
    logged = log_entries_for(shared, [t for _, t in seen])
    pools = pid_pools(shared)
    for host, t in seen:
        assert pools.get(logged[t][0].pid) == label(HOSTS[host])


@pytest.mark.parametrize("host", ["unknown.test", None],
                         ids=["unknown-host", "no-host-1.0"])
def test_default_vhost_owner_serves(shared, users, host):
    """A Host of no vhost (and an HTTP/1.0 request without Host) goes to
    the port's first vhost, c.test, and is served by its owner pccarol:
    on fresh connections and after another pool's request."""
    want = str(users[HOSTS[FIRST_VHOST]].uid)
    version = "HTTP/1.0" if host is None else "HTTP/1.1"
    for i in range(8):
        with RawConnection(shared.port("shared")) as c:
            r = c.request(get_req(ID, host, tok(), version=version))
        assert r.status == 200 and r.ident.get("uid") == want, r
    with RawConnection(shared.port("shared")) as c:
        for other in ("a.test", "b.test", "default.test"):
            ka = [("Connection", "keep-alive")] if host is None else []
            r0 = c.request(get_req(ID, other, tok()))
            r = c.request(get_req(ID, host, tok(), version=version,
                                  headers=ka))
            assert verdict(r0, other, users) is None, r0
            assert r.status == 200 and r.ident.get("uid") == want, r
            if r.closes:
                break


# --------------------------------------------------------------------------
# 11. nginx as a pooling reverse proxy

NGINX = "/usr/sbin/nginx"

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user www-data;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream perchild {{
        server 127.0.0.1:{upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://perchild;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(shared, tmp_path):
    if not os.access(NGINX, os.X_OK):
        pytest.skip("no %s" % NGINX)
    d = tmp_path / "nginx"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=d, upstream=shared.port("shared"),
                                      port=port))
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(d),
                             "-e", str(d / "error.log")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def up():
            if proc.poll() is not None:
                return "dead"
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return "up"
            except OSError:
                return None
        state = wait_until(up, 10)
        if state != "up":
            log = (d / "error.log").read_text() if (d / "error.log").exists() \
                else ""
            out = proc.stdout.read().decode() if proc.poll() is not None \
                else ""
            pytest.fail("nginx did not start (%s): %s %s" % (state, out, log))
        yield port, d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def test_nginx_pooled_upstream(shared, users, nginx):
    """nginx keeps up to 4 connections to the shared port open and sends
    requests for all vhosts over them: 60 requests alternating Host
    headers all reach the right uid, and the access log shows fewer
    upstream connections (client ports) than requests."""
    port, d = nginx
    sent = []
    for i in range(60):
        host = CYCLE[i % len(CYCLE)]
        t = tok()
        sent.append((host, t, http_get(port, ID + "?t=" + t, host=host)))
    bad = [(h, verdict(r, h, users)) for h, _, r in sent
           if verdict(r, h, users)]
    assert not bad, "%s\nnginx: %s\n%s" % (
        bad[:5], (d / "error.log").read_text()[-2000:], error_excerpt(shared))
    logged = log_entries_for(shared, [t for _, t, _ in sent])
    ports = [logged[t][0].client_port for _, t, _ in sent]
    assert all(len(logged[t]) == 1 for _, t, _ in sent)
    distinct = len(set(ports))
    print("nginx: 60 requests over %d upstream connections" % distinct)
    assert distinct <= 15, \
        "nginx used %d upstream connections for 60 requests" % distinct
    # A reused connection carried requests for different pools.
    by_port = {}
    for (host, t, _), p in zip(sent, ports):
        by_port.setdefault(p, set()).add(HOSTS[host])
    assert max(len(s) for s in by_port.values()) >= 2, by_port


# --------------------------------------------------------------------------
# 12. Dispatch pool


def test_dispatch_serves_nothing_and_gives_back(dispatch, users,
                                                dispatch_user):
    """With DispatchUserID pcdisp: the dispatcher's child appears in no
    access-log line (it serves nothing); on a keep-alive connection
    cycling the pools every request was passed by the dispatcher to its
    owner's pool (PC0304 from the dispatcher's pid, in order) and every
    tenant gave the connection back after its request (PC0304 "to pool
    pcdisp:pcdisp" from the tenant's pid)."""
    disp = set(pids_of(dispatch, DISPATCH_USER))
    assert disp, "no dispatch child started:\n" + dispatch.error_log()
    for pid in disp:
        assert proc_uid(pid) == dispatch_user.uid

    n = 12
    since = len(dispatch.error_log())
    port, out = keepalive_cycle(dispatch, users, n=n)
    logged = log_entries_for(dispatch, [t for _, t, _ in out])
    assert all(len(logged[t]) == 1 for _, t, _ in out), logged

    def passes():
        return [p for p in error_passes(dispatch, since) if p[1] == port]

    want_backs = n
    wait_until(lambda: sum(1 for p in passes()
                           if p[4] == label(DISPATCH_USER)) >= want_backs, 5)
    mine = passes()
    by_disp = [p for p in mine if p[0] in disp]
    backs = [p for p in mine if p[0] not in disp]
    assert [p[4] for p in by_disp] == [label(HOSTS[h]) for h, _, _ in out], \
        "the dispatcher's passes for this connection: %s" % by_disp
    assert all(p[4] == label(DISPATCH_USER) for p in backs), backs
    assert len(backs) == n, \
        "%d give-backs for %d requests: %s" % (len(backs), n, backs)
    # Each give-back comes from the child that served the request before.
    pools = pid_pools(dispatch)
    for (host, t, _), back in zip(out, backs):
        assert back[0] == logged[t][0].pid, (host, back, logged[t])
        assert pools.get(back[0]) == label(HOSTS[host])

    # Nothing ever logged by the dispatcher (all traffic of this module so
    # far, including the parametrized tests run against this server).
    entries = handoff_log(dispatch)
    assert entries
    by_dispatcher = [e for e in entries if e.pid in disp]
    assert not by_dispatcher, by_dispatcher[:5]
    suite_log_pids = {int(l.split()[-1]) for l in
                      dispatch.access_log().splitlines() if l.strip()}
    assert not suite_log_pids & disp


def test_dispatch_pool_only_acceptor(dispatch, users, dispatch_user):
    """The dispatch child runs as pcdisp; the pool-owned port "solo" is
    still accepted by pcbob's children directly (no pass for it), the
    shared port only by the dispatcher (every fresh request is passed)."""
    for pid in pids_of(dispatch, DISPATCH_USER):
        assert proc_uid(pid) == dispatch_user.uid
    since = len(dispatch.error_log())
    solo_ports = []
    for i in range(6):
        with RawConnection(dispatch.port("solo")) as c:
            r = c.request(get_req(ID, "solo.test", tok()))
            solo_ports.append(c.local_port)
        assert r.status == 200 and r.ident["uid"] == \
            str(users["pcbob"].uid), r
    shared_ports = []
    for host in CYCLE:
        with RawConnection(dispatch.port("shared")) as c:
            r = c.request(get_req(ID, host, tok()))
            shared_ports.append(c.local_port)
        assert verdict(r, host, users) is None
    wait_until(lambda: {p[1] for p in error_passes(dispatch, since)}
               >= set(shared_ports), 5)
    passes = error_passes(dispatch, since)
    assert not [p for p in passes if p[1] in solo_ports], \
        "connections to the solo port were passed"
    disp = set(pids_of(dispatch, DISPATCH_USER))
    for p in shared_ports:
        assert [x for x in passes if x[1] == p and x[0] in disp], \
            "shared-port connection %d not passed by the dispatcher" % p


# --------------------------------------------------------------------------
# 13. PerchildDispatchAll


def test_dispatch_all_single_owner_port(dispatch_all, users):
    """PerchildDispatchAll On: the dispatcher accepts even the port only
    pcbob's vhost uses; its requests are passed to pcbob and served under
    pcbob's uid; the shared port works as before."""
    disp = set(pids_of(dispatch_all, DISPATCH_USER))
    since = len(dispatch_all.error_log())
    ports = []
    for i in range(8):
        with RawConnection(dispatch_all.port("solo")) as c:
            r = c.request(get_req(ID, "solo.test", tok()))
            r2 = c.request(get_req(ID, "solo.test", tok()))
            ports.append(c.local_port)
        for x in (r, r2):
            assert x.status == 200 and x.ident["uid"] == \
                str(users["pcbob"].uid), x
    wait_until(lambda: {p[1] for p in error_passes(dispatch_all, since)
                        if p[0] in disp} >= set(ports), 5)
    passes = error_passes(dispatch_all, since)
    for p in ports:
        assert [x for x in passes if x[1] == p and x[0] in disp
                and x[4] == label("pcbob")], \
            "solo-port connection %d not passed by the dispatcher" % p
    results = [(h, http_get(dispatch_all.port("shared"), ID + "?t=" + tok(),
                            host=h)) for h in CYCLE * 3]
    assert_all_ok(results, users, "dispatch-all shared port")
    assert not [e for e in handoff_log(dispatch_all) if e.pid in disp]


# --------------------------------------------------------------------------
# 10. An owner pool that cannot take the connection

POOL_DOWN_WAIT = 5.0
QUEUE_TIMEOUT = 2
STOPPED_FOR = 8.0


def _timed_get(port, host, timeout):
    t0 = time.monotonic()
    with RawConnection(port, timeout=timeout) as c:
        r = c.request(get_req(ID, host, tok()))
    return r, time.monotonic() - t0


@pytest.fixture(scope="module")
def down(httpd_factory, module):
    """A server of its own for the tests that stop pool pccarol, which
    answers connections that waited 2 s for a pool showing no sign of
    life."""
    yield from serve_vhosts(httpd_factory, module, "pooldown",
                            VHOSTS + "PerchildQueueTimeout %d\n"
                            % QUEUE_TIMEOUT)


@pytest.fixture(scope="module")
def down_unwatched(httpd_factory, module):
    """The same, with the stall watch off (PerchildQueueTimeout 0): the
    queue's own bound is all there is, however long the pool stays
    stopped."""
    yield from serve_vhosts(httpd_factory, module, "pooldown-unwatched",
                            VHOSTS + "PerchildQueueTimeout 0\n")


class Stopped:
    """SIGSTOPs every child of a pool; SIGCONT on exit, whatever
    happens."""

    def __init__(self, h, user):
        self.pids = pids_of(h, user)
        assert self.pids, "no child of %s:\n%s" % (user, h.error_log())
        self.stopped = []

    def __enter__(self):
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)
        assert wait_until(lambda: all(
            (proc_status(p) or {}).get("State", "").startswith("T")
            for p in self.pids), 3), "children did not stop"
        return self

    def cont(self):
        while self.stopped:
            try:
                os.kill(self.stopped.pop(), signal.SIGCONT)
            except ProcessLookupError:
                pass

    def __exit__(self, *exc):
        self.cont()


@pytest.fixture(scope="module")
def stopped_pool_results(down, users):
    """Stops pccarol's only child for STOPPED_FOR seconds while 3 clients
    ask c.test (and others ask the other vhosts); returns
    ([(response, seconds)] of the c.test clients, [(host, response)] of
    the others)."""
    port = down.port("shared")
    results = []
    with Stopped(down, "pccarol") as st:
        t0 = time.monotonic()

        def client():
            results.append(_timed_get(port, "c.test", STOPPED_FOR + 20))
        threads = [threading.Thread(target=client, daemon=True)
                   for _ in range(3)]
        for t in threads:
            t.start()
        others = [(h, http_get(port, ID + "?t=" + tok(), host=h, timeout=5))
                  for h in ("a.test", "b.test", "default.test") * 2]
        time.sleep(max(0, t0 + STOPPED_FOR - time.monotonic()))
        st.cont()
        deadline = time.monotonic() + 25
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "clients still waiting"
    print("pccarol stopped for %ss: c.test clients got %s" % (
        STOPPED_FOR, [(r.status, r.ident.get("uid"), round(dt, 2))
                      for r, dt in results]))
    return results, others


def test_owner_pool_stopped_safe(down, users, stopped_pool_results):
    """While pccarol's child is stopped (SIGSTOP): requests for c.test
    are never served by another uid; each is either refused (503 with
    Retry-After, PC0301) or held and served by pccarol once it runs again
    (none is lost: every client gets an answer); the other vhosts keep
    being served meanwhile."""
    results, others = stopped_pool_results
    assert_all_ok(others, users, "other pools while pccarol is stopped")
    assert len(results) == 3
    for r, dt in results:
        assert r.status is not None, \
            "a c.test client got no answer at all: %s\n%s" % (
                r.error, error_excerpt(down))
        if r.status == 503:
            assert r.header("Retry-After"), r.header_list
            # Refused by a sender (PC0301) or, after waiting in the
            # channel, by the parent (PC0318).
            log = down.error_log()
            assert MISROUTE_TAG in log or "PC0318" in log, log[-2000:]
        else:
            assert verdict(r, "c.test", users) is None, \
                verdict(r, "c.test", users)


def test_owner_pool_stopped_bounded_wait(down, users, stopped_pool_results):
    """No client of a stopped pool waits much longer than
    PerchildQueueTimeout (2 s here; the pool stays stopped for 8 s): the
    parent answers the connections waiting in the pool's channel with
    503 once the pool has shown no sign of life for that long, and says
    so in the error log (PC0318)."""
    results, _ = stopped_pool_results
    slow = [(r.status, round(dt, 2)) for r, dt in results
            if dt > POOL_DOWN_WAIT]
    assert not slow, "c.test clients waited longer than %ss: %s" % (
        POOL_DOWN_WAIT, slow)
    assert all(r.status == 503 and r.header("Retry-After")
               for r, _ in results), [(r.status, round(dt, 2))
                                       for r, dt in results]
    assert "PC0318" in down.error_log(), error_excerpt(down)
    # The helper that answered them has exited; the parent lives on and
    # its children serve c.test again.
    assert wait_until(lambda: {c.pid for c in down.children()}
                      <= set(pid_pools(down)), 10), \
        ([(c.pid, c.uid) for c in down.children()], pid_pools(down))
    assert verdict(http_get(down.port("shared"), ID + "?t=" + tok(),
                            host="c.test"), "c.test", users) is None


def test_busy_pool_queue_waits_its_turn(down, users):
    """A pool whose workers are all busy (pccarol: 4 workers, each in a
    4-second CGI) is not stalled: a connection passed to it meanwhile
    waits in its channel longer than PerchildQueueTimeout (2 s here) and
    is then served by pccarol, not answered 503 by the parent."""
    port = down.port("shared")
    busy = []

    def sleeper():
        busy.append(http_get(port, "/cgi-bin/sleep.cgi?4", host="c.test",
                             timeout=20))
    threads = [threading.Thread(target=sleeper, daemon=True)
               for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    ka = KeepAliveClient(port, timeout=20)
    try:
        first = ka.get(ID + "?t=" + tok(), "a.test")
        t0 = time.monotonic()
        queued = ka.get(ID + "?t=" + tok(), "c.test")
        waited = time.monotonic() - t0
    finally:
        ka.close()
    for t in threads:
        t.join(20)
    assert verdict(first, "a.test", users) is None, first
    assert queued.status == 200, (queued, round(waited, 2),
                                  error_excerpt(down))
    assert verdict(queued, "c.test", users) is None, queued
    assert waited > QUEUE_TIMEOUT, \
        "not queued behind the busy workers (%.2f s)" % waited
    assert [r.status for r in busy] == [200] * 4, busy


def _drain(socks, deadline):
    """Reads every socket to EOF (poll, all at once); {sock: bytes or
    an error string}.  Closes each socket when done."""

    out = {}
    bufs = {s.fileno(): [s, b""] for s in socks}
    pl = select.poll()
    for s in socks:
        s.setblocking(False)
        pl.register(s, select.POLLIN)
    while bufs and time.monotonic() < deadline:
        for fd, ev in pl.poll(200):
            s, data = bufs[fd]
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                chunk = b""
                data = "error %s" % e
            if chunk:
                bufs[fd][1] = data + chunk
                continue
            pl.unregister(fd)
            out[s] = data
            del bufs[fd]
            s.close()
    for fd, (s, data) in bufs.items():
        out[s] = "no EOF; got %r" % data[:100]
        s.close()
    return out


def _drain_answered(socks):
    """Reads to EOF the sockets that have an answer waiting now."""
    pl = select.poll()
    for s in socks:
        pl.register(s, select.POLLIN)
    ready = {fd for fd, _ in pl.poll(0)}
    return _drain([s for s in socks if s.fileno() in ready],
                  time.monotonic() + 10)


FLOOD_MAX = 8000
FLOOD_TIME = 60


def test_owner_channel_full_503(down_unwatched, users):
    """pccarol's child stopped, clients keep asking c.test: a bounded
    number of records queue in pccarol's channel; from then on senders
    answer 503 with Retry-After at once (PC0301 "down or overloaded").
    After SIGCONT every queued connection is served by pccarol: none is
    lost, none is served by another pool.  (The stall watch is off here:
    it would answer the queued ones once they waited its timeout.)"""
    down = down_unwatched
    port = down.port("shared")
    req = raw_request("GET", "/index.html", "c.test",
                      headers=[("Connection", "close")])
    socks = []
    refused_at = None

    with Stopped(down, "pccarol") as st:
        t0 = time.monotonic()
        pl = select.poll()
        while time.monotonic() - t0 < FLOOD_TIME and len(socks) < FLOOD_MAX:
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(req)
                socks.append(s)
                pl.register(s, select.POLLIN)
            if pl.poll(20):
                refused_at = (len(socks), time.monotonic() - t0)
                break
        if not refused_at and pl.poll(2500):
            refused_at = (len(socks), time.monotonic() - t0)
        assert refused_at, "no answer at all for %d queued connections in " \
            "%d s\n%s" % (len(socks), FLOOD_TIME, error_excerpt(down))
        # Everything answered while the pool is stopped is a 503.
        time.sleep(2.5)
        early = _drain_answered(socks)
        st.cont()
    rest = _drain([s for s in socks if s not in early],
                  time.monotonic() + 60)
    print("channel full after %d connections (%.1f s); %d refused early"
          % (refused_at[0], refused_at[1], len(early)))
    statuses = {}
    for s, data in list(early.items()) + list(rest.items()):
        line = data.split(b"\r\n", 1)[0] if isinstance(data, bytes) \
            else data
        statuses.setdefault(line if isinstance(line, str)
                            else line.decode("latin-1"), []).append(data)
    print({k: len(v) for k, v in statuses.items()})
    for s, data in early.items():
        assert isinstance(data, bytes) and data.startswith(
            b"HTTP/1.1 503"), data[:200]
        assert b"\r\nRetry-After:" in data, data[:300]
    bad = {k: v[0][:200] for k, v in statuses.items()
           if k not in ("HTTP/1.1 200 OK", "HTTP/1.1 503 Service Unavailable")}
    assert not bad, bad
    served = [d for d in rest.values() if d.startswith(b"HTTP/1.1 200")]
    assert all(d.endswith(b"\r\n\r\npccarol\n") for d in served)
    # Every connection got an answer: queued ones served after SIGCONT,
    # the rest refused; none lost.
    answered = sum(len(v) for v in statuses.values())
    assert answered == len(socks), statuses.keys()
    assert served, "no queued connection was served after SIGCONT"
    log = down.error_log()
    # The queue is bounded: a stuck pool is called overloaded (or, with a
    # burst, the channel is full for the send timeout).
    assert "PC0301" in log and ("down or overloaded" in log
                                or "did not take it in time" in log), \
        error_excerpt(down)
    carol = set(pids_of(down, "pccarol"))
    pools = pid_pools(down)
    entries = [e for e in handoff_log(down)
               if e.uri == "/index.html" and e.host == "c.test"]
    assert entries and all(pools.get(e.pid) == label("pccarol")
                           or e.status == 503 for e in entries), \
        [e for e in entries if e.pid not in carol][:5]


def tasks_by_uid():
    """uid -> number of tasks (threads) with that real uid: what
    RLIMIT_NPROC counts."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_status(int(name))
        if st:
            uid = int(st["Uid"].split()[0])
            out[uid] = out.get(uid, 0) + int(st.get("Threads", "1"))
    return out


# RLIMIT_NPROC counts every task of a user on the machine, also those of
# other servers running meanwhile: the limit sits this far above the
# other pools' users, pccarol is pushed this far above the limit.
NPROC_MARGIN = 300
NPROC_OVER = 60


def test_owner_pool_without_live_child(httpd, users, module):
    """Pool pccarol cannot keep a child: the server runs with
    RLIMIT_NPROC, and pccarol already has more tasks than that (a helper
    process of 'pccarol' with many threads), so its children cannot
    create their threads and exit; the parent holds the pool off
    (PC0206).  Requests for c.test must then get 503 with Retry-After at
    once (PC0301), never another uid; the other vhosts work.  When the
    helper ends, the pool comes back and serves c.test again."""
    httpd.write_config(VHOSTS, loglevel=loglevel(module))
    carol = users["pccarol"]
    counts = tasks_by_uid()
    limit = max(counts.get(users[u].uid, 0) for u in
                ("pcalice", "pcbob", DEFAULT_USER)) + NPROC_MARGIN
    hog_threads = max(1, limit - counts.get(carol.uid, 0) + NPROC_OVER)
    hog = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import threading,time,sys\n"
         "threading.stack_size(65536)\n"
         "ev=threading.Event()\n"
         "ts=[threading.Thread(target=ev.wait,daemon=True) for _ in "
         "range(%d)]\n"
         "[t.start() for t in ts]\n"
         "print('ready',flush=True)\n"
         "sys.stdin.read()\n" % hog_threads],
        user=carol.uid, group=carol.gid, extra_groups=[],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = hog.stdout.readline()
        assert line.strip() == b"ready", line

        def set_limit():
            soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
            resource.setrlimit(resource.RLIMIT_NPROC, (limit, hard))
        httpd.start(preexec_fn=set_limit)
        port = httpd.port("shared")
        wait_ready(httpd, ["a.test", "b.test", "default.test"])
        assert wait_until(lambda: "PC0206: children of pool pccarol:pccarol"
                          in httpd.error_log(), 20), \
            "pool pccarol not held off:\n" + \
            httpd.error_log()[-3000:]
        # Let any child of pccarol that was still dying be reaped.
        assert wait_until(lambda: not [p for p in httpd.children()
                                       if p.uid == carol.uid], 5)
        results = []
        for i in range(6):
            r, dt = _timed_get(port, "c.test", 10)
            results.append((r, dt))
        report = [(r.status, r.ident.get("uid"), round(dt, 2))
                  for r, dt in results]
        print("pccarol without a child: %s" % report)
        for r, dt in results:
            assert r.status == 503, (r, httpd.error_log()[-2000:])
            assert r.header("Retry-After"), r.header_list
            assert dt < 2.5, report
        assert "the owner pool is down or overloaded" in httpd.error_log()
        others = [(h, http_get(port, ID, host=h, timeout=5))
                  for h in ("a.test", "b.test", "default.test") * 2]
        assert_all_ok(others, users, "other pools")
    finally:
        hog.stdin.close()
        try:
            hog.wait(10)
        except subprocess.TimeoutExpired:
            hog.kill()
            hog.wait(5)
        hog.stdout.close()
    # Back after the hold-off (10 s) once the helper is gone.
    r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
        http_get(port, ID, host="c.test", timeout=3)), 30, interval=0.5)
    assert r and r.ident["uid"] == str(carol.uid), \
        "pool pccarol did not come back: %r\n%s" % (
            r, httpd.error_log()[-2000:])


BIG_QUEUE = VHOSTS.replace("ThreadsPerChild 4\n", """ThreadLimit 64
ThreadsPerChild 64
ChildPerUserID pccarol pccarol 2
""")


@pytest.fixture(scope="module")
def bigqueue(httpd_factory, module):
    """Pool pccarol with 2 x 64 threads: the sender's queue check lets
    more bytes wait than the channel's send buffer holds."""
    yield from serve_vhosts(httpd_factory, module, "bigqueue", BIG_QUEUE)


def test_late_send_timeout_answers_503(bigqueue, users):
    """A record is sent only after httpd has let go of the connection.
    When that send cannot get into the owner's full channel within its
    timeout, the sender answers 503 + Retry-After on the socket itself
    (PC0301 "did not take it in time"), and the connections that did get
    in are served by pccarol once it runs again: nothing is lost and
    nothing is served as another uid."""
    port = bigqueue.port("shared")
    # ~96 KiB heads: four fill the channel's send buffer, so the later
    # sends wait and time out although the queue check lets them pass.
    big = [("X-Pad-%02d" % i, "p" * 8000) for i in range(12)]
    req = raw_request("GET", "/index.html", "c.test",
                      headers=big + [("Connection", "close")])
    socks = []
    with Stopped(bigqueue, "pccarol") as st:
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(req)
            socks.append(s)
        # Each blocked send times out after 1 s; on a loaded machine the
        # last connections may only be accepted later, so answers are
        # told apart by what they are, not by when they came.
        wait_until(lambda: "did not take it in time" in
                   bigqueue.error_log(), 10)
        time.sleep(1.5)
        early = _drain_answered(socks)
        st.cont()
    rest = _drain([s for s in socks if s not in early],
                  time.monotonic() + 30)
    answers = list(early.values()) + list(rest.values())
    late = b"HTTP/1.1 503 Service Unavailable\r\n"
    refused = [d for d in answers
               if isinstance(d, bytes) and d.startswith(late)]
    served = [d for d in answers if d not in refused]
    print("%d refused late (%d before SIGCONT), %d queued and served"
          % (len(refused), len(early), len(served)))
    assert len(answers) == len(socks), "connections without an answer"
    assert early, "no sender answered while pccarol was stopped:\n%s" % \
        error_excerpt(bigqueue)
    assert refused, "no send timed out: %d queued\n%s" % (
        len(served), error_excerpt(bigqueue))
    assert served, "nothing got into the channel:\n%s" % \
        error_excerpt(bigqueue)
    for d in refused:
        assert isinstance(d, bytes) and d.startswith(
            b"HTTP/1.1 503 Service Unavailable\r\n"), d[:200]
        head, body = d.split(b"\r\n\r\n", 1)
        assert b"\r\nRetry-After: 5\r\n" in head + b"\r\n", head
        assert body == b"503 Service Unavailable: this site's server " \
                       b"is not available.\n", body
    for d in served:
        assert isinstance(d, bytes) and d.startswith(b"HTTP/1.1 200"), \
            d[:200] if isinstance(d, bytes) else d
        assert d.endswith(b"\r\n\r\npccarol\n"), d[-200:]
    log = bigqueue.error_log()
    assert "PC0301" in log and "did not take it in time" in log, \
        error_excerpt(bigqueue)


@pytest.fixture(scope="module")
def sabotage(httpd_factory, module):
    yield from serve_vhosts(httpd_factory, module, "sabotage", VHOSTS)


def _unix_seq_sockets():
    """{inode: (peer inode, {(pid, fd)})} of every SOCK_SEQPACKET socket,
    from ss."""
    out = subprocess.run(["ss", "-x", "-a", "-p"], capture_output=True,
                         text=True, check=True).stdout
    socks = {}
    for line in out.splitlines():
        f = line.split()
        if not f or f[0] != "u_seq" or len(f) < 8:
            continue
        holders = {(int(p), int(d)) for p, d in
                   re.findall(r"pid=(\d+),fd=(\d+)", line)}
        socks[int(f[5])] = (int(f[7]), holders)
    return socks


def _sending_end(h, to_user, holder_user):
    """(pid, fd) of the sending end of `to_user`'s channel in a child of
    `holder_user`: the receiving end is the socket only the parent and
    `to_user`'s children hold."""
    owners = set(pids_of(h, to_user)) | {h.pid}
    holders = set(pids_of(h, holder_user))
    socks = _unix_seq_sockets()
    for inode, (peer, held) in socks.items():
        pids = {p for p, _ in held}
        if pids <= owners and pids & set(pids_of(h, to_user)) \
                and peer in socks:
            for pid, fd in socks[peer][1]:
                if pid in holders:
                    return pid, fd
    raise AssertionError("no sending end of %s's channel in %s's children"
                         % (to_user, holder_user))


def _switch(h, users):
    """a.test then c.test on one keep-alive connection: the second
    request is passed from pcalice's child to pccarol's."""
    k = KeepAliveClient(h.port("shared"))
    try:
        return k.get(ID, "a.test"), k.get(ID, "c.test")
    finally:
        k.close()


def test_shut_down_channel_replaced_at_graceful(sabotage, users):
    """A tenant's child holds the sending end of every other pool's
    channel and can shut it down (here: pcalice's copy of pccarol's,
    taken with pidfd_getfd).  Passing to pccarol then answers 503
    (never another uid), pccarol's children log PC0409, and a graceful
    restart gives the next generation a new channel (PC0315): hand-offs
    to pccarol work again."""
    h = sabotage
    first, second = _switch(h, users)
    assert verdict(first, "a.test", users) is None, first
    assert verdict(second, "c.test", users) is None, second

    pid, fd = _sending_end(h, "pccarol", "pcalice")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        dup = libc.syscall(438, pidfd, fd, 0)       # pidfd_getfd
        assert dup >= 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=dup)
    s.shutdown(socket.SHUT_WR)
    s.close()

    first, second = _switch(h, users)
    assert verdict(first, "a.test", users) is None, first
    assert verdict(second, "c.test", users, status=503) is None, second
    assert second.headers.get("Retry-After") == "5", second.headers
    assert wait_until(lambda: "PC0409" in h.error_log(), 5), \
        error_excerpt(h)

    h.graceful()
    wait_ready(h)
    assert "PC0315" in h.error_log(), error_excerpt(h)
    for _ in range(3):
        first, second = _switch(h, users)
        assert verdict(first, "a.test", users) is None, first
        assert verdict(second, "c.test", users) is None, second


@pytest.fixture
def hostile(httpd_factory, module):
    yield from serve_vhosts(httpd_factory, module, "hostile", VHOSTS)


def _take_fd(pid, fd):
    """A copy of descriptor `fd` of process `pid` (pidfd_getfd)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        dup = libc.syscall(438, pidfd, fd, 0)
        assert dup >= 0, os.strerror(ctypes.get_errno())
        return dup
    finally:
        os.close(pidfd)


def _record(host):
    """A well-formed channel record (header + preamble + request head)."""
    payload = struct.pack("=II", 0, 0) + (
        "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (ID, host)).encode()
    return struct.pack("=IHHII", 0x50434831, 1, 1, len(payload), 0) + payload


def _open_fds(pids):
    return {p: len(os.listdir("/proc/%d/fd" % p)) for p in pids}


def test_hostile_descriptors_refused(hostile, users):
    """A tenant's child can write well-formed records into another pool's
    channel.  With a descriptor that is not a connected TCP socket (a
    pipe, a UDP socket, a Unix stream socket, a listening and an
    unconnected TCP socket: the last two pass every check before APR's
    own getpeername) pccarol's children log PC0312 for each, close what
    they got (no descriptor kept) and keep serving."""
    h = hostile
    pid, fd = _sending_end(h, "pccarol", "pcalice")
    chan = socket.socket(fileno=_take_fd(pid, fd))
    carol = set(pids_of(h, "pccarol"))
    before = _open_fds(carol)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(("127.0.0.1", 9))
    unix_a, unix_b = socket.socketpair()
    unconnected = socket.socket()
    rd, wr = os.pipe()
    bad = [rd, udp.fileno(), unix_a.fileno(), listening.fileno(),
           unconnected.fileno()]
    try:
        for f in bad:
            chan.sendmsg([_record("c.test")], [(
                socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", f))])
        assert wait_until(lambda: h.error_log().count("PC0312") >= len(bad),
                          10), error_excerpt(h)
        assert h.error_log().count("PC0312") == len(bad), error_excerpt(h)
        # Nothing was served on them: the listening socket has no
        # connection queued, and the pipe got no answer.
        assert select.select([rd, listening], [], [], 0.2)[0] == []
        assert wait_until(lambda: _open_fds(carol) == before, 5), \
            (before, _open_fds(carol))
    finally:
        chan.close()
        for s in (listening, udp, unix_a, unix_b, unconnected):
            s.close()
        os.close(rd)
        os.close(wr)
    assert set(pids_of(h, "pccarol")) == carol
    for _ in range(3):
        first, second = _switch(h, users)
        assert verdict(first, "a.test", users) is None, first
        assert verdict(second, "c.test", users) is None, second


def _listener_fd(port, pids):
    """(pid, fd) of the socket listening on `port` in one of `pids`."""
    out = subprocess.run(["ss", "-ltnHp", "sport = :%d" % port],
                         capture_output=True, text=True, check=True).stdout
    for pid, fd in re.findall(r"pid=(\d+),fd=(\d+)", out):
        if int(pid) in pids:
            return int(pid), int(fd)
    raise AssertionError("no listener on %d in %s: %s" % (port, pids, out))


def test_shut_down_listener_replaced_at_graceful(hostile, users):
    """Every pool accepting a shared port holds its listener, and any
    holder can shut it down: the port then refuses everyone, and httpd
    keeps listeners across restarts as they are.  perchild checks them
    at each generation and replaces a dead one (PC0112): after a graceful
    restart the port serves every vhost again."""
    h = hostile
    port = h.port("shared")
    pid, fd = _listener_fd(port, set(pids_of(h, "pcalice")))
    s = socket.socket(fileno=_take_fd(pid, fd))
    s.shutdown(socket.SHUT_RD)
    s.close()
    assert http_get(port, ID, host="a.test", timeout=3).status is None
    h.graceful()
    wait_ready(h)
    assert "PC0112" in h.error_log(), error_excerpt(h)
    for host in ("a.test", "b.test", "c.test"):
        r = http_get(port, ID, host=host)
        assert verdict(r, host, users) is None, r


ERRDOCS = VHOSTS.replace(
    "    AssignUserID pccarol pccarol\n",
    "    AssignUserID pccarol pccarol\n"
    "    ErrorDocument 400 /err400.html\n").replace(
    "    AssignUserID pcbob pcbob\n",
    "    AssignUserID pcbob pcbob\n"
    "    ErrorDocument 417 /err417.html\n")



def private_errdoc(h, users, user, name):
    """An ErrorDocument page readable by the vhost's own user only: served
    by anyone else, it would be a 403, not its text."""
    path = h.docroot(user) / name
    path.write_text("ERRDOC %s %s\n" % (name, user))
    os.chown(path, users[user].uid, users[user].gid)
    os.chmod(path, 0o600)


def started_ready(h):
    """Generator body for a module fixture: start, wait for every owner,
    yield, stop; killed by pid in any case."""
    try:
        h.start()
        wait_ready(h)
        yield h
        h.stop()
    finally:
        h.kill_all()

@pytest.fixture(scope="module")
def errdocs(httpd_factory, module, users):
    h = httpd_factory("errdocs")
    h.write_config(ERRDOCS, loglevel=loglevel(module))
    for user, name in (("pccarol", "err400.html"), ("pcbob", "err417.html")):
        private_errdoc(h, users, user, name)
    yield from started_ready(h)


@pytest.mark.parametrize("bad, status, owner", [
    (b"GARBAGE\r\n\r\n", 400, "pccarol"),
    (b"GET /x HTTP/1.1\r\nHost: b.test\r\nExpect: bogus\r\n\r\n", 417,
     "pcbob"),
])
def test_head_error_answered_by_owner(errdocs, users, bad, status, owner):
    """A request head httpd rejects (malformed request line: the
    address's first vhost, c.test; a bad Expect for b.test) arriving on a
    keep-alive connection held by pcalice's child: the owner of the vhost
    in effect gets the connection and answers the error itself, with its
    ErrorDocument (a file only its user can read) and its access-log
    line, as worker would.  Before, pcalice's child answered with httpd's
    plain page and logged it as its own."""
    h = errdocs
    t = tok()
    with RawConnection(h.port("shared")) as k:
        first = k.request(("GET %s?t=%s HTTP/1.1\r\nHost: a.test\r\n\r\n"
                           % (ID, t)).encode())
        assert first.status == 200, first
        assert int(first.ident.get("uid", -1)) == users["pcalice"].uid, \
            first
        r = k.request(bad)
    assert r.status == status, r
    assert "ERRDOC err%d.html %s" % (status, owner) in r.body, r
    owners = set(pids_of(h, owner))
    assert wait_until(lambda: any(
        e.status == status and e.pid in owners for e in handoff_log(h)),
        5), (handoff_log(h)[-5:], error_excerpt(h))
    assert not any(e.status == status and e.pid not in owners
                   for e in handoff_log(h)), handoff_log(h)[-5:]



TIMEOUTS = VHOSTS.replace(
    "    AssignUserID pccarol pccarol\n",
    "    AssignUserID pccarol pccarol\n"
    "    ErrorDocument 408 /err408.html\n")


# The core's Timeout, or mod_reqtimeout's (Debian enables it), which
# reads without blocking and waits on the socket itself.
@pytest.fixture(scope="module", params=["Timeout", "RequestReadTimeout"])
def timeouts(httpd_factory, module, users, request):
    h = httpd_factory("timeouts")
    if request.param == "Timeout":
        h.write_config(TIMEOUTS + "Timeout 2\n", loglevel=loglevel(module))
    else:
        h.write_config(TIMEOUTS + "RequestReadTimeout header=2 body=2\n",
                       loglevel=loglevel(module),
                       extra_modules=("reqtimeout",))
    private_errdoc(h, users, "pccarol", "err408.html")
    yield from started_ready(h)


def _timeouts_logged(h, since):
    return [e for e in handoff_log(h)[since:] if e.status == 408]


def test_head_timeout_answered_by_owner(timeouts, users):
    """A client that stops half-way through a request head, on a
    keep-alive connection held by pcalice's child: httpd times out with
    the address's first vhost (c.test) in effect, so c.test's owner gives
    the 408, with its ErrorDocument (readable by pccarol only) and its
    log line, as worker would; before, pcalice's child answered with
    httpd's plain page, and refused the ErrorDocument (PC0306)."""
    h = timeouts
    since = len(handoff_log(h))
    with RawConnection(h.port("shared")) as k:
        first = k.request(get_req(ID, "a.test"))
        assert int(first.ident.get("uid", -1)) == users["pcalice"].uid, \
            first
        t0 = time.monotonic()
        k.send(b"GET /x HTTP/1.1\r\nHost: b.test\r\n")
        r = k.read_response()
        waited = time.monotonic() - t0
    assert r.status == 408, r
    assert "ERRDOC err408.html pccarol" in r.body, r
    # One timeout's wait, not a second one in the owner.
    assert waited < 3.5, waited
    carol = set(pids_of(h, "pccarol"))
    assert wait_until(lambda: _timeouts_logged(h, since), 5), \
        error_excerpt(h)
    assert all(e.pid in carol for e in _timeouts_logged(h, since)), \
        (_timeouts_logged(h, since), carol)
    assert "PC0306" not in h.error_log(), error_excerpt(h)


def test_request_line_timeout_logged_by_owner(timeouts, users):
    """A fresh connection whose request line never ends gets no answer
    but, as in worker, a 408 line in the log of the address's first
    vhost: written by that vhost's owner, whichever pool's child accepted
    the connection (each of them does, spread by the kernel)."""
    h = timeouts
    since = len(handoff_log(h))
    socks = []
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", h.port("shared")),
                                     timeout=10)
        s.sendall(b"GET /never-ends-" + str(i).encode())
        socks.append(s)
    for s in socks:
        assert s.recv(4096) == b"", "an answer to a request line cut short"
        s.close()
    carol = set(pids_of(h, "pccarol"))
    assert wait_until(lambda: len(_timeouts_logged(h, since)) == 8, 5), \
        (_timeouts_logged(h, since), error_excerpt(h))
    assert all(e.pid in carol for e in _timeouts_logged(h, since)), \
        (_timeouts_logged(h, since), carol)


def test_client_reset_during_hand_off_is_not_a_bad_record(shared, users):
    """A client that resets its connection right after a request that must
    go to another pool: the owner's child finds a TCP socket without a
    peer.  That is the client leaving (PC0319, info), not a malformed
    record (PC0312, warning); the child stays and serves on."""
    h = shared
    port = h.port("shared")
    mark = len(h.error_log())
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(get_req(ID, "a.test"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, "no answer for a.test"
            head += chunk
        time.sleep(0.2)
        s.sendall(get_req(ID, "b.test"))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1)
    log = h.error_log()[mark:]
    assert "PC0312" not in log, log[-2000:]
    assert "PC0319" in log, "no reset reached an owner's child:\n" + \
        log[-2000:]
    r = http_get(port, ID, host="b.test")
    assert verdict(r, "b.test", users) is None, r
