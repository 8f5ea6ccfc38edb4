"""Simulated controllers of the fake cluster: the Deployment controller with its ReplicaSets and
Pods, a kubelet's view of containers (running or crash-looping), events, and container logs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.kube.resources import BY_KIND
from sandbox.kube.selectors import Requirement
from sandbox.kube.store import ApiError, ObjectStore, WatchEvent

DEPLOYMENTS = BY_KIND["Deployment"]
REPLICA_SETS = BY_KIND["ReplicaSet"]
PODS = BY_KIND["Pod"]
EVENTS = BY_KIND["Event"]
NODE_NAME = "sandbox-node"
# Back-off between restarts of a crashing container doubles from this up to the cap; the real
# kubelet uses 10 s and 5 min, which would make tests slow.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class SandboxControls:
    """What a test steers: images whose containers crash at start, images whose containers
    fail some seconds after they became ready, and how long a rollout takes to start.

    Images are exact references or repository patterns with a trailing `*`. Writers replace
    the collections instead of changing them, as the controller reads them from its thread.
    """

    failing_images: set[str] = field(default_factory=set)
    rollout_delay: float = 0.3
    fail_after: dict[str, float] = field(default_factory=dict)

    def failure_delay(self, image: str) -> float | None:
        """How long a ready container of `image` keeps running; None when it does not fail."""
        return min(
            (seconds for pattern, seconds in self.fail_after.items() if _listed(image, {pattern})),
            default=None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "failingImages": sorted(self.failing_images),
            "rolloutDelay": self.rollout_delay,
            "failAfter": dict(sorted(self.fail_after.items())),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxControls:
        return cls(
            failing_images=set(data.get("failingImages", [])),
            rollout_delay=float(data.get("rolloutDelay", 0.3)),
            fail_after={str(k): float(v) for k, v in (data.get("failAfter") or {}).items()},
        )


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_HASH_ALPHABET[byte % len(_HASH_ALPHABET)] for byte in digest[:10])


def image_id(image: str) -> str:
    """What the container runtime reports for an image: the repository and its digest."""
    repository, _, digest = image.partition("@")
    if digest:
        return image
    repository = repository.rsplit(":", 1)[0] if ":" in repository.rsplit("/", 1)[-1] else image
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def restarts_by(elapsed: float) -> int:
    """How many times a container that crashes at once has restarted after `elapsed` seconds."""
    restarts, moment, backoff = 0, 0.0, FIRST_BACKOFF_SECONDS
    while moment + backoff <= elapsed:
        moment += backoff
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        restarts += 1
    return restarts


def next_restart_after(elapsed: float) -> float:
    moment, backoff = 0.0, FIRST_BACKOFF_SECONDS
    while moment <= elapsed:
        moment += backoff
        backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    return moment


class EventRecorder:
    """Writes core/v1 Events, folding repeats into one event with a count, as client-go does."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def record(
        self,
        involved: dict[str, Any],
        event_type: str,
        reason: str,
        message: str,
        component: str,
    ) -> None:
        namespace = involved["metadata"].get("namespace", "default")
        now = timestamp(utcnow())
        fingerprint = hashlib.sha256(
            f"{involved['metadata']['uid']}|{reason}|{message}".encode()
        ).hexdigest()[:16]
        name = f"{involved['metadata']['name']}.{fingerprint}"

        def bump(event: dict[str, Any]) -> dict[str, Any]:
            event["count"] = int(event.get("count", 1)) + 1
            event["lastTimestamp"] = now
            return event

        try:
            self._store.patch(EVENTS, namespace, name, bump)
            return
        except ApiError as exc:
            if exc.code != 404:
                raise
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": involved["metadata"]["name"],
                "namespace": namespace,
                "uid": involved["metadata"]["uid"],
                "resourceVersion": involved["metadata"].get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component, "host": NODE_NAME}
            if component == "kubelet"
            else {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "reportingComponent": component,
            "reportingInstance": NODE_NAME if component == "kubelet" else "",
        }
        try:
            self._store.create(EVENTS, namespace, event)
        except ApiError as exc:
            # The namespace went away while its objects were being reconciled.
            if exc.code != 404:
                raise


class DeploymentController:
    """Rolls Deployments out: a ReplicaSet per pod template, Pods that run or crash, status."""

    def __init__(self, store: ObjectStore, controls: SandboxControls) -> None:
        self._store = store
        self._controls = controls
        self._events = EventRecorder(store)
        self._due: dict[tuple[str, str], float] = {}
        # When each pod (by uid) became ready, to the microsecond the pod's timestamps lack;
        # after a restart of the sandbox its containers' start times stand in.
        self._ready_at: dict[str, datetime.datetime] = {}
        # The generation each Deployment waits to roll out, and when it may start (monotonic).
        self._pending: dict[tuple[str, str], tuple[int, float]] = {}
        # None in the queue means the controls changed: every Deployment is looked at again.
        self._changes: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._store.subscribe(self._on_change)
        self._schedule_all()
        try:
            while True:
                now = time.monotonic()
                for key in [k for k, due in self._due.items() if due <= now]:
                    del self._due[key]
                    self._reconcile_safely(*key)
                wait = min(self._due.values(), default=now + 5.0) - time.monotonic()
                try:
                    change = await asyncio.wait_for(self._changes.get(), timeout=max(wait, 0.0))
                except TimeoutError:
                    continue
                if change is None:
                    self._schedule_all()
                else:
                    self._handle(change)
        finally:
            self._store.unsubscribe(self._on_change)

    def wake(self) -> None:
        """Look at every Deployment again: the controls changed. Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._changes.put_nowait, None)

    def _schedule_all(self) -> None:
        deployments, _ = self._store.list_objects(DEPLOYMENTS, None)
        for deployment in deployments:
            self._schedule(deployment, 0.0)

    def _on_change(self, event: WatchEvent) -> None:
        if event.resource_key not in (DEPLOYMENTS.key, PODS.key) or self._loop is None:
            return
        if event.resource_key == DEPLOYMENTS.key and event.type != "DELETED":
            self._note_generation(event.obj)
        self._loop.call_soon_threadsafe(self._changes.put_nowait, event)

    def _note_generation(self, deployment: dict[str, Any]) -> None:
        """Start the rollout delay of a new generation: called as the spec change is stored,
        so the delay is the one in force at that moment, whoever committed the change."""
        meta = deployment["metadata"]
        generation = int(meta.get("generation", 1))
        if generation == deployment.get("status", {}).get("observedGeneration"):
            return
        key = (meta["namespace"], meta["name"])
        if self._pending.get(key, (None, 0.0))[0] != generation:
            self._pending[key] = (generation, time.monotonic() + self._controls.rollout_delay)

    def _handle(self, event: WatchEvent) -> None:
        meta = event.obj["metadata"]
        if event.resource_key == DEPLOYMENTS.key:
            if event.type == "DELETED":
                self._pending.pop((meta["namespace"], meta["name"]), None)
                self._collect_garbage(event.obj)
            elif meta.get("generation") != event.obj.get("status", {}).get("observedGeneration"):
                # At once: the reconcile holds the new generation back until its time.
                self._schedule(event.obj, 0.0)
        elif event.type == "DELETED":
            self._ready_at.pop(meta.get("uid", ""), None)
            # A pod removed by hand is replaced, as its ReplicaSet would.
            for deployment in self._deployments_selecting(event.obj):
                self._schedule(deployment, self._controls.rollout_delay)

    def _schedule(self, deployment: dict[str, Any], delay: float) -> None:
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        due = time.monotonic() + delay
        self._due[key] = min(self._due.get(key, due), due)

    def _deployments_selecting(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        deployments, _ = self._store.list_objects(DEPLOYMENTS, pod["metadata"]["namespace"])
        labels = pod["metadata"].get("labels") or {}
        return [
            d for d in deployments if all(labels.get(k) == v for k, v in _match_labels(d).items())
        ]

    def _collect_garbage(self, deployment: dict[str, Any]) -> None:
        namespace = deployment["metadata"]["namespace"]
        for resource in (REPLICA_SETS, PODS):
            items, _ = self._store.list_objects(resource, namespace)
            for item in items:
                if owned_by(item, deployment) or (
                    resource is PODS
                    and any(
                        ref.get("name", "").startswith(deployment["metadata"]["name"] + "-")
                        and ref.get("kind") == "ReplicaSet"
                        for ref in item["metadata"].get("ownerReferences") or []
                    )
                ):
                    self._delete_quietly(resource, namespace, item["metadata"]["name"])

    def _delete_quietly(self, resource: Any, namespace: str, name: str) -> None:
        try:
            self._store.delete(resource, namespace, name)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _reconcile_safely(self, namespace: str, name: str) -> None:
        try:
            next_in = self._reconcile(namespace, name)
        except ApiError as exc:
            # Gone meanwhile (404), or a concurrent write (409): look again shortly.
            next_in = None if exc.code == 404 else 0.2
        if next_in is not None:
            self._due[(namespace, name)] = time.monotonic() + next_in

    def _reconcile(self, namespace: str, name: str) -> float | None:
        """Bring one Deployment's ReplicaSets, Pods and status in line with its spec.

        Returns when to look again (crash loops, containers set to fail and progress deadlines
        move on their own).
        """
        deployment = self._store.get(DEPLOYMENTS, namespace, name)
        selector = [Requirement(k, "=", (v,)) for k, v in _match_labels(deployment).items()]
        pods, _ = self._store.list_objects(PODS, namespace, selector)
        # The kubelet's part goes on whatever the Deployment controller does.
        pods = [self._advance_crash_loop(self._stop_failing_containers(pod)) for pod in pods]
        kubelet_next = self._next_kubelet_change(pods)
        starts_in = self._rollout_starts_in(deployment)
        if starts_in is not None:
            return _sooner(starts_in, kubelet_next)

        spec = deployment["spec"]
        desired = int(spec.get("replicas", 1))
        new_rs = self._ensure_replica_set(deployment)
        rs_name = new_rs["metadata"]["name"]
        pod_hash = new_rs["metadata"]["labels"]["pod-template-hash"]
        new_pods = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == pod_hash]
        old_pods = [p for p in pods if p not in new_pods]

        crashing = bool(self._failing_images(spec["template"]))
        for _ in range(desired - len(new_pods)):
            new_pods.append(self._create_pod(new_rs, crashing))
        for surplus in new_pods[desired:]:
            self._delete_quietly(PODS, namespace, surplus["metadata"]["name"])
        new_pods = new_pods[:desired]
        self._set_replica_set(new_rs, new_pods, desired)

        if not crashing and old_pods:
            self._scale_down_old(deployment, rs_name, old_pods)
            old_pods = []

        status_next = self._write_status(deployment, new_rs, new_pods, old_pods, desired)
        return _sooner(status_next, self._next_kubelet_change(new_pods + old_pods))

    def _rollout_starts_in(self, deployment: dict[str, Any]) -> float | None:
        """Seconds until a new generation may roll out; None when there is none or it may.

        A rollout starts the rollout delay after its spec change (with the delay in force
        then), however early a reconcile scheduled for another reason (a crash loop's next
        restart, a pod event, the controls changing) comes. Lowering the delay later speeds
        up later changes only, so a test can hold one rollout back while it cancels it. A
        generation pending when the sandbox starts counts as changed then.
        """
        key = (deployment["metadata"]["namespace"], deployment["metadata"]["name"])
        generation = int(deployment["metadata"].get("generation", 1))
        pending, not_before = self._pending.get(key, (None, 0.0))
        if generation == deployment.get("status", {}).get("observedGeneration"):
            if pending is not None and pending <= generation:
                self._pending.pop(key, None)
            return None
        if pending != generation:
            self._note_generation(deployment)
            _, not_before = self._pending[key]
        remaining = not_before - time.monotonic()
        return remaining if remaining > 0 else None

    # -- replica sets and pods -------------------------------------------------------------

    def _ensure_replica_set(self, deployment: dict[str, Any]) -> dict[str, Any]:
        namespace = deployment["metadata"]["namespace"]
        template = deployment["spec"]["template"]
        pod_hash = template_hash(template)
        name = f"{deployment['metadata']['name']}-{pod_hash}"
        owned = [
            rs
            for rs in self._store.list_objects(REPLICA_SETS, namespace)[0]
            if owned_by(rs, deployment)
        ]
        revisions = [_revision(rs) for rs in owned]
        latest = max(revisions, default=0)
        existing = next((rs for rs in owned if rs["metadata"]["name"] == name), None)
        if existing is not None:
            if _revision(existing) != latest:
                # Rolling back to an earlier template makes its ReplicaSet the newest revision.
                existing = self._store.patch(
                    REPLICA_SETS,
                    namespace,
                    name,
                    lambda rs: _annotate(rs, "deployment.kubernetes.io/revision", str(latest + 1)),
                )
            self._annotate_deployment(deployment, _revision(existing))
            return existing
        labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": pod_hash}
        replica_set = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(
                        deployment["spec"].get("replicas", 1)
                    ),
                    "deployment.kubernetes.io/max-replicas": str(
                        deployment["spec"].get("replicas", 1)
                    ),
                    "deployment.kubernetes.io/revision": str(latest + 1),
                },
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": deployment["spec"].get("replicas", 1),
                "selector": {
                    "matchLabels": {**_match_labels(deployment), "pod-template-hash": pod_hash}
                },
                "template": {
                    "metadata": {**template["metadata"], "labels": labels},
                    "spec": template["spec"],
                },
            },
            "status": {"replicas": 0, "observedGeneration": 1},
        }
        created = self._store.create(REPLICA_SETS, namespace, replica_set)
        self._events.record(
            deployment,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {name} from 0 to {deployment['spec'].get('replicas', 1)}",
            "deployment-controller",
        )
        self._annotate_deployment(deployment, latest + 1)
        return created

    def _annotate_deployment(self, deployment: dict[str, Any], revision: int) -> None:
        annotations = deployment["metadata"].get("annotations") or {}
        if annotations.get("deployment.kubernetes.io/revision") == str(revision):
            return
        self._store.patch(
            DEPLOYMENTS,
            deployment["metadata"]["namespace"],
            deployment["metadata"]["name"],
            lambda d: _annotate(d, "deployment.kubernetes.io/revision", str(revision)),
        )

    def _failing_images(self, template: dict[str, Any]) -> list[str]:
        return [
            c["image"]
            for c in template["spec"].get("containers", [])
            if _listed(str(c.get("image", "")), self._controls.failing_images)
        ]

    def _create_pod(self, replica_set: dict[str, Any], crashing: bool) -> dict[str, Any]:
        namespace = replica_set["metadata"]["namespace"]
        template = replica_set["spec"]["template"]
        name = f"{replica_set['metadata']['name']}-{_random_suffix()}"
        now = utcnow()
        started = timestamp(now)
        pod_ip = f"10.244.0.{secrets.randbelow(250) + 2}"
        containers = template["spec"].get("containers", [])
        ready = not crashing
        statuses = []
        for container in containers:
            status: dict[str, Any] = {
                "name": container["name"],
                "image": container["image"],
                "imageID": image_id(container["image"]),
                "containerID": f"containerd://{secrets.token_hex(32)}",
                "ready": ready,
                "restartCount": 0,
                "started": ready,
                "lastState": {},
                "volumeMounts": [],
            }
            if crashing:
                status["state"] = _crash_waiting(container["name"], name)
                status["lastState"] = _crash_terminated(status["containerID"], now)
            else:
                status["state"] = {"running": {"startedAt": started}}
            statuses.append(status)
        condition_status = "True" if ready else "False"
        pod = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(template["metadata"].get("labels") or {}),
                "annotations": dict(template["metadata"].get("annotations") or {}),
                "ownerReferences": [owner_reference(replica_set)],
            },
            "spec": {
                **template["spec"],
                "nodeName": NODE_NAME,
                "serviceAccountName": template["spec"].get("serviceAccountName", "default"),
            },
            "status": {
                "phase": "Running",
                "conditions": [
                    _pod_condition("PodReadyToStartContainers", "True", started),
                    _pod_condition("Initialized", "True", started),
                    _pod_condition("Ready", condition_status, started, not ready),
                    _pod_condition("ContainersReady", condition_status, started, not ready),
                    _pod_condition("PodScheduled", "True", started),
                ],
                "hostIP": "10.0.0.10",
                "hostIPs": [{"ip": "10.0.0.10"}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": started,
                "containerStatuses": statuses,
                "qosClass": "BestEffort",
            },
        }
        created = self._store.create(PODS, namespace, pod)
        if ready:
            self._ready_at[created["metadata"]["uid"]] = now
        self._events.record(
            replica_set,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {name}",
            "replicaset-controller",
        )
        self._events.record(
            created,
            "Normal",
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {NODE_NAME}",
            "default-scheduler",
        )
        for container in containers:
            for reason, message in (
                ("Pulled", f'Container image "{container["image"]}" already present on machine'),
                ("Created", f"Created container: {container['name']}"),
                ("Started", f"Started container {container['name']}"),
            ):
                self._events.record(created, "Normal", reason, message, "kubelet")
        return created

    def _advance_crash_loop(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Count the restarts a crash-looping pod has made since it started, with their events."""
        statuses = pod["status"].get("containerStatuses", [])
        crashing = [s for s in statuses if "waiting" in s.get("state", {})]
        if not crashing:
            return pod
        elapsed = (utcnow() - _crash_loop_origin(pod)).total_seconds()
        restarts = restarts_by(elapsed)
        if all(s["restartCount"] == restarts for s in crashing):
            return pod
        now = utcnow()

        def restart(live: dict[str, Any]) -> dict[str, Any]:
            for status in live["status"]["containerStatuses"]:
                if "waiting" in status["state"]:
                    status["restartCount"] = restarts
                    status["containerID"] = f"containerd://{secrets.token_hex(32)}"
                    status["lastState"] = _crash_terminated(status["containerID"], now)
            return live

        updated = self._store.patch(
            PODS,
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            restart,
            subresource="status",
        )
        for status in crashing:
            self._events.record(
                updated,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {status['name']} in pod "
                f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
                f"({pod['metadata']['uid']})",
                "kubelet",
            )
        return updated

    def _failure_moment(
        self, pod: dict[str, Any], status: dict[str, Any]
    ) -> datetime.datetime | None:
        """When a running container of an image under `fail_after` stops; None if it does not."""
        seconds = self._controls.failure_delay(str(status.get("image", "")))
        running = status.get("state", {}).get("running")
        if seconds is None or running is None or not status.get("ready"):
            return None
        since = self._ready_at.get(pod["metadata"]["uid"]) or parse_timestamp(running["startedAt"])
        return since + datetime.timedelta(seconds=seconds)

    def _stop_failing_containers(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Containers whose time under `fail_after` is up exit with status 1, as the kubelet
        sees it: the pod turns unready and they wait in CrashLoopBackOff to be restarted."""
        now = utcnow()
        due = {
            status["name"]: moment
            for status in pod["status"].get("containerStatuses", [])
            if (moment := self._failure_moment(pod, status)) is not None and moment <= now
        }
        if not due:
            return pod
        stopped_at = timestamp(min(due.values()))

        def stop(live: dict[str, Any]) -> dict[str, Any]:
            unready = []
            for status in live["status"]["containerStatuses"]:
                if status["name"] in due:
                    status["lastState"] = {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": status["state"]["running"]["startedAt"],
                            "finishedAt": timestamp(due[status["name"]]),
                            "containerID": status["containerID"],
                        }
                    }
                    status["state"] = _crash_waiting(status["name"], live["metadata"]["name"])
                    status["ready"] = status["started"] = False
                if not status["ready"]:
                    unready.append(status["name"])
            for condition in live["status"]["conditions"]:
                if condition["type"] in ("Ready", "ContainersReady"):
                    condition.update(
                        status="False",
                        reason="ContainersNotReady",
                        message=f"containers with unready status: [{' '.join(unready)}]",
                        lastTransitionTime=stopped_at,
                    )
            return live

        return self._store.patch(
            PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], stop, subresource="status"
        )

    def _next_kubelet_change(self, pods: list[dict[str, Any]]) -> float | None:
        """Seconds until a crash-looping container restarts or a running one is due to fail."""
        now = utcnow()
        waits = []
        for pod in pods:
            for status in pod["status"].get("containerStatuses", []):
                if "waiting" in status.get("state", {}):
                    elapsed = (now - _crash_loop_origin(pod)).total_seconds()
                    waits.append(next_restart_after(elapsed) - elapsed)
                elif (moment := self._failure_moment(pod, status)) is not None:
                    waits.append((moment - now).total_seconds())
        return max(min(waits), 0.05) if waits else None

    def _set_replica_set(
        self, replica_set: dict[str, Any], pods: list[dict[str, Any]], desired: int
    ) -> None:
        ready = sum(1 for pod in pods if _pod_ready(pod))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replica_set["metadata"].get("generation", 1),
        }
        namespace, name = replica_set["metadata"]["namespace"], replica_set["metadata"]["name"]

        def scale(rs: dict[str, Any]) -> dict[str, Any]:
            rs["spec"]["replicas"] = desired
            return rs

        if replica_set["spec"].get("replicas") != desired:
            replica_set = self._store.patch(REPLICA_SETS, namespace, name, scale)
            status["observedGeneration"] = replica_set["metadata"]["generation"]
        if {k: v for k, v in status.items() if v} != {
            k: v for k, v in replica_set.get("status", {}).items() if v
        }:
            self._store.patch(
                REPLICA_SETS,
                namespace,
                name,
                lambda rs: {**rs, "status": status},
                subresource="status",
            )

    def _scale_down_old(
        self, deployment: dict[str, Any], new_rs_name: str, old_pods: list[dict[str, Any]]
    ) -> None:
        namespace = deployment["metadata"]["namespace"]
        for pod in old_pods:
            self._delete_quietly(PODS, namespace, pod["metadata"]["name"])
        for rs in self._store.list_objects(REPLICA_SETS, namespace)[0]:
            if not owned_by(rs, deployment) or rs["metadata"]["name"] == new_rs_name:
                continue
            if rs["spec"].get("replicas", 0) == 0 and not rs.get("status", {}).get("replicas"):
                continue
            self._set_replica_set(rs, [], 0)
            self._events.record(
                deployment,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled down replica set {rs['metadata']['name']} from "
                f"{rs['spec'].get('replicas', 0)} to 0",
                "deployment-controller",
            )

    # -- deployment status -----------------------------------------------------------------

    def _write_status(
        self,
        deployment: dict[str, Any],
        new_rs: dict[str, Any],
        new_pods: list[dict[str, Any]],
        old_pods: list[dict[str, Any]],
        desired: int,
    ) -> float | None:
        spec = deployment["spec"]
        rs_name = new_rs["metadata"]["name"]
        ready = sum(1 for pod in new_pods + old_pods if _pod_ready(pod))
        total = len(new_pods) + len(old_pods)
        updated = len(new_pods)
        complete = updated == desired and total == desired and ready == desired
        max_unavailable = _max_unavailable(spec, desired)
        now = utcnow()
        previous = {c["type"]: c for c in deployment.get("status", {}).get("conditions", [])}
        progressing = previous.get("Progressing")
        started_at = now
        if progressing and rs_name in progressing.get("message", ""):
            started_at = parse_timestamp(progressing["lastUpdateTime"])
        deadline = float(spec.get("progressDeadlineSeconds", 600))
        overdue = (now - started_at).total_seconds() >= deadline
        already_failed = (
            progressing is not None
            and progressing.get("reason") == "ProgressDeadlineExceeded"
            and rs_name in progressing.get("message", "")
        )
        # A rollout that once finished stays finished when its pods fail later: the real
        # controller estimates no progress (nor a deadline) for it, only Available changes.
        finished = (
            progressing is not None
            and progressing.get("reason") == "NewReplicaSetAvailable"
            and rs_name in progressing.get("message", "")
        )

        replica_set = f'ReplicaSet "{rs_name}"'
        if complete or finished:
            progress = (
                "True",
                "NewReplicaSetAvailable",
                f"{replica_set} has successfully progressed.",
            )
        elif already_failed or overdue:
            progress = (
                "False",
                "ProgressDeadlineExceeded",
                f"{replica_set} has timed out progressing.",
            )
        else:
            progress = ("True", "ReplicaSetUpdated", f"{replica_set} is progressing.")
        if ready >= desired - max_unavailable:
            availability = (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            availability = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        conditions = [
            _deployment_condition(previous.get("Available"), "Available", *availability, now),
            _deployment_condition(
                progressing,
                "Progressing",
                *progress,
                now,
                keep_update_time=progress[1] == "ReplicaSetUpdated",
            ),
        ]
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        if total - ready > 0:
            status["unavailableReplicas"] = total - ready
        for zero in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
            if status[zero] == 0:
                del status[zero]
        if status != deployment.get("status"):
            self._store.patch(
                DEPLOYMENTS,
                deployment["metadata"]["namespace"],
                deployment["metadata"]["name"],
                lambda d: {**d, "status": status},
                subresource="status",
            )
        if complete:
            return None
        waits = []
        for pod in new_pods:
            if _pod_ready(pod):
                continue
            elapsed = (now - _crash_loop_origin(pod)).total_seconds()
            waits.append(next_restart_after(elapsed) - elapsed)
        if progress[1] == "ReplicaSetUpdated":
            waits.append(deadline - (now - started_at).total_seconds())
        return max(min(waits, default=1.0), 0.05)


def _sooner(*waits: float | None) -> float | None:
    return min((wait for wait in waits if wait is not None), default=None)


def _match_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict((deployment["spec"].get("selector") or {}).get("matchLabels") or {})


def _revision(obj: dict[str, Any]) -> int:
    annotations = obj["metadata"].get("annotations") or {}
    return int(annotations.get("deployment.kubernetes.io/revision", "0"))


def _annotate(obj: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {})[key] = value
    return obj


def _random_suffix() -> str:
    return "".join(secrets.choice(_HASH_ALPHABET) for _ in range(5))


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _crash_loop_origin(pod: dict[str, Any]) -> datetime.datetime:
    """When the pod's containers began crashing: when it turned unready (at its start for an
    image that crashes at once, later for one that failed after running a while)."""
    conditions: list[dict[str, Any]] = pod["status"].get("conditions", [])
    ready = next((c for c in conditions if c["type"] == "Ready"), {})
    return parse_timestamp(ready.get("lastTransitionTime") or pod["status"]["startTime"])


def _pod_condition(
    kind: str, status: str, at: str, containers_not_ready: bool = False
) -> dict[str, Any]:
    condition = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": at}
    if containers_not_ready:
        condition["reason"] = "ContainersNotReady"
        condition["message"] = "containers with unready status: [app]"
    return condition


def _crash_waiting(container: str, pod: str) -> dict[str, Any]:
    return {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": f"back-off 10s restarting failed container={container} pod={pod}",
        }
    }


def _crash_terminated(container_id: str, at: datetime.datetime) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": 1,
            "reason": "Error",
            "startedAt": timestamp(at),
            "finishedAt": timestamp(at),
            "containerID": container_id,
        }
    }


def _max_unavailable(spec: dict[str, Any], desired: int) -> int:
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(desired * int(value[:-1]) / 100)
    return int(value)


def _deployment_condition(
    previous: dict[str, Any] | None,
    kind: str,
    status: str,
    reason: str,
    message: str,
    now: datetime.datetime,
    keep_update_time: bool = False,
) -> dict[str, Any]:
    """A condition whose times move only when it changes, so unchanged status writes nothing."""
    stamp = timestamp(now)
    if previous and (previous["status"], previous.get("reason"), previous.get("message")) == (
        status,
        reason,
        message,
    ):
        return previous
    transition = stamp
    if previous and previous["status"] == status:
        transition = previous.get("lastTransitionTime", stamp)
    update = stamp
    if keep_update_time and previous and previous.get("message") == message:
        update = previous.get("lastUpdateTime", stamp)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def container_log(pod: dict[str, Any], container: str) -> list[tuple[datetime.datetime, str]]:
    """The lines a container has written: a start-up banner, then readiness or a crash.

    Deterministic from the pod, so every read (and every restart of the sandbox) agrees.
    """
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    status: dict[str, Any] = next(
        (s for s in pod.get("status", {}).get("containerStatuses", []) if s["name"] == container),
        {},
    )
    port = next((p["containerPort"] for p in spec.get("ports", [])), 8080)
    workload = pod["metadata"].get("labels", {}).get("app.kubernetes.io/name", container)
    terminated = status.get("lastState", {}).get("terminated")
    if "waiting" in status.get("state", {}) and terminated:
        start = parse_timestamp(terminated["startedAt"])
        messages = [
            f"starting {workload} (image {spec['image']})",
            f"loading configuration for {workload}",
            "error: the application exited with status 1 before it became ready",
        ]
    else:
        started = pod.get("status", {}).get("startTime", pod["metadata"]["creationTimestamp"])
        start = parse_timestamp(started)
        messages = [
            f"starting {workload} (image {spec['image']})",
            f"listening on 0.0.0.0:{port}",
            "ready to serve requests",
        ]
    return [
        (start + datetime.timedelta(milliseconds=10 * index), message)
        for index, message in enumerate(messages)
    ]


def _listed(image: str, patterns: set[str]) -> bool:
    """Exact images, or every image of a repository with a trailing `*` ("registry/app@*")."""
    return any(
        image.startswith(pattern[:-1]) if pattern.endswith("*") else image == pattern
        for pattern in patterns
    )
