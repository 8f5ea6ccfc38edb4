"""Test session wiring: each stand-in and service brings its fixtures from tests/fixtures/."""

import pytest

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.redis",
    "tests.fixtures.github",
    "tests.fixtures.temporal",
    "tests.fixtures.registry",
    "tests.fixtures.kube",
    "tests.fixtures.api",
    "tests.fixtures.stack",
    "tests.fixtures.browser",
]


# Tests that count in the machine's one Redis (failed authentications by client address, rate
# limits shared between replicas): under `make test`, which runs the suite on two workers, they
# run on one worker, one after another, so no test's counts reach another's.
SHARED_REDIS = {
    "tests.integration.api.test_failed_auth_limits",
    "tests.integration.api.test_rate_limit_processes",
    "tests.integration.api.test_rate_limits",
    "tests.integration.api.test_shared_rate_limits",
    "tests.integration.test_doctor_rate_limits",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A file's tests run on one worker (`--dist loadgroup`), so its module fixtures are made
    once; the files of SHARED_REDIS share one group."""
    for item in items:
        module = item.module.__name__ if isinstance(item, pytest.Function) else item.nodeid
        group = "shared-redis" if module in SHARED_REDIS else module
        item.add_marker(pytest.mark.xdist_group(group))
