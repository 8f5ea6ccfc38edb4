"""Defaulting and validation the API server applies to objects before it stores them.

Clients read back complete objects (the `kubernetes` client's models reject missing required
fields, kubectl prints defaulted fields), so the fake fills in what the real server fills in.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from sandbox.kube.resources import Resource

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class Invalid(ValueError):
    """The object breaks a validation rule; the server answers 422 with the causes."""

    def __init__(self, causes: list[tuple[str, str]]) -> None:
        self.causes = causes
        super().__init__("; ".join(f"{field}: {message}" for field, message in causes))


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    causes: list[tuple[str, str]] = []
    name = obj.get("metadata", {}).get("name", "")
    pattern = DNS_LABEL if resource.kind in ("Namespace", "Service") else DNS_SUBDOMAIN
    limit = 63 if pattern is DNS_LABEL else 253
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif len(name) > limit or not pattern.fullmatch(name):
        causes.append(
            ("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 name is required')
        )
    spec = obj.get("spec") or {}
    if resource.kind == "Deployment":
        causes += _validate_deployment(spec, (old or {}).get("spec"))
    elif resource.kind == "Pod":
        causes += _validate_pod_spec(spec, "spec")
    elif resource.kind == "Service":
        for index, port in enumerate(spec.get("ports") or []):
            if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
                causes.append((f"spec.ports[{index}].port", "Invalid value: must be 1-65535"))
    elif resource.kind == "Ingress":
        for r, rule in enumerate(spec.get("rules") or []):
            for p, path in enumerate((rule.get("http") or {}).get("paths") or []):
                if path.get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                    causes.append((f"spec.rules[{r}].http.paths[{p}].pathType", "Required value"))
    if causes:
        raise Invalid(causes)


def _validate_deployment(
    spec: dict[str, Any], old_spec: dict[str, Any] | None
) -> list[tuple[str, str]]:
    causes = []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        causes.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {labels}: `selector` does not match template `labels`",
            )
        )
    if old_spec is not None and old_spec.get("selector") != spec.get("selector"):
        causes.append(("spec.selector", "Invalid value: field is immutable"))
    if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
        causes.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
    causes += _validate_pod_spec(template.get("spec") or {}, "spec.template.spec")
    return causes


def _validate_pod_spec(spec: dict[str, Any], at: str) -> list[tuple[str, str]]:
    containers = spec.get("containers") or []
    if not containers:
        return [(f"{at}.containers", "Required value")]
    causes = []
    for index, container in enumerate(containers):
        if not container.get("name"):
            causes.append((f"{at}.containers[{index}].name", "Required value"))
        if not container.get("image"):
            causes.append((f"{at}.containers[{index}].image", "Required value"))
    return causes


def apply_defaults(resource: Resource, obj: dict[str, Any], cluster_ip: str) -> None:
    """Fill in the fields the real API server defaults, in place."""
    if resource.kind == "Namespace":
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"][
            "name"
        ]
        obj.setdefault("status", {"phase": "Active"})
    elif resource.kind in ("Deployment", "ReplicaSet"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if resource.kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {})
        _default_pod_spec(template.setdefault("spec", {}))
        obj.setdefault("status", {})
    elif resource.kind == "Pod":
        spec = obj.setdefault("spec", {})
        _default_pod_spec(spec)
        spec.setdefault("nodeName", "sandbox-node")
        obj.setdefault("status", {"phase": "Pending", "qosClass": _qos_class(spec)})
    elif resource.kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec["type"] != "ExternalName":
            spec.setdefault("clusterIP", cluster_ip)
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif resource.kind == "Ingress":
        obj.setdefault("spec", {})
        obj.setdefault("status", {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}})
    elif resource.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    elif resource.kind == "Event":
        obj.setdefault("type", "Normal")
        obj.setdefault("count", 1)
        obj.setdefault("source", {"component": "shipyard-sandbox"})


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        untagged = "@" not in image and ":" not in image.rsplit("/", 1)[-1]
        always = untagged or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if always else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
        for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(probe_name)
            if isinstance(probe, dict):
                probe.setdefault("timeoutSeconds", 1)
                probe.setdefault("periodSeconds", 10)
                probe.setdefault("successThreshold", 1)
                probe.setdefault("failureThreshold", 3)
                if isinstance(probe.get("httpGet"), dict):
                    probe["httpGet"].setdefault("scheme", "HTTP")


def _qos_class(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits") and r.get("requests", r.get("limits")) == r.get("limits") for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"
