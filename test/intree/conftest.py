"""Local pytest configuration for the in-tree httpd build tests.

Registers the ``slow`` marker so that ``-m "not slow"`` can leave these
(multi-minute, whole-httpd) builds out of quick runs without pytest
warning about an unknown marker.  Registering a marker twice (should a
parent conftest also do it) is harmless.
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: long-running test (builds httpd 2.4 from source with perchild in-tree)",
    )
