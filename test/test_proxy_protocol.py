"""PROXY protocol (mod_remoteip's RemoteIPProxyProtocol) across hand-offs.

The header is read once, at the start of a connection; every child that
serves a request of that connection, after any number of hand-offs (and
give-backs to a dispatch pool), must see the client address it carried.
"""

import struct
import socket

import pytest

from pchelpers import DISPATCH_USER, RawConnection, raw_request, wait_until

CONF = """
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
{dispatch}
RemoteIPProxyProtocol On
Listen 127.0.0.1:{port_default}
<VirtualHost 127.0.0.1:{port_default}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_default}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""

HOSTS = ["a.test", "b.test", "c.test", "b.test", "a.test", "c.test"]
OWNER = {"a.test": "pcalice", "b.test": "pcbob", "c.test": "pccarol"}
CLIENT = "203.0.113.7"


def v1_header(port):
    return ("PROXY TCP4 %s 127.0.0.1 4444 %d\r\n" % (CLIENT, port)).encode()


def v2_header(port):
    addr = socket.inet_aton(CLIENT) + socket.inet_aton("127.0.0.1") \
        + struct.pack("!HH", 4444, port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) \
        + struct.pack("!H", len(addr)) + addr


@pytest.fixture(scope="module", params=["default", "dispatch", "h2c"])
def srv(request, httpd_factory, dispatch_user):
    """h2c: mod_http2 with h2c enabled (Debian's http2.conf) looks at the
    first bytes of every connection before httpd reads a request, so
    mod_remoteip reads the PROXY header before the first request starts:
    the header must still travel with every hand-off."""
    dispatch = "DispatchUserID %s %s" % (DISPATCH_USER, DISPATCH_USER) \
        if request.param == "dispatch" else ""
    if request.param == "h2c":
        dispatch = "Protocols h2c http/1.1"
    modules = ("authz_core", "authz_host", "mime", "dir", "alias", "cgi",
               "remoteip") + (("http2",) if request.param == "h2c" else ())
    h = httpd_factory("proxy-" + request.param)
    h.variant = request.param
    h.write_config(CONF.replace("{dispatch}", dispatch), modules=modules)
    try:
        # Every connection must start with a PROXY header: the usual
        # readiness probe cannot, so wait for an answer to one that does.
        h.start(wait_ports=[])
        port = h.port("default")

        def ready():
            try:
                with RawConnection(port, timeout=2) as conn:
                    conn.send(v1_header(port))
                    return ask(conn, "c.test")["uid"] is not None
            except (OSError, AssertionError):
                return False
        assert wait_until(ready, 20), h.error_log()
        yield h
        h.stop()
    finally:
        h.kill_all()


def ask(conn, host):
    conn.send(raw_request("GET", "/cgi-bin/addr.cgi", host))
    r = conn.read_response()
    assert r.status == 200, r
    return dict(l.split("=", 1) for l in r.body.strip().splitlines())


@pytest.mark.parametrize("header", [v1_header, v2_header])
def test_client_address_survives_hand_offs(srv, users, header):
    port = srv.port("default")
    with RawConnection(port) as conn:
        conn.send(header(port))
        for host in HOSTS:
            got = ask(conn, host)
            assert int(got["uid"]) == users[OWNER[host]].uid, (host, got)
            assert got["addr"] == CLIENT, (host, got, srv.error_log()[-2000:])


def test_later_proxy_line_is_request_data(srv, users):
    """Only the start of a connection may hold its PROXY header.  A client
    that sends a "PROXY ..." line of its own as a later request gets a 400
    for it, and nothing after it is served as the address that line names
    (the line is passed on behind the connection's real header, where the
    receiving mod_remoteip never takes it for one)."""
    port = srv.port("default")
    for host in ("a.test", "b.test"):
        with RawConnection(port) as conn:
            conn.send(v1_header(port))
            assert ask(conn, host)["addr"] == CLIENT
            conn.send(b"PROXY TCP4 6.6.6.6 127.0.0.1 4444 %d\r\n" % port)
            conn.send(raw_request("GET", "/cgi-bin/addr.cgi", "c.test"))
            answers = []
            try:
                while True:
                    answers.append(conn.read_response())
            except (EOFError, OSError):
                pass
        assert answers and answers[0].status == 400, answers
        assert not any("6.6.6.6" in (r.body or "") for r in answers), \
            [(r.status, r.body) for r in answers]


@pytest.mark.parametrize("alone", [False, True],
                         ids=["one-write", "header-alone"])
@pytest.mark.parametrize("header", [v1_header, v2_header])
def test_h2c_prior_knowledge_behind_proxy_header(srv, users, header, alone):
    """Cleartext HTTP/2 behind a PROXY header: the connection goes to its
    first request's host's pool before mod_http2 reads it, with the
    header in front, so the owner serves it with the client's address
    (the header is skipped to find the HTTP/2 preface behind it, also
    when a load balancer writes it on its own, ahead of the client's
    bytes)."""
    if srv.variant != "h2c":
        pytest.skip("Protocols h2c only")
    pytest.importorskip("h2.connection")
    from h2client import h2_requests
    port = srv.port("default")
    for host in ("a.test", "b.test", "c.test") * 2:
        prefix = header(port)
        (status, body), = h2_requests(port, [host], prefix=prefix,
                                      cuts=(len(prefix),) if alone else (),
                                      path="/cgi-bin/addr.cgi")
        got = dict(l.split("=", 1) for l in body.strip().splitlines()
                   if "=" in l)
        assert status == 200, (host, status, body, srv.error_log()[-2000:])
        assert int(got["uid"]) == users[OWNER[host]].uid, (host, got)
        assert got["addr"] == CLIENT, (host, got)
