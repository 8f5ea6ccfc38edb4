"""KubeClient and the official `kubernetes` client against the fake API server over HTTPS."""

# The generated models type every field Optional and every body as a model; these tests
# read fields the server always sends and post plain dicts, as the client allows.
# mypy: disable-error-code="union-attr,index,arg-type,misc"

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from clients.kube import (
    AppEnvironmentSpec,
    KubeAuthError,
    KubeClient,
    KubeUnavailable,
    RolloutFailed,
    RolloutProgress,
)
from sandbox.kube import FakeKubernetes
from sandbox.kube.controllers import SandboxControls
from sandbox.net import free_port


def status_reason(error: pytest.ExceptionInfo[ApiException]) -> tuple[int, str]:
    """The code and reason of the Status body the server answered with."""
    status = json.loads(str(error.value.body))
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == error.value.status
    return status["code"], status["reason"]


def digest_image(name: str) -> str:
    return f"registry.test/acme/{name}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"


def environment(namespace: str, image: str, **changes: object) -> AppEnvironmentSpec:
    values: dict[str, object] = {
        "namespace": namespace,
        "tenant": "acme",
        "app": "shop",
        "environment": "dev",
        "image": image,
        "port": 8080,
        "health_path": "/healthz",
        "replicas": 2,
        "subdomain": "shop-dev",
        "base_domain": "apps.test",
        "env": {"GREETING": "hello"},
        "image_pull_secret": "registry-pull",
        "progress_deadline_seconds": 30,
    }
    values.update(changes)
    return AppEnvironmentSpec.model_validate(values)


@pytest.fixture
def api(fake_kube: FakeKubernetes) -> client.ApiClient:
    """The official client straight from the kubeconfig, for what KubeClient does not wrap."""
    return config.new_client_from_config(
        config_file=str(fake_kube.kubeconfig_path), context=fake_kube.context
    )


def test_apply_twice_is_idempotent(
    kube_client: KubeClient, kube_namespace: str, api: client.ApiClient
) -> None:
    spec = environment(kube_namespace, digest_image("idempotent"))

    first = kube_client.apply_app_environment(spec)
    second = kube_client.apply_app_environment(spec)

    assert second.deployment_uid == first.deployment_uid
    assert (first.generation, second.generation) == (1, 1)
    assert second.host == "shop-dev.apps.test"
    namespace = client.CoreV1Api(api).read_namespace(kube_namespace)
    assert namespace.metadata.labels["shipyard.dev/tenant"] == "acme"
    assert namespace.metadata.labels["shipyard.dev/environment"] == "dev"
    deployment = client.AppsV1Api(api).read_namespaced_deployment("shop", kube_namespace)
    assert deployment.spec.progress_deadline_seconds == 30
    pod_spec = deployment.spec.template.spec
    assert pod_spec.image_pull_secrets[0].name == "registry-pull"
    container = pod_spec.containers[0]
    assert container.image == spec.image
    assert container.readiness_probe.http_get.path == "/healthz"
    assert container.readiness_probe.http_get.port == 8080
    assert container.resources.limits["memory"] == "256Mi"
    assert [(e.name, e.value) for e in container.env] == [("GREETING", "hello")]
    assert [m.manager for m in deployment.metadata.managed_fields] == ["shipyard"]
    ingress = client.NetworkingV1Api(api).read_namespaced_ingress("shop", kube_namespace)
    assert ingress.spec.rules[0].host == "shop-dev.apps.test"
    service = client.CoreV1Api(api).read_namespaced_service("shop", kube_namespace)
    assert service.spec.selector == {"app.kubernetes.io/name": "shop"}

    changed = kube_client.apply_app_environment(spec.model_copy(update={"env": {}}))
    assert changed.generation == 2
    deployment = client.AppsV1Api(api).read_namespaced_deployment("shop", kube_namespace)
    assert not deployment.spec.template.spec.containers[0].env


def test_rollout_succeeds_with_pods_running_the_digest(
    kube_client: KubeClient, kube_namespace: str, api: client.ApiClient
) -> None:
    spec = environment(kube_namespace, digest_image("rollout"))
    kube_client.apply_app_environment(spec)
    seen: list[RolloutProgress] = []

    final = kube_client.wait_for_rollout(kube_namespace, "shop", 20, on_progress=seen.append)

    assert final.done and final.message == "2/2 pods ready"
    assert seen[0].message == "waiting for the deployment spec update to be observed"
    pods = client.CoreV1Api(api).list_namespaced_pod(kube_namespace).items
    assert len(pods) == 2
    for pod in pods:
        status = pod.status.container_statuses[0]
        assert pod.spec.containers[0].image == spec.image
        assert status.image_id == spec.image and status.ready and status.started
    assert kube_client.diagnose(kube_namespace, "shop").healthy
    apps = client.AppsV1Api(api)
    (replica_set,) = apps.list_namespaced_replica_set(kube_namespace).items
    assert replica_set.status.ready_replicas == 2
    assert replica_set.metadata.owner_references[0].name == "shop"
    assert apps.read_namespaced_deployment_scale("shop", kube_namespace).spec.replicas == 2


def test_failing_image_ends_with_progress_deadline_exceeded(
    fake_kube: FakeKubernetes, kube_client: KubeClient, kube_namespace: str
) -> None:
    image = digest_image("crashes")
    fake_kube.set_failing_images([image])
    kube_client.apply_app_environment(
        environment(kube_namespace, image, progress_deadline_seconds=2)
    )
    started = time.monotonic()

    with pytest.raises(RolloutFailed) as failure:
        kube_client.wait_for_rollout(kube_namespace, "shop", 20)

    assert time.monotonic() - started < 6
    assert failure.value.reason == "ProgressDeadlineExceeded"
    assert not failure.value.retryable
    assert "CrashLoopBackOff" in failure.value.message
    diagnosis = kube_client.diagnose(kube_namespace, "shop")
    assert not diagnosis.healthy
    assert {pod.waiting_reason for pod in diagnosis.pods} == {"CrashLoopBackOff"}
    assert all(pod.restart_count >= 1 and not pod.ready for pod in diagnosis.pods)
    assert "CrashLoopBackOff" in diagnosis.summary
    assert "ProgressDeadlineExceeded" in diagnosis.summary
    assert any(e.reason == "BackOff" and e.type == "Warning" for e in diagnosis.events)
    crash_lines = kube_client.read_logs(kube_namespace, "shop")
    assert any("exited with status 1" in line.message for line in crash_lines)


def test_rollout_timeout_is_a_rollout_failure(
    fake_kube: FakeKubernetes, kube_client: KubeClient, kube_namespace: str
) -> None:
    fake_kube.set_rollout_delay(30)
    kube_client.apply_app_environment(environment(kube_namespace, digest_image("slow")))

    with pytest.raises(RolloutFailed) as failure:
        kube_client.wait_for_rollout(kube_namespace, "shop", 1)

    assert failure.value.reason == "Timeout"
    assert "did not finish rolling out within 1s" in failure.value.message


def test_logs_come_from_every_pod_with_timestamps(
    kube_client: KubeClient, kube_namespace: str
) -> None:
    kube_client.apply_app_environment(environment(kube_namespace, digest_image("logs")))
    kube_client.wait_for_rollout(kube_namespace, "shop", 20)

    lines = kube_client.read_logs(kube_namespace, "shop")

    assert len(lines) == 6
    assert len({line.pod for line in lines}) == 2
    assert lines == sorted(lines, key=lambda line: line.timestamp)
    assert "ready to serve requests" in lines[-1].message
    assert len(kube_client.read_logs(kube_namespace, "shop", limit=2)) == 2
    time.sleep(1.1)
    assert kube_client.read_logs(kube_namespace, "shop", since_seconds=1) == []


def test_set_image_rolls_out_and_current_image_follows(
    kube_client: KubeClient, kube_namespace: str
) -> None:
    first, second = digest_image("v1"), digest_image("v2")
    kube_client.apply_app_environment(environment(kube_namespace, first))
    kube_client.wait_for_rollout(kube_namespace, "shop", 20)

    generation = kube_client.set_image(kube_namespace, "shop", second)
    kube_client.wait_for_rollout(kube_namespace, "shop", 20)

    assert generation == 2
    assert kube_client.current_image(kube_namespace, "shop") == second
    assert {line.message for line in kube_client.read_logs(kube_namespace, "shop")} >= {
        f"starting shop (image {second})"
    }
    assert kube_client.current_image(kube_namespace, "absent") is None


def test_delete_is_idempotent(kube_client: KubeClient, kube_namespace: str) -> None:
    kube_client.apply_app_environment(environment(kube_namespace, digest_image("delete")))

    assert kube_client.delete_app_environment(kube_namespace) is True
    assert kube_client.delete_app_environment(kube_namespace) is False
    diagnosis = kube_client.diagnose(kube_namespace, "shop")
    assert not diagnosis.found
    assert diagnosis.summary == f"deployment shop does not exist in namespace {kube_namespace}"


def altered_kubeconfig(
    kube: FakeKubernetes, path: Path, token: str | None = None, server: str | None = None
) -> Path:
    kubeconfig = yaml.safe_load(kube.kubeconfig_path.read_text())
    if token is not None:
        kubeconfig["users"][0]["user"]["token"] = token
    if server is not None:
        kubeconfig["clusters"][0]["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def test_check_reports_version_refused_token_and_unreachable_server(
    fake_kube: FakeKubernetes, kube_client: KubeClient, tmp_path: Path
) -> None:
    assert kube_client.check().version.startswith("v1.37")

    wrong_token = altered_kubeconfig(fake_kube, tmp_path / "wrong-token", token="not-the-token")
    with pytest.raises(KubeAuthError) as refused:
        KubeClient.from_config(wrong_token, fake_kube.context).check()
    assert "401 Unauthorized" in refused.value.message

    server = f"https://127.0.0.1:{free_port()}"
    unreachable = altered_kubeconfig(fake_kube, tmp_path / "unreachable", server=server)
    with pytest.raises(KubeUnavailable) as down:
        KubeClient.from_config(unreachable, fake_kube.context, request_timeout=2).check()
    assert down.value.retryable
    assert "cannot reach the Kubernetes API" in down.value.message


def test_wrong_token_gets_a_401_status(fake_kube: FakeKubernetes, tmp_path: Path) -> None:
    wrong_token = altered_kubeconfig(fake_kube, tmp_path / "wrong-token", token="not-the-token")
    api = config.new_client_from_config(config_file=str(wrong_token), context=fake_kube.context)
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).list_namespace()
    assert status_reason(refused) == (401, "Unauthorized")


def test_status_bodies_for_missing_existing_stale_and_invalid(
    kube_client: KubeClient, kube_namespace: str, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": kube_namespace}})
    body = {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    created = core.create_namespaced_config_map(kube_namespace, body)

    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(kube_namespace, body)
    assert status_reason(exists) == (409, "AlreadyExists")

    current = core.read_namespaced_config_map("settings", kube_namespace)
    current.data = {"a": "2"}
    core.replace_namespaced_config_map("settings", kube_namespace, current)
    stale = created
    stale.data = {"a": "3"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("settings", kube_namespace, stale)
    assert status_reason(conflict) == (409, "Conflict")

    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("absent", kube_namespace)
    assert status_reason(missing) == (404, "NotFound")
    assert json.loads(str(missing.value.body))["message"] == 'configmaps "absent" not found'

    invalid = {"metadata": {"name": "Not_Valid"}, "data": {}}
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_config_map(kube_namespace, invalid)
    assert status_reason(rejected) == (422, "Invalid")


def test_patch_types(kube_client: KubeClient, kube_namespace: str, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": kube_namespace}})
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1"}}
    )

    core.patch_namespaced_config_map(
        "c", kube_namespace, [{"op": "add", "path": "/data/b", "value": "2"}],
        _content_type="application/json-patch+json",
    )  # fmt: skip
    core.patch_namespaced_config_map(
        "c", kube_namespace, {"data": {"a": None}}, _content_type="application/merge-patch+json"
    )
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    core.patch_namespaced_config_map(
        "c", kube_namespace, {**applied, "data": {"c": "3"}}, field_manager="tester",
        _content_type="application/apply-patch+yaml",
    )  # fmt: skip
    result = core.patch_namespaced_config_map(
        "c", kube_namespace, {**applied, "data": {"d": "4"}}, field_manager="tester",
        _content_type="application/apply-patch+yaml",
    )  # fmt: skip

    # The second apply drops "c", which only this manager set; "b" belongs to another writer.
    assert result.data == {"b": "2", "d": "4"}
    assert result.metadata.labels == {"x": "1"}


def test_label_and_field_selectors(
    kube_client: KubeClient, kube_namespace: str, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": kube_namespace}})
    for name, labels in {
        "a": {"tier": "web", "env": "dev"},
        "b": {"tier": "web", "env": "prod"},
        "c": {"tier": "db"},
    }.items():
        core.create_namespaced_config_map(
            kube_namespace, {"metadata": {"name": name, "labels": labels}}
        )

    def names(**selectors: str) -> list[str]:
        items = core.list_namespaced_config_map(kube_namespace, **selectors).items
        return [item.metadata.name for item in items]

    assert names(label_selector="tier=web") == ["a", "b"]
    assert names(label_selector="tier=web,env!=prod") == ["a"]
    assert names(label_selector="env in (dev, prod)") == ["a", "b"]
    assert names(label_selector="env notin (dev)") == ["b", "c"]
    assert names(label_selector="env") == ["a", "b"]
    assert names(label_selector="!env") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    assert names(field_selector=f"metadata.namespace={kube_namespace}") == ["a", "b", "c"]
    with pytest.raises(ApiException) as bad:
        names(field_selector="spec.whatever=1")
    assert bad.value.status == 400


def test_watch_replays_from_a_version_and_streams_new_events(
    kube_client: KubeClient, kube_namespace: str, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": kube_namespace}})
    start = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "w"}})
    core.patch_namespaced_config_map("w", kube_namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w", kube_namespace)

    replayed = [
        (event["type"], event["object"].metadata.name)
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            kube_namespace,
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert replayed == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]

    later = threading.Timer(
        0.3,
        lambda: core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "new"}}),
    )
    later.start()
    watcher = watch.Watch()
    now = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    for event in watcher.stream(
        core.list_namespaced_config_map, kube_namespace, resource_version=now, timeout_seconds=5
    ):
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "new")
        watcher.stop()
    later.join()


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with FakeKubernetes(tmp_path) as kube:
        first = KubeClient.from_config(kube.kubeconfig_path, kube.context)
        first.apply_app_environment(environment("persisted", digest_image("persisted")))
        first.wait_for_rollout("persisted", "shop", 20)
        before = first.diagnose("persisted", "shop")
        first.close()

    with FakeKubernetes(tmp_path) as kube:
        second = KubeClient.from_config(kube.kubeconfig_path, kube.context)
        after = second.diagnose("persisted", "shop")
        again = second.apply_app_environment(environment("persisted", digest_image("persisted")))
        second.close()

    assert after.healthy
    assert [pod.name for pod in after.pods] == [pod.name for pod in before.pods]
    assert again.generation == 1


def test_failure_injection_over_http(fake_kube: FakeKubernetes) -> None:
    with httpx.Client(base_url=fake_kube.url, verify=str(fake_kube.ca_path)) as admin:
        admin.post("/_sandbox/failing-images", json={"images": ["bad@sha256:00"]})
        admin.post("/_sandbox/rollout-delay", json={"seconds": 0.1})
        admin.post("/_sandbox/fail-after", json={"images": {"later@sha256:01": 2}})
        refused = admin.post("/_sandbox/fail-after", json={"images": ["later@sha256:01"]})
        controls = admin.get("/_sandbox/controls").json()
        objects = admin.get("/_sandbox/objects").json()

    assert refused.status_code == 400
    assert controls == {
        "failingImages": ["bad@sha256:00"],
        "rolloutDelay": 0.1,
        "failAfter": {"later@sha256:01": 2.0},
    }
    # Kept for the next start of the sandbox on the same state directory.
    saved = json.loads((fake_kube.state_dir / "controls.json").read_text())
    assert SandboxControls.from_json(saved).to_json() == controls
    assert "default" in {ns["metadata"]["name"] for ns in objects["objects"]["namespaces"]}
