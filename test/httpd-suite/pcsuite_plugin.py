"""pytest plugin that run-httpd-suite.sh loads into httpd's own suites
(-p pcsuite_plugin).  It changes no test: it only records, as a junit
property 'schemes', which URL schemes a test's body asked curl for
(http, https), so that compare.py can tell the requests a dispatch pool
cannot pass on (TLS) from the others."""

import pytest

from pyhttpd.env import HttpdTestEnv

_schemes = set()
_orig_curl_raw = HttpdTestEnv.curl_raw


def _curl_raw(self, urls, *args, **kwargs):
    for u in (urls if isinstance(urls, list) else [urls]):
        _schemes.add(str(u).split(":", 1)[0])
    return _orig_curl_raw(self, urls, *args, **kwargs)


HttpdTestEnv.curl_raw = _curl_raw


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _schemes.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "call":
        item.user_properties.append(("schemes", " ".join(sorted(_schemes))))
    yield
