"""A tenant's child holds no descriptor of another tenant's logs.

alice and bob each have their own CustomLog and ErrorLog; children of
every other pool must not hold those files open (in-process code could
write into them), while each pool's own requests still land in its own
logs.  Guards pc_logs.c."""

import os
import pwd
import re
import signal
import struct
import threading
import time

import pytest

from pchelpers import http_get, pid_alive, serve, wait_until

CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_default}
LogFormat "%v %>s %P %U%q" iso
<VirtualHost 127.0.0.1:{port_default}>
    ServerName a.test
    AssignUserID pcalice pcalice
    CustomLog {root}/logs/alice-access.log iso
    ErrorLog {root}/logs/alice-error.log
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName b.test
    AssignUserID pcbob pcbob
    CustomLog {root}/logs/bob-access.log iso
    ErrorLog {root}/logs/bob-error.log
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName d.test
    AssignUserID pcalice pcalice
    ErrorLog {root}/logs/shared-error.log
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName e.test
    AssignUserID pcbob pcbob
    ErrorLog {root}/logs/shared-error.log
</VirtualHost>
"""

LOGS = {"pcalice": ("alice-access.log", "alice-error.log"),
        "pcbob": ("bob-access.log", "bob-error.log")}


@pytest.fixture(scope="module")
def srv(httpd_factory):
    yield from serve(httpd_factory, "isolation", CONF)


def open_files(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            out.add(os.readlink(os.path.join(d, fd)))
        except OSError:
            pass
    return out


def test_children_hold_only_their_own_vhost_logs(srv, users):
    by_uid = {users[u].uid: u for u in ("pcalice", "pcbob", "pccarol")}
    # The server answers as soon as its first child runs: wait for all
    # four pools' children.
    assert wait_until(lambda: len({c.uid for c in srv.children()}) == 4,
                      10), srv.children()
    seen = set()
    for c in srv.children():
        owner = by_uid.get(c.uid, "default")
        seen.add(owner)
        files = {os.path.basename(f) for f in open_files(c.pid)}
        for user, names in LOGS.items():
            for name in names:
                if user == owner:
                    assert name in files, (c, files)
                else:
                    assert name not in files, \
                        "%s's child %d holds %s's %s" % (owner, c.pid,
                                                         user, name)
    assert seen == {"pcalice", "pcbob", "pccarol", "default"}, seen


def test_requests_still_logged_in_own_vhost_log(srv):
    # Over the shared port: some of these arrive by hand-off.
    for i in range(12):
        for host in ("a.test", "b.test"):
            r = http_get(srv.port("default"), "/?n=%d" % i, host=host)
            assert r.status in (200, 403, 404), r
    logs = srv.root / "logs"

    def complete():
        a = (logs / "alice-access.log").read_text()
        b = (logs / "bob-access.log").read_text()
        return a.count("?n=") == 12 and b.count("?n=") == 12
    assert wait_until(complete, 10), (
        (logs / "alice-access.log").read_text(),
        (logs / "bob-access.log").read_text())
    assert "b.test" not in (logs / "alice-access.log").read_text()
    assert "a.test" not in (logs / "bob-access.log").read_text()


def pipes(pid):
    """{pipe inode: set of modes ('r'/'w')} that `pid` holds open."""
    out = {}
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, fd))
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                flags = int(f.read().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        if link.startswith("pipe:["):
            mode = "w" if flags & os.O_WRONLY else "r"
            out.setdefault(int(link[6:-1]), set()).add(mode)
    return out


def test_pipes_of_death_per_pool_read_only(srv, users):
    """The parent's pipe of death tells children to stop.  A tenant's
    child holds no writing end of any pipe the parent holds (it could
    stop its pool's children at will), and no pipe at all that a child
    of another pool holds (it could stop theirs, or eat the parent's
    bytes meant for them): one pipe per pool, read end only."""
    assert wait_until(lambda: len({c.uid for c in srv.children()}) == 4,
                      10), srv.children()
    parent = pipes(srv.pid)
    kids = [(c.uid, pipes(c.pid)) for c in srv.children()]
    for uid, held in kids:
        for inode, modes in held.items():
            if inode in parent:
                assert modes == {"r"}, \
                    "uid %d holds the parent's pipe %d as %s" % (
                        uid, inode, modes)
        for other_uid, other in kids:
            if other_uid != uid:
                shared = set(held) & set(other)
                assert not shared, "uids %d and %d share pipes %s" % (
                    uid, other_uid, shared)
    # Every child does hold a pipe of death (the parent's, read end).
    assert all(set(held) & set(parent) for _, held in kids), kids
    r = http_get(srv.port("default"), "/", host="b.test")
    assert r.status is not None, r


def pool_state_mappings(pid):
    """VmFlags of each mapping of perchild's pool state memfd in `pid`."""
    out = []
    with open("/proc/%d/smaps" % pid) as f:
        current = None
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                current = "memfd:perchild-pool-state" in line
            elif line.startswith("VmFlags:") and current:
                out.append(set(line.split()[1:]))
    return out


def test_pool_state_read_only_in_children(srv, users):
    """Which pools the parent keeps down lives in memory shared with the
    children; a tenant that could write it would have another pool's
    vhosts answered 503 by everyone.  Children map it without write
    permission and without the right to get it back (no 'mw' flag: the
    memfd is sealed against new writable mappings), and hold no
    descriptor of it; the parent's mapping is the writable one."""
    assert wait_until(lambda: len({c.uid for c in srv.children()}) == 4,
                      10), srv.children()
    parent = pool_state_mappings(srv.pid)
    assert parent and all({"wr", "mw"} <= f for f in parent), parent
    for c in srv.children():
        maps = pool_state_mappings(c.pid)
        assert len(maps) == 1, (c, maps)
        assert not maps[0] & {"wr", "mw"}, (c, maps)
        assert not any("perchild-pool-state" in f
                       for f in open_files(c.pid)), c


def test_error_log_shared_by_two_pools(srv, users):
    """Two pools' vhosts naming the same ErrorLog: httpd opens the file
    once, and both pools' children keep it (the configuration gave it
    to both), so each vhost's errors land there, not in the main error
    log."""
    shared = srv.root / "logs" / "shared-error.log"
    for host in ("d.test", "e.test"):
        path = "/missing-%s-%d" % (host, os.getpid())
        r = http_get(srv.port("default"), path, host=host)
        assert r.status == 404, r
        assert wait_until(lambda: path in shared.read_text(), 5), \
            (host, shared.read_text()[-2000:], srv.error_log()[-2000:])
        assert path not in srv.error_log(), host


CORE_CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
CoreDumpDirectory {root}/core
Listen 127.0.0.1:{port_default}
<VirtualHost 127.0.0.1:{port_default}>
    ServerName default.test
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
"""


def test_core_dump_directory_leaves_children_untraceable(httpd_factory,
                                                         users):
    """CoreDumpDirectory makes mod_unixd mark a child dumpable; a CGI runs
    as the child's own user and could then trace it (its /proc/<pid>/fd,
    /proc/<pid>/mem, pidfd_getfd) and take the client sockets and channel
    ends it holds.  Children must stay non-dumpable, and the start says
    so."""
    h = httpd_factory("coredump")
    (h.root / "core").mkdir(exist_ok=True)
    os.chmod(h.root / "core", 0o1777)
    h.write_config(CORE_CONF)
    h.start()
    try:
        for host, uid in (("a.test", users["pcalice"].uid),
                          ("default.test",
                           pwd.getpwnam("www-data").pw_uid)):
            r = http_get(h.port("default"), "/cgi-bin/id.cgi", host=host)
            assert r.status == 200, r
            ident = r.ident
            assert int(ident["uid"]) == uid, ident
            assert ident["parent_fds"] == "denied", \
                "%s's CGI can look into its child: %r" % (host, ident)
        assert "PC0214" in h.error_log()
    finally:
        h.stop()


SB_CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_default}
<VirtualHost 127.0.0.1:{port_default}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""


def scoreboard_address(pid, value):
    """Address of the first aligned 32-bit `value` in process `pid`'s
    shared anonymous mappings (httpd's scoreboard), or None."""
    want = struct.pack("=i", value)
    with open("/proc/%d/maps" % pid) as f:
        maps = [line.split() for line in f]
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for m in maps:
            if len(m) < 6 or m[1] != "rw-s" or not m[5].startswith(
                    "/dev/zero"):
                continue
            start, end = (int(x, 16) for x in m[0].split("-"))
            mem.seek(start)
            data = mem.read(min(end - start, 1 << 20))
            for off in range(0, len(data) - 3, 4):
                if data[off:off + 4] == want:
                    return start + off
    return None


def poke(pid, address, value):
    with open("/proc/%d/mem" % pid, "r+b", buffering=0) as mem:
        mem.seek(address)
        mem.write(struct.pack("=i", value))


def overwrite_in_scoreboard(pid, old, new):
    """Writes `new` over `old` in the scoreboard: what in-process code of
    any child can do, since every child maps it writable."""
    address = scoreboard_address(pid, old)
    if address is None:
        return False
    poke(pid, address, new)
    return True


def test_child_replaced_though_its_scoreboard_pid_was_overwritten(
        httpd_factory, users):
    """Every child maps httpd's scoreboard writable, so a tenant's
    in-process code can overwrite another pool's child's pid there.  The
    parent must still see that child exit and replace it: bob's vhost is
    served again, by bob."""
    h = httpd_factory("scoreboard")
    h.write_config(SB_CONF)
    h.start()
    try:
        port = h.port("default")
        bob = users["pcbob"].uid

        def bob_child():
            kids = [c.pid for c in h.children() if c.uid == bob]
            return kids[0] if len(kids) == 1 else None
        victim = wait_until(bob_child, 10)
        assert victim, h.children()
        assert overwrite_in_scoreboard(h.pid, victim, 1), \
            "pid %d not found in the scoreboard" % victim
        os.kill(victim, signal.SIGKILL)
        new = wait_until(lambda: (bob_child() or victim) != victim
                         and bob_child(), 5)
        assert new, "bob's child %d was not replaced: %s" % (
            victim, h.children())
        r = http_get(port, "/cgi-bin/id.cgi", host="b.test", timeout=5)
        assert r.status == 200 and int(r.ident["uid"]) == bob, r
    finally:
        h.stop()


def test_stop_leaves_no_child_whose_scoreboard_pid_was_hidden(
        httpd_factory, users):
    """A tenant that keeps writing 0 over its child's pid in the scoreboard
    (and keeps the child from stopping: here it is stopped by SIGSTOP)
    must not make it outlive apache2 -k stop: httpd's own reclaim finds
    children by the scoreboard, the parent by its own record."""
    h = httpd_factory("scoreboard-stop")
    h.write_config(SB_CONF)
    h.start()
    bob = users["pcbob"].uid
    victim = wait_until(lambda: next((c.pid for c in h.children()
                                      if c.uid == bob), None), 10)
    assert victim, h.children()
    address = scoreboard_address(h.pid, victim)
    assert address, "pid %d not found in the scoreboard" % victim
    parent = h.pid
    os.kill(victim, signal.SIGSTOP)
    halt = threading.Event()

    def hide():
        while not halt.is_set():
            try:
                poke(parent, address, 0)
            except OSError:
                return              # the parent is gone
            time.sleep(0.001)
    writer = threading.Thread(target=hide, daemon=True)
    writer.start()
    try:
        h.stop()
    finally:
        halt.set()
        writer.join(5)
        left = pid_alive(victim)
        if left:
            os.kill(victim, signal.SIGKILL)
    assert not left, "child %d outlived apache2 -k stop" % victim
