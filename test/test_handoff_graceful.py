"""-k graceful while clients keep switching users on a shared port: no
request is refused or lost (regression: the old generation's channels
died with it, giving 503s and dropped connections during a restart)."""

import collections
import threading
import time

import pytest

from pchelpers import http_get, serve

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
