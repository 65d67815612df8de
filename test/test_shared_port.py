"""One Listen port shared by vhosts of several pools.

Every pool's children accept on it, so which child gets a connection is
chance.  A child that does not own the request's vhost must not serve it:
in this part of the project it answers 503 (and logs PC0301); once the
hand-off exists (PERCHILD_EXPECT_HANDOFF=1) the owner serves every request.
Under no circumstances may a request run under another vhost's uid."""

import subprocess

import pytest

from pchelpers import (APACHE2, DEFAULT_USER, EXPECT_HANDOFF, MISROUTE_TAG,
                       KeepAliveClient, all_pids, http_get, proc_status,
                       serve, wait_until)

CGI = "/cgi-bin/id.cgi"
ROUNDS = 40

SHARED = """
ThreadsPerChild 4
NumServers 1
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_shared}
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

HOSTS = {"a.test": "pcalice", "b.test": "pcbob", "default.test": DEFAULT_USER}


@pytest.fixture(scope="module")
def shared(httpd_factory):
    yield from serve(httpd_factory, "shared", SHARED)


def classify(r, host, users):
    """'ok' (served by the vhost's uid), 'refused' (503), or a string that
    describes what went wrong."""
    want = users[HOSTS[host]].uid
    if "uid=" in r.body:
        uid = int(r.ident["uid"])
        if uid != want:
            return "WRONG UID %d for %s (status %s)" % (uid, host, r.status)
        return "ok" if r.status == 200 else "status %s" % r.status
    if r.status == 503:
        return "refused"
    return "unexpected %r" % r


@pytest.fixture(scope="module")
def fresh_results(shared, users):
    """ROUNDS requests per host, each on a fresh connection."""
    out = []
    for i in range(ROUNDS):
        for host in HOSTS:
            r = http_get(shared.port("shared"), CGI, host=host)
            out.append((host, r, classify(r, host, users)))
    return out


@pytest.fixture(scope="module")
def keepalive_results(shared, users):
    """10 connections, each asking for a.test, b.test, default.test and
    a.test again (as long as the connection stays open)."""
    out = []
    for i in range(10):
        c = KeepAliveClient(shared.port("shared"))
        try:
            for host in ("a.test", "b.test", "default.test", "a.test"):
                r = c.get(CGI, host)
                if r.status is None:
                    # Closed after a refusal: nothing was served.
                    out.append((host, r, "closed"))
                    break
                out.append((host, r, classify(r, host, users)))
                if r.headers.get("Connection", "").lower() == "close":
                    break
        finally:
            c.close()
    return out


def test_never_the_wrong_uid(fresh_results, keepalive_results):
    """Strict: whatever else happens, no request runs as another vhost's
    user (fresh connections and keep-alive connections alike)."""
    wrong = [(h, r) for h, r, v in fresh_results + keepalive_results
             if v.startswith("WRONG")]
    assert not wrong, "%d requests served under the wrong uid, e.g. %s" % (
        len(wrong), wrong[:3])


def test_right_uid_or_503(shared, fresh_results):
    """Each request is served by its owner's uid, or (until the hand-off
    exists) refused with 503 and a PC0301 log line."""
    verdicts = [v for _, _, v in fresh_results]
    allowed = {"ok"} if EXPECT_HANDOFF else {"ok", "refused"}
    bad = [(h, r, v) for h, r, v in fresh_results if v not in allowed]
    assert not bad, "%d of %d: %s" % (len(bad), len(verdicts), bad[:3])
    assert "ok" in verdicts, "not a single request was served"
    if "refused" in verdicts:
        assert MISROUTE_TAG in shared.error_log(), \
            "503 without a %s log line" % MISROUTE_TAG
    for host in HOSTS:
        served = sum(v == "ok" for h, _, v in fresh_results if h == host)
        print("%s: %d/%d served by the owner" % (host, served, ROUNDS))


def test_keepalive_right_uid_or_503(keepalive_results):
    """On one connection, a request for another pool's vhost is served by
    its owner or refused with 503; never silently dropped."""
    allowed = {"ok"} if EXPECT_HANDOFF else {"ok", "refused"}
    bad = [(h, r, v) for h, r, v in keepalive_results if v not in allowed]
    assert not bad, bad[:3]


def test_one_process_mode(httpd, users):
    """apache2 -X (ONE_PROCESS): one foreground process, the User/Group
    pool, accepts the shared port; it serves that pool's vhost and
    answers 503 for the others, never serving them under its own uid."""
    httpd.write_config(SHARED)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    proc = subprocess.Popen([APACHE2, "-f", str(httpd.conf), "-X"], env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        port = httpd.port("shared")
        r = wait_until(lambda: (lambda x: x if x.status else None)(
            http_get(port, CGI, host="default.test", timeout=2)), 20)
        assert r and r.status == 200, "no answer from -X:\n%s" % \
            httpd.error_log()[-2000:]
        assert int(r.ident["uid"]) == users[DEFAULT_USER].uid, r
        for host in ("a.test", "b.test"):
            r = http_get(port, CGI, host=host)
            assert classify(r, host, users) == "refused", (host, r)
            assert r.headers.get("Retry-After") == "5", r.headers
        log = httpd.error_log()
        assert MISROUTE_TAG in log
        # Its own pool's channel stays open: no shut-down or malformed
        # record reported.
        for tag in ("PC0409", "PC0311"):
            assert tag not in log, log[-2000:]
        # One process: no children.
        kids = [p for p in all_pids()
                if (proc_status(p) or {}).get("PPid") == str(proc.pid)]
        assert not kids, kids
    finally:
        proc.terminate()
        proc.wait(timeout=20)
