"""A child that cannot become its pool's user exits, fails closed, and the
parent does not spin respawning it.

The server is started with CAP_SETUID removed from the capability bounding
set, so the root parent runs normally but every child's setuid() fails."""

import ctypes
import os
import signal
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


CHROOT_CONF = """
ThreadsPerChild 2
ChrootDir {chroot}
Listen 127.0.0.1:{port_pcalice}
Listen 127.0.0.1:{port_pcbob}
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pcbob}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""


def test_one_pool_that_cannot_start_is_no_exit_of_apache(httpd_factory,
                                                         tmp_path, users):
    """A child that fails to become its user stops only its pool (PC0205):
    the log must not carry httpd's "Apache is exiting!" (AH00050), which
    is what worker does on that exit status and false here."""
    chroot = tmp_path / "chroot"
    chroot.mkdir()
    h = httpd_factory("onepool")
    h.write_config(CHROOT_CONF.replace("{chroot}", str(chroot)))
    h.start()
    try:
        bob = users["pcbob"].uid
        old = wait_until(lambda: next((c.pid for c in h.children()
                                       if c.uid == bob), None), 5)
        assert old, h.children()
        chroot.rmdir()                # the next child's chroot() fails
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: "PC0205" in h.error_log(), 10), \
            h.error_log()
        log = h.error_log()
        assert "PC0407" in log, log
        assert "AH00050" not in log and "Apache is exiting" not in log, log
        assert pid_alive(h.read_pid()), log
        # bob's own port: nobody accepts there now; the parent answers
        # (it used to be left in the listen backlog: a client timeout).
        for _ in range(3):
            r = http_get(h.port("pcbob"), "/", host="b.test", timeout=5)
            assert r.status == 503 and r.headers.get("Retry-After"), r
        # alice's pool still answers (its DocumentRoot is outside the
        # chroot: 403 or 404, but from alice's child).
        r = http_get(h.port("pcalice"), "/", host="a.test", timeout=5)
        assert r.status in (403, 404), r
        said = "PC0217: listener 127.0.0.1:%d" % h.port("pcbob")
        assert h.error_log().count(said) == 1, h.error_log()
    finally:
        h.kill_all()


def test_start_as_non_root_fails_with_the_reason(httpd_factory, users):
    """perchild cannot run a child as its pool's user unless its parent is
    root: a start by another user fails at once (before it detaches, so
    the exit status says so) and names the reason, instead of starting,
    answering nothing and stopping itself a moment later."""
    h = httpd_factory("nonroot")
    h.write_config(CONF)
    alice = users["pcalice"]

    def become_alice():
        os.setgroups([])
        os.setgid(alice.gid)
        os.setuid(alice.uid)

    rc, out = h.apache2("-k", "start", preexec_fn=become_alice)
    assert rc != 0, out
    assert "PC0011" in out and "must be started as root" in out, out
    assert h.read_pid() is None
    # -t as any user is still only a syntax check.
    rc, out = h.apache2("-t", preexec_fn=become_alice)
    assert rc == 0 and "Syntax OK" in out, out
