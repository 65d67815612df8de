"""Registers the slow marker for this directory's test."""


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test")
