"""Idle keep-alive connections do not take the dispatch pool's threads.

With a dispatch pool, every request's connection comes back to the
dispatch pool, which waits for the next request.  When fewer than half
of a dispatch child's workers are idle, such a connection waits without
a thread (pc_park.c) and is handed to a worker when its request comes,
or closed after KeepAliveTimeout.  Here the dispatch pool has one child
of 4 threads: 12 idle clients would otherwise leave nobody to read a
new client's request for the whole keep-alive timeout."""

import os
import threading
import time

import pytest

from pchelpers import (BASE_MODULES, DISPATCH_USER, RawConnection,
                       http_get, raw_request, serve, wait_until)

KEEPALIVE = 4

CONF = """
ThreadsPerChild 4
KeepAliveTimeout {ka}
DispatchUserID {disp} {disp} 1
Listen 127.0.0.1:{{port_shared}}
<VirtualHost 127.0.0.1:{{port_shared}}>
    ServerName a.test
    DocumentRoot {{htdocs}}/pcalice
    AssignUserID pcalice pcalice
    <Location /server-status>
        SetHandler server-status
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{{port_shared}}>
    ServerName b.test
    DocumentRoot {{htdocs}}/pcbob
    AssignUserID pcbob pcbob
</VirtualHost>
""".format(ka=KEEPALIVE, disp=DISPATCH_USER)

ID = "/cgi-bin/id.cgi"


@pytest.fixture(scope="module")
def srv(httpd_factory, dispatch_user):
    yield from serve(httpd_factory, "park", CONF,
                     modules=BASE_MODULES + ("status",))


def idle_clients(srv, n, host):
    """n connections, each with one answered request, left idle."""
    out = []
    for _ in range(n):
        c = RawConnection(srv.port("shared"), timeout=10)
        r = c.request(raw_request("GET", ID, host))
        assert r.status == 200, r
        out.append(c)
    return out


def serve_next_as_alice(conns, users):
    """Each connection's next request, for a.test: served as pcalice."""
    for c in conns:
        r = c.request(raw_request("GET", ID, "a.test"))
        assert r.status == 200, r
        assert r.ident.get("uid") == str(users["pcalice"].uid), r


def dispatch_pids(srv, dispatch_user):
    return [c.pid for c in srv.children() if c.uid == dispatch_user.uid]


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_idle_clients_leave_the_dispatch_pool_free(srv, users):
    port = srv.port("shared")
    assert wait_until(lambda: http_get(port, ID, host="a.test").status
                      == 200, 10)
    idle = idle_clients(srv, 12, "b.test")
    try:
        t0 = time.monotonic()
        r = http_get(port, ID, host="a.test", timeout=10)
        took = time.monotonic() - t0
        assert r.status == 200 and r.ident.get("uid") == \
            str(users["pcalice"].uid), r
        # Without parking: no dispatch thread reads it until an idle
        # client's keep-alive timeout ends.
        assert took < KEEPALIVE / 2, took
        # The idle connections still serve their next request, for
        # another user this time.
        serve_next_as_alice(idle, users)
    finally:
        for c in idle:
            c.close()


def parked(srv, dispatch_user):
    """The dispatch children's parked= counts in server-status?auto."""
    r = http_get(srv.port("shared"), "/server-status?auto", host="a.test")
    assert r.status == 200, r
    label = "pool=%s:%s " % (DISPATCH_USER, DISPATCH_USER)
    return sum(int(line.split("parked=")[1].split()[0])
               for line in r.body.splitlines()
               if line.startswith("PerchildChild") and label in line)


def test_parked_connections_counted_in_server_status(srv, dispatch_user):
    idle = idle_clients(srv, 8, "b.test")
    try:
        # Past the grace period every idle one is parked.
        assert wait_until(lambda: parked(srv, dispatch_user) >= 8, 5), \
            parked(srv, dispatch_user)
    finally:
        for c in idle:
            c.close()
    assert wait_until(lambda: parked(srv, dispatch_user) <= 1, 5), \
        parked(srv, dispatch_user)


def test_idle_clients_closed_after_keepalive_timeout(srv, dispatch_user):
    before = {p: fd_count(p) for p in dispatch_pids(srv, dispatch_user)}
    assert before
    idle = idle_clients(srv, 10, "a.test")
    try:
        time.sleep(KEEPALIVE + 2)
        for c in idle:
            assert c.closed_by_server(wait=2), \
                "an idle connection outlived KeepAliveTimeout"
    finally:
        for c in idle:
            c.close()
    # Nothing of them is left in the dispatch child.
    assert wait_until(lambda: all(fd_count(p) <= n
                                  for p, n in before.items()
                                  if os.path.exists("/proc/%d" % p)), 5), \
        (before, {p: fd_count(p) for p in before})


def test_stop_closes_parked_connections(httpd_factory, dispatch_user):
    h = httpd_factory("park-stop")
    h.write_config(CONF)
    try:
        h.start()
        assert wait_until(lambda: http_get(h.port("shared"), ID,
                                           host="b.test").status == 200, 10)
        idle = idle_clients(h, 10, "b.test")
        t0 = time.monotonic()
        h.stop()
        # Parked connections do not hold the stop up until their
        # keep-alive timeout.
        assert time.monotonic() - t0 < KEEPALIVE, time.monotonic() - t0
        for c in idle:
            assert c.closed_by_server(wait=2)
            c.close()
    finally:
        h.kill_all()


BURST_CONF = CONF.replace("KeepAliveTimeout %d" % KEEPALIVE,
                          "KeepAliveTimeout 15\nPerchildQueueTimeout 2")


def test_burst_of_idle_clients_is_no_stall(httpd_factory, dispatch_user,
                                           users):
    """Hundreds of clients arriving at once, each going idle after one
    request: the dispatch pool is busy parking them, not stalled.  The
    parent's stall watch (here after 2 s) must not answer the connections
    given back with 503 or close them; every one still serves its next
    request."""
    h = httpd_factory("park-burst")
    h.write_config(BURST_CONF)
    opened, errors = [], []
    lock = threading.Lock()

    def opener(n):
        for _ in range(n):
            try:
                c = RawConnection(h.port("shared"), timeout=30)
                r = c.request(raw_request("GET", ID, "b.test"))
                with lock:
                    (opened if r.status == 200 else errors).append(
                        c if r.status == 200 else r)
            except OSError as e:
                with lock:
                    errors.append(e)
    try:
        h.start()
        assert wait_until(lambda: http_get(h.port("shared"), ID,
                                           host="b.test").status == 200, 10)
        threads = [threading.Thread(target=opener, args=(25,))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[:3]
        time.sleep(3)
        assert "PC0318" not in h.error_log(), h.error_log()[-2000:]
        serve_next_as_alice(opened, users)
    finally:
        for c in opened:
            c.close()
        h.kill_all()


VHOST_KEEPALIVE = CONF.replace(
    "    AssignUserID pcalice pcalice\n",
    "    AssignUserID pcalice pcalice\n    KeepAliveTimeout 6\n").replace(
    "    AssignUserID pcbob pcbob\n",
    "    AssignUserID pcbob pcbob\n    KeepAliveTimeout 1\n")


def test_wait_for_next_request_is_the_served_vhosts_keepalive(
        httpd_factory, dispatch_user, users):
    """As under worker, the wait for a connection's next request lasts the
    KeepAliveTimeout of the vhost of the request just served, not the
    address's first vhost's (4 s here): the tenant's child says it in the
    record that gives the connection back to the dispatch pool."""
    gen = serve(httpd_factory, "vhostka", VHOST_KEEPALIVE)
    h = next(gen)
    try:
        port = h.port("shared")
        with RawConnection(port, timeout=10) as c:
            r = c.request(raw_request("GET", ID, "b.test"))
            assert r.ident.get("uid") == str(users["pcbob"].uid), r
            assert not c.closed_by_server(wait=0.5), "closed at once"
            # b.test's 1 s, not 4 s.
            assert c.closed_by_server(wait=2.0), "b.test's 1 s ignored"
        with RawConnection(port, timeout=10) as c:
            r = c.request(raw_request("GET", ID, "a.test"))
            assert r.ident.get("uid") == str(users["pcalice"].uid), r
            # a.test's 6 s, not 4 s: still open after 4.5 s.
            time.sleep(4.5)
            r = c.request(raw_request("GET", ID, "b.test"))
            assert r.status == 200, r
            assert r.ident.get("uid") == str(users["pcbob"].uid), r
    finally:
        for _ in gen:
            pass
