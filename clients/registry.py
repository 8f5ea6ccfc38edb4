"""OCI distribution API client (blobs, manifests, tags, catalog) with basic and bearer auth."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from core.settings import Settings

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

DEFAULT_TIMEOUT_SECONDS = 30.0
# Refresh a bearer token this long before the registry would refuse it.
TOKEN_EXPIRY_MARGIN_SECONDS = 10.0

_DIGEST_PATTERN = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(Exception):
    """A registry refused or failed a request; `code` names the fact for the API."""

    retryable = False

    def __init__(self, message: str, code: str = "REGISTRY_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or failed on its side (network, 429, 5xx)."""

    retryable = True

    def __init__(self, message: str, code: str = "REGISTRY_UNAVAILABLE") -> None:
        super().__init__(message, code)


class RegistryAuthError(RegistryError):
    def __init__(self, message: str, code: str = "REGISTRY_AUTH_FAILED") -> None:
        super().__init__(message, code)


class ManifestNotFound(RegistryError):
    def __init__(self, message: str, code: str = "IMAGE_NOT_FOUND") -> None:
        super().__init__(message, code)


class BlobNotFound(RegistryError):
    def __init__(self, message: str, code: str = "BLOB_NOT_FOUND") -> None:
        super().__init__(message, code)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_size(manifest: bytes) -> int | None:
    """What an image weighs in the registry: its manifest, config and layers, as the manifest
    says; None when it is not a manifest that says so."""
    try:
        body = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    parts = [body.get("config") or {}, *(body.get("layers") or [])]
    sizes = [part.get("size") for part in parts if isinstance(part, dict)]
    return len(manifest) + sum(size for size in sizes if isinstance(size, int))


def is_digest(reference: str) -> bool:
    return bool(_DIGEST_PATTERN.match(reference))


@dataclass(frozen=True)
class ImageRef:
    """`[registry/]repository[:tag][@digest]`, e.g. `127.0.0.1:5000/acme/shop@sha256:...`."""

    repository: str
    registry: str | None = None
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        remainder, digest = text.strip(), None
        if "@" in remainder:
            remainder, digest = remainder.split("@", 1)
            if not is_digest(digest):
                raise ValueError(f"image reference {text!r} has a malformed digest {digest!r}")
        registry = None
        first, slash, rest = remainder.partition("/")
        # Like docker: the first component is a registry only if it looks like a host.
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, remainder = first, rest
        tag = None
        # A colon after the last slash separates the tag; one before it was a port.
        name, colon, maybe_tag = remainder.rpartition(":")
        if colon and "/" not in maybe_tag:
            remainder, tag = name, maybe_tag
        if (
            not remainder
            or remainder.startswith("/")
            or remainder.endswith("/")
            or "//" in remainder
        ):
            raise ValueError(f"image reference {text!r} has no valid repository name")
        if remainder != remainder.lower():
            raise ValueError(f"image reference {text!r}: repository names are lowercase")
        if tag is not None and not re.fullmatch(r"[\w][\w.-]{0,127}", tag):
            raise ValueError(f"image reference {text!r} has a malformed tag {tag!r}")
        return cls(repository=remainder, registry=registry, tag=tag, digest=digest)

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when known, else the tag (default latest)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str

    def parsed(self) -> dict[str, Any]:
        return _json_or_empty(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryClient:
    """Async client for one registry. Credentials never appear in errors or logs."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> RegistryClient:
        """The registry of SHIPYARD_REGISTRY_URL with its credentials; `url` names the one
        base images are pulled from, when that is elsewhere, with its own."""
        if url is not None and url != settings.registry_url:
            username, password = settings.base_image_credentials()
            return cls(url, username or None, password or None, timeout=timeout)
        return cls(
            settings.registry_url,
            settings.registry_username or None,
            settings.registry_password.get_secret_value() or None,
            timeout=timeout,
        )

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._url = httpx.URL(self.base_url)
        self._username = username
        self._basic_auth = (
            httpx.BasicAuth(username, password or "") if username is not None else None
        )
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=True)
        self._tokens: dict[str, _Token] = {}
        # Set once the registry has asked for basic auth, so later requests send it at once.
        self._basic_challenged = False

    @property
    def host(self) -> str:
        """`host[:port]` as it appears in image references pushed to this registry."""
        return self._url.netloc.decode()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- health --------------------------------------------------------------------------------

    async def check(self) -> None:
        """Raises in words when the registry is unreachable or refuses these credentials."""
        response = await self._send("GET", "/v2/", scope="")
        if response.status_code in (401, 403):
            if self._basic_auth is None:
                raise RegistryAuthError(
                    f"registry at {self.base_url} requires credentials and none are configured "
                    "(set SHIPYARD_REGISTRY_USERNAME and SHIPYARD_REGISTRY_PASSWORD)"
                )
            raise RegistryAuthError(
                f"registry at {self.base_url} refused the credentials of user {self._username!r}"
            )
        self._raise_for_status(response, "GET /v2/")

    # -- blobs ---------------------------------------------------------------------------------

    async def blob_exists(self, repository: str, digest: str) -> bool:
        path = f"/v2/{repository}/blobs/{digest}"
        response = await self._send("HEAD", path, scope=_pull(repository))
        if response.status_code == 404:
            return False
        self._raise_for_status(response, f"HEAD {path}")
        return True

    async def get_blob(self, repository: str, digest: str) -> bytes:
        path = f"/v2/{repository}/blobs/{digest}"
        response = await self._send("GET", path, scope=_pull(repository))
        if response.status_code == 404:
            raise BlobNotFound(f"blob {digest} not found in {self.host}/{repository}")
        self._raise_for_status(response, f"GET {path}")
        if sha256_digest(response.content) != digest:
            raise RegistryUnavailable(
                f"blob {digest} from {self.host}/{repository} arrived corrupted (digest mismatch)"
            )
        return response.content

    async def upload_blob(
        self,
        repository: str,
        data: bytes,
        digest: str | None = None,
        chunk_size: int | None = None,
    ) -> str:
        """Uploads `data` in one PUT, or in PATCHes of `chunk_size` bytes; returns its digest."""
        digest = digest or sha256_digest(data)
        location = await self._start_upload(repository)
        if chunk_size is not None and chunk_size > 0:
            for start in range(0, len(data), chunk_size):
                chunk = data[start : start + chunk_size]
                response = await self._send(
                    "PATCH",
                    location,
                    scope=_push(repository),
                    content=chunk,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + len(chunk) - 1}",
                    },
                )
                self._raise_for_status(response, f"PATCH upload to {repository}")
                location = self._upload_location(response, repository)
            final_body = b""
        else:
            final_body = data
        response = await self._send(
            "PUT",
            httpx.URL(location).copy_merge_params({"digest": digest}),
            scope=_push(repository),
            content=final_body,
            headers={"Content-Type": "application/octet-stream"},
        )
        self._raise_for_status(response, f"PUT blob {digest} to {repository}")
        return digest

    async def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Links a blob from another repository of this registry; False if it must be uploaded."""
        response = await self._send(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope=f"{_push(repository)} {_pull(from_repository)}",
            params={"mount": digest, "from": from_repository},
        )
        if response.status_code == 201:
            return True
        self._raise_for_status(response, f"mount {digest} into {repository}")
        # 202: the registry opened an ordinary upload instead; close it rather than leak it.
        location = response.headers.get("Location")
        if location:
            await self._send("DELETE", self._absolute(location), scope=_push(repository))
        return False

    # -- manifests -----------------------------------------------------------------------------

    async def put_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str
    ) -> str:
        path = f"/v2/{repository}/manifests/{reference}"
        response = await self._send(
            "PUT", path, scope=_push(repository), content=body, headers={"Content-Type": media_type}
        )
        self._raise_for_status(response, f"PUT manifest {repository}:{reference}")
        return sha256_digest(body)

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        path = f"/v2/{repository}/manifests/{reference}"
        response = await self._send(
            "GET", path, scope=_pull(repository), headers={"Accept": _ACCEPT_MANIFESTS}
        )
        if response.status_code == 404:
            raise ManifestNotFound(f"image {self.host}/{_joined(repository, reference)} not found")
        self._raise_for_status(response, f"GET manifest {_joined(repository, reference)}")
        digest = sha256_digest(response.content)
        if is_digest(reference) and reference != digest:
            raise RegistryUnavailable(
                f"manifest {reference} from {self.host}/{repository} does not match its digest"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if media_type not in MANIFEST_MEDIA_TYPES:
            media_type = str(_json_or_empty(response.content).get("mediaType", media_type))
        return Manifest(body=response.content, media_type=media_type, digest=digest)

    async def head_manifest(self, repository: str, reference: str) -> str | None:
        path = f"/v2/{repository}/manifests/{reference}"
        response = await self._send(
            "HEAD", path, scope=_pull(repository), headers={"Accept": _ACCEPT_MANIFESTS}
        )
        if response.status_code == 404:
            return None
        self._raise_for_status(response, f"HEAD manifest {_joined(repository, reference)}")
        digest = response.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        return (await self.get_manifest(repository, reference)).digest

    async def resolve(self, repository: str, tag: str) -> str:
        digest = await self.head_manifest(repository, tag)
        if digest is None:
            raise ManifestNotFound(f"image {self.host}/{_joined(repository, tag)} not found")
        return digest

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Deletes by digest; False when it was already gone."""
        if not is_digest(digest):
            raise ValueError(f"manifests are deleted by digest, not by tag ({digest!r})")
        path = f"/v2/{repository}/manifests/{digest}"
        response = await self._send("DELETE", path, scope=_delete(repository))
        if response.status_code == 404:
            return False
        self._raise_for_status(response, f"DELETE manifest {repository}@{digest}")
        return True

    # -- listings ------------------------------------------------------------------------------

    async def list_tags(self, repository: str, page_size: int | None = None) -> list[str]:
        """All tags; an unknown repository, or one whose tags were all deleted, has none."""
        tags: list[str] = []
        try:
            async for page in self._pages(
                f"/v2/{repository}/tags/list", _pull(repository), page_size
            ):
                tags.extend(page.get("tags") or [])
        except ManifestNotFound:  # NAME_UNKNOWN: nothing was ever pushed there
            return []
        return tags

    async def catalog(self, page_size: int | None = None) -> list[str]:
        repositories: list[str] = []
        async for page in self._pages("/v2/_catalog", "registry:catalog:*", page_size):
            repositories.extend(page.get("repositories") or [])
        return repositories

    async def _pages(
        self, path: str, scope: str, page_size: int | None
    ) -> AsyncIterator[dict[str, Any]]:
        url: str | httpx.URL = path
        params = {"n": str(page_size)} if page_size else None
        while True:
            response = await self._send("GET", url, scope=scope, params=params)
            self._raise_for_status(response, f"GET {path}")
            yield _json_or_empty(response.content)
            match = _NEXT_LINK.search(response.headers.get("Link", ""))
            if match is None:
                return
            # The next link carries its own n= and last= parameters.
            url, params = self._absolute(match.group(1)), None

    # -- transport and auth --------------------------------------------------------------------

    async def _start_upload(self, repository: str) -> str:
        response = await self._send(
            "POST", f"/v2/{repository}/blobs/uploads/", scope=_push(repository)
        )
        self._raise_for_status(response, f"start upload to {repository}")
        return self._upload_location(response, repository)

    def _upload_location(self, response: httpx.Response, repository: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"registry gave no upload location for {repository}")
        return str(self._absolute(location))

    def _absolute(self, location: str) -> httpx.URL:
        # Locations may be relative to the registry (`/v2/...?_state=...`).
        return self._url.join(location)

    async def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        scope: str,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        target = self._absolute(url) if isinstance(url, str) else url
        if params:
            target = target.copy_merge_params(params)
        response = await self._send_once(method, target, content, headers, scope)
        if response.status_code != 401:
            return response
        challenge = response.headers.get("WWW-Authenticate", "")
        if self._basic_auth is None and not challenge.lower().startswith("bearer"):
            return response
        if challenge.lower().startswith("basic"):
            if self._basic_challenged:
                return response
            self._basic_challenged = True
        elif challenge.lower().startswith("bearer"):
            self._tokens[scope] = await self._fetch_token(challenge, scope)
        else:
            return response
        return await self._send_once(method, target, content, headers, scope)

    async def _send_once(
        self,
        method: str,
        url: httpx.URL,
        content: bytes | None,
        headers: dict[str, str] | None,
        scope: str,
    ) -> httpx.Response:
        request_headers = dict(headers or {})
        auth = None
        token = self._tokens.get(scope)
        if token is not None:
            if token.expires_at > time.monotonic():
                request_headers["Authorization"] = f"Bearer {token.value}"
        elif self._basic_challenged:
            auth = self._basic_auth
        try:
            return await self._http.request(
                method, url, content=content, headers=request_headers, auth=auth
            )
        except httpx.TransportError as error:
            raise RegistryUnavailable(
                f"registry at {self.base_url} is unreachable ({type(error).__name__}: {error})"
            ) from error

    async def _fetch_token(self, challenge: str, scope: str) -> _Token:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError(
                f"registry at {self.base_url} sent a bearer challenge without realm"
            )
        query: list[tuple[str, str | int | float | bool | None]] = []
        if "service" in params:
            query.append(("service", params["service"]))
        # Ask for what the registry said it needs; fall back to what this request needs.
        for requested in (params.get("scope") or scope).split():
            query.append(("scope", requested))
        try:
            response = await self._http.get(realm, params=query, auth=self._basic_auth)
        except httpx.TransportError as error:
            raise RegistryUnavailable(
                f"token server {realm} of registry {self.base_url} is unreachable "
                f"({type(error).__name__})"
            ) from error
        if response.status_code in (401, 403):
            who = f"user {self._username!r}" if self._username else "anonymous access"
            raise RegistryAuthError(
                f"token server {realm} of registry {self.base_url} refused {who}"
            )
        if response.status_code >= 500:
            raise RegistryUnavailable(
                f"token server {realm} failed with HTTP {response.status_code}"
            )
        body = _json_or_empty(response.content)
        value = body.get("token") or body.get("access_token")
        if response.status_code != 200 or not isinstance(value, str):
            raise RegistryAuthError(
                f"token server {realm} answered HTTP {response.status_code} without a token"
            )
        lifetime = float(body.get("expires_in") or 60)
        return _Token(value, time.monotonic() + lifetime - TOKEN_EXPIRY_MARGIN_SECONDS)

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code, detail = _registry_error(response)
        message = f"registry {self.host}: {what} failed with HTTP {status}"
        if detail:
            message += f": {detail}"
        if status == 429 or status >= 500:
            raise RegistryUnavailable(message)
        if status in (401, 403):
            raise RegistryAuthError(message)
        if status == 404:
            if code == "BLOB_UNKNOWN":
                raise BlobNotFound(message)
            raise ManifestNotFound(message)
        raise RegistryError(message, code=code or "REGISTRY_ERROR")


_ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _delete(repository: str) -> str:
    return f"repository:{repository}:delete"


def _joined(repository: str, reference: str) -> str:
    return f"{repository}@{reference}" if is_digest(reference) else f"{repository}:{reference}"


def _json_or_empty(content: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(content)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _registry_error(response: httpx.Response) -> tuple[str | None, str]:
    """The first error of the distribution error body: (code, "CODE: message")."""
    errors = _json_or_empty(response.content).get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, ""
    first = errors[0]
    code = first.get("code")
    return (code if isinstance(code, str) else None), f"{code}: {first.get('message', '')}"
