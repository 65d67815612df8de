"""Helpers that run the perchild MPM inside a real Debian apache2.

Everything here works on the real system: the module is built from the
repository, test users are real accounts, and each server is a real
`/usr/sbin/apache2 -f <conf> -k start` with its own ServerRoot in a
temporary directory.  Servers are always stopped by the pid from their own
pid file (plus, as a last resort, by the pids of processes whose command line
names the server's own temporary directory); nothing here touches
/etc/apache2 or the system service.

Must run as root (the MPM switches users).
"""

import http.client
import os
import pwd
import grp
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DIR = Path(__file__).resolve().parent
CGI_SRC = TEST_DIR / "cgi"
APACHE2 = "/usr/sbin/apache2"
MODDIR = Path("/usr/lib/apache2/modules")

# Users and groups the suite creates (if absent) and uses.
POOL_USERS = ("pcalice", "pcbob", "pccarol")
SHARED_GROUP = "pcshared"
DEFAULT_USER = "www-data"
# The dispatch pool's user (DispatchUserID): serves nothing, owns no files.
DISPATCH_USER = "pcdisp"

# Modules every test server loads, besides the MPM.  Debian's apache2 has
# core, mod_so, mod_watchdog, http_core, mod_log_config, mod_logio,
# mod_version and mod_unixd compiled in.
BASE_MODULES = ("authz_core", "authz_host", "mime", "dir", "alias", "cgi")

# Every wait in this suite is bounded.
STOP_TIMEOUT = 20.0
START_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0

# A request that reaches a child not owning its vhost is passed to the
# owner's child (the hand-off), so every request must be served by the
# right uid.  PERCHILD_EXPECT_HANDOFF=0 relaxes this to "right uid or 503
# tagged PC0301", the behaviour of a build without the hand-off.
EXPECT_HANDOFF = os.environ.get("PERCHILD_EXPECT_HANDOFF", "1") == "1"
MISROUTE_TAG = "PC0301"

CHILD_STARTED_RE = re.compile(
    r"Child (\d+) started: pid (\d+), gen (\d+), pool (\S+)")
# Children of a previous generation may be logged without slot and pool.
CHILD_STOPPED_RE = re.compile(
    r"Child (?:(\d+) )?stopped: pid (\d+), gen (\d+)(?:, pool (\S+))?")


# --------------------------------------------------------------------------
# Build


def _module_symbol(so):
    """The name of the module structure the .so exports (for LoadModule)."""
    try:
        out = subprocess.run(["nm", "-D", "--defined-only", str(so)],
                             capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    names = []
    for line in out.splitlines():
        cols = line.split()      # address, type, name
        if len(cols) == 3 and cols[1] in "DB" and cols[2].endswith("_module"):
            names.append(cols[2])
    if len(names) == 1:
        return names[0]
    return "mpm_perchild_module"


def build_module():
    """Path of the MPM to test: $PERCHILD_SO if set (run-tests.sh has
    built it), else built now with make, or apxs if make is not usable."""
    override = os.environ.get("PERCHILD_SO")
    if override:
        return Path(override)
    so = REPO / ".libs" / "mod_mpm_perchild.so"
    log = []
    if (REPO / "Makefile").exists():
        r = subprocess.run(["make", "-C", str(REPO)], capture_output=True,
                           text=True, timeout=600, check=False)
        log.append("$ make -C %s (rc %d)\n%s%s" % (REPO, r.returncode,
                                                   r.stdout, r.stderr))
        if r.returncode == 0 and so.exists():
            return so
    sources = sorted(p.name for p in REPO.glob("*.c"))
    if not sources:
        pytest.fail("no C sources at %s and no usable Makefile\n%s"
                    % (REPO, "\n".join(log)), pytrace=False)
    cmd = ["apxs", "-c", "-Wc,-Wall", "-Wc,-Wextra",
           "-o", "mod_mpm_perchild.la"] + sources
    r = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True,
                       timeout=600, check=False)
    log.append("$ %s (rc %d)\n%s%s" % (" ".join(cmd), r.returncode,
                                       r.stdout, r.stderr))
    if r.returncode != 0 or not so.exists():
        pytest.fail("building the module failed:\n" + "\n".join(log),
                    pytrace=False)
    return so


class Module:
    def __init__(self, path):
        self.path = Path(path)
        self.symbol = _module_symbol(self.path)
        # The per-module LogLevel name: "mpm_perchild" for
        # "mpm_perchild_module".
        self.log_name = self.symbol[:-len("_module")]

    def load_line(self):
        return 'LoadModule %s "%s"' % (self.symbol, self.path)


# --------------------------------------------------------------------------
# Users


def _run_checked(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       check=False)
    if r.returncode != 0:
        pytest.fail("%s failed (rc %d): %s%s" % (" ".join(cmd), r.returncode,
                                                r.stdout, r.stderr),
                    pytrace=False)


def _exists(lookup, name):
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def ensure_users():
    """pcalice, pcbob, pccarol (each with its own group) and pcshared, a
    supplementary group of pcalice, created if absent.  Returns name ->
    Account for them and www-data, plus "pcshared_gid"."""
    for name in POOL_USERS:
        if not _exists(pwd.getpwnam, name):
            _run_checked(["useradd", "--system", "--user-group",
                          "--no-create-home", "--shell", "/usr/sbin/nologin",
                          name])
    if not _exists(grp.getgrnam, SHARED_GROUP):
        _run_checked(["groupadd", "--system", SHARED_GROUP])
    if "pcalice" not in grp.getgrnam(SHARED_GROUP).gr_mem:
        _run_checked(["usermod", "-aG", SHARED_GROUP, "pcalice"])
    accounts = {name: Account(name) for name in POOL_USERS + (DEFAULT_USER,)}
    for name in POOL_USERS:
        a = accounts[name]
        assert a.uid != 0 and a.gid != 0, a
        assert a.group == name, "%s's primary group is %s" % (name, a.group)
    accounts["pcshared_gid"] = grp.getgrnam(SHARED_GROUP).gr_gid
    return accounts


def ensure_dispatch_user():
    """pcdisp (with its own group), created if absent; its Account."""
    if not _exists(pwd.getpwnam, DISPATCH_USER):
        _run_checked(["useradd", "--system", "--user-group",
                      "--no-create-home", "--shell", "/usr/sbin/nologin",
                      DISPATCH_USER])
    a = Account(DISPATCH_USER)
    assert a.uid != 0 and a.gid != 0, a
    assert a.group == DISPATCH_USER, "%s's primary group is %s" % (
        DISPATCH_USER, a.group)
    return a


class Account:
    def __init__(self, name):
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.group = grp.getgrgid(pw.pw_gid).gr_name
        self.groups = set(os.getgrouplist(name, pw.pw_gid))

    def __repr__(self):
        return "Account(%s uid=%d gid=%d)" % (self.name, self.uid, self.gid)


# --------------------------------------------------------------------------
# Ports

_handed_out = set()
_rng = random.Random()      # seeded from os.urandom


def free_port():
    """A TCP port in 20000-40000 that 127.0.0.1 can bind now (and that this
    session has not handed out before)."""
    for _ in range(500):
        port = _rng.randrange(20000, 40000)
        if port in _handed_out:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in 20000-40000")


# --------------------------------------------------------------------------
# HTTP client (every operation has a timeout)


class Response:
    def __init__(self, status=None, body="", headers=None, error=None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.error = error

    @property
    def ident(self):
        """The key=value lines id.cgi prints, as a dict ({} if none)."""
        return parse_ident(self.body) if self.status is not None else {}

    def __repr__(self):
        if self.status is None:
            return "<no response: %s>" % self.error
        return "<%d %r>" % (self.status, self.body[:300])


def parse_ident(body):
    out = {}
    for line in body.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value
    return out


def http_get(port, path="/", host=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection (Connection: close)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if host:
            headers["Host"] = host
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
        return Response(r.status, body, dict(r.getheaders()))
    except (OSError, http.client.HTTPException) as e:
        return Response(error="%s: %s" % (type(e).__name__, e))
    finally:
        conn.close()


class KeepAliveClient:
    """Several requests on ONE connection; never silently reconnects."""

    def __init__(self, port, timeout=HTTP_TIMEOUT):
        self.conn = http.client.HTTPConnection("127.0.0.1", port,
                                               timeout=timeout)
        self.conn.connect()
        self.conn.auto_open = 0

    def get(self, path, host):
        try:
            self.conn.request("GET", path, headers={"Host": host})
            r = self.conn.getresponse()
            body = r.read().decode("utf-8", "replace")
            return Response(r.status, body, dict(r.getheaders()))
        except (OSError, http.client.HTTPException) as e:
            return Response(error="%s: %s" % (type(e).__name__, e))

    def close(self):
        self.conn.close()


class RawResponse(Response):
    """A response read off a raw socket: also the protocol version, the
    headers as received (list of (name, value)), the body as bytes and
    the interim (1xx) responses that came before it."""

    def __init__(self, status, version, headers, body, interim=()):
        merged = {}
        for k, v in headers:
            merged[k] = v
        super().__init__(status, body.decode("utf-8", "replace"), merged)
        self.version = version
        self.header_list = list(headers)
        self.raw_body = body
        self.interim = list(interim)

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.header_list:
            if k.lower() == name:
                return v
        return default

    @property
    def closes(self):
        """True if the server announced that it closes the connection."""
        conn = (self.header("Connection") or "").lower()
        if "close" in conn:
            return True
        return self.version == "HTTP/1.0" and "keep-alive" not in conn


class RawConnection:
    """A client on one TCP socket that writes exactly the bytes it is
    given and parses responses itself: pipelining, split or joined writes,
    HEAD, HTTP/1.0, 100-continue.  Never reconnects; every read has a
    deadline (timeout seconds per response)."""

    def __init__(self, port, timeout=HTTP_TIMEOUT, addr="127.0.0.1"):
        self.timeout = timeout
        self.sock = socket.create_connection((addr, port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete response in %ss"
                                 % self.timeout)
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _head(self, deadline):
        status_line = self._line(deadline).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % status_line)
        headers = []
        while True:
            line = self._line(deadline)
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        return parts[0], int(parts[1]), headers

    def read_interim(self, timeout=None):
        """Reads one response head that must be a 1xx (e.g. after sending
        only the head of an Expect: 100-continue request)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        version, status, headers = self._head(deadline)
        if status >= 200:
            raise ValueError("expected an interim response, got %d"
                             % status)
        return status

    def read_response(self, method="GET"):
        """The next final response (interim ones are collected)."""
        deadline = time.monotonic() + self.timeout
        interim = []
        while True:
            version, status, headers = self._head(deadline)
            if status >= 200 or status == 101:
                break
            interim.append(status)
        lower = {k.lower(): v for k, v in headers}
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in lower.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._line(deadline).split(b";")[0], 16)
                if size == 0:
                    while self._line(deadline):     # trailers
                        pass
                    break
                body += self._exactly(size, deadline)
                if self._exactly(2, deadline) != b"\r\n":
                    raise ValueError("bad chunk end")
        elif "content-length" in lower:
            body = self._exactly(int(lower["content-length"]), deadline)
        else:
            try:
                while True:
                    self._fill(deadline)
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return RawResponse(status, version, headers, body, interim)

    def request(self, data, method="GET"):
        """send(data), then read_response(); a failure becomes a Response
        with .error set (status None)."""
        try:
            self.send(data)
            return self.read_response(method)
        except (OSError, EOFError, ValueError) as e:
            return Response(error="%s: %s" % (type(e).__name__, e))

    def closed_by_server(self, wait=0.5):
        """True if the server has closed (EOF within `wait` seconds);
        False if the connection is still open and idle."""
        if self.eof:
            return True
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536, socket.MSG_PEEK)
        except socket.timeout:
            return False
        except OSError:
            return True
        return not chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_request(method, path, host, version="HTTP/1.1", headers=(),
                body=None, chunked=False):
    """The bytes of one request.  `headers` are (name, value) pairs sent
    in order after Host; a body gets Content-Length unless chunked."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    lines += ["%s: %s" % kv for kv in headers]
    payload = b""
    if body is not None:
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            step = 65536
            for i in range(0, len(body), step):
                part = body[i:i + step]
                payload += b"%x\r\n" % len(part) + part + b"\r\n"
            payload += b"0\r\n\r\n"
        else:
            lines.append("Content-Length: %d" % len(body))
            payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


# --------------------------------------------------------------------------
# Processes


def curl_id(scheme, port, host, version):
    """(status, body, HTTP version) of one request for /cgi-bin/id.cgi by
    curl on a new connection, 'host' resolved to 127.0.0.1; 'version' is
    curl's option (--http1.1, --http2, --http2-prior-knowledge).  TLS
    certificates are not checked."""
    url = "%s://%s:%d/cgi-bin/id.cgi" % (scheme, host, port)
    out = subprocess.run(
        ["curl", "-sk", version, "--max-time", "10", "--resolve",
         "%s:%d:127.0.0.1" % (host, port), "-w",
         "\nSTATUS=%{http_code} %{http_version}", url],
        capture_output=True, text=True, timeout=30).stdout
    body, _, status = out.rpartition("\nSTATUS=")
    return status.split(" ")[0], body, status.split(" ")[-1]


def proc_status(pid):
    """Fields of /proc/<pid>/status as a dict, or None if gone/zombie."""
    try:
        text = Path("/proc/%d/status" % pid).read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    if fields.get("State", "").startswith(("Z", "X")):
        return None
    return fields


def pid_alive(pid):
    # Our daemonised parent is re-parented to pid 1, which may not reap it:
    # a zombie counts as gone.
    return proc_status(pid) is not None


def all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def cmdline(pid):
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return b""


class Proc:
    """A snapshot of one process from /proc/<pid>/status."""

    def __init__(self, pid, fields):
        self.pid = pid
        self.ppid = int(fields["PPid"])
        self.uids = [int(x) for x in fields["Uid"].split()]
        self.gids = [int(x) for x in fields["Gid"].split()]
        self.groups = [int(x) for x in fields.get("Groups", "").split()]
        self.cap_prm = int(fields.get("CapPrm", "0"), 16)
        self.cap_eff = int(fields.get("CapEff", "0"), 16)
        self.threads = int(fields.get("Threads", "1"))

    @property
    def uid(self):
        return self.uids[0]

    @property
    def gid(self):
        return self.gids[0]

    def __repr__(self):
        return "Proc(pid=%d uid=%s gid=%s groups=%s)" % (
            self.pid, self.uids, self.gids, self.groups)


def fd_inodes(pid, kind="socket"):
    """Inodes (ints) of the sockets (or "pipe"s) process 'pid' holds."""
    found = set()
    d = "/proc/%d/fd" % pid
    prefix = kind + ":["
    for fd in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if link.startswith(prefix):
            found.add(int(link[len(prefix):-1]))
    return found


def numeric_tenants(n, first_id):
    """Configuration for n tenants t0.test, t1.test... on {port_web},
    each its own user by number (#first_id, #first_id+1...): numeric
    identities need no passwd entry, so many pools need no users made."""
    return "\n".join("""
<VirtualHost 127.0.0.1:{port_web}>
    ServerName t%d.test
    AssignUserID #%d #%d
</VirtualHost>""" % (i, first_id + i, first_id + i) for i in range(n))


def wait_until(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --------------------------------------------------------------------------
# The server


class ServerError(AssertionError):
    pass


class Httpd:
    """One apache2 instance with the perchild MPM and its own directory."""

    def __init__(self, root, module, accounts):
        self.root = Path(root)
        self.module = module
        self.users = accounts
        self.conf = self.root / "conf" / "httpd.conf"
        self.pidfile = self.root / "run" / "httpd.pid"
        self.error_log_path = self.root / "logs" / "error_log"
        self.access_log_path = self.root / "logs" / "access_log"
        self.pid = None
        self._ports = {}
        self._setup_tree()

    # -- files ------------------------------------------------------------

    def _setup_tree(self):
        for sub in ("conf", "logs", "run", "lock", "cgi-bin", "htdocs",
                    "htdocs/default"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(self.root / sub, 0o755)
        os.chmod(self.root, 0o755)
        # Only root writes the logs, lock and run directories.
        (self.root / "conf" / "mime.types").write_text(
            "text/html html\ntext/plain txt\n")
        (self.root / "htdocs" / "default" / "index.html").write_text(
            "default\n")
        for src in CGI_SRC.glob("*.cgi"):
            dst = self.root / "cgi-bin" / src.name
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755)
        for name in POOL_USERS:
            d = self.root / "htdocs" / name
            d.mkdir(exist_ok=True)
            (d / "index.html").write_text(name + "\n")
            a = self.users[name]
            os.chown(d, a.uid, a.gid)
            os.chown(d / "index.html", a.uid, a.gid)
            os.chmod(d, 0o755)
            os.chmod(d / "index.html", 0o644)
        self._check_traversable()

    def _check_traversable(self):
        """The test users must reach the CGI and their docroots."""
        p = self.root
        while p != p.parent:
            mode = p.stat().st_mode
            if not mode & 0o001:
                raise ServerError("%s is not traversable by the test users "
                                  "(mode %o)" % (p, mode & 0o7777))
            p = p.parent

    def port(self, name):
        """A free port, the same one for the same name on this server."""
        if name not in self._ports:
            self._ports[name] = free_port()
        return self._ports[name]

    @property
    def ports(self):
        return dict(self._ports)

    def docroot(self, name):
        return self.root / "htdocs" / name

    def write_config(self, body, *, modules=BASE_MODULES, mpm=True,
                     extra_modules=(), pre_modules=(), loglevel=None,
                     user=DEFAULT_USER, group=DEFAULT_USER):
        """Write conf/httpd.conf: the common frame plus `body`.

        `body` may use {root}, {htdocs}, {cgi} and {port_NAME} (which picks a
        free port for NAME).  Modules load in the order pre_modules, the MPM
        (unless mpm=False), modules, extra_modules."""
        if loglevel is None:
            loglevel = "info %s:debug" % self.module.log_name if mpm \
                else "info"
        lines = [
            'ServerRoot "%s"' % self.root,
            'DefaultRuntimeDir "%s/run"' % self.root,
            'PidFile "%s"' % self.pidfile,
            'Mutex file:%s/lock default' % self.root,
            'ErrorLog "%s"' % self.error_log_path,
        ]
        lines += [self._load_line(m) for m in pre_modules]
        if mpm:
            lines.append(self.module.load_line())
        lines += [self._load_line(m) for m in tuple(modules) +
                  tuple(extra_modules)]
        lines += [
            # After LoadModule: a per-module level needs the module loaded.
            "LogLevel %s" % loglevel,
            "ServerName 127.0.0.1",
            "User %s" % user,
            "Group %s" % group,
            "Timeout 10",
            "KeepAlive On",
            "KeepAliveTimeout 3",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Host}i\\" %P" pc',
            'CustomLog "%s" pc' % self.access_log_path,
            'TypesConfig "%s/conf/mime.types"' % self.root,
            'DocumentRoot "%s/htdocs/default"' % self.root,
            "DirectoryIndex index.html",
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            '<Directory "%s/htdocs">' % self.root,
            "    Require all granted",
            "</Directory>",
            '<Directory "%s/cgi-bin">' % self.root,
            "    Options +ExecCGI",
            "    SetHandler cgi-script",
            "    Require all granted",
            "</Directory>",
            'ScriptAlias /cgi-bin/ "%s/cgi-bin/"' % self.root,
            "",
        ]
        subst = _PortDict(self, root=str(self.root),
                          htdocs=str(self.root / "htdocs"),
                          cgi=str(self.root / "cgi-bin"))
        text = "\n".join(lines) + body.format_map(subst) + "\n"
        self.conf.write_text(text)
        return text

    @staticmethod
    def _load_line(name):
        return 'LoadModule %s_module "%s/mod_%s.so"' % (name, MODDIR, name)

    def error_log(self):
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_log(self):
        try:
            return self.access_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- control ----------------------------------------------------------

    def apache2(self, *args, timeout=60, preexec_fn=None, pass_fds=()):
        """Run /usr/sbin/apache2 -f <conf> ARGS; (rc, stdout+stderr).
        preexec_fn runs in the forked process before exec (e.g. to set a
        resource limit that the server and its children inherit);
        pass_fds stay open in it."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        r = subprocess.run([APACHE2, "-f", str(self.conf)] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           env=env, check=False, preexec_fn=preexec_fn,
                           pass_fds=pass_fds)
        return r.returncode, r.stdout + r.stderr

    def read_pid(self):
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self, wait_ports=None, preexec_fn=None, pass_fds=()):
        """apache2 -k start; wait for the pid file and for an HTTP answer on
        each port (all ports picked by write_config unless given).
        preexec_fn, pass_fds: see apache2()."""
        rc, out = self.apache2("-k", "start", preexec_fn=preexec_fn,
                               pass_fds=pass_fds)
        if rc != 0:
            raise ServerError("apache2 -k start failed (rc %d):\n%s\n"
                              "--- error log ---\n%s"
                              % (rc, out, self.error_log()))
        pid = wait_until(lambda: self.read_pid(), START_TIMEOUT)
        if not pid:
            raise ServerError("no pid file after %ss:\n%s" % (
                START_TIMEOUT, self.error_log()))
        self.pid = pid
        for port in (self._ports.values() if wait_ports is None
                     else wait_ports):
            self.wait_http(port)
        return pid

    def wait_http(self, port, timeout=START_TIMEOUT):
        """Wait until the port gives an HTTP response (any status).  A TCP
        connect alone proves nothing: the parent's listen backlog accepts
        before any child runs."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.pid and not pid_alive(self.pid):
                raise ServerError("server pid %d died during startup:\n%s"
                                  % (self.pid, self.error_log()))
            last = http_get(port, "/", timeout=2)
            if last.status is not None:
                return last
            time.sleep(0.1)
        raise ServerError("port %d gave no HTTP answer in %ss (last: %r)\n"
                          "--- error log ---\n%s"
                          % (port, timeout, last, self.error_log()))

    def _signal_cmd(self, cmd):
        rc, out = self.apache2("-k", cmd, timeout=STOP_TIMEOUT)
        if rc != 0:
            raise ServerError("apache2 -k %s failed (rc %d): %s" %
                              (cmd, rc, out))

    def _wait_gone(self, what):
        pid = self.pid
        if pid and not wait_until(lambda: not pid_alive(pid), STOP_TIMEOUT):
            raise ServerError("server pid %d still alive %ss after %s\n"
                              "--- error log ---\n%s"
                              % (pid, STOP_TIMEOUT, what, self.error_log()))

    def stop(self):
        self._signal_cmd("stop")
        self._wait_gone("-k stop")

    def graceful_stop(self):
        self._signal_cmd("graceful-stop")
        self._wait_gone("-k graceful-stop")

    def _restart(self, cmd):
        before = self.max_generation()
        self._signal_cmd(cmd)
        gen = wait_until(lambda: (self.max_generation() or 0) > (before or 0)
                         and self.max_generation(), STOP_TIMEOUT)
        if not gen:
            raise ServerError("no child of a new generation started %ss "
                              "after -k %s (generation before: %s)\n"
                              "--- error log ---\n%s"
                              % (STOP_TIMEOUT, cmd, before, self.error_log()))
        for port in self._ports.values():
            self.wait_http(port)
        return gen

    def graceful(self):
        """-k graceful; returns the new generation once its children run."""
        return self._restart("graceful")

    def restart(self):
        """-k restart; returns the new generation once its children run."""
        return self._restart("restart")

    # -- inspection -------------------------------------------------------

    def started(self):
        """[(slot, pid, gen, pool)] from the 'Child .. started' log lines."""
        return [(int(m[0]), int(m[1]), int(m[2]), m[3])
                for m in CHILD_STARTED_RE.findall(self.error_log())]

    def stopped(self):
        """[(slot or None, pid, gen, pool or '')] from 'stopped' lines."""
        return [(int(m[0]) if m[0] else None, int(m[1]), int(m[2]), m[3])
                for m in CHILD_STOPPED_RE.findall(self.error_log())]

    def max_generation(self):
        gens = [s[2] for s in self.started()]
        return max(gens) if gens else None

    def children(self):
        """Live (non-zombie) processes whose parent is the server."""
        out = []
        if not self.pid:
            return out
        for pid in all_pids():
            st = proc_status(pid)
            if st and int(st.get("PPid", -1)) == self.pid:
                out.append(Proc(pid, st))
        return out

    def our_processes(self):
        """Live processes whose command line names this server's directory
        (the parent, its forked children, CGI scripts).  Excludes us."""
        needle = str(self.root).encode()
        me = os.getpid()
        return [pid for pid in all_pids()
                if pid != me and needle in cmdline(pid) and pid_alive(pid)]

    def kill_all(self):
        """Last resort: stop the server by its pid-file pid, then kill every
        leftover process of ours by pid."""
        pid = self.read_pid() or self.pid
        if pid and pid_alive(pid) and needle_in(pid, self.root):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not wait_until(lambda: not pid_alive(pid), STOP_TIMEOUT):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # The parent reaps its children before it exits; give stragglers
        # (e.g. a CGI still finishing) a moment, then kill them by pid.
        wait_until(lambda: not self.our_processes(), 3)
        leftovers = self.our_processes()
        for p in leftovers:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return leftovers


def needle_in(pid, root):
    return str(root).encode() in cmdline(pid)


class _PortDict(dict):
    def __init__(self, httpd, **kw):
        super().__init__(**kw)
        self.httpd = httpd

    def __missing__(self, key):
        if key.startswith("port_"):
            return self.httpd.port(key[len("port_"):])
        raise KeyError(key)


def open_tmp_path(path, base):
    """pytest makes its temp directories 0700; the test users must traverse
    them.  Open the directories pytest created (up to pytest-of-<user>)."""
    p = Path(path)
    stop_at = base.parent if base.parent.name.startswith("pytest-of-") \
        else base
    while True:
        os.chmod(p, os.stat(p).st_mode | 0o755)
        if p == stop_at or p == p.parent:
            break
        p = p.parent


def serve(httpd_factory, name, body, prepare=None, **kw):
    """Generator body for module-scoped server fixtures:
    `yield from serve(httpd_factory, "name", CONF)`.  Configures the server,
    calls prepare(h) if given, starts it, yields it, then stops it with
    -k stop; it is always killed by pid afterwards."""
    h = httpd_factory(name)
    h.write_config(body, **kw)
    if prepare:
        prepare(h)
    try:
        h.start()
        yield h
        h.stop()
    finally:
        h.kill_all()
