"""Server-side printing: the `Table` answers kubectl asks for (`Accept: ...;as=Table`)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from sandbox.kube.resources import Resource

Column = tuple[str, str, int]  # name, type, priority (1 = only with -o wide)
Row = Callable[[dict[str, Any]], list[Any]]


def age(obj: dict[str, Any], field: str = "creationTimestamp") -> str:
    stamp = obj["metadata"].get(field) if field == "creationTimestamp" else obj.get(field)
    if not stamp:
        return "<unknown>"
    moment = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(datetime.UTC) - moment).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400 * 2:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _deployment(obj: dict[str, Any]) -> list[Any]:
    status, spec = obj.get("status", {}), obj["spec"]
    containers = spec["template"]["spec"].get("containers", [])
    selector = ",".join(f"{k}={v}" for k, v in spec["selector"].get("matchLabels", {}).items())
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(obj),
        ",".join(c["name"] for c in containers),
        ",".join(c["image"] for c in containers),
        selector,
    ]


def _pod(obj: dict[str, Any]) -> list[Any]:
    status = obj.get("status", {})
    containers = status.get("containerStatuses", [])
    reason = status.get("phase", "Pending")
    for container in containers:
        waiting = container.get("state", {}).get("waiting")
        if waiting:
            reason = waiting.get("reason", reason)
    return [
        obj["metadata"]["name"],
        f"{sum(1 for c in containers if c.get('ready'))}/{len(obj['spec'].get('containers', []))}",
        reason,
        sum(int(c.get("restartCount", 0)) for c in containers),
        age(obj),
        status.get("podIP", "<none>"),
        obj["spec"].get("nodeName", "<none>"),
    ]


def _replica_set(obj: dict[str, Any]) -> list[Any]:
    status = obj.get("status", {})
    return [
        obj["metadata"]["name"],
        obj["spec"].get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(obj),
    ]


def _service(obj: dict[str, Any]) -> list[Any]:
    spec = obj["spec"]
    ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
    return [
        obj["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "None"),
        "<none>",
        ports or "<none>",
        age(obj),
    ]


def _ingress(obj: dict[str, Any]) -> list[Any]:
    spec = obj["spec"]
    hosts = ",".join(r.get("host", "*") for r in spec.get("rules", [])) or "*"
    addresses = obj.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    return [
        obj["metadata"]["name"],
        spec.get("ingressClassName", "<none>"),
        hosts,
        ",".join(a.get("ip", a.get("hostname", "")) for a in addresses),
        "443" if spec.get("tls") else "80",
        age(obj),
    ]


def _event(obj: dict[str, Any]) -> list[Any]:
    involved = obj.get("involvedObject", {})
    return [
        age(obj, "lastTimestamp"),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


def _generic_with(extra: Callable[[dict[str, Any]], list[Any]]) -> Row:
    return lambda obj: [obj["metadata"]["name"], *extra(obj), age(obj)]


PRINTERS: dict[str, tuple[list[Column], Row]] = {
    "Deployment": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment,
    ),
    "Pod": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        _pod,
    ),
    "ReplicaSet": (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        _replica_set,
    ),
    "Service": (
        [
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
        ],
        _service,
    ),
    "Ingress": (
        [
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        _ingress,
    ),
    "Event": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event,
    ),
    "Namespace": (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        _generic_with(lambda obj: [obj.get("status", {}).get("phase", "Active")]),
    ),
    "Secret": (
        [("Name", "string", 0), ("Type", "string", 0), ("Data", "string", 0), ("Age", "string", 0)],
        _generic_with(lambda obj: [obj.get("type", "Opaque"), len(obj.get("data") or {})]),
    ),
    "ConfigMap": (
        [("Name", "string", 0), ("Data", "string", 0), ("Age", "string", 0)],
        _generic_with(lambda obj: [len(obj.get("data") or {})]),
    ),
}


def wants_table(accept: str) -> bool:
    return any("as=Table" in part for part in accept.split(","))


def table(
    resource: Resource, items: list[dict[str, Any]], resource_version: int, include: str
) -> dict[str, Any]:
    columns, row = PRINTERS[resource.kind]
    rows = []
    for obj in items:
        entry: dict[str, Any] = {"cells": row(obj)}
        if include == "Object":
            entry["object"] = obj
        elif include != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, kind, priority in columns
        ],
        "rows": rows,
    }
