"""The proxy crash tests put in front of the real registry: pushes, reads and deletes pass
through, and a held answer waits while its effect is already in the registry."""

from __future__ import annotations

import asyncio
import uuid

from clients.registry import RegistryClient
from sandbox.registry_proxy import RegistryProxy
from tests.retention_world import push_image


async def test_a_held_manifest_put_is_stored_before_it_is_answered(
    registry_proxy: RegistryProxy, registry_client: RegistryClient
):
    repository = f"proxy/{uuid.uuid4().hex[:8]}"
    async with RegistryClient(registry_proxy.url) as through:
        hold = registry_proxy.hold_next("PUT", rf"^/v2/{repository}/manifests/")
        pushing = asyncio.create_task(push_image(through, repository, "held"))
        await hold.wait_held(within=10)
        [tag] = await registry_client.list_tags(repository)
        stored = await registry_client.head_manifest(repository, tag)
        assert not pushing.done(), "the pusher heard back while the answer was held"
        hold.release()
        assert await pushing == (tag, stored)
        assert hold.status == 201 and hold.request.startswith("PUT ")

        assert (await through.get_manifest(repository, tag)).digest == stored
        assert await through.delete_manifest(repository, stored)
        assert await registry_client.head_manifest(repository, stored) is None
