"""What `apache2 -V` and `apache2 -t` say about a perchild configuration.

Each broken configuration must be refused (non-zero exit) with a message
that names the directive and says why; the valid ones must pass."""

import re
from pathlib import Path

import pytest

from pchelpers import BASE_MODULES

BASE = """
Listen 127.0.0.1:{port_a}
ChildPerUserID pcalice pcalice
<VirtualHost 127.0.0.1:{port_a}>
    ServerName a.test
    {assign}
</VirtualHost>
{global_extra}
"""


def config(httpd, global_extra="", assign="AssignUserID pcalice pcalice",
           **kw):
    body = BASE.replace("{global_extra}", global_extra) \
               .replace("{assign}", assign)
    httpd.write_config(body, **kw)


def config_test(httpd):
    rc, out = httpd.apache2("-t")
    # The server's own paths (pytest-0, line numbers) must not satisfy a
    # "reason" pattern by accident.
    return rc, out.replace(str(httpd.root), "<root>")


def test_valid_config_passes(httpd):
    config(httpd)
    rc, out = config_test(httpd)
    assert rc == 0, out
    assert "Syntax OK" in out


def test_all_directives_and_aliases_pass(httpd, users):
    """Every directive of the MPM in its valid forms, including numeric
    #uid/#gid and the 2.0-era aliases."""
    bob = users["pcbob"]
    config(httpd, global_extra="""
NumServers 2
ThreadsPerChild 4
StartThreads 4
ThreadLimit 16
MaxThreadsPerChild 16
ServerLimit 16
MaxConnectionsPerChild 100
MaxRequestsPerChild 100
ChildPerUserID #%d #%d 2
ChildPerUserID pccarol pccarol 1
""" % (bob.uid, bob.gid))
    rc, out = config_test(httpd)
    assert rc == 0, out
    assert "Syntax OK" in out


def test_assignment_hidden_in_ifmodule_itk_is_pointed_out(httpd):
    """Control panels write AssignUserID inside <IfModule mpm_itk_module>;
    httpd skips that block under perchild, and the vhost would run as
    User/Group without a word.  With no AssignUserID seen at all,
    `apache2 -t` says so (PC0109); with one, it does not."""
    config(httpd, assign="<IfModule mpm_itk_module>\n"
                         "        AssignUserID pcalice pcalice\n"
                         "    </IfModule>")
    rc, out = config_test(httpd)
    assert rc == 0, out
    assert "PC0109: no virtual host has AssignUserID" in out, out
    assert "IfModule mpm_itk_module" in out, out
    config(httpd)
    rc, out = config_test(httpd)
    assert rc == 0 and "PC0109" not in out, out


def readme_config_block():
    """The "Configuration in one screen" block of README.md, as written."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    m = re.search(r"```apache\n(.*?)```", readme, re.S)
    assert m, "README.md has no apache configuration block"
    return m.group(1)


def test_readme_config_block_passes(httpd, users, dispatch_user):
    """An admin copies the README's example: it must pass as written,
    with only the user names and the address changed (and its optional
    lines switched on)."""
    block = readme_config_block()
    for name, real in (("alice", "pcalice"), ("bob", "pcbob"),
                       ("pcdispatch", dispatch_user.name)):
        block = block.replace("%s %s" % (name, name), "%s %s" % (real, real))
    block = block.replace("*:80", "127.0.0.1:{port_a}")
    block = re.sub(r"^#(DispatchUserID|ListenCoresBucketsRatio|"
                   r"PerchildCPUAffinity)", r"\1", block, flags=re.M)
    httpd.write_config("Listen 127.0.0.1:{port_a}\n" + block)
    rc, out = config_test(httpd)
    assert rc == 0, out
    assert "Syntax OK" in out


def test_V_reports_perchild(httpd):
    config(httpd)
    rc, out = httpd.apache2("-V")
    assert rc == 0, out
    assert re.search(r"^Server MPM:\s+perchild\s*$", out, re.M), out
    assert re.search(r"^\s+threaded:\s+yes", out, re.M), out


UNKNOWN = r"pcnosuch\w+|unknown|no such|not found|does not exist|invalid"
ROOT = r"\broot\b|\b[ug]id\s*=?\s*0\b|#0\b|\b0\b|privileged"
DUPLICATE = r"duplicate|already|twice|more than once|repeated|only once|" \
    r"only one|once per"
NUMBER = r"-1|\b0\b|\babc\b|\bx\b|integer|number|numeric|positive|" \
    r"at least|greater|between|range|invalid"

# (id, global lines, the vhost's AssignUserID lines (empty: the valid one),
# directive, reason pattern)
BAD = [
    ("unknown-user", "ChildPerUserID pcnosuchuser pcalice", "",
     "ChildPerUserID", UNKNOWN),
    ("unknown-group", "ChildPerUserID pcbob pcnosuchgroup", "",
     "ChildPerUserID", UNKNOWN),
    ("assign-unknown-user", "", "AssignUserID pcnosuchuser pcalice",
     "AssignUserID", UNKNOWN),
    ("assign-unknown-group", "", "AssignUserID pcalice pcnosuchgroup",
     "AssignUserID", UNKNOWN),
    ("uid0-root-root", "ChildPerUserID root root", "",
     "ChildPerUserID", ROOT),
    ("uid0-name", "ChildPerUserID root pcbob", "", "ChildPerUserID", ROOT),
    ("uid0-numeric", "ChildPerUserID #0 pcbob", "", "ChildPerUserID", ROOT),
    ("gid0-name", "ChildPerUserID pcbob root", "", "ChildPerUserID", ROOT),
    ("gid0-numeric", "ChildPerUserID pcbob #0", "", "ChildPerUserID", ROOT),
    ("assign-uid0", "", "AssignUserID root root", "AssignUserID", ROOT),
    ("duplicate-childperuserid", "ChildPerUserID pcalice pcalice", "",
     "ChildPerUserID", DUPLICATE),
    ("two-assign-in-vhost", "",
     "AssignUserID pcalice pcalice\n    AssignUserID pcbob pcbob",
     "AssignUserID", DUPLICATE),
    ("assign-outside-vhost", "AssignUserID pcbob pcbob", "",
     "AssignUserID", r"VirtualHost"),
    ("threads-0", "ThreadsPerChild 0", "", "ThreadsPerChild", NUMBER),
    ("threads-negative", "ThreadsPerChild -1", "", "ThreadsPerChild", NUMBER),
    ("threads-abc", "ThreadsPerChild abc", "", "ThreadsPerChild", NUMBER),
    ("serverlimit-0", "ServerLimit 0", "", "ServerLimit", NUMBER),
    ("children-0", "ChildPerUserID pcbob pcbob 0", "", "ChildPerUserID",
     NUMBER),
    ("children-x", "ChildPerUserID pcbob pcbob x", "", "ChildPerUserID",
     NUMBER),
    ("children-over-max",
     "ChildPerUserID pcbob pcbob 15000\nChildPerUserID pccarol pccarol 15000",
     "", "ChildPerUserID", r"more than the 20000"),
    ("queue-timeout-abc", "PerchildQueueTimeout abc", "",
     "PerchildQueueTimeout", NUMBER),
    ("queue-timeout-negative", "PerchildQueueTimeout -1", "",
     "PerchildQueueTimeout", NUMBER),
    ("queue-timeout-in-vhost", "",
     "AssignUserID pcalice pcalice\n    PerchildQueueTimeout 5",
     "PerchildQueueTimeout", r"VirtualHost"),
    ("affinity-value", "PerchildCPUAffinity sometimes", "",
     "PerchildCPUAffinity", r"On or Off"),
    ("affinity-in-vhost", "",
     "AssignUserID pcalice pcalice\n    PerchildCPUAffinity On",
     "PerchildCPUAffinity", r"VirtualHost"),
    ("worker-maxrequestworkers", "MaxRequestWorkers 150", "",
     "MaxRequestWorkers", r"no meaning under perchild.*ThreadsPerChild"),
    ("worker-startservers", "StartServers 3", "", "StartServers",
     r"no meaning under perchild"),
    ("prefork-maxspareservers", "MaxSpareServers 10", "", "MaxSpareServers",
     r"no meaning under perchild"),
    ("itk-maxclientsvhost", "",
     "AssignUserID pcalice pcalice\n    MaxClientsVHost 50",
     "MaxClientsVHost", r"no meaning under perchild.*ThreadsPerChild"),
    ("itk-assignuseridexpr", "",
     "AssignUserID pcalice pcalice\n    <Directory /tmp>\n"
     "        AssignUserIDExpr \"pcalice\"\n    </Directory>",
     "AssignUserIDExpr", r"no meaning under perchild.*fixed per vhost"),
    ("itk-limituidrange", "LimitUIDRange 1000 2000", "", "LimitUIDRange",
     r"no meaning under perchild.*root"),
    ("assign-in-directory", "",
     "AssignUserID pcalice pcalice\n    <Directory /tmp>\n"
     "        AssignUserID pcbob pcbob\n    </Directory>",
     "AssignUserID", r"no per-directory identity"),
]


@pytest.mark.parametrize("global_extra,vhost_lines,directive,reason",
                         [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_refused(httpd, global_extra, vhost_lines, directive,
                            reason):
    config(httpd, global_extra=global_extra,
           assign=vhost_lines or "AssignUserID pcalice pcalice")
    rc, out = config_test(httpd)
    print(out)
    assert rc != 0, "accepted:\n%s\n%s" % (global_extra or vhost_lines, out)
    assert "Syntax OK" not in out, out
    assert "Invalid command" not in out, out
    assert directive in out, "message does not name %s:\n%s" % (directive,
                                                                 out)
    assert re.search(reason, out, re.I), \
        "message does not say why (%s):\n%s" % (reason, out)


@pytest.mark.parametrize("order", ["perchild-first", "worker-first"])
def test_second_mpm_refused(httpd, order):
    if order == "perchild-first":
        config(httpd, extra_modules=("mpm_worker",))
    else:
        config(httpd, pre_modules=("mpm_worker",))
    rc, out = config_test(httpd)
    assert rc != 0, out
    assert re.search(r"AH00534|More than one MPM", out), out


def test_mod_cgid_refused(httpd):
    modules = tuple(m for m in BASE_MODULES if m != "cgi") + ("cgid",)
    config(httpd, modules=modules)
    rc, out = config_test(httpd)
    assert rc != 0, "perchild accepted mod_cgid:\n" + out
    # mod_cgid's daemon would run every CGI as User: the message must point
    # to mod_cgi ("mod_cgi" itself, not only "mod_cgid").
    assert re.search(r"mod_cgi\b", out), out
    # ... in this server's own configuration tree (ServerRoot), not a fixed
    # /etc/apache2.
    assert "<root>/mods-enabled/" in out, out


def implicit_vhosts(users_and_hosts):
    out = []
    for user, host in users_and_hosts:
        out.append("<VirtualHost 127.0.0.1:{port_a}>\n    ServerName %s\n"
                   "    AssignUserID %s %s\n</VirtualHost>" % (host, user,
                                                                user))
    return "\n".join(out)


def implicit_pool_lines(httpd, users_and_hosts):
    """The PC0102 lines of apache2 -t for these AssignUserID-only vhosts."""
    config(httpd, global_extra=implicit_vhosts(users_and_hosts))
    rc, out = config_test(httpd)
    assert rc == 0, out
    return [l for l in out.splitlines() if "PC0102" in l]


def test_implicit_pools_named_briefly(httpd, users):
    """Identities with AssignUserID but no ChildPerUserID get implicit
    pools, and apache2 -t says so: one line each, naming the first vhost
    in the configuration, for a few; one line for many (a host moved from
    mpm-itk has hundreds, and -t would print them all)."""
    lines = implicit_pool_lines(httpd, [("pcbob", "bob1.test"),
                                        ("pcbob", "bob2.test"),
                                        ("pccarol", "carol.test")])
    assert len(lines) == 2, lines
    assert "pcbob pcbob (vhost bob1.test)" in lines[0], lines
    assert "pccarol pccarol (vhost carol.test)" in lines[1], lines

    many = ["#%d" % (21000 + i) for i in range(1, 13)]
    lines = implicit_pool_lines(httpd, [(u, "u%s.test" % u[1:])
                                        for u in many])
    assert len(lines) == 1, lines
    assert "12 AssignUserID identities" in lines[0], lines
    assert "#21001:#21001, #21002:#21002" in lines[0], lines


def test_S_names_each_vhosts_user(httpd, users):
    """apache2 -S lists the vhosts; an administrator also wants to see
    which user serves each.  A ChildPerUserID no vhost uses is warned
    about (a typo in it or in an AssignUserID, most likely)."""
    config(httpd, global_extra="ChildPerUserID pccarol pccarol 2\n"
           + implicit_vhosts([("pcbob", "bob1.test"),
                              ("pcbob", "bob2.test")]))
    rc, out = httpd.apache2("-S")
    assert rc == 0, out
    pools = out[out.index("perchild pools:"):].splitlines()[1:]
    rows = {l.split()[0]: l for l in pools if l.startswith("    ")}
    assert re.search(r"www-data:www-data\s+1 child\s+User/Group: main "
                     r"server$", rows["www-data:www-data"]), rows
    assert rows["pcalice:pcalice"].endswith("ChildPerUserID: a.test"), rows
    assert rows["pcbob:pcbob"].endswith("implicit: bob1.test, bob2.test"), \
        rows
    assert rows["pccarol:pccarol"].endswith("(no vhost)"), rows
    rc, out = config_test(httpd)
    assert rc == 0 and "PC0108: ChildPerUserID pccarol pccarol" in out, out
    assert "PC0108: ChildPerUserID pcalice" not in out, out


def test_dispatch_all_without_dispatch_pool_is_pointed_out(
        httpd, dispatch_user):
    """PerchildDispatchAll On only changes who accepts when a dispatch pool
    exists: alone, `apache2 -t` passes but says it does nothing."""
    config(httpd, global_extra="PerchildDispatchAll On\n")
    rc, out = config_test(httpd)
    assert rc == 0 and "Syntax OK" in out, out
    assert "PC0118: PerchildDispatchAll On has no effect" in out, out
    config(httpd, global_extra="PerchildDispatchAll On\nDispatchUserID "
                               "%s %s\n" % (dispatch_user.name,
                                             dispatch_user.group))
    rc, out = config_test(httpd)
    assert rc == 0 and "PC0118" not in out, out
