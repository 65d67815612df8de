"""-k graceful while clients keep switching users on a shared port: no
request is refused or lost (regression: the old generation's channels
died with it, giving 503s and dropped connections during a restart)."""

import collections
import pwd
import threading
import time

import pytest

from pchelpers import (DEFAULT_USER, KeepAliveClient, http_get, pid_alive,
                       serve, wait_until)

CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_default}
<VirtualHost 127.0.0.1:{port_default}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""

OWNER = {"a.test": "pcalice", "b.test": "pcbob", "c.test": "pccarol"}


# Listener buckets and pinned children (pcalice's two, one per CPU): a
# graceful restart must not lose connections waiting in any bucket.
AFFINE = CONF.replace("ChildPerUserID pcalice pcalice\n",
                      "ChildPerUserID pcalice pcalice 2\n") \
    + "ListenCoresBucketsRatio 1\nPerchildCPUAffinity On\n"


@pytest.fixture(scope="module", params=["plain", "affine"])
def srv(httpd_factory, request):
    yield from serve(httpd_factory, "handoff-graceful-" + request.param,
                     CONF if request.param == "plain" else AFFINE)


def test_graceful_under_hand_off_load(srv, users):
    port = srv.port("default")
    results = collections.Counter()
    halt = threading.Event()

    def client(i):
        hosts = list(OWNER)
        n = i
        while not halt.is_set():
            host = hosts[n % len(hosts)]
            n += 1
            r = http_get(port, "/cgi-bin/id.cgi", host=host, timeout=10)
            if r.status != 200:
                results["status %s %s" % (r.status, r.error)] += 1
            elif int(r.ident["uid"]) != users[OWNER[host]].uid:
                results["WRONG UID"] += 1
            else:
                results["ok"] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        for _ in range(3):
            srv.graceful()
            time.sleep(1)
    finally:
        halt.set()
        for t in threads:
            t.join(30)
    assert results["ok"] >= 100, results
    assert set(results) == {"ok"}, (dict(results), srv.error_log()[-3000:])



def through_old_child(httpd, before, after, first, second, wait_gone=None):
    """Starts with config 'before', asks for 'first' on a keep-alive
    connection, restarts gracefully to 'after' (waiting, if 'wait_gone' is
    a pool name, until that pool's old children are gone), then asks for
    'second' on the same connection, which the old child that served
    'first' reads.  That child may also have closed the idle connection
    at the restart (a client retries on a new one, which the new
    generation serves): then it tries again.  Returns the answer."""
    for _ in range(5):
        httpd.write_config(before)
        httpd.start()
        k = KeepAliveClient(httpd.port("shared"), timeout=10)
        try:
            r = k.get("/cgi-bin/id.cgi", first)
            assert r.status == 200, r
            httpd.write_config(after)
            gen = httpd.graceful()
            if wait_gone:
                old = {pid for _, pid, g, pool in httpd.started()
                       if g < gen and pool.startswith(wait_gone)}
                assert wait_until(lambda: not any(
                    pid_alive(p) for p in old), 15), old
            else:
                time.sleep(0.3)
            r = k.get("/cgi-bin/id.cgi", second)
        finally:
            k.close()
            httpd.stop()
        if r.status is not None:
            return r
        # The next try's generations are told apart by a fresh log.
        httpd.error_log_path.unlink()
    pytest.fail("the keep-alive connection was closed at every restart")


MOVE_BEFORE = """
ThreadsPerChild 4
KeepAliveTimeout 15
GracefulShutdownTimeout 20
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
ChildPerUserID pccarol pccarol
Listen 127.0.0.1:{port_shared}
Listen 127.0.0.1:{port_own}
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName blog.test
    AssignUserID pcbob pcbob
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName shop.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_own}>
    ServerName own.test
    AssignUserID pccarol pccarol
</VirtualHost>
"""

# shop.test moves to carol; alice keeps only a port of her own.
MOVE_AFTER = MOVE_BEFORE.replace(
    "    ServerName shop.test\n    AssignUserID pcalice pcalice",
    "    ServerName shop.test\n    AssignUserID pccarol pccarol").replace(
    "    ServerName own.test\n    AssignUserID pccarol pccarol",
    "    ServerName own.test\n    AssignUserID pcalice pcalice")


def test_vhost_moved_by_graceful_reaches_new_owner(httpd, users):
    """A keep-alive connection held through a graceful restart by a child
    of the old generation, which passes its next request by the old
    configuration (shop.test: alice's).  alice's new child, whose pool now
    has only a port of its own, passes it on to shop.test's new owner: it
    keeps, for one generation, the channels a pool of the shared port had
    (before, it had none and answered 503)."""
    r = through_old_child(httpd, MOVE_BEFORE, MOVE_AFTER, "blog.test",
                          "shop.test", wait_gone="pcalice")
    assert r.status == 200, (r, httpd.error_log()[-2000:])
    assert int(r.ident["uid"]) == users["pccarol"].uid, r


REMOVE_BEFORE = """
ThreadsPerChild 4
KeepAliveTimeout 15
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_shared}
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""

# pcbob's pool is gone: b.test is served as User/Group.
REMOVE_AFTER = REMOVE_BEFORE.replace("ChildPerUserID pcbob pcbob\n", "") \
    .replace("    ServerName b.test\n    AssignUserID pcbob pcbob\n",
             "    ServerName b.test\n")


def test_request_for_removed_pool_decided_by_new_generation(httpd, users):
    """A graceful restart removes pcbob's pool (b.test now runs as
    User/Group).  A keep-alive connection held through it by alice's old
    child then asks for b.test: by the old configuration pcbob's, whose
    pool is down.  The old child leaves it to alice's new children, which
    know b.test's new owner (PC0325); before, the client got a 503."""
    r = through_old_child(httpd, REMOVE_BEFORE, REMOVE_AFTER, "a.test",
                          "b.test")
    assert r.status == 200, (r, httpd.error_log()[-2000:])
    assert int(r.ident["uid"]) == pwd.getpwnam(DEFAULT_USER).pw_uid, r
    assert "PC0325" in httpd.error_log(), httpd.error_log()[-2000:]


ALONE_BEFORE = """
ThreadsPerChild 4
KeepAliveTimeout 15
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_shared}
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName default.test
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""

# One pool left (User/Group's): the new generation has no channels.
ALONE_AFTER = ALONE_BEFORE.replace("ChildPerUserID pcbob pcbob\n", "") \
    .replace("    AssignUserID pcbob pcbob\n", "")


def test_request_for_removed_pool_when_one_pool_is_left(httpd, users):
    """As above, but the restart leaves a single pool, which reads no
    channel: the old child cannot leave the request to anyone and
    answers 503 at once (before, it would have sent it into a channel
    nobody reads, and the client waited, then lost it)."""
    r = through_old_child(httpd, ALONE_BEFORE, ALONE_AFTER, "default.test",
                          "b.test")
    assert r.status == 503, (r, httpd.error_log()[-2000:])
