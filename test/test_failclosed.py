"""A child that cannot become its pool's user exits, fails closed, and the
parent does not spin respawning it.

The server is started with CAP_SETUID removed from the capability bounding
set, so the root parent runs normally but every child's setuid() fails."""

import ctypes
import re

import pytest

from pchelpers import http_get, pid_alive, wait_until

PR_CAPBSET_DROP = 24
CAP_SETUID = 7

CONF = """
ThreadsPerChild 2
ChildPerUserID pcalice pcalice 2
Listen 127.0.0.1:{port_default}
Listen 127.0.0.1:{port_pcalice}
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
"""


def drop_setuid_capability():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_SETUID, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_child_that_cannot_drop_privileges_is_not_respawned(httpd_factory):
    h = httpd_factory("failclosed")
    h.write_config(CONF)
    try:
        # Not h.start(): the server may be gone before its pid file is
        # read.
        rc, out = h.apache2("-k", "start", preexec_fn=drop_setuid_capability)
        assert rc == 0, out
        # Three slots (one www-data, two pcalice): each fails once, no
        # pool is respawned, and with no pool left the server stops
        # instead of leaving clients in the listen backlog.
        assert wait_until(lambda: "PC0213" in h.error_log(), 20), \
            h.error_log()
        m = re.search(r"\[pid (\d+):tid \d+\] PC0213", h.error_log())
        assert m, h.error_log()
        assert wait_until(lambda: not pid_alive(int(m.group(1))), 20), \
            h.error_log()
        log = h.error_log()
        assert "PC0407" in log and "cannot become uid" in log, log
        assert len(re.findall(r"PC0205", log)) == 2, log
        assert "PC0213" in log, log
        assert len(re.findall(r"Child (\d+) started", log)) == 3, log
        assert not h.children(), "children left: %s" % h.children()
        # Nothing answers: never a process that kept root.
        r = http_get(h.port("pcalice"), "/", timeout=1)
        assert r.status is None, r
    finally:
        h.kill_all()


def test_unset_user_is_refused(httpd_factory):
    """No User directive means uid -1: no pool could start (regression:
    the server used to keep its listeners with no child)."""
    h = httpd_factory("nouser")
    h.write_config("Listen 127.0.0.1:{port_default}\n")
    conf = h.conf.read_text()
    conf = "\n".join(l for l in conf.splitlines()
                     if not l.startswith(("User ", "Group ")))
    h.conf.write_text(conf + "\n")
    rc, out = h.apache2("-t")
    assert rc != 0 and "PC0101" in out and "User" in out, out
