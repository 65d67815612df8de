"""A small HTTP/2 client for the tests (cleartext, prior knowledge), on
python3-h2: its own HPACK encoder, and control over how the connection's
first bytes are written."""

import socket
import time

import h2.config
import h2.connection
import h2.events


def h2_requests(port, hosts, prefix=b"", cuts=(), pause=0.3,
                path="/cgi-bin/id.cgi", extra=()):
    """One HTTP/2 connection with prior knowledge; one GET per host in
    'hosts', each sent after the answer to the one before.  'prefix' goes
    in front of the connection's first bytes (a PROXY header); the first
    bytes (preface, SETTINGS and the first request) are written in pieces
    cut at the offsets 'cuts', 'pause' seconds apart; a cut "request"
    stands for the offset where the first request's frame begins.
    'extra' headers go with every request.  Returns a (status, body) per
    host."""
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    start_bytes = conn.data_to_send()
    results = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i, host in enumerate(hosts):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                    (":authority", "%s:%d" % (host, port)),
                                    (":path", path),
                                    ("user-agent", "perchild-test")]
                              + list(extra), end_stream=True)
            data = conn.data_to_send()
            if i == 0:
                data = prefix + start_bytes + data
                start = 0
                for cut in cuts:
                    if cut == "request":
                        cut = len(prefix) + len(start_bytes)
                    s.sendall(data[start:cut])
                    start = cut
                    time.sleep(pause)
                data = data[start:]
            s.sendall(data)
            results.append(read_response(s, conn, sid))
    return results


def read_response(s, conn, sid):
    status, body = None, b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return status, body.decode(errors="replace") + "[closed]"
        for ev in conn.receive_data(chunk):
            if getattr(ev, "stream_id", None) != sid:
                continue
            if isinstance(ev, h2.events.ResponseReceived):
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length,
                                               sid)
            elif isinstance(ev, h2.events.StreamEnded):
                return status, body.decode(errors="replace")
            elif isinstance(ev, h2.events.StreamReset):
                return "reset", body.decode(errors="replace")
        out = conn.data_to_send()
        if out:
            s.sendall(out)


def h2_after_server_settings(port, host, path="/cgi-bin/id.cgi", count=1):
    """A client that, like gRPC's, sends nothing after its preface and
    SETTINGS until the server's SETTINGS have come, then 'count' GETs one
    after another on the connection.  Returns (seconds until the server's
    SETTINGS, [(status, body)] per GET)."""
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        t0 = time.monotonic()
        s.sendall(conn.data_to_send())
        waited = None
        while waited is None:
            chunk = s.recv(65536)
            if not chunk:
                return time.monotonic() - t0, [(None, "[closed]")]
            for ev in conn.receive_data(chunk):
                if isinstance(ev, h2.events.RemoteSettingsChanged):
                    waited = time.monotonic() - t0
        for _ in range(count):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                    (":authority", "%s:%d" % (host, port)),
                                    (":path", path)], end_stream=True)
            s.sendall(conn.data_to_send())
            answers.append(read_response(s, conn, sid))
    return waited, answers
