"""Builds and runs the C unit tests of test/unit/ (pc_channel.c) as part of
the pytest run.  Self-contained: uses no fixture of test/conftest.py."""

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
        run = subprocess.run(
            [exe], cwd=tmp, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True, timeout=900)
        out = run.stdout
        assert run.returncode == 0, \
            "test_channel exited with %d:\n%s" % (run.returncode, out)
        last = out.strip().splitlines()[-1] if out.strip() else ""
        assert last.endswith(" 0 failed"), \
            "unexpected summary %r:\n%s" % (last, out)
