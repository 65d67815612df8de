"""-k graceful while clients keep switching users on a shared port: no
request is refused or lost (regression: the old generation's channels
died with it, giving 503s and dropped connections during a restart)."""

import collections
import threading
import time

import pytest

from pchelpers import KeepAliveClient, http_get, pid_alive, serve, wait_until

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
    httpd.write_config(MOVE_BEFORE)
    httpd.start()
    port = httpd.port("shared")
    k = KeepAliveClient(port, timeout=10)
    try:
        r = k.get("/cgi-bin/id.cgi", "blog.test")
        assert r.status == 200 and int(r.ident["uid"]) == \
            users["pcbob"].uid, r
        httpd.write_config(MOVE_AFTER)
        gen = httpd.graceful()
        # Every pool's new child runs, and alice's old one is gone: a
        # record on alice's channel reaches the new one.
        old_alice = {pid for _, pid, g, pool in httpd.started()
                     if g < gen and pool.startswith("pcalice")}
        assert wait_until(lambda: not any(
            pid_alive(p) for p in old_alice), 15), old_alice
        r = k.get("/cgi-bin/id.cgi", "shop.test")
        assert r.status == 200, (r, httpd.error_log()[-2000:])
        assert int(r.ident["uid"]) == users["pccarol"].uid, r
    finally:
        k.close()
    httpd.stop()
