"""The open files limit: every pool costs descriptors in the parent and
in every child, so a host with many tenants outgrows a shell's usual
limit.  The parent raises it to what the pools need (PC0116), at start
and at a graceful restart that adds pools: a restart that ran out of
descriptors half-way used to take the running server down."""

import resource
import signal

from pchelpers import http_get, numeric_tenants, pid_alive, wait_until

FIRST_ID = 30001


def tenants(n):
    return """
ThreadsPerChild 2
ServerLimit 200
Listen 127.0.0.1:{port_web}
""" + numeric_tenants(n, FIRST_ID)


def low_limit():
    """A low soft limit under a high hard one, as systemd gives services
    (1024:524288), only lower."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))


def soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def uids(httpd):
    return sorted(c.uids[0] for c in httpd.children())


def test_many_pools_start_and_grow_past_a_low_limit(httpd):
    httpd.write_config(tenants(60))
    httpd.start(preexec_fn=low_limit)
    port = httpd.port("web")
    want = [FIRST_ID + i for i in range(60)]
    assert wait_until(lambda: set(want) <= set(uids(httpd)), 10), \
        httpd.error_log()[-3000:]
    # The parent's limit, inherited by every child.
    limit = soft_nofile(httpd.pid)
    assert limit > 200, limit
    assert all(soft_nofile(c.pid) == limit for c in httpd.children())
    # A graceful restart that adds 60 more pools: the running server
    # must not die of it, and the new tenants get children.
    httpd.write_config(tenants(120))
    httpd.apache2("-k", "graceful")
    want = [FIRST_ID + i for i in range(120)]
    assert wait_until(lambda: set(want) <= set(uids(httpd)), 20), \
        httpd.error_log()[-3000:]
    assert pid_alive(httpd.pid)
    assert http_get(port, "/", host="t119.test").status is not None
    assert "Too many open files" not in httpd.error_log()
    httpd.stop()
