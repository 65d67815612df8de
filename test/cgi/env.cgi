#!/usr/bin/python3
"""Dumps the request headers the CGI received, in the order of its
environment (httpd adds them in the order of the request head).

Prints text/plain lines:
  uid=, pid=, ppid=, query=, host=   as in id.cgi
  count=N                            number of HTTP_* variables
  then one line per HTTP_* variable, in environment order:
  h:NAME=VALUE                       (NAME as the CGI sees it, e.g.
                                      HTTP_X_TEST_7)
"""

import os
import sys


def main():
    env = os.environ
    headers = [(k, v) for k, v in env.items() if k.startswith("HTTP_")]
    lines = [
        "uid=%d" % os.getuid(),
        "pid=%d" % os.getpid(),
        "ppid=%d" % os.getppid(),
        "query=%s" % env.get("QUERY_STRING", ""),
        "host=%s" % env.get("HTTP_HOST", ""),
        "count=%d" % len(headers),
    ]
    lines += ["h:%s=%s" % kv for kv in headers]
    sys.stdout.write("Content-Type: text/plain\r\n\r\n" + "\n".join(lines)
                     + "\n")
    sys.stdout.flush()


main()
