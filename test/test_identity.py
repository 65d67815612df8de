"""Each vhost is served under its own uid/gid, with nothing else inherited.

One server with a port per pool: pcalice, pcbob, pccarol each own a
Listen port (ChildPerUserID + AssignUserID), the main server keeps its own
port and runs as www-data."""

import os

import pytest

from pchelpers import DEFAULT_USER, http_get, serve, wait_until

CGI = "/cgi-bin/id.cgi"

POOLS = """
NumServers 1
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
ChildPerUserID pcbob pcbob
ChildPerUserID pccarol pccarol
Listen 127.0.0.1:{port_default}
Listen 127.0.0.1:{port_pcalice}
Listen 127.0.0.1:{port_pcbob}
Listen 127.0.0.1:{port_pccarol}
# Every vhost inherits this: the file is pcalice's, mode 0600.
Alias /alice-secret.txt {htdocs}/pcalice/secret.txt
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    DocumentRoot {htdocs}/pcalice
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pcbob}>
    ServerName b.test
    DocumentRoot {htdocs}/pcbob
    AssignUserID pcbob pcbob
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pccarol}>
    ServerName c.test
    DocumentRoot {htdocs}/pccarol
    AssignUserID pccarol pccarol
</VirtualHost>
"""

SECRET = "only pcalice may read this\n"

ALL = ["pcalice", "pcbob", "pccarol", "default"]


def account(users, name):
    return users[DEFAULT_USER if name == "default" else name]


@pytest.fixture(scope="module")
def pools(httpd_factory, users):
    def add_secret(h):
        secret = h.docroot("pcalice") / "secret.txt"
        secret.write_text(SECRET)
        a = users["pcalice"]
        os.chown(secret, a.uid, a.gid)
        os.chmod(secret, 0o600)
    yield from serve(httpd_factory, "pools", POOLS, prepare=add_secret)


def check_identity(r, acct):
    assert r.status == 200, r
    ident = r.ident
    want = {"uid": acct.uid, "gid": acct.gid, "euid": acct.uid,
            "egid": acct.gid}
    got = {k: int(ident[k]) for k in want}
    assert got == want, "%s expected, CGI says %s" % (acct, r.body)
    groups = {int(g) for g in ident["groups"].split()}
    assert groups == acct.groups, \
        "supplementary groups %s, expected %s" % (groups, acct.groups)
    assert int(ident["capeff"], 16) == 0, "CGI has capabilities: " + r.body


@pytest.mark.parametrize("name", ALL)
def test_vhost_runs_as_its_user(pools, users, name):
    acct = account(users, name)
    r = http_get(pools.port(name), CGI)
    check_identity(r, acct)
    # The static docroot of that vhost is the one served.
    if name != "default":
        assert http_get(pools.port(name), "/").body == name + "\n"


def test_alice_has_supplementary_group(pools, users):
    r = http_get(pools.port("pcalice"), CGI)
    assert r.status == 200, r
    groups = {int(g) for g in r.ident["groups"].split()}
    assert users["pcshared_gid"] in groups, r.body
    assert 0 not in groups, r.body
    r = http_get(pools.port("pcbob"), CGI)
    assert users["pcshared_gid"] not in \
        {int(g) for g in r.ident["groups"].split()}, r.body


def test_private_file_only_for_its_owner(pools):
    """A 0600 file of pcalice: 200 through pcalice's vhost; 403 through
    pcbob's vhost and the www-data main server (same file via Alias)."""
    r = http_get(pools.port("pcalice"), "/secret.txt")
    assert (r.status, r.body) == (200, SECRET), r
    r = http_get(pools.port("pcalice"), "/alice-secret.txt")
    assert (r.status, r.body) == (200, SECRET), r
    for other in ("pcbob", "pccarol", "default"):
        r = http_get(pools.port(other), "/alice-secret.txt")
        assert r.status == 403, "%s's vhost: %r" % (other, r)
        assert SECRET not in r.body


@pytest.mark.parametrize("name", ALL)
def test_cgi_inherits_no_descriptor(pools, name):
    """Nothing but 0/1/2: no listener, no channel, no log, no other
    tenant's socket may reach a tenant's program."""
    r = http_get(pools.port(name), CGI)
    assert r.status == 200, r
    assert r.ident["fds"] == "", "CGI of %s inherited: %s" % (
        name, r.ident["fds"])


def test_assignuserid_only_pool(httpd, users):
    """AssignUserID without a ChildPerUserID for that user: an implicit
    pool serves it, and the log says so."""
    httpd.write_config("""
ThreadsPerChild 4
ChildPerUserID pcalice pcalice
Listen 127.0.0.1:{port_pcalice}
Listen 127.0.0.1:{port_pccarol}
<VirtualHost 127.0.0.1:{port_pcalice}>
    ServerName a.test
    AssignUserID pcalice pcalice
</VirtualHost>
<VirtualHost 127.0.0.1:{port_pccarol}>
    ServerName c.test
    AssignUserID pccarol pccarol
</VirtualHost>
""")
    httpd.start()
    check_identity(http_get(httpd.port("pccarol"), CGI), users["pccarol"])
    check_identity(http_get(httpd.port("pcalice"), CGI), users["pcalice"])
    log = httpd.error_log()
    lines = [l for l in log.splitlines() if "pool" in l and "pccarol" in l]
    assert lines, "no log line names pccarol's pool:\n" + log
    # The notice reaches the error log, not only the starting terminal.
    assert "PC0102: AssignUserID pccarol pccarol (vhost c.test)" in log, log
    carol = users["pccarol"].uid
    assert any(c.uid == carol for c in httpd.children()), httpd.children()
    httpd.stop()


def test_numeric_ids_name_the_same_pool(httpd, users):
    """ChildPerUserID #uid #gid and AssignUserID by name are one pool: its
    two children serve the vhost, and no implicit extra pool appears."""
    bob = users["pcbob"]
    httpd.write_config("""
ThreadsPerChild 4
NumServers 1
ChildPerUserID #%d #%d 2
Listen 127.0.0.1:{port_pcbob}
<VirtualHost 127.0.0.1:{port_pcbob}>
    ServerName b.test
    AssignUserID pcbob pcbob
</VirtualHost>
""" % (bob.uid, bob.gid))
    httpd.start()
    check_identity(http_get(httpd.port("pcbob"), CGI), bob)
    assert wait_until(lambda: sum(c.uid == bob.uid
                                  for c in httpd.children()) == 2, 10), \
        httpd.children()
    httpd.stop()


def test_without_pools_everything_is_www_data(httpd, users):
    """No ChildPerUserID, no AssignUserID: like worker, all as User."""
    httpd.write_config("""
ThreadsPerChild 4
Listen 127.0.0.1:{port_main}
Listen 127.0.0.1:{port_vhost}
<VirtualHost 127.0.0.1:{port_vhost}>
    ServerName v.test
    DocumentRoot {htdocs}/pcbob
</VirtualHost>
""")
    httpd.start()
    www = users[DEFAULT_USER]
    for port in httpd.ports.values():
        for _ in range(3):
            check_identity(http_get(port, CGI), www)
    children = httpd.children()
    assert children and all(c.uids == [www.uid] * 4 for c in children), \
        children
    pools = {s[3] for s in httpd.started()}
    assert pools == {"%s:%s" % (DEFAULT_USER, www.group)}, pools
    httpd.stop()


def test_cgi_gets_nothing_apache2_inherited(httpd, users, tmp_path):
    """A descriptor open in whatever started apache2 (a shell, a
    deployment tool) stays out of the tenants' programs: they run as
    other users than the one who started the server."""
    secret = tmp_path / "launcher-file"
    secret.write_text("the launcher's\n")
    fd = os.open(secret, os.O_RDONLY)
    try:
        os.set_inheritable(fd, True)
        httpd.write_config(POOLS)
        httpd.start(pass_fds=(fd,))
    finally:
        os.close(fd)
    for name in ("pcalice", "default"):
        r = http_get(httpd.port(name), CGI)
        assert r.status == 200, r
        assert r.ident["fds"] == "", "CGI of %s inherited: %s" % (
            name, r.ident["fds"])
    httpd.stop()
