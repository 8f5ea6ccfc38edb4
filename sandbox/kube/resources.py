"""The kinds the fake Kubernetes API serves, and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.0-shipyard-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    # Spec changes bump metadata.generation only for kinds whose spec is a desired state.
    has_generation: bool = False
    subresources: tuple[str, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> str:
        """Identifies the resource in the store and in persisted state."""
        return f"{self.group}/{self.plural}" if self.group else self.plural


RESOURCES = [
    Resource("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",)),
    Resource(
        "",
        "v1",
        "Pod",
        "pods",
        short_names=("po",),
        has_generation=True,
        subresources=("log", "status"),
    ),
    Resource("", "v1", "Service", "services", short_names=("svc",), has_generation=False),
    Resource("", "v1", "Secret", "secrets"),
    Resource("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    Resource("", "v1", "Event", "events", short_names=("ev",)),
    Resource(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short_names=("deploy",),
        has_generation=True,
        subresources=("status", "scale"),
    ),
    Resource(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        short_names=("rs",),
        has_generation=True,
        subresources=("status",),
    ),
    Resource(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        short_names=("ing",),
        has_generation=True,
        subresources=("status",),
    ),
]

BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}
GROUP_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES})


def find_resource(group: str, version: str, plural: str) -> Resource | None:
    return BY_PATH.get((group, version, plural))


def core_versions(server_address: str) -> dict[str, Any]:
    """`GET /api`: the legacy core group."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def group_list() -> dict[str, Any]:
    """`GET /apis`: every named group with its one served version."""
    groups = []
    for group, version in GROUP_VERSIONS:
        if not group:
            continue
        group_version = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append(
            {"name": group, "versions": [group_version], "preferredVersion": group_version}
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> dict[str, Any] | None:
    """`GET /apis/<group>`."""
    for listed in group_list()["groups"]:
        if listed["name"] == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **listed}
    return None


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """`GET /api/v1` or `/apis/<group>/<version>`: the resources and subresources served."""
    served = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not served:
        return None
    entries: list[dict[str, Any]] = []
    for resource in served:
        entries.append(
            {
                "name": resource.plural,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": ALL_VERBS,
                "shortNames": list(resource.short_names),
            }
        )
        for sub in resource.subresources:
            entry = {
                "name": f"{resource.plural}/{sub}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": ["get"] if sub == "log" else ["get", "patch", "update"],
            }
            if sub == "scale":
                entry.update({"group": "autoscaling", "version": "v1", "kind": "Scale"})
            entries.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }
