"""Session fixtures for the perchild suite: the built module, the test
users, and servers in fresh temporary directories (see pchelpers.py)."""

import os

import pytest

from pchelpers import Httpd, Module, build_module, ensure_dispatch_user, \
    ensure_users, open_tmp_path


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: long-running test (the in-tree httpd build); "
        "run separately with -m slow")


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("the perchild tests must run as root")


@pytest.fixture(scope="session")
def module():
    """The MPM built from the repository (make, else apxs)."""
    _require_root()
    return Module(build_module())


@pytest.fixture(scope="session")
def users():
    _require_root()
    return ensure_users()


@pytest.fixture(scope="session")
def dispatch_user():
    """pcdisp, the user of a DispatchUserID pool (created if absent)."""
    _require_root()
    return ensure_dispatch_user()


@pytest.fixture(scope="session")
def httpd_factory(tmp_path_factory, module, users):
    """make(name) -> a new Httpd in a fresh directory.  Every server made is
    killed (by pid) at the end of the session at the latest."""
    made = []

    def make(name="httpd"):
        root = tmp_path_factory.mktemp(name)
        open_tmp_path(root, tmp_path_factory.getbasetemp())
        h = Httpd(root, module, users)
        made.append(h)
        return h

    yield make
    for h in made:
        h.kill_all()


@pytest.fixture
def httpd(httpd_factory):
    """A fresh, not yet configured server, killed when the test ends; the
    teardown fails if processes of it had to be killed after its parent
    was gone."""
    h = httpd_factory("httpd")
    yield h
    leftovers = h.kill_all()
    assert not leftovers, "processes left behind: %s" % leftovers

