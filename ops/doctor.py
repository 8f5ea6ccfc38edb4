"""Checks of every configured dependency, each answering in words what is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import redis
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from clients.buildah import Buildah
from clients.github import GitHubClient
from clients.kube import KubeClient
from clients.registry import RegistryClient
from core.counters import Counters, redis_address
from core.db import make_engine
from core.migrate import head_revision, schema_problem
from core.service import SERVICE_NAME
from core.settings import Settings
from core.temporal import connect
from workflows import search


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


Check = Callable[[Settings], Awaitable[str]]


async def check_database(settings: Settings) -> str:
    def probe() -> str:
        engine = make_engine(settings.database_url)
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
                problem = schema_problem(connection)
        finally:
            engine.dispose()
        if problem:
            raise RuntimeError(problem)
        return f"{engine.url.get_backend_name()} reachable, schema at {head_revision()}"

    return await asyncio.to_thread(probe)


async def check_temporal(settings: Settings) -> str:
    try:
        client = await connect(settings)
    except RuntimeError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else "no connection"
        raise RuntimeError(
            f"cannot reach Temporal at {settings.temporal_address} ({reason}); is it running?"
        ) from None
    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=settings.temporal_namespace)
    )
    missing = [key.name for key in search.ALL if key.name not in response.custom_attributes]
    if missing:
        raise RuntimeError(
            f"search attributes {', '.join(missing)} are not registered in namespace "
            f"{settings.temporal_namespace!r}: register them with `temporal operator "
            "search-attribute create`"
        )
    return f"{settings.temporal_address} namespace {settings.temporal_namespace!r} ready"


async def check_github(settings: Settings) -> str:
    if not settings.github_app_id:
        raise RuntimeError(
            "not configured: SHIPYARD_GITHUB_APP_ID is empty; set it and the App's private key "
            "(SHIPYARD_GITHUB_APP_PRIVATE_KEY or SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE)"
        )
    _app_key(settings)  # refused in words when missing or not a key, before anything is sent
    await GitHubClient.from_settings(settings).check()
    return f"{settings.github_api_url} accepts GitHub App {settings.github_app_id}"


def _app_key(settings: Settings) -> str:
    """The App's private key, refused in words when it is missing, unreadable or not a key."""
    key_file = settings.github_app_private_key_file
    try:
        key = settings.github_private_key
    except OSError as exc:
        raise RuntimeError(
            f"cannot read the GitHub App private key file {key_file} "
            f"(SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE): {exc.strerror or exc}"
        ) from None
    if not key.strip():
        raise RuntimeError(
            "the GitHub App private key is not configured: set SHIPYARD_GITHUB_APP_PRIVATE_KEY "
            "or SHIPYARD_GITHUB_APP_PRIVATE_KEY_FILE"
        )
    try:
        serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError):
        where = f"the file {key_file}" if key_file else "SHIPYARD_GITHUB_APP_PRIVATE_KEY"
        # Only where the key came from is said: its content is a secret.
        raise RuntimeError(
            f"the GitHub App private key in {where} is not an unencrypted PEM private key"
        ) from None
    return key


async def check_registry(settings: Settings) -> str:
    async with RegistryClient.from_settings(settings) as registry:
        await registry.check()
    return f"{settings.registry_url} answers the distribution API"


async def check_image_builds(settings: Settings) -> str:
    version = await Buildah.from_settings(settings).check()
    return f"{version}: repositories with a Dockerfile are built with it"


async def check_kubernetes(settings: Settings) -> str:
    def probe() -> str:
        with KubeClient.from_settings(settings) as kube:
            info = kube.check()
        return f"{info.server} answers, Kubernetes {info.version}"

    return await asyncio.to_thread(probe)


async def check_public_url(settings: Settings) -> str:
    """GitHub delivers webhooks to SHIPYARD_PUBLIC_URL; pointing elsewhere fails silently (the
    deliveries fail on GitHub's side, nothing deploys), so /healthz must answer there as this
    API does. From this machine only: whether GitHub itself can reach it is not checked."""
    public_url = settings.public_url
    wrong = f"webhooks sent to SHIPYARD_PUBLIC_URL {public_url} never reach Shipyard"
    try:
        # No redirects: GitHub does not follow them for webhook deliveries either.
        async with httpx.AsyncClient(timeout=5, follow_redirects=False) as client:
            response = await client.get(f"{public_url}/healthz")
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"SHIPYARD_PUBLIC_URL {public_url} cannot be reached ({type(exc).__name__}): "
            f"{wrong}; set it to the address this API is served at"
        ) from None
    if response.is_redirect:
        raise RuntimeError(
            f"SHIPYARD_PUBLIC_URL {public_url} answers with a redirect to "
            f"{response.headers.get('location', '?')}, which GitHub does not follow: "
            f"set it to the address redirected to"
        )
    if not _is_this_api(response):
        raise RuntimeError(
            f"SHIPYARD_PUBLIC_URL {public_url} answers, but not Shipyard's API (GET /healthz "
            f"gave {response.status_code}): {wrong}; set it to the address this API is served at"
        )
    return f"{public_url} answers as Shipyard's API"


def _is_this_api(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        response.status_code == 200
        and isinstance(body, dict)
        and body.get("service") == SERVICE_NAME
    )


async def check_rate_limits(settings: Settings) -> str:
    """Where the API counts its limits; per process is a working setup for one replica."""
    counters = Counters(settings.redis_url)
    if not counters.shared:
        return counters.describe()

    def ping() -> None:
        url = settings.redis_url.replace("redis+unix://", "unix://")
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()

    try:
        await asyncio.to_thread(ping)
    except redis.RedisError as exc:
        raise RuntimeError(
            f"cannot reach Redis at {redis_address(settings.redis_url)} (SHIPYARD_REDIS_URL): "
            f"{exc}; until it answers, each API process counts rate limits on its own"
        ) from None
    return counters.describe()


CHECKS: dict[str, Check] = {
    "database": check_database,
    "temporal": check_temporal,
    "github": check_github,
    "registry": check_registry,
    "image_builds": check_image_builds,
    "kubernetes": check_kubernetes,
    "public_url": check_public_url,
    "rate_limits": check_rate_limits,
}


async def run_checks(settings: Settings, per_check_seconds: float = 15.0) -> list[CheckResult]:
    async def one(name: str, check: Check) -> CheckResult:
        try:
            message = await asyncio.wait_for(check(settings), timeout=per_check_seconds)
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {per_check_seconds:.0f}s")
        except Exception as exc:
            return CheckResult(name, False, str(exc) or type(exc).__name__)
        return CheckResult(name, True, message)

    return list(await asyncio.gather(*(one(name, check) for name, check in CHECKS.items())))


def main() -> int:
    """Run every check on this machine's settings and print one line each; 1 if any failed.

    `shipyard doctor` runs this as `python -m ops.doctor`, so the command line itself stays a
    client of the API."""
    from rich.console import Console

    from core.settings import load_settings

    console = Console(soft_wrap=True, highlight=False)
    results = asyncio.run(run_checks(load_settings()))
    for result in results:
        mark = "[green]ok[/green]  " if result.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {result.name:<10} {result.message}", highlight=False)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
