"""TLS on a port shared by several pools' vhosts.

A TLS session lives in the process that did the handshake, so a TLS
connection never moves: a request on it for another pool's vhost is
refused with 503 (never served by the wrong uid).  Plain HTTP sent to
the TLS port gets the 400 that worker gives, whichever child accepted
it; the connection must not be passed to a child that would then try a
TLS handshake on it.
"""

import subprocess

import pytest

from pchelpers import RawConnection, raw_request, wait_until

CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_tls}
SSLCertificateFile {root}/tls/cert.pem
SSLCertificateKeyFile {root}/tls/key.pem
<VirtualHost 127.0.0.1:{port_tls}>
    ServerName c.test
    SSLEngine on
    AssignUserID pccarol pccarol
</VirtualHost>
<VirtualHost 127.0.0.1:{port_tls}>
    ServerName a.test
    SSLEngine on
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_tls}>
    ServerName b.test
    SSLEngine on
    AssignUserID pcbob pcbob
</VirtualHost>
"""
MODULES = ("authz_core", "authz_host", "mime", "dir", "alias", "cgi",
           "socache_shmcb", "ssl")
OWNER = {"a.test": "pcalice", "b.test": "pcbob", "c.test": "pccarol"}


@pytest.fixture(scope="module")
def tls(httpd_factory):
    h = httpd_factory("tls")
    d = h.root / "tls"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=a.test",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    h.write_config(CONF, modules=MODULES)
    try:
        h.start(wait_ports=[])
        port = h.port("tls")
        # Up once a TLS request gets an answer (the owner's, or the 503
        # of a child of another pool).
        assert wait_until(lambda: curl(port, "a.test")[0] in ("200", "503"),
                          20), h.error_log()[-3000:]
        yield h
        h.stop()
    finally:
        h.kill_all()


def curl(port, host):
    """(status, body) of one HTTPS request on a new connection."""
    url = "https://%s:%d/cgi-bin/id.cgi" % (host, port)
    out = subprocess.run(
        ["curl", "-sk", "--http1.1", "--max-time", "10", "--resolve",
         "%s:%d:127.0.0.1" % (host, port), "-w", "\nSTATUS=%{http_code}",
         url], capture_output=True, text=True, timeout=30).stdout
    body, _, status = out.rpartition("\nSTATUS=")
    return status, body


def test_tls_served_by_owner_or_refused(tls, users):
    """Every HTTPS answer is the owner's (its uid) or a 503 with
    Retry-After from the child that did the handshake: never another
    pool's uid.  (Which child accepts is up to the kernel: one child may
    take them all.)"""
    port = tls.port("tls")
    seen = {}
    for _ in range(6):
        for host, owner in OWNER.items():
            status, body = curl(port, host)
            seen.setdefault(status, 0)
            seen[status] += 1
            assert status in ("200", "503"), (host, status, body)
            if status == "200":
                ident = dict(l.split("=", 1) for l in body.splitlines()
                             if "=" in l)
                assert int(ident["uid"]) == users[owner].uid, (host, ident)
            else:
                assert "this site's server is not available" in body, body
    assert sum(seen.values()) == 6 * len(OWNER), seen


@pytest.mark.parametrize("host", sorted(OWNER))
def test_plain_http_to_tls_port_gets_400(tls, host):
    """Plain HTTP to the TLS port: 400, whichever child accepted it (five
    tries, so children of other pools than the vhost's get some)."""
    port = tls.port("tls")
    for _ in range(5):
        with RawConnection(port, timeout=10) as conn:
            conn.send(raw_request("GET", "/", host))
            r = conn.read_response()
        assert r.status == 400, (host, r, tls.error_log()[-2000:])
