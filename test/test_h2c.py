"""Cleartext HTTP/2 on a port shared by several pools' vhosts.

With `Protocols h2c http/1.1` (Debian's http2.conf), mod_http2 takes a
connection that starts with HTTP/2's preface (prior knowledge) before
httpd reads any request, and its session's state then lives in that
process.  So such a connection moves, if at all, before mod_http2 reads
it: the child that accepted it reads the first request's header block,
and a connection whose :authority is another pool's vhost goes to that
pool, whose mod_http2 runs the session.  A later stream for another
pool's vhost gets 421, never the wrong uid.  An HTTP/1.1 request that
asks to upgrade (`Upgrade: h2c`) is passed like any request, and the
owner upgrades it.

The raw HTTP/2 client is python3-h2 (its own HPACK encoder); curl uses
nghttp2's.
"""

import socket
import time

import pytest

pytest.importorskip("h2.connection")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import HeadersFrame  # noqa: E402

from h2client import (h2_after_server_settings, h2_requests,  # noqa: E402
                      read_response)
from pchelpers import (DISPATCH_USER, RawConnection, curl_id,  # noqa: E402
                       wait_until)

CONF = """
Protocols h2c http/1.1
{dispatch}
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
Listen 127.0.0.1:{port_h2c}
<VirtualHost 127.0.0.1:{port_h2c}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
<VirtualHost 127.0.0.1:{port_h2c}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_h2c}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
"""
MODULES = ("authz_core", "authz_host", "mime", "dir", "alias", "cgi",
           "http2")
OWNER = {"a.test": "pcalice", "b.test": "pcbob", "c.test": "pccarol"}


@pytest.fixture(scope="module", params=["pools", "dispatch"])
def h2c(request, httpd_factory, dispatch_user):
    """dispatch: a dispatch pool accepts the port and passes every
    HTTP/2 connection on by its first request's host."""
    h = httpd_factory("h2c-" + request.param)
    h.variant = request.param
    extra = "DispatchUserID %s %s" % (DISPATCH_USER, DISPATCH_USER) \
        if request.param == "dispatch" else ""
    h.write_config(CONF.replace("{dispatch}", extra), modules=MODULES)
    try:
        h.start(wait_ports=[])
        port = h.port("h2c")
        assert wait_until(lambda: all(curl(port, host, "--http1.1")[0]
                                      == "200" for host in OWNER), 20), \
            h.error_log()[-3000:]
        yield h
        h.stop()
    finally:
        h.kill_all()


def curl(port, host, version="--http2-prior-knowledge"):
    """(status, body, HTTP version) of one request on a new connection."""
    return curl_id("http", port, host, version)


def uid_of(body):
    ident = dict(l.split("=", 1) for l in body.splitlines() if "=" in l)
    return int(ident["uid"]) if "uid" in ident else None


def test_h2c_prior_knowledge_served_by_owner(h2c, users):
    """Every HTTP/2 connection (prior knowledge, nghttp2's encoder) is
    served by the owner of its first request's vhost, whichever child
    accepted it: before, only the owner's own children could serve it and
    the others answered 503."""
    port = h2c.port("h2c")
    for _ in range(5):
        for host, owner in OWNER.items():
            status, body, version = curl(port, host)
            assert (status, version) == ("200", "2"), \
                (host, status, version, body, h2c.error_log()[-2000:])
            assert uid_of(body) == users[owner].uid, (host, body)


def test_h2c_upgrade_served_by_owner(h2c, users):
    """`Upgrade: h2c` on an HTTP/1.1 request: the request is passed to
    its owner like any other, and the owner's mod_http2 upgrades."""
    port = h2c.port("h2c")
    for host, owner in OWNER.items():
        status, body, version = curl(port, host, "--http2")
        assert (status, version) == ("200", "2"), \
            (host, status, version, body, h2c.error_log()[-2000:])
        assert uid_of(body) == users[owner].uid, (host, body)


def test_h2c_other_pool_stream_misdirected(h2c, users):
    """On one HTTP/2 connection (python3-h2's encoder) made for a.test,
    streams for b.test and c.test (other pools) get 421 and no other
    uid's answer; the connection still serves a.test after them."""
    port = h2c.port("h2c")
    got = h2_requests(port, ["a.test", "b.test", "c.test", "a.test"])
    alice = users["pcalice"].uid
    assert got[0][0] == 200 and uid_of(got[0][1]) == alice, \
        (got, h2c.error_log()[-2000:])
    for status, body in got[1:3]:
        assert status == 421, (got, h2c.error_log()[-2000:])
        assert "Misdirected" in body and uid_of(body) is None, got
    assert got[3][0] == 200 and uid_of(got[3][1]) == alice, got


@pytest.mark.parametrize("cuts", [(10,), (30,), (60, 70), ("request",)],
                         ids=["preface", "settings", "headers",
                              "before-request"])
def test_h2c_start_in_pieces_served_by_owner(h2c, users, cuts):
    """A connection's first bytes in several writes (cut inside the
    preface, the SETTINGS frame, the first HEADERS frame, or between the
    SETTINGS and the first request, 0.3 s apart: longer than the look
    waits at a frame boundary, so a dispatch child sends the server's
    SETTINGS meanwhile and must wait for the client's ACK of them): the
    accepting child waits for the first request's header block, and
    every host is still served by its owner."""
    port = h2c.port("h2c")
    for _ in range(2):
        for host, owner in OWNER.items():
            got = h2_requests(port, [host], cuts=cuts)
            if cuts == ("request",) and h2c.variant == "pools" \
                    and got[0][0] == 421:
                # Without a dispatch pool the session started in the
                # child that accepted it, after the look's 200 ms.
                assert uid_of(got[0][1]) is None, (host, got)
                continue
            assert got[0][0] == 200, (host, got, h2c.error_log()[-2000:])
            assert uid_of(got[0][1]) == users[owner].uid, (host, got)


def test_h2c_first_header_block_in_continuation_frames(h2c, users):
    """A first request whose header block is larger than a frame (big
    cookies, say: here 24 KiB) comes as HEADERS and CONTINUATION frames:
    the look joins them, and the connection still goes to its host's
    pool before the session starts (before, the accepting child ran the
    session and answered 421)."""
    port = h2c.port("h2c")
    cookies = [("x-big-%d" % i, "x" * 6000) for i in range(4)]
    for host, owner in OWNER.items():
        got = h2_requests(port, [host], extra=cookies)
        assert got[0][0] == 200, (host, got, h2c.error_log()[-2000:])
        assert uid_of(got[0][1]) == users[owner].uid, (host, got)


def test_http1_starting_like_preface_not_held(h2c, users):
    """A plain HTTP request whose first byte ("P" of POST) came alone
    could still be HTTP/2's preface ("PRI ..."): the look waits for the
    next bytes only, and lets the request go to httpd as soon as they
    differ, also when the whole head is shorter than the frames an
    HTTP/2 start would need (answered at once, not after a timeout)."""
    port = h2c.port("h2c")
    heads = [(host, b"OST /cgi-bin/id.cgi HTTP/1.1\r\nHost: " + host.encode()
              + b"\r\nContent-Length: 0\r\n\r\n") for host in OWNER]
    heads.append(("c.test", b"OST / HTTP/1.0\r\n\r\n"))   # 19 bytes
    for host, rest in heads:
        with RawConnection(port, timeout=10) as conn:
            t0 = time.monotonic()
            conn.send(b"P")
            time.sleep(0.3)
            conn.send(rest)
            r = conn.read_response()
            took = time.monotonic() - t0
        assert r.status is not None and took < 3, (host, took, r)
        if b"cgi-bin" in rest:
            assert r.status == 200, (host, r, h2c.error_log()[-2000:])
            assert uid_of(r.body) == users[OWNER[host]].uid, (host, r.body)


def test_h2c_client_waiting_for_server_settings(h2c, users):
    """A client that sends no request before the server's SETTINGS (gRPC
    does so) is not kept waiting for the first request's frames (they
    come within 2 s, not after Timeout, 10 s here).  Behind a dispatch
    pool the dispatcher sends them itself and passes the connection on
    by its first request, without the client's ACK of them: served by
    the owner, over a session its mod_http2 started.  Otherwise the look
    gives up after a moment and mod_http2 starts the session in the
    child that accepted it: served if that child's pool owns the host,
    else 421 (the client may connect again)."""
    port = h2c.port("h2c")
    for host, owner in sorted(OWNER.items()) * 2:
        waited, answers = h2_after_server_settings(port, host, count=3)
        assert waited < 2, (host, waited)
        for status, body in answers:
            if h2c.variant == "dispatch":
                assert status == 200, (host, answers,
                                       h2c.error_log()[-2000:])
            if status == 200:
                assert uid_of(body) == users[owner].uid, (host, body)
            else:
                assert status == 421 and uid_of(body) is None, \
                    (host, answers, h2c.error_log()[-2000:])


def test_idle_h2_connection_ends_at_graceful_restart(httpd, users):
    """A graceful restart tells mod_http2 the child is stopping (httpd's
    child_stopping hook), as worker does: an idle HTTP/2 session gets
    its GOAWAY notice at once, a stream the client opens after it is
    refused (GOAWAY, last stream 1) and the connection closed, so the old
    child leaves instead of serving on in the old generation."""
    httpd.write_config(CONF.replace("{dispatch}", "KeepAliveTimeout 30"),
                       modules=MODULES)
    httpd.start(wait_ports=[])
    port = httpd.port("h2c")
    assert wait_until(lambda: curl(port, "a.test")[0] == "200", 20)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()

    headers = [(":method", "GET"), (":scheme", "http"),
               (":authority", "a.test:%d" % port),
               (":path", "/cgi-bin/id.cgi")]
    pending = bytearray()

    def goaway(s):
        """The next GOAWAY's last stream id (raw frames: python3-h2 takes
        no frames once it has seen one), or 'closed'."""
        while True:
            while len(pending) >= 9:
                size = int.from_bytes(pending[:3], "big")
                if len(pending) < 9 + size:
                    break
                kind, payload = pending[3], bytes(pending[9:9 + size])
                del pending[:9 + size]
                if kind == 7:
                    return int.from_bytes(payload[:4], "big") & 0x7fffffff
            chunk = s.recv(65536)
            if not chunk:
                return "closed"
            pending.extend(chunk)

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=True)
        s.sendall(conn.data_to_send())
        status, body = read_response(s, conn, sid)
        assert status == 200 and uid_of(body) == users["pcalice"].uid, body
        old = {c.pid for c in httpd.children()}
        httpd.graceful()
        s.settimeout(5)
        assert goaway(s) == 2 ** 31 - 1, "no GOAWAY notice"
        # A new stream after the notice (a fresh encoder: literals that
        # the server's decoder takes whatever its table holds).
        frame = HeadersFrame(sid + 2)
        frame.data = hpack.Encoder().encode(headers)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        s.sendall(frame.serialize())
        assert goaway(s) == 1, "the stream after the notice was taken"
        assert goaway(s) == "closed", "not closed after the last GOAWAY"
    assert wait_until(lambda: not old & {c.pid for c in httpd.children()},
                      10), "old children still running"
    httpd.stop()
