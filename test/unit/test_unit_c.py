"""Builds and runs the C unit tests of test/unit/ (pc_channel.c, pc_hint.c,
pc_sni.c, pc_h2c.c) as part of the pytest run.  Self-contained: uses no fixture of
test/conftest.py."""

import os
import shlex
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))


def _compiler():
    cc = os.environ.get("CC")
    if cc:
        return shlex.split(cc)
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def _config(tool, *args):
    out = subprocess.run([tool] + list(args), stdout=subprocess.PIPE,
                         universal_newlines=True, check=True)
    return shlex.split(out.stdout)


def _run(exe, tmp):
    run = subprocess.run(
        [exe], cwd=tmp, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=900)
    out = run.stdout
    name = os.path.basename(exe)
    assert run.returncode == 0, \
        "%s exited with %d:\n%s" % (name, run.returncode, out)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    assert last.endswith(" 0 failed"), \
        "unexpected summary %r:\n%s" % (last, out)


def _httpd_unit(name, source):
    """Builds test/unit/<name>.c with ../../<source> against httpd's and
    APR's headers (apache2-dev) and runs it."""
    cc = _compiler()
    assert cc, "no C compiler found (cc, gcc, clang or $CC)"
    flags = ["-I" + TOP, "-I" + _config("apxs", "-q", "INCLUDEDIR")[0]]
    flags += _config("apr-1-config", "--includes", "--cppflags")
    with tempfile.TemporaryDirectory(prefix="perchild-unit-") as tmp:
        exe = os.path.join(tmp, name)
        build = subprocess.run(
            cc + ["-Wall", "-Wextra", "-O1", "-g"] + flags + [
                "-o", exe, os.path.join(HERE, name + ".c"),
                os.path.join(TOP, source), "-lpthread"]
            + _config("apr-1-config", "--link-ld"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=300)
        assert build.returncode == 0, \
            "building %s failed:\n%s" % (name, build.stdout)
        _run(exe, tmp)


def test_hint_c():
    """pc_hint.c: which request heads may be passed on by their Host, and
    the per-thread cache of httpd's decisions (needs apache2-dev)."""
    _httpd_unit("test_hint", "pc_hint.c")


def test_sni_c():
    """pc_sni.c: the server name of a TLS ClientHello, from cut-short and
    corrupted records as well as good ones."""
    _httpd_unit("test_sni", "pc_sni.c")


def test_h2c_c():
    """pc_h2c.c: the first request's host of a cleartext HTTP/2 connection
    (HPACK's Huffman code against RFC 7541's examples, cut-short and
    corrupted frames)."""
    _httpd_unit("test_h2c", "pc_h2c.c")


def test_channel_c():
    cc = _compiler()
    assert cc, "no C compiler found (cc, gcc, clang or $CC)"
    with tempfile.TemporaryDirectory(prefix="perchild-unit-") as tmp:
        exe = os.path.join(tmp, "test_channel")
        build = subprocess.run(
            cc + ["-Wall", "-Wextra", "-O1", "-g", "-o", exe,
                  os.path.join(HERE, "test_channel.c"),
                  os.path.join(TOP, "pc_channel.c")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=300)
        assert build.returncode == 0, \
            "building test_channel failed:\n" + build.stdout
        _run(exe, tmp)
