"""Test session wiring: each stand-in and service brings its fixtures from tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.redis",
    "tests.fixtures.github",
    "tests.fixtures.temporal",
    "tests.fixtures.registry",
    "tests.fixtures.kube",
    "tests.fixtures.api",
    "tests.fixtures.stack",
]
