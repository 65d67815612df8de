"""httpd's own core and http1 pytest suites: perchild at parity with
worker, also with a dispatch pool accepting every listener (so every
request crosses a hand-off).  Slow: runs after the fast suite in CI."""

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.slow


def test_core_and_http1_at_parity_with_worker():
    script = os.path.join(HERE, "run-httpd-suite.sh")
    r = subprocess.run(["bash", script, "--dispatch"], capture_output=True,
                       text=True, timeout=2400, check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    # The comparison table must list every run: a suite that silently did
    # not run is a failure, not parity.
    for run in ("worker", "perchild", "perchild-dispatch"):
        assert run in out, out[-3000:]
