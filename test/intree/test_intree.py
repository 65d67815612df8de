"""Build perchild inside a real httpd 2.4 source tree (Debian's apache2
source package) and check that the result really uses it.

Both tests drive test/intree/build-intree.sh, which needs root the first
time on a machine (apt-get install / apt-get source) and takes about a
minute per variant with a warm cache on two cores.
"""

import os
import pathlib
import re
import subprocess

import pytest

pytestmark = pytest.mark.slow

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRIPT = HERE / "build-intree.sh"
# fresh machine: apt-get update/install/source + two full httpd builds
TIMEOUT = int(os.environ.get("PERCHILD_INTREE_TIMEOUT", "2400"))

MPM_LINE = re.compile(r"^\s*Server MPM:\s+perchild\s*$", re.MULTILINE)


def run_build(*args):
    if not (REPO / "mpm_perchild.c").exists():
        pytest.skip("no mpm_perchild.c at the repository root yet")
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=str(REPO),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    # shown by pytest when the test fails
    print(proc.stdout)
    assert proc.returncode == 0, (
        f"build-intree.sh {' '.join(args)} exited {proc.returncode}; "
        "last lines:\n" + "\n".join(proc.stdout.splitlines()[-40:])
    )
    return proc.stdout


def test_static_build_reports_perchild():
    out = run_build("--static")
    assert "perchild sources compile without warnings" in out
    assert MPM_LINE.search(out), "httpd -V did not say 'Server MPM:     perchild'"


def test_shared_all_builds_mod_mpm_perchild():
    out = run_build("--shared-all")
    assert "mod_mpm_perchild.so (exports mpm_perchild_module)" in out
    assert "perchild sources compile without warnings" in out
    assert MPM_LINE.search(out), (
        "httpd -V with mod_mpm_perchild.so loaded did not say "
        "'Server MPM:     perchild'"
    )
