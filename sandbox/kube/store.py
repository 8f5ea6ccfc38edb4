"""The fake cluster's object store: resourceVersion, uid and generation, watch history, and a
JSON file that keeps the objects across restarts."""

from __future__ import annotations

import collections
import copy
import datetime
import json
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.kube.defaults import Invalid, apply_defaults, validate
from sandbox.kube.patch import server_side_apply
from sandbox.kube.resources import BY_KIND, Resource
from sandbox.kube.selectors import Requirement, fields_match, labels_match

NAMESPACES = BY_KIND["Namespace"]
WATCH_HISTORY = 10_000
# Kinds whose delete answers with a Status rather than the deleted object, as the real server.
DELETE_ANSWERS_STATUS = {"Deployment", "ReplicaSet", "Ingress", "Secret", "ConfigMap", "Event"}


class ApiError(Exception):
    """A request the server refuses, carried to the client as a `Status` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(resource: Resource) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource)} "{name}" not found',
        {"name": name, "group": resource.group, "kind": resource.plural},
    )


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    resource_key: str
    obj: dict[str, Any]


Subscriber = Callable[[WatchEvent], None]


class ObjectStore:
    """Every object of the fake cluster; thread-safe, every change published to subscribers."""

    def __init__(self, state_file: Path | None = None) -> None:
        self._state_file = state_file
        self._lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        # The last configuration each field manager applied, so an apply that drops a field
        # removes it (what managedFields achieves in the real server).
        self._applied: dict[str, Any] = {}
        self._resource_version = 0
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=WATCH_HISTORY)
        self._subscribers: list[Subscriber] = []
        self._dirty = False
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # -- reading ---------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._resource_version

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._bucket(resource).get((self._ns(resource, namespace), name))
            if obj is None:
                raise not_found(resource, name)
            return copy.deepcopy(obj)

    def find(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(resource, namespace, name)
        except ApiError:
            return None

    def list_objects(
        self,
        resource: Resource,
        namespace: str | None,
        labels: list[Requirement] | None = None,
        fields: list[Requirement] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching objects sorted by namespace and name, and the store's resourceVersion."""
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._bucket(resource).items())
                if (namespace is None or ns == namespace) and self.matches(obj, labels, fields)
            ]
            return items, self._resource_version

    @staticmethod
    def matches(
        obj: dict[str, Any], labels: list[Requirement] | None, fields: list[Requirement] | None
    ) -> bool:
        return labels_match(labels or [], obj["metadata"].get("labels")) and fields_match(
            fields or [], obj
        )

    # -- writing ---------------------------------------------------------------------------

    def create(
        self, resource: Resource, namespace: str, obj: dict[str, Any], manager: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            self._check_namespace(resource, namespace, meta)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            name = meta.get("name", "")
            if (self._ns(resource, namespace), name) in self._bucket(resource):
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{qualified(resource)} "{name}" already exists',
                    {"name": name, "group": resource.group, "kind": resource.plural},
                )
            return self._commit(resource, namespace, obj, None, manager, "Update")

    def replace(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        manager: str | None = None,
        subresource: str = "",
    ) -> dict[str, Any]:
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            self._check_namespace(resource, namespace, meta)
            if meta.get("name", name) != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the name of the object "
                    f"({meta.get('name')}) does not match the name on the URL ({name})",
                )
            old = self.get(resource, namespace, name)
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource)} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and "
                    "try again",
                    {"name": name, "group": resource.group, "kind": resource.plural},
                )
            meta["name"] = name
            return self._commit(
                resource,
                namespace,
                self._split_status(old, obj, subresource),
                old,
                manager,
                "Update",
            )

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        change: Callable[[dict[str, Any]], Any],
        manager: str | None = None,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Apply `change` (a patch function) to the live object and store the result."""
        with self._lock:
            old = self.get(resource, namespace, name)
            patched = change(copy.deepcopy(old))
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "the patch does not produce an object")
            patched.setdefault("metadata", {})
            if (
                patched["metadata"].get("resourceVersion", old["metadata"]["resourceVersion"])
                != (old["metadata"]["resourceVersion"])
            ):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {qualified(resource)} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and "
                    "try again",
                )
            patched["metadata"]["name"] = name
            return self._commit(
                resource,
                namespace,
                self._split_status(old, patched, subresource),
                old,
                manager,
                "Update",
            )

    def apply(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        applied: dict[str, Any],
        manager: str,
    ) -> tuple[dict[str, Any], bool]:
        """Server-side apply: create the object, or merge this manager's configuration into it.

        Returns the object and whether it was created.
        """
        with self._lock:
            meta = applied.setdefault("metadata", {})
            self._check_namespace(resource, namespace, meta)
            if meta.get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
            meta["name"] = name
            key = f"{resource.key}|{self._ns(resource, namespace)}|{name}|{manager}"
            old = self.find(resource, namespace, name)
            if old is None:
                created = self._commit(
                    resource, namespace, copy.deepcopy(applied), None, manager, "Apply"
                )
                self._applied[key] = copy.deepcopy(applied)
                return created, True
            merged = server_side_apply(old, self._applied.get(key), applied)
            merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            result = self._commit(resource, namespace, merged, old, manager, "Apply")
            self._applied[key] = copy.deepcopy(applied)
            return result, False

    def delete(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """Remove the object (and, for a namespace, everything in it); answer as the server."""
        with self._lock:
            obj = self.get(resource, namespace, name)
            if resource is NAMESPACES:
                for other_key, bucket in self._objects.items():
                    for ns, other_name in [k for k in bucket if k[0] == name]:
                        doomed = bucket.pop((ns, other_name))
                        self._forget_applied(other_key, ns, other_name)
                        self._publish("DELETED", other_key, doomed)
                obj["status"] = {"phase": "Terminating"}
            self._bucket(resource).pop((self._ns(resource, namespace), name))
            self._forget_applied(resource.key, self._ns(resource, namespace), name)
            self._publish("DELETED", resource.key, obj)
            if resource.kind in DELETE_ANSWERS_STATUS:
                return {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": resource.group,
                        "kind": resource.plural,
                        "uid": obj["metadata"]["uid"],
                    },
                }
            return obj

    # -- watching --------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, since: int | None = None) -> list[WatchEvent]:
        """Register `subscriber` for every later change; return the changes after `since`.

        Raises 410 Gone when `since` is older than the history kept (as after compaction).
        """
        with self._lock:
            backlog: list[WatchEvent] = []
            if since is not None and since < self._resource_version:
                oldest = self._history[0].resource_version if self._history else None
                if oldest is None or since < oldest - 1:
                    latest = self._resource_version
                    raise ApiError(410, "Expired", f"too old resource version: {since} ({latest})")
                backlog = [event for event in self._history if event.resource_version > since]
            self._subscribers.append(subscriber)
            return backlog

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    # -- persistence -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write the state file if anything changed since the last write."""
        with self._lock:
            if not self._dirty or self._state_file is None:
                return
            state = {
                "resourceVersion": self._resource_version,
                "objects": {
                    key: list(bucket.values()) for key, bucket in self._objects.items() if bucket
                },
                "applied": self._applied,
            }
            self._dirty = False
            temporary = self._state_file.with_suffix(".tmp")
            temporary.write_text(json.dumps(state))
            temporary.replace(self._state_file)

    def _load(self, state_file: Path) -> None:
        state = json.loads(state_file.read_text())
        self._resource_version = int(state["resourceVersion"])
        self._applied = state.get("applied", {})
        for key, items in state["objects"].items():
            bucket = self._objects.setdefault(key, {})
            for obj in items:
                bucket[(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj

    # -- internals -------------------------------------------------------------------------

    def _bucket(self, resource: Resource) -> dict[tuple[str, str], dict[str, Any]]:
        return self._objects.setdefault(resource.key, {})

    @staticmethod
    def _ns(resource: Resource, namespace: str) -> str:
        return namespace if resource.namespaced else ""

    def _check_namespace(self, resource: Resource, namespace: str, meta: dict[str, Any]) -> None:
        if not resource.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        if (("", namespace)) not in self._bucket(NAMESPACES):
            raise not_found(NAMESPACES, namespace)

    @staticmethod
    def _split_status(old: dict[str, Any], new: dict[str, Any], subresource: str) -> dict[str, Any]:
        """Writes to an object ignore its status; writes to `/status` change only the status."""
        if subresource == "status":
            result = copy.deepcopy(old)
            result["status"] = new.get("status", {})
            result["metadata"]["resourceVersion"] = new["metadata"].get(
                "resourceVersion", old["metadata"]["resourceVersion"]
            )
            return result
        if "status" in old:
            new["status"] = old["status"]
        return new

    def _commit(
        self,
        resource: Resource,
        namespace: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        manager: str | None,
        operation: str,
    ) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        if resource.namespaced:
            meta["namespace"] = namespace
        if old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta.pop("resourceVersion", None)
        else:
            for preserved in ("uid", "creationTimestamp"):
                meta[preserved] = old["metadata"][preserved]
        apply_defaults(resource, obj, self._next_cluster_ip())
        try:
            validate(resource, obj, old)
        except Invalid as exc:
            raise ApiError(
                422,
                "Invalid",
                f"{resource.kind}{'.' + resource.group if resource.group else ''} "
                f'"{meta.get("name", "")}" is invalid: {exc}',
                {
                    "name": meta.get("name", ""),
                    "group": resource.group,
                    "kind": resource.kind,
                    "causes": [
                        {"reason": "FieldValueInvalid", "message": message, "field": field}
                        for field, message in exc.causes
                    ],
                },
            ) from None
        if resource.has_generation:
            generation = 1 if old is None else int(old["metadata"].get("generation", 1))
            if old is not None and old.get("spec") != obj.get("spec"):
                generation += 1
            meta["generation"] = generation
        if manager:
            meta["managedFields"] = self._managed_fields(
                (old or {}).get("metadata", {}).get("managedFields", []),
                manager,
                operation,
                resource.api_version,
            )
        if old is not None and _same_content(old, obj):
            return old
        self._resource_version += 1
        meta["resourceVersion"] = str(self._resource_version)
        self._bucket(resource)[(self._ns(resource, namespace), meta["name"])] = obj
        self._publish("ADDED" if old is None else "MODIFIED", resource.key, obj)
        return copy.deepcopy(obj)

    @staticmethod
    def _managed_fields(
        entries: list[dict[str, Any]], manager: str, operation: str, api_version: str
    ) -> list[dict[str, Any]]:
        kept = [
            entry
            for entry in entries
            if (entry.get("manager"), entry.get("operation")) != (manager, operation)
        ]
        kept.append(
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": api_version,
                "time": now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": {},
            }
        )
        return kept

    def _next_cluster_ip(self) -> str:
        number = self._resource_version + 1
        return f"10.96.{number // 250 % 250}.{number % 250 + 1}"

    def _forget_applied(self, resource_key: str, namespace: str, name: str) -> None:
        prefix = f"{resource_key}|{namespace}|{name}|"
        for key in [k for k in self._applied if k.startswith(prefix)]:
            del self._applied[key]

    def _publish(self, event_type: str, resource_key: str, obj: dict[str, Any]) -> None:
        if event_type == "DELETED":
            # A deletion is a change of its own, with a resourceVersion watchers resume from.
            self._resource_version += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self._resource_version)
        event = WatchEvent(self._resource_version, event_type, resource_key, copy.deepcopy(obj))
        self._history.append(event)
        self._dirty = True
        for subscriber in list(self._subscribers):
            subscriber(event)


def _same_content(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a write changes nothing but bookkeeping, so the server skips it (no new version)."""

    def without_bookkeeping(obj: dict[str, Any]) -> dict[str, Any]:
        trimmed = copy.deepcopy(obj)
        for field in ("resourceVersion", "managedFields"):
            trimmed["metadata"].pop(field, None)
        return trimmed

    return without_bookkeeping(old) == without_bookkeeping(new)
