#!/usr/bin/python3
"""Reads the whole request body and reports who read it.

Prints text/plain key=value lines:
  uid, gid, pid, ppid   of the CGI process (ppid: the httpd child)
  method, query, host   REQUEST_METHOD, QUERY_STRING, HTTP_HOST
  content_length        CONTENT_LENGTH as the server passed it ("" if none,
                        e.g. for a chunked body)
  len                   bytes read from stdin until end of file
  sha256                hex SHA-256 of those bytes
  fds                   open descriptors besides 0, 1, 2 ("fd:target" list)

The same uid, length and query are also sent as the response headers
X-Uid, X-Len and X-Query, so that HEAD requests can be checked.
"""

import hashlib
import os
import sys


def open_fds():
    fds = []
    for name in sorted(int(n) for n in os.listdir("/proc/self/fd")):
        if name <= 2:
            continue
        try:
            fds.append("%d:%s" % (name, os.readlink("/proc/self/fd/%d"
                                                    % name)))
        except OSError:
            continue            # listdir's own descriptor, already closed
    return " ".join(fds)


def main():
    digest = hashlib.sha256()
    total = 0
    stdin = sys.stdin.buffer
    while True:
        chunk = stdin.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    env = os.environ
    query = env.get("QUERY_STRING", "")
    lines = [
        "uid=%d" % os.getuid(),
        "gid=%d" % os.getgid(),
        "pid=%d" % os.getpid(),
        "ppid=%d" % os.getppid(),
        "method=%s" % env.get("REQUEST_METHOD", ""),
        "query=%s" % query,
        "host=%s" % env.get("HTTP_HOST", ""),
        "content_length=%s" % env.get("CONTENT_LENGTH", ""),
        "len=%d" % total,
        "sha256=%s" % digest.hexdigest(),
        "fds=%s" % open_fds(),
    ]
    out = sys.stdout
    out.write("Content-Type: text/plain\r\n")
    out.write("X-Uid: %d\r\nX-Len: %d\r\nX-Query: %s\r\n\r\n"
              % (os.getuid(), total, query.replace("\r", "").replace("\n",
                                                                     "")))
    out.write("\n".join(lines) + "\n")
    out.flush()


main()
