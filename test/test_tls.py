"""TLS on a port shared by several pools' vhosts.

A TLS session lives in the process that did the handshake, so a TLS
connection moves, if at all, before its handshake: the child that
accepted it reads the ClientHello, and a connection whose server name
(SNI) is another pool's vhost goes to that pool, whose child does the
handshake and serves it (HTTP/1.1 or HTTP/2).  After the handshake a
request for another pool's vhost on the same connection gets 503, never
the wrong uid.  Plain HTTP sent to the TLS port gets the 400 that worker
gives, whichever child accepted it.
"""

import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from pchelpers import (DISPATCH_USER, RawConnection, curl_id, raw_request,
                       wait_until)

CONF = """
{protocols}
RequestReadTimeout handshake=3 header=20-40,MinRate=500
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
    # A certificate of its own (a copy: mod_ssl tells vhosts apart by the
    # file names) and an ErrorDocument: neither may come into play for a
    # request of b.test on another pool's connection.
    SSLCertificateFile {root}/tls/cert-b.pem
    SSLCertificateKeyFile {root}/tls/key-b.pem
    ErrorDocument 421 /no-such-page
    AssignUserID pcbob pcbob
</VirtualHost>
"""
# mod_reqtimeout as Debian loads it, with a short handshake limit.
MODULES = ("authz_core", "authz_host", "mime", "dir", "alias", "cgi",
           "socache_shmcb", "ssl", "reqtimeout")
OWNER = {"a.test": "pcalice", "b.test": "pcbob", "c.test": "pccarol"}


@pytest.fixture(scope="module", params=["http1", "h2", "dispatch"])
def tls(request, httpd_factory, dispatch_user):
    """dispatch: a dispatch pool accepts the port and passes every
    connection on by its server name; no tenant reads another's
    ClientHello."""
    h = httpd_factory("tls-" + request.param)
    h.h2 = request.param != "http1"
    d = h.root / "tls"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=a.test",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    for name in ("cert", "key"):
        shutil.copyfile(d / ("%s.pem" % name), d / ("%s-b.pem" % name))
    extra = "Protocols h2 http/1.1" if h.h2 else ""
    if request.param == "dispatch":
        extra += "\nDispatchUserID %s %s" % (DISPATCH_USER, DISPATCH_USER)
    h.write_config(CONF.replace("{protocols}", extra),
                   modules=MODULES + (("http2",) if h.h2 else ()))
    try:
        h.start(wait_ports=[])
        port = h.port("tls")
        # Up once every pool's child answers.
        assert wait_until(lambda: all(curl(port, host)[0] == "200"
                                      for host in OWNER), 20), \
            h.error_log()[-3000:]
        yield h
        h.stop()
    finally:
        h.kill_all()


def curl(port, host, version="--http1.1"):
    """(status, body, HTTP version) of one HTTPS request on a new
    connection, asking for server name 'host'."""
    return curl_id("https", port, host, version)


def test_tls_served_by_owner(tls, users):
    """Every HTTPS request on a new connection is served by its vhost's
    owner, whichever child accepted the connection (one child may accept
    nearly all of them): the connection went to the owner before the
    handshake.  With Protocols h2, over HTTP/2 too."""
    port = tls.port("tls")
    versions = ["--http1.1"] + (["--http2"] if tls.h2 else [])
    for _ in range(5):
        for host, owner in OWNER.items():
            for v in versions:
                status, body, got = curl(port, host, v)
                assert status == "200", (host, v, status, body,
                                         tls.error_log()[-2000:])
                ident = dict(l.split("=", 1) for l in body.splitlines()
                             if "=" in l)
                assert int(ident["uid"]) == users[owner].uid, (host, ident)
                assert got == ("2" if v == "--http2" else "1.1"), (v, got)


def test_tls_other_vhost_on_same_connection_misdirected(tls, users):
    """After the handshake a connection stays: a request on it for a vhost
    of another pool than its server name's gets 421 Misdirected Request
    (the client then connects again for that name), never another uid."""
    port = tls.port("tls")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as t:
            first = tls_request(t, "a.test")
            second = tls_request(t, "b.test")
            # The connection goes on serving its own site.
            third = tls_request(t, "a.test")
    alice = "uid=%d" % users["pcalice"].uid
    assert first[0] == 200 and alice in first[1]
    assert second[0] == 421, second
    assert "uid=" not in second[1], second
    assert third[0] == 200 and alice in third[1], third


def test_tls_pipelined_past_a_misdirected_request(tls, users):
    """Requests pipelined after one that gets 421 are still answered,
    as worker answers them all (in order, on the same connection)."""
    port = tls.port("tls")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as t:
            t.sendall(b"".join(raw_request("GET", "/cgi-bin/id.cgi", h)
                               for h in ("a.test", "b.test", "a.test")))
            t.settimeout(3)
            data = b""
            while data.count(b"HTTP/1.1 ") < 3 or not data.endswith(
                    b"\r\n\r\n"):
                try:
                    chunk = t.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                data += chunk
    text = data.decode(errors="replace")
    statuses = [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", text,
                                           re.M)]
    assert statuses == [200, 421, 200], text
    uids = re.findall(r"^uid=(\d+)$", text, re.M)
    assert uids == [str(users["pcalice"].uid)] * 2, text


def tls_request(t, host):
    """(status, body) of one HTTP/1.1 request on TLS socket 't'."""
    t.sendall(raw_request("GET", "/cgi-bin/id.cgi", host))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = t.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
              if l.lower().startswith(b"content-length:")]
    chunked = b"transfer-encoding: chunked" in head.lower()

    def complete():
        if chunked:
            return body.startswith(b"0\r\n\r\n") \
                or body.endswith(b"\r\n0\r\n\r\n")
        return not length or len(body) >= length[0]
    while not complete():
        chunk = t.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ")[1]), body.decode(errors="replace")


def test_h2_stream_for_other_pool_misdirected(tls, users):
    """HTTP/2: a stream whose :authority is another pool's vhost than the
    connection's server name (a browser coalescing connections when one
    certificate covers both names) gets 421, so the browser connects
    again for that name."""
    if not tls.h2:
        pytest.skip("Protocols h2 only")
    port = tls.port("tls")
    url = "https://a.test:%d/cgi-bin/id.cgi" % port
    out = subprocess.run(
        ["curl", "-sk", "--http2", "--max-time", "10", "--resolve",
         "a.test:%d:127.0.0.1" % port, "-H", "Host: b.test", "-w",
         "\nSTATUS=%{http_code} %{http_version}", url],
        capture_output=True, text=True, timeout=30).stdout
    body, _, status = out.rpartition("\nSTATUS=")
    assert status == "421 2", (status, body, tls.error_log()[-2000:])
    assert "uid=" not in body, body


def reframe(hello, first, rest):
    """The ClientHello record 'hello' as several TLS records: fragments
    of 'first' bytes, then of 'rest' bytes each (a client may split its
    ClientHello so, and so may anything on the way)."""
    body, out, size = hello[5:], b"", first
    while body:
        piece, body = body[:size], body[size:]
        out += hello[:3] + len(piece).to_bytes(2, "big") + piece
        size = rest
    return out


def split_hello_request(port, host, cut=40, pause=0.3, records=None):
    """One HTTPS request whose ClientHello is sent in two writes, 'pause'
    seconds apart (as a large one can arrive in two TCP segments), and
    in several TLS records if 'records' = (first, rest) sizes are given:
    (status, body)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_obj = ctx.wrap_bio(inc, out, server_hostname=host)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            tls_obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        if records:
            hello = reframe(hello, *records)
        sock.sendall(hello[:cut])
        time.sleep(pause)
        sock.sendall(hello[cut:])

        def pump():
            data = out.read()
            if data:
                sock.sendall(data)
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("closed during the handshake")
            inc.write(chunk)
        while True:
            try:
                tls_obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
        tls_obj.write(raw_request("GET", "/cgi-bin/id.cgi", host,
                                  headers=[("Connection", "close")]))
        sock.sendall(out.read())
        resp = b""
        while True:
            try:
                data = tls_obj.read(65536)
                if not data:
                    break
                resp += data
            except ssl.SSLWantReadError:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                inc.write(chunk)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode(errors="replace")


@pytest.mark.parametrize("cut", [40, 3, 1])
def test_tls_split_client_hello_served_by_owner(tls, users, cut):
    """A ClientHello that arrives in two pieces still takes the connection
    to its server name's pool: every vhost answered by its owner, also
    when the first piece is shorter than the record's 5-byte header."""
    port = tls.port("tls")
    for _ in range(3 if cut == 40 else 1):
        for host, owner in OWNER.items():
            status, body = split_hello_request(port, host, cut=cut)
            assert status == 200, (host, status, body,
                                   tls.error_log()[-2000:])
            assert "uid=%d\n" % users[owner].uid in body, (host, body)


@pytest.mark.parametrize("records", [(40, 16384), (1, 1), (7, 50)])
def test_tls_client_hello_in_several_records_served_by_owner(tls, users,
                                                             records):
    """A ClientHello split into several TLS records (one over 16 KiB
    must be; a client or anything on the way may split a small one too):
    the connection still goes to its server name's pool before the
    handshake, rather than the accepting child doing the handshake and
    answering 421."""
    port = tls.port("tls")
    for host, owner in OWNER.items():
        status, body = split_hello_request(port, host, cut=200,
                                           records=records)
        assert status == 200, (host, status, body, tls.error_log()[-2000:])
        assert "uid=%d\n" % users[owner].uid in body, (host, body)


def test_trickled_client_hello_within_handshake_limit(tls):
    """Waiting for the rest of a ClientHello stays within mod_reqtimeout's
    handshake limit (3 s here), however the client trickles its bytes: a
    record header announcing 16000 bytes, then a byte every 0.4 s, is
    dropped after about 3 s, as without perchild's look at it."""
    if tls.h2:
        pytest.skip("once is enough")
    port = tls.port("tls")
    with socket.create_connection(("127.0.0.1", port), timeout=40) as s:
        t0 = time.monotonic()
        s.sendall(bytes([22, 3, 1, 0x3e, 0x80]))
        closed = False
        while time.monotonic() - t0 < 30:
            time.sleep(0.4)
            try:
                s.sendall(b"\x00")
            except OSError:
                closed = True
                break
            s.setblocking(False)
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            finally:
                s.setblocking(True)
        waited = time.monotonic() - t0
    assert closed and waited < 8, "still open after %.1f s" % waited


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
