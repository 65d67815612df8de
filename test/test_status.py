"""mod_status sees every pool's workers and names the pools."""

import re
import time

from pchelpers import BASE_MODULES, http_get, wait_until

THREADS = 3

CONF = """
NumServers 1
ThreadsPerChild %d
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob 2
ExtendedStatus On
Listen 127.0.0.1:{port_default}
Listen 127.0.0.1:{port_pcalice}
Listen 127.0.0.1:{port_pcbob}
<Location /server-status>
    SetHandler server-status
</Location>
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pcbob}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
""" % THREADS


def auto_fields(text):
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = value
    return out


def test_server_status(httpd):
    httpd.write_config(CONF, modules=BASE_MODULES + ("status",))
    httpd.start()
    port = httpd.port("default")
    nchildren = 1 + 1 + 2

    def workers():
        r = http_get(port, "/server-status?auto")
        f = auto_fields(r.body) if r.status == 200 else {}
        if "BusyWorkers" in f and "IdleWorkers" in f:
            return int(f["BusyWorkers"]) + int(f["IdleWorkers"]), r
        return None, r

    total = wait_until(lambda: workers()[0] == nchildren * THREADS, 10)
    n, r = workers()
    assert r.status == 200, r
    f = auto_fields(r.body)
    assert "BusyWorkers" in f and "IdleWorkers" in f, r.body
    assert int(f["BusyWorkers"]) >= 1, r.body   # this very request
    assert total, "Busy+Idle = %s, expected %d children x %d threads:\n%s" \
        % (n, nchildren, THREADS, r.body)
    if "ServerMPM" in f:
        assert f["ServerMPM"] == "perchild", r.body

    r = http_get(port, "/server-status")
    assert r.status == 200, r
    # Vhost names here are neutral (a.test, b.test): only the MPM's own
    # pool table can put the user names on the page.
    for user in ("pcalice", "pcbob"):
        assert re.search(r"\b%s\b" % user, r.body), \
            "%s missing from the status page" % user
    httpd.stop()


SHARED = """
NumServers 1
ThreadsPerChild 3
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
DispatchUserID pcdisp pcdisp
ExtendedStatus On
Listen 127.0.0.1:{port_shared}
<Location /server-status>
    SetHandler server-status
</Location>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName status.test
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName a.test
    ServerAlias *.a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_shared}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""


def test_total_accesses_count_passed_requests_once(httpd, dispatch_user):
    """A request parsed by a child of one pool and passed to its owner is
    one access: server-status counts it where it is served, not also
    where it was read.  The dispatch pool accepts every connection, and
    every Host below is new to it, so it parses each request before it
    passes it on."""
    httpd.write_config(SHARED, modules=BASE_MODULES + ("status",),
                       loglevel="info %s:trace1" % httpd.module.log_name)
    httpd.start()
    port = httpd.port("shared")

    def total():
        r = http_get(port, "/server-status?auto", host="status.test")
        assert r.status == 200, r
        return int(auto_fields(r.body)["Total Accesses"])
    # A request is counted after its answer is sent: let the start's
    # probe (wait_http) be counted before the count is taken.
    time.sleep(0.5)
    before = total()
    for i in range(20):
        r = http_get(port, "/", host="w%d.a.test" % i)
        assert r.status is not None and r.status < 500, r
    time.sleep(0.5)
    # The 20 requests and the first status request.
    assert total() - before == 21
    assert "PC0303" in httpd.error_log(), "nothing was passed on"
    httpd.stop()


def test_mpm_query_gives_the_children_in_every_generation(httpd):
    """Modules ask the MPM how many children it runs (mod_info shows it as
    "Max Daemons"): the children of all pools, from the first start on,
    and again after a graceful restart that adds a pool."""
    conf = CONF.replace("ExtendedStatus On", "<Location /server-info>\n"
                        "    SetHandler server-info\n</Location>")
    httpd.write_config(conf, modules=BASE_MODULES + ("info",))
    httpd.start()

    def max_daemons():
        r = http_get(httpd.port("default"), "/server-info?server")
        m = re.search(r"Max Daemons: (\d+)", r.body or "")
        assert m, r
        return int(m.group(1))

    assert max_daemons() == 4
    httpd.write_config(conf.replace(
        "ChildPerUserID pcbob pcbob 2",
        "ChildPerUserID pcbob pcbob 2\nChildPerUserID pccarol pccarol 3"),
        modules=BASE_MODULES + ("info",))
    httpd.graceful()
    assert wait_until(lambda: max_daemons() == 7, 10), max_daemons()
    httpd.stop()
