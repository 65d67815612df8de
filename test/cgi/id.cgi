#!/usr/bin/python3
"""Report who runs this CGI and which descriptors it inherited.

Prints text/plain key=value lines:
  uid, gid, euid, egid   numeric ids of the CGI process
  user                   name of the real uid
  groups                 supplementary groups (like `id -G`), space separated
  capeff                 CapEff from /proc/self/status (hex)
  pid, ppid              ppid is the httpd child that ran the CGI
  host, port             HTTP_HOST and SERVER_PORT as the server saw them
  parent_fds             "denied" if this CGI cannot list the descriptors
                         of its httpd child (/proc/<ppid>/fd), else
                         how many it saw
  fds                    every open descriptor except 0, 1, 2, as
                         "fd:target" separated by spaces (empty if none);
                         sockets carry what /proc/net says about them

Query string: sleep=<seconds> delays the answer (for in-flight tests).
"""

import os
import pwd
import sys
import time


def socket_info():
    """inode -> short description, from /proc/net/{tcp,tcp6,unix}."""
    info = {}
    states = {"0A": "LISTEN", "01": "ESTABLISHED", "06": "TIME_WAIT",
              "08": "CLOSE_WAIT"}
    for proto in ("tcp", "tcp6"):
        try:
            with open("/proc/net/" + proto) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local, state, inode = cols[1], cols[3], cols[9]
                    addr, port = local.split(":")
                    info[inode] = "%s/%d/%s" % (proto, int(port, 16),
                                                states.get(state, state))
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) >= 7:
                    path = cols[7] if len(cols) > 7 else ""
                    info[cols[6]] = "unix" + ("/" + path if path else "")
    except (OSError, StopIteration):
        pass
    return info


def open_fds():
    # listdir opens (and closes again) a descriptor of its own: that one is
    # gone when we readlink it, so a failing readlink means "ours".
    names = sorted((int(n) for n in os.listdir("/proc/self/fd")))
    fds = []
    for fd in names:
        if fd <= 2:
            continue
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            continue
        fds.append((fd, target))
    if any(t.startswith("socket:[") for _, t in fds):
        info = socket_info()
        fds = [(fd, t + ("(%s)" % info[t[8:-1]] if t[8:-1] in info else ""))
               for fd, t in fds]
    return fds


def parent_fds():
    try:
        return str(len(os.listdir("/proc/%d/fd" % os.getppid())))
    except PermissionError:
        return "denied"
    except OSError as e:
        return "error:%s" % e.errno


def capeff():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return line.split()[1]
    except OSError:
        pass
    return "?"


def main():
    query = os.environ.get("QUERY_STRING", "")
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    if "sleep" in params:
        time.sleep(min(float(params["sleep"]), 30.0))
    fds = open_fds()
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = "?"
    lines = [
        "uid=%d" % os.getuid(),
        "gid=%d" % os.getgid(),
        "euid=%d" % os.geteuid(),
        "egid=%d" % os.getegid(),
        "user=%s" % user,
        "groups=%s" % " ".join(str(g) for g in sorted(os.getgroups())),
        "capeff=%s" % capeff(),
        "pid=%d" % os.getpid(),
        "ppid=%d" % os.getppid(),
        "host=%s" % os.environ.get("HTTP_HOST", ""),
        "port=%s" % os.environ.get("SERVER_PORT", ""),
        "parent_fds=%s" % parent_fds(),
        "fds=%s" % " ".join("%d:%s" % fd for fd in fds),
    ]
    sys.stdout.write("Content-Type: text/plain\r\n\r\n" + "\n".join(lines)
                     + "\n")
    sys.stdout.flush()


main()
