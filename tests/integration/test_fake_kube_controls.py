"""The fake cluster's controls, seen through the official client: how long a rollout takes to
start after a spec change."""

# The generated models type every field Optional; these tests read fields the server sends.
# mypy: disable-error-code="union-attr,index,arg-type,misc"

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from kubernetes import client, config

from activities.kube import KubeClient
from sandbox.kube import FakeKubernetes
from tests.integration.test_kube_client import digest_image, environment

T = TypeVar("T")


@pytest.fixture
def apps(fake_kube: FakeKubernetes) -> client.AppsV1Api:
    return client.AppsV1Api(
        config.new_client_from_config(
            config_file=str(fake_kube.kubeconfig_path), context=fake_kube.context
        )
    )


@pytest.fixture
def core(fake_kube: FakeKubernetes) -> client.CoreV1Api:
    return client.CoreV1Api(
        config.new_client_from_config(
            config_file=str(fake_kube.kubeconfig_path), context=fake_kube.context
        )
    )


def eventually(probe: Callable[[], T | None], what: str, within: float = 15) -> T:
    """Poll until `probe` gives something; the controllers move on their own clock."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def restarts(core: client.CoreV1Api, namespace: str) -> int:
    pods = core.list_namespaced_pod(namespace).items
    return sum(s.restart_count for p in pods for s in p.status.container_statuses or [])


def test_a_spec_change_waits_the_rollout_delay_whatever_else_is_scheduled(
    fake_kube: FakeKubernetes,
    kube_client: KubeClient,
    kube_namespace: str,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
) -> None:
    # A crash-looping Deployment: the controller keeps coming back to count its restarts.
    crashing, fixed = digest_image("crash-loop"), digest_image("fixed")
    fake_kube.set_failing_images([crashing])
    kube_client.apply_app_environment(environment(kube_namespace, crashing, replicas=1))
    eventually(lambda: restarts(core, kube_namespace) or None, "a first restart")

    fake_kube.set_rollout_delay(30)
    generation = kube_client.set_image(kube_namespace, "shop", fixed)
    counted = restarts(core, kube_namespace)

    def looked_again() -> bool | None:
        deployment = apps.read_namespaced_deployment("shop", kube_namespace)
        if deployment.status.observed_generation == generation:
            return True  # the new template was rolled out: what the delay forbids
        return True if restarts(core, kube_namespace) > counted else None

    eventually(looked_again, "the controller to look at the Deployment again")
    deployment = apps.read_namespaced_deployment("shop", kube_namespace)
    assert deployment.status.observed_generation == generation - 1
    images = {p.spec.containers[0].image for p in core.list_namespaced_pod(kube_namespace).items}
    assert images == {crashing}
