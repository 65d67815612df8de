"""Listener buckets (ListenCoresBucketsRatio) and PerchildCPUAffinity.

With `ListenCoresBucketsRatio 1` on two CPUs every listener has two copies
bound with SO_REUSEPORT, and the kernel spreads new connections over them.
Child i of a pool of n takes the buckets b with b % k == i % k
(k = min(n, buckets)): pcalice's two children one bucket each, a pool of
one child both, so no bucket is left without a taker in any pool.

`PerchildCPUAffinity On` pins child i of a pool with two or more children
to CPU i % 2 and gives the pool a hand-off channel per CPU; pools of one
child stay unpinned, and what a pinned child forks (CGI) gets every CPU
back.
"""

import os
import re
import subprocess
import time

import pytest

from pchelpers import (DEFAULT_USER, fd_inodes, http_get, pid_alive,
                       proc_status, wait_until)

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2,
                                reason="needs two CPUs")

CPUS = "/cgi-bin/cpus.cgi"

CONF = """
NumServers 1
ThreadsPerChild 3
ListenCoresBucketsRatio 1
%s
ChildPerUserID pcalice pcalice 2
ChildPerUserID pcbob pcbob 1
Listen 127.0.0.1:{port_shared}
Listen 127.0.0.1:{port_pcalice}
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName solo.test
    AssignUserID pcalice pcalice
</VirtualHost>
"""


def listen_inodes(port):
    """Inodes of the listening sockets bound to 127.0.0.1:port."""
    out = subprocess.run(["ss", "-ltnHe", "sport = :%d" % port],
                         capture_output=True, text=True).stdout
    return {int(m) for m in re.findall(r"\bino:(\d+)", out)}


def children_by_user(h, users):
    """{user: [pid, ...]} of the server's live children."""
    names = {users[n].uid: n for n in ("pcalice", "pcbob", DEFAULT_USER)}
    out = {}
    for c in h.children():
        out.setdefault(names.get(c.uid, c.uid), []).append(c.pid)
    return out


def wait_children(h, users):
    want = {"pcalice": 2, "pcbob": 1, DEFAULT_USER: 1}

    def ready():
        got = children_by_user(h, users)
        return all(len(got.get(u, [])) == n for u, n in want.items()) \
            and got
    got = wait_until(ready, 15)
    assert got, "children: %s\n%s" % (children_by_user(h, users),
                                      h.error_log())
    return got


def uid_of(r):
    assert r.status == 200, r
    return int(r.ident["uid"])


def start(h, users, extra):
    h.write_config(CONF % extra)
    h.start()
    kids = wait_children(h, users)
    # Every pool answers on every bucket before we look closer.
    for host in ("a.test", "b.test"):
        assert wait_until(lambda: http_get(h.port("shared"),
                                           "/cgi-bin/id.cgi",
                                           host=host).status == 200, 15), \
            "%s never answered:\n%s" % (host, h.error_log())
    return kids


def test_each_bucket_has_a_taker_in_every_pool(httpd, users):
    kids = start(httpd, users, "")
    solo = listen_inodes(httpd.port("pcalice"))
    shared = listen_inodes(httpd.port("shared"))
    assert len(solo) == 2 and len(shared) == 2, (
        "two buckets per listener expected: %s %s\n%s"
        % (solo, shared, httpd.error_log()))

    held = {u: [fd_inodes(p) for p in pids] for u, pids in kids.items()}
    # pcalice's two children: one bucket each, of both listeners.
    a0, a1 = held["pcalice"]
    assert len(a0 & solo) == 1 and len(a1 & solo) == 1, held
    assert a0 & solo != a1 & solo, "both children take the same bucket"
    assert len(a0 & shared) == 1 and len(a1 & shared) == 1, held
    assert a0 & shared != a1 & shared
    # One child: both buckets of the shared port, nothing of pcalice's.
    (mine,) = held["pcbob"]
    assert shared <= mine, ("pcbob", shared, mine)
    assert not (solo & mine), ("pcbob", "holds pcalice's listener")
    # The main server cannot answer on either port (vhosts name both
    # addresses): the User/Group pool accepts neither.
    (mine,) = held[DEFAULT_USER]
    assert not ((solo | shared) & mine), (DEFAULT_USER, mine)

    # Fresh connections land in either bucket: all answered, by the owner.
    for host, port, user in (("solo.test", "pcalice", "pcalice"),
                             ("b.test", "shared", "pcbob"),
                             ("a.test", "shared", "pcalice")):
        for i in range(30):
            r = http_get(httpd.port(port), "/cgi-bin/id.cgi", host=host,
                         timeout=5)
            assert uid_of(r) == users[user].uid, (host, i, r)


def cpus_of(pid):
    return proc_status(pid)["Cpus_allowed_list"]


def test_affinity_pins_children_of_bigger_pools(httpd, users):
    kids = start(httpd, users, "PerchildCPUAffinity On")
    every = cpus_of(httpd.pid)
    pinned = sorted(cpus_of(p) for p in kids["pcalice"])
    assert len(set(pinned)) == 2 and every not in pinned, (pinned, every)
    for cpus in pinned:
        assert re.fullmatch(r"\d+", cpus), pinned
    for user in ("pcbob", DEFAULT_USER):
        assert [cpus_of(p) for p in kids[user]] == [every], user

    # A CGI started by a pinned child may use every CPU again, and each
    # request is still served by its vhost's user.
    seen = set()
    for i in range(20):
        r = http_get(httpd.port("pcalice"), CPUS, host="solo.test")
        assert uid_of(r) == users["pcalice"].uid
        assert r.ident["cpus"] == every, r.body
        r = http_get(httpd.port("shared"), CPUS, host="b.test")
        assert uid_of(r) == users["pcbob"].uid
        seen.add(r.ident["cpus"])
    assert seen == {every}
    assert "PC0503" not in httpd.error_log()


def test_affinity_without_buckets_warns(httpd, users):
    httpd.write_config((CONF % "PerchildCPUAffinity On").replace(
        "ListenCoresBucketsRatio 1\n", ""))
    httpd.start()
    wait_children(httpd, users)
    log = httpd.error_log()
    m = re.search(r"PC0503: .*", log)
    assert m and "ListenCoresBucketsRatio" in m.group(0), log


def test_buckets_and_affinity_across_graceful_restart(httpd, users):
    """A graceful restart keeps the buckets' listening sockets themselves
    (connections waiting in their accept queues are not reset, unlike
    worker, which makes new copies), and the new generation's children
    are pinned and serve every bucket."""
    start(httpd, users, "PerchildCPUAffinity On")
    before = listen_inodes(httpd.port("shared"))
    gen = httpd.graceful()
    kids = wait_until(lambda: (lambda k: k if len(k.get("pcalice", [])) == 2
                               else None)(children_by_user(httpd, users)), 15)
    assert kids, children_by_user(httpd, users)
    assert listen_inodes(httpd.port("shared")) == before, \
        "the listener buckets were replaced by the graceful restart"
    assert len(before) == 2
    new = {pid for _, pid, g, _ in httpd.started() if g == gen}
    pinned = {cpus_of(p) for p in kids["pcalice"] if p in new}
    assert len(pinned) == 2, (pinned, kids, new)
    for host, user in (("a.test", "pcalice"), ("b.test", "pcbob")):
        for i in range(20):
            r = http_get(httpd.port("shared"), "/cgi-bin/id.cgi", host=host,
                         timeout=5)
            assert uid_of(r) == users[user].uid, (host, i, r)


def test_buckets_follow_a_new_listen_at_graceful_restart(httpd, users):
    """A Listen added before a graceful restart gets its buckets too, and
    the ports already there keep serving from both of theirs."""
    start(httpd, users, "")
    extra = httpd.port("extra")
    httpd.write_config((CONF % "") + """
Listen 127.0.0.1:{port_extra}
<VirtualHost 127.0.0.1:{port_extra}>
    ServerName extra.test
    AssignUserID pcbob pcbob
</VirtualHost>
""")
    httpd.graceful()
    assert wait_until(lambda: len(listen_inodes(extra)) == 2, 10), \
        listen_inodes(extra)
    assert len(listen_inodes(httpd.port("shared"))) == 2
    for i in range(30):
        r = http_get(extra, "/cgi-bin/id.cgi", host="extra.test", timeout=5)
        assert uid_of(r) == users["pcbob"].uid, (i, r)
        r = http_get(httpd.port("shared"), "/cgi-bin/id.cgi", host="a.test",
                     timeout=5)
        assert uid_of(r) == users["pcalice"].uid, (i, r)


def test_affinity_child_killed_its_cpu_channel_waits_for_the_new_one(httpd,
                                                                    users):
    """SIGKILL one of pcalice's pinned children: connections passed to its
    CPU's channel meanwhile wait for its replacement (pinned the same way)
    and are served by pcalice; none is refused or lost."""
    import signal
    kids = start(httpd, users, "PerchildCPUAffinity On")
    victim = kids["pcalice"][0]
    cpus = cpus_of(victim)
    os.kill(victim, signal.SIGKILL)
    for i in range(40):
        r = http_get(httpd.port("shared"), "/cgi-bin/id.cgi", host="a.test",
                     timeout=10)
        assert uid_of(r) == users["pcalice"].uid, (i, r)
    now = wait_until(lambda: (lambda k: k if len(k.get("pcalice", [])) == 2
                              and victim not in k["pcalice"] else None)(
        children_by_user(httpd, users)), 10)
    assert now, children_by_user(httpd, users)
    assert sorted(cpus_of(p) for p in now["pcalice"]) == sorted(
        [cpus, cpus_of(kids["pcalice"][1])])


def test_graceful_stop_after_graceful_restart_closes_every_bucket(httpd,
                                                                 users):
    """After a graceful restart (the buckets' copies are kept), a
    graceful-stop closes them all at once while a slow request finishes:
    a new client is refused, not queued on a copy nobody accepts from."""
    import socket
    import threading
    start(httpd, users, "GracefulShutdownTimeout 20")
    httpd.graceful()
    port = httpd.port("shared")
    assert wait_until(lambda: http_get(port, "/cgi-bin/id.cgi",
                                       host="b.test").status == 200, 10)
    slow = {}
    t = threading.Thread(target=lambda: slow.setdefault("r", http_get(
        port, "/cgi-bin/sleep.cgi?6", host="b.test", timeout=20)))
    t.start()
    time.sleep(1)
    parent = httpd.pid
    rc, out = httpd.apache2("-k", "graceful-stop")
    assert rc == 0, out
    assert wait_until(lambda: not listen_inodes(port), 1.5), \
        "still listening after graceful-stop: %s" % listen_inodes(port)
    assert pid_alive(parent), "the parent should still wait for the slow " \
        "request"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    t.join(20)
    assert slow["r"].status == 200 and \
        int(slow["r"].ident["uid"]) == users["pcbob"].uid, slow
    assert wait_until(lambda: not pid_alive(parent), 15)


def seqpackets(pid):
    """How many SOCK_SEQPACKET unix sockets (hand-off channel ends) pid
    holds."""
    out = subprocess.run(["ss", "-xapH"], capture_output=True,
                         text=True).stdout
    return sum(len(re.findall(r"pid=%d," % pid, line))
               for line in out.splitlines() if line.startswith("u_seq"))


def test_graceful_restart_to_fewer_ways_keeps_the_retired_channel(httpd,
                                                                  users):
    """PerchildCPUAffinity On -> Off by graceful restart: pcalice's pool
    goes from two channels to one that senders use, but its new children
    still read the retired one (old-generation children may pass to it),
    and the other pools keep its sending end."""
    start(httpd, users, "PerchildCPUAffinity On")
    httpd.write_config(CONF % "PerchildCPUAffinity Off")
    gen = httpd.graceful()
    new = {pid for _, pid, g, _ in httpd.started() if g == gen}
    kids = wait_until(lambda: (lambda k: k if len(
        [p for p in k.get("pcalice", []) if p in new]) == 2 else None)(
        children_by_user(httpd, users)), 15)
    assert kids, children_by_user(httpd, users)
    # pcalice's child: both of its pool's receiving ends and sending
    # ends (4: its own, for what it leaves to its successors when told to
    # stop), the sending end of pcbob's channel (the User/Group pool,
    # which no connection on the shared port can reach, gets none).
    for pid in (p for p in kids["pcalice"] if p in new):
        assert cpus_of(pid) == cpus_of(httpd.pid), "still pinned"
        assert seqpackets(pid) == 5, (pid, seqpackets(pid))
    # pcbob's child: its own receiving and sending ends, both of
    # pcalice's sending ends.
    (bob,) = [p for p in kids["pcbob"] if p in new]
    assert seqpackets(bob) == 4, seqpackets(bob)
    for i in range(20):
        r = http_get(httpd.port("shared"), "/cgi-bin/id.cgi", host="a.test",
                     timeout=5)
        assert uid_of(r) == users["pcalice"].uid, (i, r)
