"""A graceful restart hands each tenant over: the old generation's
children of a pool serve until the new generation's first child of the
same user is forked (pc_pods.c).  With many tenants, reading the
configuration again and forking a child each take a while; every old
child used to be told to stop at once, and a tenant late in the list had
its site wait until its new child came, seconds at a thousand tenants.

And a worker woken for a connection just as its child stops serves it:
each connection wakes one waiting worker of one child, and one that left
without it stranded the client until the next connection came.  The
probe here sends one request at a time, so a stranded one would hang."""

import re
import shutil
import subprocess
import threading
import time

from pchelpers import REPO, http_get, numeric_tenants, pid_alive, wait_until

FIRST_ID = 31001
TENANTS = 150


def tenants(n):
    return """
ThreadsPerChild 2
Listen 127.0.0.1:{port_web}
LogFormat "%v %P %>s %{{usec}}t" probe
CustomLog "{root}/logs/probe_log" probe
""" + numeric_tenants(n, FIRST_ID)


def pids_of(httpd, uid):
    return {c.pid for c in httpd.children() if c.uids[0] == uid}


def log_time(line):
    """Seconds since the epoch of an error log line's timestamp."""
    stamp = line[1:line.index("]")]
    day, frac = stamp.rsplit(" ", 1)[0], stamp.rsplit(" ", 1)[1]
    whole, usec = day.split(".")
    t = time.mktime(time.strptime(whole + " " + frac,
                                  "%a %b %d %H:%M:%S %Y"))
    return t + int(usec) / 1e6


def forked_at(httpd, uid, gen):
    for line in httpd.error_log().splitlines():
        if re.search(r"PC0203: .* gen %d, pool #%d:" % (gen, uid), line):
            return log_time(line)
    return None


def slot_order(httpd):
    """The tenants' uids in the order of their pools' slots, which is
    the order the parent forks them in."""
    slots = {}
    for m in re.finditer(r"PC0203: Child (\d+) started: pid \d+, gen 0, "
                         r"pool #(\d+):", httpd.error_log()):
        slots.setdefault(int(m.group(2)), int(m.group(1)))
    return sorted(slots, key=slots.get)


def test_old_children_serve_until_their_successor_is_forked(httpd):
    httpd.write_config(tenants(TENANTS))
    httpd.start()
    port = httpd.port("web")
    assert wait_until(lambda: len(slot_order(httpd)) == TENANTS, 20), \
        httpd.error_log()[-3000:]
    order = slot_order(httpd)
    first_uid, last_uid = order[0], order[-1]
    first = "t%d.test" % (first_uid - FIRST_ID)
    last = "t%d.test" % (last_uid - FIRST_ID)
    assert wait_until(lambda: pids_of(httpd, last_uid), 20)
    old_first = pids_of(httpd, first_uid)
    old_last = pids_of(httpd, last_uid)
    statuses = []
    halt = threading.Event()

    def probe():
        while not halt.is_set():
            for host in (first, last):
                r = http_get(port, "/", host=host, timeout=20)
                statuses.append((host, r.status or r.error))

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(statuses) >= 20, 10)
        httpd.graceful()
        assert wait_until(lambda: pids_of(httpd, last_uid) - old_last, 20)
        n = len(statuses)
        wait_until(lambda: len(statuses) >= n + 20, 10)
    finally:
        halt.set()
        t.join(30)
    assert statuses and all(s == 200 for _, s in statuses), \
        [(i, len(statuses), x) for i, x in enumerate(statuses)
         if x[1] != 200][:5]
    # The last tenant's old child still served after the first tenant's
    # new child was forked: it was not told to stop before its own
    # successor came.
    first_new = forked_at(httpd, first_uid, 1)
    assert first_new is not None, httpd.error_log()[-3000:]
    lines = [ln.split() for ln in
             (httpd.root / "logs" / "probe_log").read_text().splitlines()]
    late = [ln for ln in lines if ln[0] == last and int(ln[1]) in old_last
            and int(ln[3]) / 1e6 > first_new]
    assert late, (first_new, [ln for ln in lines if ln[0] == last][-10:])
    # And then it goes.
    assert wait_until(lambda: not any(pid_alive(p) for p in old_last), 20)
    httpd.stop()



def test_graceful_restart_into_another_build_stops_the_old_children(
        httpd, tmp_path):
    """A package upgrade then `apache2ctl graceful`: a perchild whose
    retained data has another layout cannot hand the old children over,
    so their pipes close with httpd's log pool and they stop, as under
    worker.  (They used to serve on, unstoppable, next to the new
    generation.)"""
    src = tmp_path / "src"
    src.mkdir()
    for f in list(REPO.glob("*.c")) + list(REPO.glob("*.h")):
        shutil.copy(f, src)
    header = src / "perchild.h"
    text = header.read_text()
    anchor = "} pc_retained_t;"
    assert anchor in text
    header.write_text(text.replace(anchor, "    long other_layout;\n"
                                   + anchor, 1))
    r = subprocess.run(["apxs", "-c", "-o", "mod_mpm_perchild.la"]
                       + sorted(p.name for p in src.glob("*.c")),
                       cwd=str(src), capture_output=True, text=True,
                       timeout=900, check=False)
    other = src / ".libs" / "mod_mpm_perchild.so"
    assert r.returncode == 0 and other.exists(), r.stdout + r.stderr

    httpd.write_config(tenants(3))
    httpd.start()
    port = httpd.port("web")
    tenant_uids = {FIRST_ID + i for i in range(3)}
    assert wait_until(lambda: tenant_uids <= {c.uids[0] for c in
                                              httpd.children()}, 10)
    old = {c.pid for c in httpd.children()}
    httpd.conf.write_text(httpd.conf.read_text().replace(
        str(httpd.module.path), str(other)))
    rc, out = httpd.apache2("-k", "graceful")
    assert rc == 0, out
    assert wait_until(lambda: not any(pid_alive(p) for p in old), 15), \
        httpd.error_log()[-2000:]
    assert wait_until(lambda: tenant_uids <= {c.uids[0] for c in
                                              httpd.children()}, 10)
    assert http_get(port, "/", host="t1.test").status == 200
    httpd.stop()
