"""A child that cannot become its pool's user exits, fails closed, and the
parent does not spin respawning it.

The server is started with CAP_SETUID removed from the capability bounding
set, so the root parent runs normally but every child's setuid() fails."""

import ctypes
import re
import time

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
        h.start(wait_ports=[], preexec_fn=drop_setuid_capability)
        started = re.compile(r"Child (\d+) started")
        # Three slots (one www-data, two pcalice): each fails once...
        assert wait_until(lambda: len(re.findall(r"PC0205", h.error_log()))
                          >= 2, 15), h.error_log()
        log = h.error_log()
        assert "PC0407" in log and "cannot become uid" in log, log
        first = len(started.findall(log))
        # ... and nothing is started again.
        time.sleep(3)
        log = h.error_log()
        assert len(started.findall(log)) == first == 3, log
        assert pid_alive(h.pid)
        assert not h.children(), "children left: %s" % h.children()
        # Nobody serves: never an answer from a process that kept root.
        r = http_get(h.port("pcalice"), "/", timeout=1)
        assert r.status is None, r
    finally:
        h.stop()
        h.kill_all()
