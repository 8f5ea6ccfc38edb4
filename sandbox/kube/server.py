"""The fake Kubernetes API server: an ASGI app speaking the REST dialect of kube-apiserver
(discovery, CRUD, the four patch types, watch, pod logs, tables) behind a bearer token."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from sandbox.kube import resources, tables
from sandbox.kube.controllers import DeploymentController, SandboxControls, container_log
from sandbox.kube.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch
from sandbox.kube.resources import BY_KIND, Resource, find_resource
from sandbox.kube.selectors import SelectorError, parse_field_selector, parse_label_selector
from sandbox.kube.store import ApiError, ObjectStore, WatchEvent

# Paths anyone may read without credentials, as the system:public-info-viewer role allows.
PUBLIC_PATHS = {"/version", "/version/", "/healthz", "/livez", "/readyz"}
DEFAULT_WATCH_SECONDS = 1800
FLUSH_INTERVAL = 0.2


class KubeApiServer:
    """Holds the store, the controls and the controllers, and serves them as an ASGI app."""

    def __init__(
        self,
        store: ObjectStore,
        controls: SandboxControls,
        token: str,
        server_address: str,
        on_controls_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.controls = controls
        self._token = token
        self._server_address = server_address
        self._on_controls_changed = on_controls_changed
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._controller: DeploymentController | None = None
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._dispatch,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._controller = DeploymentController(self.store, self.controls)
        controller = asyncio.create_task(self._controller.run())
        flusher = asyncio.create_task(self._flush_periodically())
        try:
            yield
        finally:
            self._stopping.set()
            for task in (controller, flusher):
                task.cancel()
            await asyncio.gather(controller, flusher, return_exceptions=True)
            self.store.flush()

    def controls_changed(self) -> None:
        """Keep the changed controls and let the controllers act on them; from any thread."""
        self._on_controls_changed()
        if self._controller is not None:
            self._controller.wake()

    def begin_shutdown(self) -> None:
        """Tell open watches to end, so the server can stop without waiting them out.

        Called from the thread that stops the server, hence through the loop.
        """
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.store.flush()

    # -- dispatch --------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        path = request.url.path
        try:
            if path.startswith("/_sandbox/"):
                return await self._admin(request, path)
            self._authenticate(request, path)
            return await self._route(request, path)
        except ApiError as exc:
            return JSONResponse(exc.status(), status_code=exc.code)

    def _authenticate(self, request: Request, path: str) -> None:
        header = request.headers.get("authorization")
        if header is None:
            if path in PUBLIC_PATHS:
                return
            raise ApiError(
                403,
                "Forbidden",
                f'forbidden: User "system:anonymous" cannot {request.method.lower()} path "{path}"',
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self._token):
            raise ApiError(401, "Unauthorized", "Unauthorized")

    async def _route(self, request: Request, path: str) -> Response:
        parts = [part for part in path.split("/") if part]
        if request.method == "GET":
            document = self._discovery(parts)
            if document is not None:
                if isinstance(document, str):
                    return PlainTextResponse(document)
                return JSONResponse(document)
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            return await self._resource_request(request, "", "v1", parts[2:])
        if len(parts) >= 4 and parts[0] == "apis":
            return await self._resource_request(request, parts[1], parts[2], parts[3:])
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _discovery(self, parts: list[str]) -> dict[str, Any] | str | None:
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return "ok"
        if parts == ["version"]:
            return resources.SERVER_VERSION
        if parts == ["api"]:
            return resources.core_versions(self._server_address)
        if parts == ["apis"]:
            return resources.group_list()
        if parts == ["api", "v1"]:
            return resources.resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            return resources.group(parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return resources.resource_list(parts[1], parts[2])
        return None

    async def _resource_request(
        self, request: Request, group: str, version: str, parts: list[str]
    ) -> Response:
        namespace: str | None = None
        if (
            parts[0] == "namespaces"
            and len(parts) >= 3
            and (scoped := find_resource(group, version, parts[2])) is not None
            and scoped.namespaced
        ):
            namespace, parts = parts[1], parts[2:]
        resource = find_resource(group, version, parts[0])
        if resource is None or len(parts) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = parts[1] if len(parts) > 1 else None
        subresource = parts[2] if len(parts) > 2 else ""
        if subresource and subresource not in resource.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if resource.namespaced and namespace is None and (name or request.method != "GET"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        scope = namespace or ""
        method = request.method
        if method != "GET" and request.query_params.get("dryRun"):
            # Refused rather than ignored: ignoring it would persist what the caller only tried.
            raise ApiError(400, "BadRequest", "dryRun is not supported by the Shipyard sandbox")
        if method == "GET" and name is None:
            return await self._list_or_watch(request, resource, namespace)
        if name is not None and subresource == "log" and method == "GET":
            return self._logs(request, self.store.get(resource, scope, name))
        if name is not None and subresource == "scale":
            return await self._scale(request, resource, scope, name)
        if method == "GET" and name is not None:
            obj = self.store.get(resource, scope, name)
            if tables.wants_table(request.headers.get("accept", "")):
                return JSONResponse(
                    tables.table(
                        resource,
                        [obj],
                        self.store.resource_version,
                        request.query_params.get("includeObject", "Metadata"),
                    )
                )
            return JSONResponse(obj)
        manager = request.query_params.get("fieldManager")
        if method == "POST" and name is None:
            body = await _json_body(request)
            created = self.store.create(resource, scope, body, manager or _agent(request))
            return JSONResponse(created, status_code=201)
        if method == "PUT" and name is not None:
            body = await _json_body(request)
            replaced = self.store.replace(
                resource, scope, name, body, manager or _agent(request), subresource
            )
            return JSONResponse(replaced)
        if method == "PATCH" and name is not None:
            return await self._patch(request, resource, scope, name, subresource, manager)
        if method == "DELETE" and name is not None:
            return JSONResponse(self.store.delete(resource, scope, name))
        if method == "DELETE":
            return self._delete_collection(request, resource, scope)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.url.path}")

    # -- verbs -----------------------------------------------------------------------------

    async def _patch(
        self,
        request: Request,
        resource: Resource,
        namespace: str,
        name: str,
        subresource: str,
        manager: str | None,
    ) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        raw = await request.body()
        if content_type.startswith("application/apply-patch"):
            if not manager:
                raise ApiError(
                    400, "BadRequest", "PATCH: fieldManager is required for apply requests"
                )
            applied = _parse_document(raw, allow_yaml=True)
            if not isinstance(applied, dict):
                raise ApiError(400, "BadRequest", "an apply request body must be an object")
            # Field ownership conflicts between managers are not tracked, so every apply
            # behaves as `force=true` would: the applier takes over the fields it sets.
            obj, created = self.store.apply(resource, namespace, name, applied, manager)
            return JSONResponse(obj, status_code=201 if created else 200)
        patches: dict[str, Callable[[Any, Any], Any]] = {
            "application/json-patch+json": json_patch,
            "application/merge-patch+json": json_merge_patch,
            "application/strategic-merge-patch+json": strategic_merge_patch,
        }
        apply_patch = patches.get(content_type)
        if apply_patch is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join([*patches, 'application/apply-patch+yaml'])}",
            )
        patch = _parse_document(raw, allow_yaml=False)

        def change(live: dict[str, Any]) -> Any:
            try:
                return apply_patch(live, patch)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from None

        obj = self.store.patch(
            resource, namespace, name, change, manager or _agent(request), subresource
        )
        return JSONResponse(obj)

    async def _scale(
        self, request: Request, resource: Resource, namespace: str, name: str
    ) -> Response:
        """`deployments/<name>/scale`: the replica count as an autoscaling/v1 Scale."""
        current = _scale_of(self.store.get(resource, namespace, name))
        if request.method == "GET":
            return JSONResponse(current)
        raw = await request.body()
        if request.method == "PUT":
            wanted = _parse_document(raw, allow_yaml=False)
        elif request.method == "PATCH":
            kind = request.headers.get("content-type", "").split(";")[0].strip()
            document = _parse_document(raw, allow_yaml=kind.startswith("application/apply-patch"))
            try:
                if kind == "application/json-patch+json":
                    wanted = json_patch(current, document)
                else:
                    wanted = strategic_merge_patch(current, document)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from None
        else:
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on scale")
        replicas = (wanted.get("spec") or {}).get("replicas") if isinstance(wanted, dict) else None
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas')

        def scale(deployment: dict[str, Any]) -> dict[str, Any]:
            deployment["spec"]["replicas"] = replicas
            return deployment

        manager = request.query_params.get("fieldManager") or _agent(request)
        updated = self.store.patch(resource, namespace, name, scale, manager)
        return JSONResponse(_scale_of(updated))

    def _delete_collection(self, request: Request, resource: Resource, namespace: str) -> Response:
        items, _ = self.store.list_objects(resource, namespace or None, *self._selectors(request))
        for item in items:
            with contextlib.suppress(ApiError):
                self.store.delete(resource, namespace, item["metadata"]["name"])
        return JSONResponse(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": items,
            }
        )

    @staticmethod
    def _selectors(request: Request) -> tuple[list[Any], list[Any]]:
        try:
            return (
                parse_label_selector(request.query_params.get("labelSelector", "")),
                parse_field_selector(request.query_params.get("fieldSelector", "")),
            )
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None

    async def _list_or_watch(
        self, request: Request, resource: Resource, namespace: str | None
    ) -> Response:
        labels, fields = self._selectors(request)
        params = request.query_params
        if params.get("watch") in ("true", "1", "True"):
            return self._watch(request, resource, namespace, labels, fields)
        items, resource_version = self.store.list_objects(resource, namespace, labels, fields)
        if tables.wants_table(request.headers.get("accept", "")):
            return JSONResponse(
                tables.table(
                    resource, items, resource_version, params.get("includeObject", "Metadata")
                )
            )
        return JSONResponse(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(resource_version)},
                "items": items,
            }
        )

    def _watch(
        self,
        request: Request,
        resource: Resource,
        namespace: str | None,
        labels: list[Any],
        fields: list[Any],
    ) -> Response:
        params = request.query_params
        timeout = float(params.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        since_text = params.get("resourceVersion", "")
        send_initial = params.get("sendInitialEvents") == "true"
        # No version (or "0") means "start from the current state": every object as ADDED first.
        since = int(since_text) if since_text not in ("", "0") and not send_initial else None
        loop = asyncio.get_running_loop()
        changes: asyncio.Queue[WatchEvent] = asyncio.Queue()

        def on_change(event: WatchEvent) -> None:
            if event.resource_key == resource.key:
                loop.call_soon_threadsafe(changes.put_nowait, event)

        def relevant(obj: dict[str, Any]) -> bool:
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return self.store.matches(obj, labels, fields)

        opening: list[dict[str, Any]] = []
        try:
            backlog = self.store.subscribe(on_change, since)
        except ApiError as exc:
            backlog, opening = [], [{"type": "ERROR", "object": exc.status()}]
            timeout = 0
        else:
            if since is None:
                items, current = self.store.list_objects(resource, namespace, labels, fields)
                opening = [{"type": "ADDED", "object": item} for item in items]
                if send_initial:
                    opening.append(_initial_events_end(resource, current))
            opening += [
                {"type": event.type, "object": event.obj}
                for event in backlog
                if event.resource_key == resource.key and relevant(event.obj)
            ]

        async def stream() -> AsyncIterator[bytes]:
            deadline = loop.time() + timeout
            try:
                for event in opening:
                    yield _line(event)
                while not self._stopping.is_set():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        change = await asyncio.wait_for(changes.get(), min(remaining, 0.5))
                    except TimeoutError:
                        continue
                    if relevant(change.obj):
                        yield _line({"type": change.type, "object": change.obj})
            finally:
                self.store.unsubscribe(on_change)

        return StreamingResponse(stream(), media_type="application/json")

    def _logs(self, request: Request, pod: dict[str, Any]) -> Response:
        params = request.query_params
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        container = params.get("container")
        pod_name = pod["metadata"]["name"]
        if container is None:
            default = (pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            )
            if default in names:
                container = default
            elif len(names) == 1:
                container = names[0]
            else:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod_name}, "
                    f"choose one of: [{' '.join(names)}]",
                )
        if container is None or container not in names:
            raise ApiError(
                400, "BadRequest", f"container {container} is not valid for pod {pod_name}"
            )
        lines = container_log(pod, container)
        now = datetime.datetime.now(datetime.UTC)
        since_seconds = params.get("sinceSeconds")
        if since_seconds:
            cutoff = now - datetime.timedelta(seconds=int(since_seconds))
            lines = [(moment, text) for moment, text in lines if moment >= cutoff]
        since_time = params.get("sinceTime")
        if since_time:
            cutoff = datetime.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
            lines = [(moment, text) for moment, text in lines if moment >= cutoff]
        tail = params.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        with_timestamps = params.get("timestamps") in ("true", "1", "True")
        body = "".join(
            (f"{_rfc3339_nano(moment)} {text}\n" if with_timestamps else f"{text}\n")
            for moment, text in lines
        )
        limit = params.get("limitBytes")
        if limit:
            body = body[: int(limit)]
        return PlainTextResponse(body)

    # -- sandbox controls ------------------------------------------------------------------

    async def _admin(self, request: Request, path: str) -> Response:
        if path == "/_sandbox/controls" and request.method == "GET":
            return JSONResponse(self.controls.to_json())
        if path == "/_sandbox/failing-images" and request.method == "POST":
            images = (await _json_body(request)).get("images", [])
            self.controls.failing_images = {str(image) for image in images}
            self.controls_changed()
            return JSONResponse(self.controls.to_json())
        if path == "/_sandbox/rollout-delay" and request.method == "POST":
            self.controls.rollout_delay = float((await _json_body(request))["seconds"])
            self.controls_changed()
            return JSONResponse(self.controls.to_json())
        if path == "/_sandbox/fail-after" and request.method == "POST":
            images = (await _json_body(request)).get("images") or {}
            if not isinstance(images, dict):
                raise ApiError(400, "BadRequest", "images must map an image to seconds")
            try:
                self.controls.fail_after = {str(k): float(v) for k, v in images.items()}
            except (TypeError, ValueError):
                raise ApiError(400, "BadRequest", "images must map an image to seconds") from None
            self.controls_changed()
            return JSONResponse(self.controls.to_json())
        if path == "/_sandbox/objects" and request.method == "GET":
            dump = {
                resource.key: self.store.list_objects(resource, None)[0]
                for resource in BY_KIND.values()
            }
            return JSONResponse(
                {"resourceVersion": str(self.store.resource_version), "objects": dump}
            )
        raise ApiError(404, "NotFound", f"no sandbox control at {request.method} {path}")


async def _json_body(request: Request) -> dict[str, Any]:
    document = _parse_document(await request.body(), allow_yaml=False)
    if not isinstance(document, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return document


def _parse_document(raw: bytes, allow_yaml: bool) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        if not allow_yaml:
            raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ApiError(400, "BadRequest", f"the request body is not valid YAML: {exc}") from None


def _scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    selector = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": deployment["spec"].get("replicas", 1)},
        "status": {
            "replicas": deployment.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in selector.items()),
        },
    }


def _agent(request: Request) -> str:
    """The field manager of a write that names none: the client's name, as the real server."""
    agent = request.headers.get("user-agent", "unknown")
    return agent.split("/", 1)[0][:128] or "unknown"


def _line(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, separators=(",", ":")) + "\n").encode()


def _initial_events_end(resource: Resource, resource_version: int) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": resource.kind,
            "apiVersion": resource.api_version,
            "metadata": {
                "resourceVersion": str(resource_version),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        },
    }


def _rfc3339_nano(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
