"""Debian's layout: `make install` into a scratch copy of /etc/apache2,
then a2dismod mpm_event && a2enmod mpm_perchild, the conflicts with the
other MPMs, apache2ctl configtest, and the cgid refusal with its remedy.
The checks live in debian/check-a2enmod.sh (which never touches the real
/etc/apache2)."""

import os
import subprocess

from pchelpers import REPO


def test_a2enmod_and_configtest(module):
    script = os.path.join(REPO, "debian", "check-a2enmod.sh")
    r = subprocess.run(["sh", script, str(module.path)], capture_output=True,
                       text=True, timeout=300, check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "FAIL" not in out, out
    # The configtest part only runs with a built module: make sure it did.
    assert "apache2ctl configtest with mod_cgi" in out, out
