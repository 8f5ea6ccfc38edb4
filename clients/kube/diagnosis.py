"""Reading a rollout: its progress, and a diagnosis that keeps platform facts (replicas,
conditions, pod phases, events) apart from what the app wrote (logs, messages)."""

from __future__ import annotations

import datetime
import re
from typing import Any

from kubernetes import client
from pydantic import BaseModel, Field

from clients.kube.errors import KubeError
from clients.kube.manifests import CONTAINER_NAME

RECENT_EVENTS = 10


class RolloutProgress(BaseModel):
    """Where a Deployment's rollout stands; `message` reads like "2/3 pods ready"."""

    namespace: str
    name: str
    generation: int
    observed_generation: int
    replicas: int
    updated: int
    ready: int
    available: int
    done: bool
    message: str


class ConditionReport(BaseModel):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class PodReport(BaseModel):
    name: str
    phase: str
    ready: bool
    restart_count: int
    image: str | None = None
    image_id: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_exit_code: int | None = None


class EventReport(BaseModel):
    type: str
    reason: str
    message: str
    object: str
    count: int
    last_seen: datetime.datetime | None = None


class Diagnosis(BaseModel):
    namespace: str
    name: str
    found: bool
    healthy: bool
    summary: str
    image: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    conditions: list[ConditionReport] = Field(default_factory=list)
    pods: list[PodReport] = Field(default_factory=list)
    events: list[EventReport] = Field(default_factory=list)


class LogLine(BaseModel):
    pod: str
    container: str
    timestamp: datetime.datetime
    message: str


def object_meta(obj: Any) -> client.V1ObjectMeta:
    if obj.metadata is None:
        raise KubeError("the Kubernetes API sent an object without metadata")
    meta: client.V1ObjectMeta = obj.metadata
    return meta


def object_name(obj: Any) -> str:
    return str(object_meta(obj).name)


def deployment_condition(
    deployment: client.V1Deployment, kind: str
) -> client.V1DeploymentCondition | None:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def rollout_progress_of(deployment: client.V1Deployment) -> RolloutProgress:
    """The rollout state by the rule `kubectl rollout status` applies."""
    status = deployment.status or client.V1DeploymentStatus()
    desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    generation = int(object_meta(deployment).generation or 0)
    observed = int(status.observed_generation or 0)
    replicas = int(status.replicas or 0)
    updated = int(status.updated_replicas or 0)
    ready = int(status.ready_replicas or 0)
    available = int(status.available_replicas or 0)
    if observed < generation:
        message = "waiting for the deployment spec update to be observed"
    elif updated < desired:
        message = f"{updated}/{desired} pods updated"
    elif replicas > updated:
        message = f"{replicas - updated} old pods pending termination"
    else:
        message = f"{ready}/{desired} pods ready"
    done = (
        observed >= generation
        and updated == desired
        and replicas == updated
        and (available == updated and ready == updated)
    )
    return RolloutProgress(
        namespace=str(object_meta(deployment).namespace),
        name=str(object_meta(deployment).name),
        generation=generation,
        observed_generation=observed,
        replicas=desired,
        updated=updated,
        ready=ready,
        available=available,
        done=done,
        message=message,
    )


def pod_selector(deployment: client.V1Deployment) -> str:
    labels = deployment.spec.selector.match_labels or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def app_container(deployment: client.V1Deployment) -> str | None:
    containers = deployment.spec.template.spec.containers if deployment.spec.template.spec else []
    names = [c.name for c in containers]
    if CONTAINER_NAME in names:
        return CONTAINER_NAME
    return names[0] if names else None


def container_image(deployment: client.V1Deployment) -> str | None:
    name = app_container(deployment)
    containers = deployment.spec.template.spec.containers if deployment.spec.template.spec else []
    return next((c.image for c in containers if c.name == name), None)


def pod_report_of(pod: client.V1Pod) -> PodReport:
    status = pod.status or client.V1PodStatus()
    containers = status.container_statuses or []
    waiting = next((c.state.waiting for c in containers if c.state and c.state.waiting), None)
    terminated = next(
        (
            c.last_state.terminated
            for c in containers
            if c.last_state is not None and c.last_state.terminated is not None
        ),
        None,
    )
    first = containers[0] if containers else None
    return PodReport(
        name=object_name(pod),
        phase=str(status.phase or "Unknown"),
        ready=bool(containers) and all(c.ready for c in containers),
        restart_count=sum(int(c.restart_count or 0) for c in containers),
        image=first.image if first else None,
        image_id=first.image_id if first else None,
        waiting_reason=waiting.reason if waiting else None,
        waiting_message=waiting.message if waiting else None,
        last_exit_code=terminated.exit_code if terminated else None,
    )


def recent_event_reports(events: list[Any], name: str, related: set[str]) -> list[EventReport]:
    """The newest events about the Deployment, its ReplicaSets and its pods."""
    chosen = [
        e
        for e in events
        if e.involved_object.name in related
        or (
            e.involved_object.kind == "ReplicaSet" and e.involved_object.name.startswith(f"{name}-")
        )
    ]

    def seen(event: Any) -> datetime.datetime:
        moment = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
        return moment or datetime.datetime.min.replace(tzinfo=datetime.UTC)

    chosen.sort(key=seen)
    return [
        EventReport(
            type=str(e.type or "Normal"),
            reason=str(e.reason or ""),
            message=str(e.message or ""),
            object=f"{str(e.involved_object.kind).lower()}/{e.involved_object.name}",
            count=int(e.count or 1),
            last_seen=seen(e),
        )
        for e in chosen[-RECENT_EVENTS:]
    ]


def rollout_summary(
    namespace: str,
    name: str,
    progress: RolloutProgress,
    healthy: bool,
    pods: list[PodReport],
    conditions: list[ConditionReport],
) -> str:
    where = f"deployment {name} in {namespace}"
    if healthy:
        return f"{where} is healthy: {progress.ready}/{progress.replicas} pods ready"
    parts = [f"{where} is not healthy: {progress.message}"]
    for pod in pods:
        if pod.waiting_reason:
            restarts = f", restarted {pod.restart_count} times" if pod.restart_count else ""
            parts.append(f"pod {pod.name} is in {pod.waiting_reason}{restarts}")
    stalled = next((c for c in conditions if c.type == "Progressing" and c.status == "False"), None)
    if stalled is not None:
        parts.append(f"rollout stopped: {stalled.reason} ({stalled.message})")
    return "; ".join(parts)


def parse_log(text: str, pod: str, container: str) -> list[LogLine]:
    lines = []
    for raw in text.splitlines():
        stamp, _, message = raw.partition(" ")
        try:
            moment = _parse_rfc3339(stamp)
        except ValueError:
            continue
        lines.append(LogLine(pod=pod, container=container, timestamp=moment, message=message))
    return lines


def _parse_rfc3339(text: str) -> datetime.datetime:
    """Kubernetes log timestamps carry nanoseconds, more than `datetime` parses."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        fraction = re.match(r"\d*", rest)
        digits = fraction.group(0) if fraction else ""
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.datetime.fromisoformat(text)
