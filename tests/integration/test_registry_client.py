"""RegistryClient against the real docker-registry over sockets: blobs, manifests, tags, auth."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import bcrypt
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from clients.registry import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    BlobNotFound,
    ManifestNotFound,
    RegistryAuthError,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    sha256_digest,
)
from sandbox.base_image import (
    BASE_IMAGE_REPOSITORY,
    BASE_IMAGE_TAG,
    build_base_image,
    push_base_image,
)
from sandbox.net import free_port
from sandbox.registry import RegistryProcess, TokenAuthSettings


def unique_repository(prefix: str = "test") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256_digest(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
    ).encode()


async def push_small_image(client: RegistryClient, repository: str, tag: str, seed: str) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer {seed}".encode()
    await client.upload_blob(repository, config)
    await client.upload_blob(repository, layer)
    return await client.put_manifest(repository, tag, manifest_for(config, [layer]), OCI_MANIFEST)


async def test_check_passes_on_an_open_registry(registry_client: RegistryClient) -> None:
    await registry_client.check()


async def test_unreachable_registry_is_retryable_and_says_where() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with RegistryClient(url, timeout=2.0) as client:
        with pytest.raises(RegistryUnavailable) as raised:
            await client.check()
    assert raised.value.retryable
    assert url in str(raised.value)


async def test_monolithic_upload_then_exists_and_get(registry_client: RegistryClient) -> None:
    repository = unique_repository()
    data = b"monolithic blob " * 1000
    digest = await registry_client.upload_blob(repository, data)
    assert digest == sha256_digest(data)
    assert await registry_client.blob_exists(repository, digest)
    assert await registry_client.get_blob(repository, digest) == data


async def test_chunked_upload_sends_patches_with_ranges(registry_client: RegistryClient) -> None:
    repository = unique_repository()
    data = bytes(range(256)) * 1000 + b"tail"
    digest = await registry_client.upload_blob(repository, data, chunk_size=100_000)
    assert await registry_client.get_blob(repository, digest) == data


async def test_upload_with_wrong_digest_is_refused_for_good(
    registry_client: RegistryClient,
) -> None:
    repository = unique_repository()
    with pytest.raises(RegistryError) as raised:
        await registry_client.upload_blob(repository, b"data", digest=sha256_digest(b"other"))
    assert raised.value.code == "DIGEST_INVALID"
    assert not raised.value.retryable


async def test_missing_blob_is_blob_not_found(registry_client: RegistryClient) -> None:
    repository = unique_repository()
    await registry_client.upload_blob(repository, b"something so the repository exists")
    missing = sha256_digest(b"never uploaded")
    assert not await registry_client.blob_exists(repository, missing)
    with pytest.raises(BlobNotFound):
        await registry_client.get_blob(repository, missing)


async def test_mount_links_a_blob_from_another_repository(
    registry_client: RegistryClient,
) -> None:
    source, target = unique_repository(), unique_repository()
    digest = await registry_client.upload_blob(source, b"shared layer")
    assert await registry_client.mount_blob(target, digest, from_repository=source)
    assert await registry_client.get_blob(target, digest) == b"shared layer"
    unknown = sha256_digest(b"not in the source")
    assert not await registry_client.mount_blob(target, unknown, from_repository=source)


async def test_manifest_put_get_head_resolve_delete(registry_client: RegistryClient) -> None:
    repository = unique_repository()
    digest = await push_small_image(registry_client, repository, "v1", "a")
    manifest = await registry_client.get_manifest(repository, "v1")
    assert (manifest.digest, manifest.media_type) == (digest, OCI_MANIFEST)
    assert (await registry_client.get_manifest(repository, digest)).body == manifest.body
    assert await registry_client.head_manifest(repository, "v1") == digest
    assert await registry_client.resolve(repository, "v1") == digest

    assert await registry_client.delete_manifest(repository, digest) is True
    assert await registry_client.delete_manifest(repository, digest) is False
    assert await registry_client.head_manifest(repository, "v1") is None
    with pytest.raises(ManifestNotFound) as raised:
        await registry_client.get_manifest(repository, "v1")
    assert raised.value.code == "IMAGE_NOT_FOUND"
    assert not raised.value.retryable
    with pytest.raises(ManifestNotFound):
        await registry_client.resolve(repository, "v1")


async def test_delete_refuses_a_tag(registry_client: RegistryClient) -> None:
    with pytest.raises(ValueError):
        await registry_client.delete_manifest(unique_repository(), "v1")


async def test_index_round_trips_with_its_media_type(registry_client: RegistryClient) -> None:
    repository = unique_repository()
    digest = await push_small_image(registry_client, repository, "amd64", "x")
    size = len((await registry_client.get_manifest(repository, digest)).body)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    index_digest = await registry_client.put_manifest(repository, "multi", index, OCI_INDEX)
    fetched = await registry_client.get_manifest(repository, "multi")
    assert (fetched.digest, fetched.media_type, fetched.is_index) == (index_digest, OCI_INDEX, True)


async def test_tags_all_listed_with_small_pages_and_null_after_deletes(
    registry_client: RegistryClient,
) -> None:
    repository = unique_repository()
    digests = {
        f"v{number}": await push_small_image(registry_client, repository, f"v{number}", str(number))
        for number in range(7)
    }
    assert sorted(await registry_client.list_tags(repository, page_size=3)) == sorted(digests)
    for digest in digests.values():
        await registry_client.delete_manifest(repository, digest)
    assert await registry_client.list_tags(repository) == []
    assert await registry_client.list_tags(unique_repository("never-pushed")) == []


async def test_catalog_follows_link_pagination(registry_client: RegistryClient) -> None:
    repositories = [unique_repository("catalog") for _ in range(3)]
    for repository in repositories:
        await push_small_image(registry_client, repository, "v1", repository)
    everything = await registry_client.catalog(page_size=1)
    assert set(repositories) <= set(everything)
    assert f"{BASE_IMAGE_REPOSITORY}" in everything
    assert everything == sorted(everything)


async def test_garbage_collect_frees_blobs_of_deleted_manifests(tmp_path: Path) -> None:
    with RegistryProcess(tmp_path) as registry:
        async with RegistryClient(registry.url) as client:
            digest = await push_small_image(client, "gc/app", "v1", "gc")
            layer_digest = sha256_digest(b"layer gc")
            await client.delete_manifest("gc/app", digest)
            assert await client.blob_exists("gc/app", layer_digest)
            registry.garbage_collect()
            assert not await client.blob_exists("gc/app", layer_digest)


# -- bearer tokens from a real token server in front of the registry ---------------------------

TOKEN_SERVICE = "shipyard-test-registry"
TOKEN_ISSUER = "shipyard-test-token-issuer"
USERNAME, PASSWORD = "ci-robot", "correct horse battery staple"


@dataclass
class TokenServer:
    """Docker's token protocol: basic credentials in, a signed JWT granting the scopes out."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    port: int = field(default_factory=free_port)
    requests: list[list[str]] = field(default_factory=list)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def issue(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        certificate = base64.b64encode(
            self.certificate.public_bytes(serialization.Encoding.DER)
        ).decode()
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": USERNAME,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [certificate]})

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self.send_response(401)
                    self.end_headers()
                    return
                scopes = parse_qs(urlparse(self.path).query).get("scope", [])
                server.requests.append(scopes)
                body = json.dumps({"token": server.issue(scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def self_signed_certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def token_server() -> Iterator[TokenServer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = TokenServer(key=key, certificate=self_signed_certificate(key))
    http_server = ThreadingHTTPServer(("127.0.0.1", server.port), server.handler())
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    yield server
    http_server.shutdown()
    http_server.server_close()


@pytest.fixture(scope="module")
def token_registry(
    token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    state = tmp_path_factory.mktemp("token-registry")
    bundle = state / "token-issuer.pem"
    bundle.write_bytes(token_server.certificate.public_bytes(serialization.Encoding.PEM))
    settings = TokenAuthSettings(
        realm=token_server.realm,
        service=TOKEN_SERVICE,
        issuer=TOKEN_ISSUER,
        root_cert_bundle=bundle,
    )
    with RegistryProcess(state, token_auth=settings) as registry:
        yield registry


async def test_bearer_tokens_are_fetched_per_scope_and_reused(
    token_registry: RegistryProcess, token_server: TokenServer
) -> None:
    async with RegistryClient(token_registry.url, USERNAME, PASSWORD) as client:
        await client.check()
        digest = await push_base_image(client)
        assert await push_base_image(client) == digest
        assert await client.resolve(BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG) == digest
        fetched_before = len(token_server.requests)
        assert await client.head_manifest(BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG) == digest
        assert len(token_server.requests) == fetched_before, "the pull token is cached"
        assert BASE_IMAGE_REPOSITORY in await client.catalog()
        base_layer = build_base_image().layer.digest
        assert await client.mount_blob("mounted/app", base_layer, BASE_IMAGE_REPOSITORY)
        assert await client.delete_manifest(BASE_IMAGE_REPOSITORY, digest)
    granted = [normalized(scopes) for scopes in token_server.requests]
    assert normalized([f"repository:{BASE_IMAGE_REPOSITORY}:pull,push"]) in granted
    assert normalized(["registry:catalog:*"]) in granted
    assert (
        normalized([f"repository:{BASE_IMAGE_REPOSITORY}:pull", "repository:mounted/app:push,pull"])
        in granted
    ), "a mount asks for both repositories at once"


def normalized(scopes: list[str]) -> set[tuple[str, frozenset[str]]]:
    """Scopes as the registry means them: the order of actions (a Go map's) does not matter."""
    return {
        (scope.rpartition(":")[0], frozenset(scope.rpartition(":")[2].split(",")))
        for scope in scopes
    }


async def test_refused_credentials_are_named_without_the_password(
    token_registry: RegistryProcess,
) -> None:
    async with RegistryClient(token_registry.url, USERNAME, "wrong password") as client:
        with pytest.raises(RegistryAuthError) as raised:
            await client.check()
        assert USERNAME in str(raised.value)
        assert "wrong password" not in str(raised.value)
        assert not raised.value.retryable
        with pytest.raises(RegistryAuthError):
            await client.head_manifest(BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG)


async def test_anonymous_client_is_told_credentials_are_needed(
    token_registry: RegistryProcess,
) -> None:
    async with RegistryClient(token_registry.url) as client:
        with pytest.raises(RegistryAuthError) as raised:
            await client.check()
    assert "anonymous" in str(raised.value)


# -- basic auth checked by the registry itself (htpasswd) --------------------------------------


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    state = tmp_path_factory.mktemp("htpasswd-registry")
    htpasswd = state / "htpasswd"
    # The lowest bcrypt cost keeps each of the registry's password checks fast.
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USERNAME}:{hashed}\n")
    with RegistryProcess(state, htpasswd=htpasswd) as registry:
        yield registry


async def test_basic_auth_answers_the_challenge_and_then_sends_it_upfront(
    htpasswd_registry: RegistryProcess,
) -> None:
    async with RegistryClient(htpasswd_registry.url, USERNAME, PASSWORD) as client:
        await client.check()
        digest = await push_small_image(client, "basic/app", "v1", "basic")
        assert await client.resolve("basic/app", "v1") == digest
        assert await client.list_tags("basic/app") == ["v1"]


async def test_basic_auth_wrong_password_is_refused_in_words(
    htpasswd_registry: RegistryProcess,
) -> None:
    async with RegistryClient(htpasswd_registry.url, USERNAME, "wrong password") as client:
        with pytest.raises(RegistryAuthError) as raised:
            await client.check()
    assert f"refused the credentials of user {USERNAME!r}" in str(raised.value)
    assert "wrong password" not in str(raised.value)
    async with RegistryClient(htpasswd_registry.url) as anonymous:
        with pytest.raises(RegistryAuthError, match="requires credentials"):
            await anonymous.check()
