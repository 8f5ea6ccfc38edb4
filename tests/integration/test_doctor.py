"""`shipyard doctor` says in words what works and what does not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from api.app import create_app
from core.settings import Settings
from ops.doctor import CHECKS, run_checks
from sandbox.github import FakeGitHub
from sandbox.kube import FakeKubernetes
from sandbox.net import free_port, serve
from sandbox.registry import RegistryProcess
from tests.fixtures.temporal import temporal_address


async def test_all_good(
    sqlite_database_url,
    temporal_client,
    fake_github: FakeGitHub,
    registry_server: RegistryProcess,
    kube_sandbox: FakeKubernetes,
):
    settings = Settings(
        database_url=sqlite_database_url,
        temporal_address=temporal_address(temporal_client),
        github_api_url=fake_github.url,
        github_app_id=str(fake_github.app_id),
        github_app_private_key_file=fake_github.private_key_path,
        registry_url=registry_server.url,
        kubeconfig=kube_sandbox.kubeconfig_path,
        kube_context=kube_sandbox.context,
        public_url=f"http://127.0.0.1:{free_port()}",
    )
    app = create_app(settings)
    async with serve(app, settings.public_url):
        results = {result.name: result for result in await run_checks(settings)}
    app.state.engine.dispose()
    assert set(results) == {
        "database", "temporal", "github", "registry", "image_builds", "kubernetes", "public_url",
        "rate_limits",
    }  # fmt: skip
    for result in results.values():
        assert result.ok, f"{result.name}: {result.message}"
    assert str(fake_github.app_id) in results["github"].message


def kubeconfig_pointing_at(source: Path, server: str, target: Path) -> Path:
    """The fake's kubeconfig with its server moved, as a stale kubeconfig would be."""
    document = yaml.safe_load(source.read_text())
    document["clusters"][0]["cluster"]["server"] = server
    target.write_text(yaml.safe_dump(document))
    return target


async def test_reports_what_is_wrong(tmp_path, fake_github: FakeGitHub, kube_sandbox):
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}",
        temporal_address=f"127.0.0.1:{port}",
        github_api_url=f"http://127.0.0.1:{port}",
        github_app_id=str(fake_github.app_id),
        github_app_private_key_file=fake_github.private_key_path,
        registry_url=f"http://127.0.0.1:{port}",
        kubeconfig=kubeconfig_pointing_at(
            kube_sandbox.kubeconfig_path, f"https://127.0.0.1:{port}", tmp_path / "kubeconfig"
        ),
        public_url=f"http://127.0.0.1:{port}",
        redis_url=f"redis://127.0.0.1:{port}/0",
        build_dir=tmp_path / "no-such-directory",
    )
    results = {result.name: result for result in await run_checks(settings, per_check_seconds=10)}
    assert not any(result.ok for result in results.values())
    assert "shipyard migrate" in results["database"].message
    assert f"cannot reach Temporal at 127.0.0.1:{port}" in results["temporal"].message
    assert f"GitHub at http://127.0.0.1:{port} cannot be reached" in results["github"].message
    assert f"registry at http://127.0.0.1:{port} is unreachable" in results["registry"].message
    assert (
        f"cannot reach the Kubernetes API at https://127.0.0.1:{port}"
        in results["kubernetes"].message
    )
    assert (
        f"SHIPYARD_PUBLIC_URL http://127.0.0.1:{port} cannot be reached"
        in results["public_url"].message
    )
    assert f"cannot reach Redis at redis://127.0.0.1:{port}" in results["rate_limits"].message
    assert f"builds cannot write to {tmp_path / 'no-such-directory'}" in (
        results["image_builds"].message
    )


async def test_reports_missing_or_wrong_configuration(tmp_path, fake_github: FakeGitHub):
    # Only the checks in question run: the defaults of the others point at this machine's ports.
    github, kubernetes = CHECKS["github"], CHECKS["kubernetes"]
    with pytest.raises(RuntimeError, match=r"^not configured: SHIPYARD_GITHUB_APP_ID is empty"):
        await github(Settings(github_app_id=""))
    missing = tmp_path / "missing-kubeconfig"
    with pytest.raises(Exception, match=re.escape(f"the kubeconfig {missing} does not exist")):
        await kubernetes(Settings(kubeconfig=missing))

    wrong_app = Settings(
        github_api_url=fake_github.url,
        github_app_id=str(fake_github.app_id + 1),
        github_app_private_key_file=fake_github.private_key_path,
    )
    with pytest.raises(Exception, match="rejected the App's credentials") as rejected:
        await github(wrong_app)
    assert fake_github.private_key_pem not in str(rejected.value)

    not_a_key = Settings(
        github_api_url=fake_github.url,
        github_app_id=str(fake_github.app_id),
        github_app_private_key=SecretStr("plainly-wrong-key-material"),
    )
    with pytest.raises(RuntimeError, match="is not an unencrypted PEM private key") as refused:
        await github(not_a_key)
    assert "plainly-wrong-key-material" not in str(refused.value)
