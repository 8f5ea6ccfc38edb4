"""Releases for retention tests made fast: real images pushed to the real registry, and the
ledger (apps, environments, releases, activations) written straight into the records."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from clients.registry import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, RegistryClient
from core.clock import utcnow
from core.models import App, Environment, Release, ReleaseActivation, Tenant
from core.naming import namespace_for
from tests.fixtures.stack import Stack, StackTenant

PIPELINE = ["dev", "qa", "staging", "prod"]


async def fresh_tenant(stack: Stack) -> tuple[StackTenant, uuid.UUID]:
    """A tenant of the test's own, made through the stack's API (so its schedule targets the
    stack's task queue), whose runs see only the test's apps."""
    slug = "ret" + uuid.uuid4().hex[:8]
    made = await stack.api.post(
        "/api/v1/tenants", json={"slug": slug, "name": "Retention"}, headers=stack.admin_headers
    )
    assert made.status_code == 201, made.text
    return StackTenant(slug=slug, key=made.json()["admin_key"]["key"]), uuid.UUID(
        made.json()["tenant"]["id"]
    )


async def push_image(registry: RegistryClient, repository: str, seed: str) -> tuple[str, str]:
    """A small, distinct OCI image tagged with a commit-like tag: (tag, digest)."""
    tag = hashlib.sha256(seed.encode()).hexdigest()[:40]
    layer = f"layer of {seed}".encode() * 64
    layer_digest = await registry.upload_blob(repository, layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest = await registry.upload_blob(repository, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    digest = await registry.put_manifest(repository, tag, manifest, OCI_MANIFEST)
    return tag, digest


@dataclass
class World:
    stack: Stack
    tenant: StackTenant
    tenant_id: uuid.UUID
    app_id: uuid.UUID
    app_slug: str
    releases: dict[int, Release] = field(default_factory=dict)

    @property
    def repository(self) -> str:
        return f"{self.tenant.slug}/{self.app_slug}"

    async def add_releases(self, specs: list[tuple[int, str, float]]) -> None:
        """(version, lifecycle state, age in days) each, with its image pushed."""
        pushed = await asyncio.gather(
            *(
                push_image(self.stack.registry_client, self.repository, f"{self.app_id}-{v}")
                for v, _, _ in specs
            )
        )
        now = utcnow()
        with Session(self.stack.engine, expire_on_commit=False) as session:
            for (version, state, age), (tag, digest) in zip(specs, pushed, strict=True):
                release = Release(
                    app_id=self.app_id,
                    version=version,
                    commit_sha=tag,
                    image_digest=digest,
                    image_ref=f"{self.stack.registry_client.host}/{self.repository}@{digest}",
                    lifecycle=state,
                    created_at=now - timedelta(days=age),
                )
                session.add(release)
                self.releases[version] = release
            session.commit()

    def activate(self, environment: str, *versions: int) -> None:
        """The versions ran in the environment in this order; the last one runs now."""
        start = utcnow() - timedelta(hours=len(versions))
        with Session(self.stack.engine) as session:
            for index, version in enumerate(versions):
                session.add(
                    ReleaseActivation(
                        app_id=self.app_id,
                        environment=environment,
                        release_id=self.releases[version].id,
                        via="deploy",
                        created_at=start + timedelta(minutes=index),
                    )
                )
            row = session.exec(
                select(Environment).where(
                    Environment.app_id == self.app_id, Environment.name == environment
                )
            ).one()
            row.current_release_id = self.releases[versions[-1]].id
            session.add(row)
            session.commit()

    def set_environment(self, environment: str, **fields: Any) -> None:
        with Session(self.stack.engine) as session:
            row = session.exec(
                select(Environment).where(
                    Environment.app_id == self.app_id, Environment.name == environment
                )
            ).one()
            for name, value in fields.items():
                setattr(row, name, value)
            session.add(row)
            session.commit()

    def release(self, version: int) -> Release:
        with Session(self.stack.engine) as session:
            return session.exec(
                select(Release).where(Release.app_id == self.app_id, Release.version == version)
            ).one()

    async def present(self, version: int) -> bool:
        digest = self.releases[version].image_digest
        return await self.stack.registry_client.head_manifest(self.repository, digest) is not None

    async def put_policies(self, policies: dict[str, Any]) -> httpx.Response:
        return await self.stack.api.put(
            f"/api/v1/apps/{self.app_id}/retention-policies",
            json={"policies": policies},
            headers=self.tenant.headers,
        )

    async def run(self, *, dry_run: bool, within: float = 30) -> dict[str, Any]:
        """Start a run of this app through the API and return its finished report."""
        started = await self.stack.api.post(
            f"/api/v1/tenants/{self.tenant.slug}/retention-runs",
            json={"dry_run": dry_run, "app_id": str(self.app_id)},
            headers=self.tenant.headers,
        )
        assert started.status_code == 202, started.text
        return await wait_for_run(self.stack, self.tenant, started.json()["status_url"], within)


async def wait_for_run(
    stack: Stack, tenant: StackTenant, status_url: str, within: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        report = (await stack.api.get(status_url, headers=tenant.headers)).json()
        if report["status"] != "running":
            return dict(report)
        if time.monotonic() > deadline:
            pytest.fail(f"retention run still running: {report['summary']}")
        await asyncio.sleep(0.1)


async def make_world(stack: Stack, tenant: StackTenant | None = None) -> World:
    if tenant is None:
        tenant, tenant_id = await fresh_tenant(stack)
    else:
        with Session(stack.engine) as session:
            tenant_id = session.exec(select(Tenant.id).where(Tenant.slug == tenant.slug)).one()
    slug = "shop" + uuid.uuid4().hex[:6]
    with Session(stack.engine) as session:
        app = App(
            tenant_id=tenant_id,
            slug=slug,
            name=slug,
            subdomain=slug,
            template_id="static-site",
            repo_full_name=f"{stack.github.org}/{slug}",
            pipeline=PIPELINE,
            status="active",
        )
        session.add(app)
        session.flush()
        for position, name in enumerate(PIPELINE):
            session.add(
                Environment(
                    app_id=app.id,
                    name=name,
                    position=position,
                    namespace=namespace_for(tenant.slug, slug, name),
                )
            )
        session.commit()
        app_id = app.id
    return World(stack, tenant, tenant_id, app_id, slug)
