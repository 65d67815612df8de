"""A tenant's child holds no pipe to another user's map program.

mod_rewrite starts "RewriteMap name prg:..." programs in the root parent
and every child inherits the pipes to them.  alice's and bob's vhosts
each have a map program running as their user; only that user's
children may hold its pipes, and the maps still answer.  A program left
running as root cannot be attributed: PC0114 says so.  Guards
pc_progs.c."""

import os

import pytest

from pchelpers import (cmdline, fd_inodes, http_get, proc_status, serve,
                       wait_until)

MAP = """#!/bin/sh
# A RewriteMap program: one answer line per key line.
while read key; do echo "{who}-$key"; done
"""

CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_default}
RewriteEngine On
RewriteMap rootmap "prg:{root}/maps/root.sh"
<VirtualHost 127.0.0.1:{port_default}>
    ServerName a.test
    AssignUserID pcalice pcalice
    RewriteEngine On
    RewriteMap amap "prg:{root}/maps/alice.sh" pcalice:pcalice
    RewriteRule "^/m/(.*)$" "http://elsewhere.test/${{amap:$1}}" [R=302,L]
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName b.test
    AssignUserID pcbob pcbob
    RewriteEngine On
    RewriteMap bmap "prg:{root}/maps/bob.sh" pcbob:pcbob
    RewriteRule "^/m/(.*)$" "http://elsewhere.test/${{bmap:$1}}" [R=302,L]
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
"""


def write_maps(h):
    d = h.root / "maps"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    for name, who in (("alice", "alice"), ("bob", "bob"), ("root", "root")):
        f = d / ("%s.sh" % name)
        f.write_text(MAP.format(who=who))
        os.chmod(f, 0o755)


@pytest.fixture(scope="module")
def srv(httpd_factory):
    yield from serve(httpd_factory, "progs", CONF, prepare=write_maps,
                     extra_modules=("rewrite",))


def pipe_inodes(pid):
    return fd_inodes(pid, "pipe")


def map_programs(srv):
    """{script name: pipe inodes of its stdin and stdout}."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        st = proc_status(int(pid))
        if not st or int(st.get("PPid", -1)) != srv.pid:
            continue
        args = args_of(int(pid))
        for name in ("alice.sh", "bob.sh", "root.sh"):
            if any(a.endswith("/maps/" + name) for a in args):
                out[name] = {int(os.readlink("/proc/%s/fd/%d" % (pid, fd))
                                 [6:-1]) for fd in (0, 1)}
    return out


def args_of(pid):
    return cmdline(pid).decode(errors="replace").split("\0")


def apache_children(srv):
    return [c for c in srv.children() if "apache2" in args_of(c.pid)[0]]


def test_map_programs_answer_their_own_vhosts(srv):
    # Over the shared port: some of these arrive by hand-off.
    for i in range(6):
        for host, who in (("a.test", "alice"), ("b.test", "bob")):
            r = http_get(srv.port("default"), "/m/k%d" % i, host=host)
            assert r.status == 302, r
            assert r.headers["Location"].endswith("/%s-k%d" % (who, i)), r


def test_children_hold_only_their_users_map_pipes(srv, users):
    owners = {users["pcalice"].uid: "alice.sh", users["pcbob"].uid: "bob.sh"}
    assert wait_until(lambda: len({c.uid for c in apache_children(srv)})
                      == 4, 10), srv.children()
    progs = map_programs(srv)
    assert set(progs) == {"alice.sh", "bob.sh", "root.sh"}, progs
    for c in apache_children(srv):
        held = pipe_inodes(c.pid)
        for name in ("alice.sh", "bob.sh"):
            if owners.get(c.uid) == name:
                assert progs[name] <= held, (c, name)
            else:
                assert not (progs[name] & held), \
                    "child %d (uid %d) holds %s's pipes" % (c.pid, c.uid,
                                                           name)
        # A program running as root cannot be told apart: it stays.
        assert progs["root.sh"] <= held, c


def test_root_map_program_warned_about(srv):
    assert "PC0114" in srv.error_log()
    assert "RewriteMap" in srv.error_log()


def test_graceful_restart_keeps_pipes_apart(srv, users):
    """mod_rewrite starts its programs anew at each restart; the new
    generation's children are sorted out against the new programs."""
    srv.graceful()
    test_map_programs_answer_their_own_vhosts(srv)
    test_children_hold_only_their_users_map_pipes(srv, users)
