"""The four ways the Kubernetes API changes an object in place: JSON patch, JSON merge patch,
strategic merge patch and server-side apply."""

from __future__ import annotations

import copy
from typing import Any

# Lists Kubernetes merges item by item in a strategic merge patch, with the key that
# identifies an item; every other list is replaced whole, as the API server does.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}


class PatchError(ValueError):
    """The patch cannot be applied to the object; the server answers 422 (or 400)."""


def merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # Container ports merge on containerPort, Service ports on port.
        if any(isinstance(item, dict) and "containerPort" in item for item in items):
            return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge: like a merge patch, but keyed lists merge item by item.

    Supports the directives kubectl sends: `$patch: replace|delete` on maps and list items,
    `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`, and `$retainKeys`.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return copy.deepcopy(patch)
    if directive == "delete":
        return None
    retain = patch.pop("$retainKeys", None)
    result = dict(target) if isinstance(target, dict) else {}
    if retain is not None:
        result = {key: value for key, value in result.items() if key in retain}
    for key in [k for k in patch if k.startswith("$setElementOrder/")]:
        patch.pop(key)
    for key in [k for k in patch if k.startswith("$deleteFromPrimitiveList/")]:
        doomed = patch.pop(key)
        name = key.split("/", 1)[1]
        if isinstance(result.get(name), list):
            result[name] = [item for item in result[name] if item not in doomed]
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            merged = _merge_list(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, dict):
            merged_map = strategic_merge_patch(result.get(key), value, key)
            if merged_map is None:
                result.pop(key, None)
            else:
                result[key] = merged_map
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_list(current: Any, patch: list[Any], field: str) -> list[Any] | None:
    key = merge_key(field, patch + (current if isinstance(current, list) else []))
    if key is None or not isinstance(current, list):
        cleaned = [
            strategic_merge_patch(None, item, field) if isinstance(item, dict) else item
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "delete")
        ]
        return cleaned
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            copy.deepcopy(item)
            for item in patch
            if not (isinstance(item, dict) and "$patch" in item)
        ]
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"map in list {field!r} does not contain the merge key {key!r}")
        index = next(
            (i for i, existing in enumerate(result) if existing.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(strategic_merge_patch(None, item, field))
        else:
            result[index] = strategic_merge_patch(result[index], item, field)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 operations on a copy of the object."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation: {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "add":
            document = _pointer_set(document, path, copy.deepcopy(operation["value"]), insert=True)
        elif op == "remove":
            document = _pointer_remove(document, path)
        elif op == "replace":
            _pointer_get(document, path)
            document = _pointer_set(document, path, copy.deepcopy(operation["value"]))
        elif op == "move":
            value = _pointer_get(document, operation["from"])
            document = _pointer_remove(document, operation["from"])
            document = _pointer_set(document, path, value, insert=True)
        elif op == "copy":
            value = copy.deepcopy(_pointer_get(document, operation["from"]))
            document = _pointer_set(document, path, value, insert=True)
        elif op == "test":
            if _pointer_get(document, path) != operation.get("value"):
                raise PatchError(f"test operation failed at {path}")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return document


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _container(document: Any, tokens: list[str], path: str) -> Any:
    node = document
    for token in tokens:
        node = _step(node, token, path)
    return node


def _step(node: Any, token: str, path: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    raise PatchError(f"path {path} does not exist")


def _pointer_get(document: Any, path: str) -> Any:
    return _container(document, _tokens(path), path)


def _pointer_set(document: Any, path: str, value: Any, insert: bool = False) -> Any:
    tokens = _tokens(path)
    if not tokens:
        return value
    parent = _container(document, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            if insert:
                parent.insert(int(last), value)
            elif int(last) < len(parent):
                parent[int(last)] = value
            else:
                raise PatchError(f"path {path} does not exist")
        else:
            raise PatchError(f"path {path} does not exist")
    else:
        raise PatchError(f"path {path} does not exist")
    return document


def _pointer_remove(document: Any, path: str) -> Any:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError("cannot remove the whole object")
    parent = _container(document, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent.pop(int(last))
    else:
        raise PatchError(f"path {path} does not exist")
    return document


def server_side_apply(live: dict[str, Any], previous: Any, applied: dict[str, Any]) -> Any:
    """Merge an applied configuration into the live object, as one field manager would.

    Fields this manager set in its previous apply and left out now are removed; fields it
    sets are taken over (the `force` case); fields only other managers set are kept.
    """
    pruned = _remove_dropped(copy.deepcopy(live), previous, applied, "")
    return strategic_merge_patch(pruned, applied)


def _remove_dropped(live: Any, previous: Any, applied: Any, field: str) -> Any:
    if isinstance(previous, dict) and isinstance(live, dict):
        applied_map = applied if isinstance(applied, dict) else {}
        for key, old_value in previous.items():
            if key not in live:
                continue
            if key not in applied_map:
                del live[key]
            else:
                live[key] = _remove_dropped(live[key], old_value, applied_map[key], key)
        return live
    if isinstance(previous, list) and isinstance(live, list):
        key = merge_key(field, previous + live)
        if key is None or not isinstance(applied, list):
            return live
        applied_by_key = {item.get(key): item for item in applied if isinstance(item, dict)}
        kept = []
        for item in live:
            old = next(
                (p for p in previous if isinstance(p, dict) and p.get(key) == item.get(key)),
                None,
            )
            if old is not None and item.get(key) not in applied_by_key:
                continue
            if old is not None:
                item = _remove_dropped(item, old, applied_by_key[item.get(key)], field)
            kept.append(item)
        return kept
    return live
