"""The processes themselves: who runs them, how many, and their turnover."""

from collections import Counter

from pchelpers import DEFAULT_USER, Proc, http_get, proc_status, wait_until

CGI = "/cgi-bin/id.cgi"
THREADS = 3

POOLS = """
NumServers 1
ThreadsPerChild %d
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob 2
ChildPerUserID pccarol pccarol 3
Listen 127.0.0.1:{port_default}
Listen 127.0.0.1:{port_pcalice}
Listen 127.0.0.1:{port_pcbob}
Listen 127.0.0.1:{port_pccarol}
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pcbob}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pccarol}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
""" % THREADS


def test_children_run_as_pool_users(httpd, users):
    httpd.write_config(POOLS)
    httpd.start()
    expected = {DEFAULT_USER: 1, "pcalice": 1, "pcbob": 2, "pccarol": 3}
    by_uid = {users[n].uid: n for n in expected}

    def counts():
        return Counter(by_uid.get(c.uid, c.uid) for c in httpd.children())

    got = wait_until(lambda: counts() == expected and counts(), 10) \
        or counts()
    assert got == expected, "children per user: %s\n%s" % (
        dict(got), httpd.children())

    parent = Proc(httpd.pid, proc_status(httpd.pid))
    assert parent.uids == [0, 0, 0, 0], parent

    started = {pid: pool for _, pid, _, pool in httpd.started()}
    for c in httpd.children():
        acct = users[by_uid[c.uid]]
        # real, effective, saved and filesystem ids: no way back to root.
        assert c.uids == [acct.uid] * 4, c
        assert c.gids == [acct.gid] * 4, c
        assert set(c.groups) == acct.groups, c
        assert c.cap_prm == 0 and c.cap_eff == 0, \
            "child %d keeps capabilities" % c.pid
        assert c.threads >= THREADS, "child %d has %d threads" % (
            c.pid, c.threads)
        assert c.pid in started, "no 'Child .. started' line for %d" % c.pid
        assert started[c.pid].split(":")[0] == acct.name, \
            (c.pid, started[c.pid])

    # The requests of a pool's vhost are served by that pool's children.
    for name in ("pcalice", "pcbob", "pccarol", "default"):
        acct = users[DEFAULT_USER if name == "default" else name]
        r = http_get(httpd.port(name), CGI)
        assert r.status == 200, r
        st = proc_status(int(r.ident["ppid"]))
        assert st and int(st["PPid"]) == httpd.pid, \
            "CGI parent %s is not a child of the server" % r.ident["ppid"]
        assert int(st["Uid"].split()[0]) == acct.uid, (name, st["Uid"])
    httpd.stop()


def test_max_connections_per_child(httpd, users):
    httpd.write_config("""
NumServers 1
ThreadsPerChild 2
MaxConnectionsPerChild 5
ChildPerUserID pcalice pcalice
Listen 127.0.0.1:{port_pcalice}
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
""")
    httpd.start()
    alice = users["pcalice"]
    first = [c.pid for c in httpd.children() if c.uid == alice.uid]
    assert len(first) == 1, httpd.children()
    results = [http_get(httpd.port("pcalice"), CGI) for _ in range(20)]
    bad = [r for r in results if r.status != 200
           or int(r.ident.get("uid", -1)) != alice.uid]
    assert not bad, "%d of 20 failed: %s" % (len(bad), bad[:3])
    served_by = Counter(int(r.ident["ppid"]) for r in results)
    # 20 connections, at most ~5 each: at least 3 different children
    # (a child may take a connection or two beyond its limit).
    assert len(served_by) >= 3, "children that served: %s" % served_by
    assert first[0] not in {c.pid for c in httpd.children()}, \
        "the first child is still running after %d connections" % \
        served_by[first[0]]
    httpd.stop()
