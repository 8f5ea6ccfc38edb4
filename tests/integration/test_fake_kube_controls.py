"""The fake cluster's controls, seen through the official client: how long a rollout takes to
start after a spec change, and containers that fail some time after they became ready."""

# The generated models type every field Optional; these tests read fields the server sends.
# mypy: disable-error-code="union-attr,index,arg-type,misc"

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from kubernetes import client, config, watch

from clients.kube import KubeClient
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


def test_a_container_set_to_fail_after_running_turns_unready_and_crash_loops(
    fake_kube: FakeKubernetes,
    kube_client: KubeClient,
    kube_namespace: str,
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
) -> None:
    image = digest_image("fails-later")
    fake_kube.fail_after(image, 1)
    since = core.list_namespaced_pod(kube_namespace).metadata.resource_version
    kube_client.apply_app_environment(environment(kube_namespace, image, replicas=1))
    kube_client.wait_for_rollout(kube_namespace, "shop", 20)

    # Every change of the pod in order, so the moment it stops is seen however fast it restarts.
    stopped = None
    for event in watch.Watch().stream(
        core.list_namespaced_pod, kube_namespace, resource_version=since, timeout_seconds=10
    ):
        pod = event["object"]
        if pod.status.container_statuses and not pod.status.container_statuses[0].ready:
            stopped = pod
            break
    assert stopped is not None, "the container never failed"
    (status,) = stopped.status.container_statuses
    assert status.image == image and not status.started and status.restart_count == 0
    assert status.state.waiting.reason == "CrashLoopBackOff"
    exited = status.last_state.terminated
    assert (exited.exit_code, exited.reason) == (1, "Error")
    assert exited.container_id == status.container_id
    # It ran (and was ready) for the second it was given; timestamps count whole seconds.
    assert exited.started_at == stopped.status.start_time
    assert exited.finished_at - exited.started_at >= datetime.timedelta(seconds=1)
    conditions = {c.type: c for c in stopped.status.conditions}
    for kind in ("Ready", "ContainersReady"):
        assert (conditions[kind].status, conditions[kind].reason) == ("False", "ContainersNotReady")
        assert conditions[kind].last_transition_time == exited.finished_at
    assert stopped.status.phase == "Running"

    eventually(lambda: restarts(core, kube_namespace) or None, "the container to restart")
    (pod,) = core.list_namespaced_pod(kube_namespace).items
    assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    deployment = apps.read_namespaced_deployment("shop", kube_namespace)
    assert not deployment.status.available_replicas and not deployment.status.ready_replicas
    assert deployment.status.unavailable_replicas == 1
    assert {c.type: (c.status, c.reason) for c in deployment.status.conditions} == {
        "Available": ("False", "MinimumReplicasUnavailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    diagnosis = kube_client.diagnose(kube_namespace, "shop")
    assert not diagnosis.healthy
    assert "CrashLoopBackOff" in diagnosis.summary


def test_fail_after_reaches_containers_already_running(
    fake_kube: FakeKubernetes, kube_client: KubeClient, kube_namespace: str
) -> None:
    image, other = digest_image("runs-then-fails"), digest_image("keeps-running")
    kube_client.apply_app_environment(environment(kube_namespace, image, replicas=2))
    kube_client.wait_for_rollout(kube_namespace, "shop", 20)
    assert kube_client.diagnose(kube_namespace, "shop").healthy

    fake_kube.fail_after(other, 0)
    fake_kube.fail_after(image, 0.5)

    def failed() -> bool | None:
        pods = kube_client.diagnose(kube_namespace, "shop").pods
        return True if all(p.waiting_reason == "CrashLoopBackOff" for p in pods) else None

    eventually(failed, "both running containers to fail")
    diagnosis = kube_client.diagnose(kube_namespace, "shop")
    assert not diagnosis.healthy and diagnosis.ready_replicas == 0
