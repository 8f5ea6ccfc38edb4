"""The stack crash tests run on: worker processes they may kill, short step timeouts, and the
registry behind a proxy that can hold its answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.registry_proxy import RegistryProxy
from tests.chaos.crashing import Workers
from tests.fixtures.stack import Stack


@pytest.fixture
def crash_stack(stack_without_worker: Stack, registry_proxy: RegistryProxy) -> Iterator[Stack]:
    """Short step timeouts and a short sticky queue timeout, so work a killed worker held is
    taken up by the next one within seconds; the worker reaches the registry through the
    proxy."""
    stack = stack_without_worker
    settings = stack.settings
    settings.step_timeout_seconds = 5
    settings.heartbeat_timeout_seconds = 3
    settings.sticky_queue_timeout_seconds = 1
    settings.registry_url = registry_proxy.url
    yield stack
    stack.github.holds.release_all()


@pytest.fixture
def workers(crash_stack: Stack, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(crash_stack, tmp_path)
    yield started
    started.stop()
