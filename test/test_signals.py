"""-k graceful, restart, graceful-stop and stop, with requests in flight."""

import os
import signal
import socket
import threading
import time

import pytest

from pchelpers import (BASE_MODULES, RawConnection, all_pids, cmdline,
                       http_get, pid_alive, raw_request, wait_until)

CGI = "/cgi-bin/id.cgi"

CONF = """
NumServers 1
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob 2
Listen 127.0.0.1:{port_pcalice}
Listen 127.0.0.1:{port_pcbob}
Listen 127.0.0.1:{port_default}
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pcbob}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""


class Load(threading.Thread):
    """Requests in a loop on fresh connections until stopped."""

    def __init__(self, port, path=CGI):
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.results = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.results.append(http_get(self.port, self.path))

    def finish(self):
        self.halt.set()
        self.join(30)
        assert not self.is_alive(), "client loop did not end"
        return self.results


class Slow(threading.Thread):
    """One request that takes `seconds` in the CGI."""

    def __init__(self, port, seconds):
        super().__init__(daemon=True)
        self.port = port
        self.seconds = seconds
        self.result = None

    def run(self):
        self.result = http_get(self.port, "%s?sleep=%s" % (CGI, self.seconds),
                               timeout=self.seconds + 15)

    def finish(self):
        self.join(self.seconds + 20)
        assert not self.is_alive(), "slow request did not end"
        return self.result


def served_as(r, acct):
    return r.status == 200 and int(r.ident.get("uid", -1)) == acct.uid


@pytest.fixture
def server(httpd):
    httpd.write_config(CONF)
    httpd.start()
    return httpd


def wait_slow_in_flight(srv):
    """Until a CGI of this server runs (the slow request is in flight)."""
    needle = (srv.root / "cgi-bin" / "id.cgi").as_posix().encode()
    assert wait_until(lambda: any(needle in cmdline(p) for p in all_pids()),
                      10), "the slow CGI never started"


def test_graceful(server, users):
    alice = users["pcalice"]
    old = {c.pid for c in server.children()}
    gen0 = server.max_generation()
    assert gen0 is not None, "no 'Child .. started' lines:\n" + \
        server.error_log()
    load = Load(server.port("pcalice"))
    slow = Slow(server.port("pcalice"), 2)
    slow.start()
    wait_slow_in_flight(server)
    load.start()
    time.sleep(0.3)
    gen1 = server.graceful()
    gone = wait_until(lambda: not (old & {c.pid for c in server.children()}),
                      20)
    time.sleep(1)
    results = load.finish()
    in_flight = slow.finish()

    assert served_as(in_flight, alice), "in-flight request: %r" % in_flight
    failed = [r for r in results if not served_as(r, alice)]
    assert len(results) >= 10, "only %d requests ran" % len(results)
    assert not failed, "%d of %d requests failed across graceful: %s" % (
        len(failed), len(results), failed[:3])
    assert gen1 > gen0
    assert gone, "old children still running: %s" % (
        old & {c.pid for c in server.children()})
    new = server.children()
    assert new and all(c.pid not in old for c in new)
    assert {s[2] for s in server.started() if s[1] in
            {c.pid for c in new}} == {gen1}
    # Each old child says it stopped.
    stopped = {s[1] for s in server.stopped()}
    assert old <= stopped, "no 'stopped' line for %s" % (old - stopped)
    server.stop()


def test_restart(server, users):
    pid = server.pid
    old = {c.pid for c in server.children()}
    gen0 = server.max_generation()
    gen1 = server.restart()
    assert gen1 > gen0
    assert server.read_pid() == pid and pid_alive(pid), "parent changed"
    assert wait_until(lambda: not (old & {c.pid for c in server.children()}),
                      20), "old children survived -k restart"
    for name in ("pcalice", "pcbob"):
        r = http_get(server.port(name), CGI)
        assert served_as(r, users[name]), r
    server.stop()


def test_graceful_stop_finishes_in_flight(server, users):
    slow = Slow(server.port("pcbob"), 2)
    slow.start()
    wait_slow_in_flight(server)
    started = time.monotonic()
    server.graceful_stop()
    r = slow.finish()
    assert served_as(r, users["pcbob"]), "in-flight request: %r" % r
    assert time.monotonic() - started < 20
    assert not server.our_processes(), "left behind: %s" % \
        server.our_processes()
    # The listeners are closed.
    assert http_get(server.port("pcalice"), "/", timeout=2).status is None


def test_stop(server):
    children = {c.pid for c in server.children()}
    assert children
    server.stop()
    assert not any(pid_alive(p) for p in children), "children survived"
    assert not server.our_processes(), "left behind: %s" % \
        server.our_processes()
    assert not server.pidfile.exists(), "pid file left behind"
    for port in server.ports.values():
        assert http_get(port, "/", timeout=2).status is None, \
            "port %d still answers" % port


def test_orphaned_children_stop(server):
    """If the parent dies (SIGKILL: no chance to stop anyone), its
    children see their pool's pipe of death close and stop gracefully
    instead of serving on with nobody to respawn or restart them."""
    children = {c.pid for c in server.children()}
    assert children
    os.kill(server.pid, signal.SIGKILL)
    assert wait_until(lambda: not any(pid_alive(p) for p in children), 15), \
        "orphaned children still alive: %s" % [p for p in children
                                               if pid_alive(p)]




SHARED = """
NumServers 1
ThreadsPerChild 4
GracefulShutdownTimeout 15
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


def test_graceful_past_server_limit_keeps_every_site(httpd, users):
    """A graceful restart that asks for more children than the ServerLimit
    in force (here the implicit one of the first start, 3 children and
    16 to spare; the new
    configuration passes its own check, which sizes it anew) gives every
    pool a share, one child each first: the sites that were served stay
    served, rather than a new pool (declared first by ChildPerUserID)
    taking every free slot."""
    httpd.write_config(SHARED)
    httpd.start()
    port = httpd.port("shared")
    for host, name in (("a.test", "pcalice"), ("b.test", "pcbob")):
        r = http_get(port, CGI, host=host)
        assert served_as(r, users[name]), (host, r)

    httpd.write_config("ChildPerUserID pccarol pccarol 30\n" + SHARED)
    httpd.graceful()
    assert wait_until(lambda: "PC0106" in httpd.error_log(), 10), \
        httpd.error_log()
    log = httpd.error_log()
    assert "PC0106: pool pccarol" in log and "gets 16 of its 30" in log, log
    assert "PC0106: pool pcalice" not in log, log
    assert "PC0106: pool pcbob" not in log, log
    for host, name in (("a.test", "pcalice"), ("b.test", "pcbob")):
        ok = wait_until(lambda: served_as(http_get(port, CGI, host=host),
                                          users[name]), 15)
        assert ok, "%s not served by %s after the graceful restart:\n%s" % (
            host, name, httpd.error_log()[-2000:])
    httpd.stop()


def test_cgi_killed_before_its_exec_leaves_the_child(server, users):
    """mod_cgi kills a script whose request ended early (here: the client
    half-closes in the middle of the body), which can happen before the
    forked process has run exec: that process still has the child's
    SIGTERM handler and its stop pipe.  The child must not stop: a
    request in flight on it is answered, and no child is replaced."""
    alice = users["pcalice"]
    port = server.port("pcalice")
    before = {c.pid for c in server.children()}
    for attempt in range(3):
        slow = Slow(port, 2)
        slow.start()
        wait_slow_in_flight(server)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"POST /cgi-bin/hash.cgi HTTP/1.1\r\nHost: a.test\r\n"
                  b"Content-Length: 900\r\n\r\n" + b"x" * 500)
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()
        r = slow.finish()
        assert served_as(r, alice), "attempt %d: in-flight request lost: " \
            "%r\n%s" % (attempt, r, server.error_log()[-2000:])
    assert {c.pid for c in server.children()} == before, \
        server.error_log()[-3000:]
    assert "PC0201" not in server.error_log()
    server.stop()


def test_repeated_graceful_restarts_keep_generations_straight(server):
    """Each child's 'stopped' line names the generation it was started
    in, and httpd's own generation bookkeeping never loses one (AH00546).
    The slot a new child takes is read before the fork: the child's
    threads write the slot's generation as soon as they run."""
    for _ in range(10):
        server.graceful()
        time.sleep(0.3)
    gen = server.graceful()
    assert wait_until(lambda: all(s[2] == gen for s in server.started()
                                  if s[1] in {c.pid for c in
                                              server.children()}), 20)
    time.sleep(1)
    born = {pid: g for _, pid, g, _ in server.started()}
    wrong = [(pid, born.get(pid), g) for _, pid, g, _ in server.stopped()
             if born.get(pid) != g]
    assert not wrong, "(pid, started in gen, stopped as gen): %s" % wrong
    assert "AH00546" not in server.error_log(), server.error_log()[-3000:]
    server.stop()




def test_graceful_stop_with_kept_alive_connection_switching(httpd, users):
    """-k graceful-stop while a slow request keeps alice's child busy and
    a kept-alive connection sits in bob's child: the pid file goes at
    once (as under worker: a new server may start), and that
    connection's next request, for alice's vhost, gets a prompt answer
    (503, the owner's children are stopping) rather than waiting in a
    channel nobody reads until the children exit."""
    httpd.write_config(SHARED)
    httpd.start()
    port = httpd.port("shared")
    pid = httpd.pid
    for host, name in (("a.test", "pcalice"), ("b.test", "pcbob")):
        assert wait_until(lambda: served_as(http_get(port, CGI, host=host),
                                            users[name]), 15)
    slow = threading.Thread(target=http_get, daemon=True, kwargs=dict(
        port=port, path=CGI + "?sleep=6", host="a.test", timeout=20))
    slow.start()
    wait_slow_in_flight(httpd)
    conn = RawConnection(port, timeout=10)
    r = conn.request(raw_request("GET", CGI, "b.test"))
    assert r.status == 200, r
    # Until bob's worker waits for the next request: one still winding
    # the last one down when the stop comes closes the connection (as
    # worker does).
    time.sleep(0.5)
    rc, out = httpd.apache2("-k", "graceful-stop")
    assert rc == 0, out
    assert wait_until(lambda: not httpd.pidfile.exists(), 3), \
        "pid file still there during graceful-stop"
    assert pid_alive(pid), "the parent should wait for the slow request"
    t0 = time.monotonic()
    r = conn.request(raw_request("GET", CGI, "a.test"))
    took = time.monotonic() - t0
    assert r.status in (503, None) or served_as(r, users["pcalice"]), r
    assert r.status is not None, "no answer: %r" % (r,)
    assert took < 3, "answered after %.1f s" % took
    slow.join(20)
    assert wait_until(lambda: not pid_alive(pid), 20)


def test_graceful_restart_to_fewer_slots_frees_them(httpd, users):
    """A graceful restart that gives a pool fewer children: the old child
    of a slot the new layout no longer uses is logged as a previous
    generation's child of its own pool (not 'pool -'), and the slot's
    threads show as dead in server-status, not as finishing ('G')."""
    body = SHARED.replace("NumServers 1", "ChildPerUserID pcalice pcalice 2")
    status = ("<Location /server-status>\n    SetHandler server-status\n"
              "</Location>\n")
    modules = BASE_MODULES + ("status",)
    httpd.write_config(body + status, modules=modules)
    httpd.start()
    old = {c.pid for c in httpd.children()}
    httpd.write_config(body.replace("pcalice pcalice 2", "pcalice pcalice 1")
                       + status, modules=modules)
    httpd.graceful()
    # Reaped and logged (a zombie is no longer among the children).
    assert wait_until(lambda: old <= {s[1] for s in httpd.stopped()}, 20), \
        httpd.error_log()[-3000:]
    stopped = [s for s in httpd.stopped() if s[1] in old]
    assert stopped and all(s[3] != "-" for s in stopped), stopped
    port = httpd.port("shared")
    r = http_get(port, "/server-status?auto", host="127.0.0.1")
    assert r.status == 200, r
    board = [l for l in r.body.splitlines() if l.startswith("Scoreboard:")]
    assert board and "G" not in board[0], board
    httpd.stop()


REMOVED = SHARED.replace("NumServers 1", "NumServers 1\n"
                         "ChildPerUserID pccarol pccarol 1") + """
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
"""


def test_graceful_restart_removing_a_pool(httpd, users):
    """A graceful restart that removes a pool (c.test moves from pccarol
    to pcbob): a kept-alive connection held by an old child, whose next
    request is for c.test, gets an answer at once (503: the old child
    knows pccarol's pool is gone; the client's next connection is
    served by the new owner), never a silent close, never pccarol."""
    httpd.write_config(REMOVED)
    httpd.start()
    port = httpd.port("shared")
    for host, name in (("a.test", "pcalice"), ("c.test", "pccarol")):
        assert wait_until(lambda: served_as(http_get(port, CGI, host=host),
                                            users[name]), 15)
    conn = RawConnection(port, timeout=10)
    r = conn.request(raw_request("GET", CGI, "a.test"))
    assert served_as(r, users["pcalice"]), r
    # A kept-alive connection keeps pccarol's old child alive past the
    # restart, its idle workers gone: its channel has a reader that
    # takes nothing.
    held = RawConnection(port, timeout=10)
    r = held.request(raw_request("GET", CGI, "c.test"))
    assert served_as(r, users["pccarol"]), r
    time.sleep(0.5)             # both workers wait for a next request
    httpd.write_config(SHARED + """
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName c.test
    AssignUserID pcbob pcbob
</VirtualHost>
""")
    httpd.graceful()
    time.sleep(0.2)
    t0 = time.monotonic()
    r = conn.request(raw_request("GET", CGI, "c.test"))
    took = time.monotonic() - t0
    assert r.status is not None, "no answer: %r" % (r,)
    assert r.status == 503 or served_as(r, users["pcbob"]), r
    assert took < 3, "answered after %.1f s" % took
    assert served_as(http_get(port, CGI, host="c.test"), users["pcbob"])
    httpd.stop()


def test_graceful_raising_thread_limit_keeps_serving(httpd, users):
    """ThreadLimit sizes the scoreboard and keeps its value until a full
    stop and start.  A graceful restart whose configuration raises both
    ThreadLimit and ThreadsPerChild (which apache2 -t accepts) keeps
    the server up with as many threads as the old limit allows, as worker
    does, rather than stopping every site."""
    body = SHARED.replace("NumServers 1", "NumServers 1\nThreadLimit 4")
    httpd.write_config(body)
    httpd.start()
    port = httpd.port("shared")
    httpd.write_config(body.replace("ThreadLimit 4", "ThreadLimit 16")
                       .replace("ThreadsPerChild 4", "ThreadsPerChild 12"))
    rc, out = httpd.apache2("-t")
    assert rc == 0, out
    gen = httpd.graceful()
    log = httpd.error_log()
    assert "PC0006" in log and "PC0010" in log, log[-2000:]
    for host, name in (("a.test", "pcalice"), ("b.test", "pcbob")):
        r = http_get(port, CGI, host=host)
        assert served_as(r, users[name]), (host, r)

    def alice_kids():
        return [c for c in httpd.children() if c.uid == users["pcalice"].uid]
    assert wait_until(lambda: alice_kids() and all(
        c.threads == 4 + 1 for c in alice_kids()), 10), alice_kids()
    assert httpd.read_pid() == httpd.pid and gen
    httpd.stop()


def test_graceful_restart_sharing_a_slot_leaves_no_finishing_thread(
        httpd, users):
    """After a graceful restart an old child may finish a kept-alive
    connection in the slot its successor took; each of its threads
    writes 'G' (finishing) into that slot as it ends.  Once it is gone,
    server-status must not go on showing the successor's idle threads as
    finishing (and busy)."""
    status = ("<Location /server-status>\n    SetHandler server-status\n"
              "</Location>\n")
    modules = BASE_MODULES + ("status",)
    httpd.write_config(SHARED + status, modules=modules)
    httpd.start()
    port = httpd.port("shared")
    bob = users["pcbob"].uid
    old = {c.pid for c in httpd.children() if c.uid == bob}
    with RawConnection(port) as rc:
        r = rc.request(raw_request("GET", CGI, "b.test"))
        assert served_as(r, users["pcbob"]), r
        httpd.graceful()
        time.sleep(0.5)
    assert wait_until(lambda: old <= {s[1] for s in httpd.stopped()}, 20), \
        httpd.error_log()[-3000:]
    time.sleep(0.3)                   # the parent's next tick
    r = http_get(port, "/server-status?auto", host="127.0.0.1")
    assert r.status == 200, r
    board = [l for l in r.body.splitlines() if l.startswith("Scoreboard:")]
    assert board and "G" not in board[0], (board, r.body)
    httpd.stop()
