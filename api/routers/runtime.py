"""What an app is doing on the cluster right now: rollout diagnosis and its pods' runtime logs.

Both are live, read-only reads of the Kubernetes API with a short timeout (DESIGN.md §1); when
the cluster is not configured or cannot be reached they answer 503 `CLUSTER_UNAVAILABLE`.

The diagnosis keeps apart what the platform says (conditions, pod phases, waiting reasons,
event reasons: fixed vocabularies of Kubernetes) and what the app or its image wrote (event
and waiting messages, log lines): the second is untrusted text that may say anything, and
clients must show it as text and never act on it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlmodel import Session, col, select

from api.auth import Principal
from api.contract import problems
from api.deps import AppDep, KubeDep, SessionDep, cluster_unavailable, scope
from api.errors import ApiError
from api.pagination import LogLimit
from api.routers import API_PREFIX
from api.schemas.runtime import (
    AppOutput,
    ConditionState,
    DiagnosisPublic,
    EventState,
    OutputMessage,
    PlatformReport,
    PodState,
    RuntimeLogLine,
    RuntimeLogPage,
)
from clients.kube import Diagnosis, KubeClient, KubeError, KubeRejected, LogLine
from core.clock import utcnow
from core.models import App, Environment

router = APIRouter(prefix=API_PREFIX, tags=["runtime"])

# Lines read from the cluster per request; paging reaches back this far and no further.
MAX_SCANNED_LINES = 10_000
# Newest log lines a diagnosis quotes.
DIAGNOSIS_LOG_LINES = 20
# `since` becomes the cluster's `sinceSeconds`, counted on its clock: read a little more than
# asked, so a clock a few seconds apart loses nothing; the exact bound is applied here.
CLOCK_MARGIN_SECONDS = 5


# Which environment a live read looks at.
EnvironmentQuery = Annotated[
    str | None, Query(max_length=30, description="default: the app's first environment")
]


# -- endpoints -------------------------------------------------------------------------------


@router.get(
    "/apps/{app_id}/diagnosis",
    name="get_diagnosis",
    response_model=DiagnosisPublic,
    responses=problems(503),
)
async def diagnosis(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    kube: KubeDep,
    environment: EnvironmentQuery = None,
) -> DiagnosisPublic:
    """Whether the app's rollout in the environment is healthy, and if not, why."""
    env = _environment(session, app, environment)
    try:
        found = await asyncio.to_thread(kube.diagnose, env.namespace, app.slug)
        lines, logs_error = await _recent_lines(kube, env.namespace, app.slug)
    except KubeError as exc:
        raise cluster_unavailable(exc) from None
    return _public_diagnosis(app, env, found, lines, logs_error)


@router.get(
    "/apps/{app_id}/logs",
    name="get_runtime_logs",
    response_model=RuntimeLogPage,
    responses=problems(503),
)
async def runtime_logs(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    kube: KubeDep,
    environment: EnvironmentQuery = None,
    direction: Annotated[
        Literal["backward", "forward"],
        Query(description="backward: newest first page, then into the past; forward: tail"),
    ] = "backward",
    cursor: Annotated[str | None, Query(max_length=500, description="from next_cursor")] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339; no older lines")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339; no newer lines")] = None,
    limit: LogLimit = 100,
) -> RuntimeLogPage:
    """Runtime logs of the app's pods, a page at a time, lines oldest first within a page.

    `backward` (the default) starts at the newest line (or at `cursor`) and pages into the
    past. `forward` returns the lines after `cursor` (from `since`, or the oldest line kept,
    without one): poll it with each answer's `next_cursor` to follow new lines."""
    since, until = _aware(since), _aware(until)
    if since and until and since > until:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "since is after until",
            errors=[{"field": "query.since", "message": "must not be after until"}],
        )
    env = _environment(session, app, environment)
    position = decode_position(cursor) if cursor else None
    # Forward, nothing before the cursor is wanted: ask the cluster for less.
    oldest = since
    if direction == "forward" and position is not None:
        oldest = position[0] if since is None else max(since, position[0])
    try:
        lines = await asyncio.to_thread(
            kube.read_logs,
            env.namespace,
            app.slug,
            since_seconds=_seconds_back(oldest),
            limit=MAX_SCANNED_LINES,
        )
    except KubeError as exc:
        raise cluster_unavailable(exc) from None
    keyed = [
        (key, line)
        for key, line in positioned(lines)
        if (since is None or line.timestamp >= since) and (until is None or line.timestamp <= until)
    ]
    if direction == "backward":
        older = [item for item in keyed if position is None or item[0] < position]
        page = older[-limit:]
        more = len(older) > limit
        next_cursor = encode_position(page[0][0]) if more else None
    else:
        newer = [item for item in keyed if position is None or item[0] > position]
        page = newer[:limit]
        more = len(newer) > limit
        if page:
            next_cursor = encode_position(page[-1][0])
        else:
            # Nothing new yet: a cursor that asks again from the same place.
            next_cursor = cursor or encode_position(_watermark(since))
    return RuntimeLogPage(
        lines=[_public_line(line) for _key, line in page], has_more=more, next_cursor=next_cursor
    )


# -- cursors ---------------------------------------------------------------------------------

# A line's place in the merged log of all pods: its time, then pod, container and how many lines
# of that container share the time before it, so lines written in the same instant keep apart.
Position = tuple[datetime, str, str, int]


def positioned(lines: list[LogLine]) -> list[tuple[Position, LogLine]]:
    seen: dict[tuple[datetime, str, str], int] = {}
    keyed = []
    for line in lines:
        moment = (line.timestamp, line.pod, line.container)
        seq = seen.get(moment, 0)
        seen[moment] = seq + 1
        keyed.append(((line.timestamp, line.pod, line.container, seq), line))
    keyed.sort(key=lambda item: item[0])
    return keyed


def encode_position(position: Position) -> str:
    moment, pod, container, seq = position
    raw = json.dumps([moment.isoformat(), pod, container, seq], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(cursor: str) -> Position:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, pod, container, seq = json.loads(base64.urlsafe_b64decode(padded))
        when = datetime.fromisoformat(moment)
        if when.tzinfo is None or not isinstance(seq, int):
            raise ValueError("not a position")
        return when, str(pod), str(container), seq
    except (ValueError, TypeError, binascii.Error):
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "the cursor is not one this API gave out",
            errors=[{"field": "query.cursor", "message": "invalid cursor"}],
        ) from None


def _watermark(since: datetime | None) -> Position:
    """Just before every line at `since` (or before all lines): pod names are never empty."""
    return since or datetime(1970, 1, 1, tzinfo=UTC), "", "", -1


# -- helpers ---------------------------------------------------------------------------------


def _environment(session: Session, app: App, name: str | None) -> Environment:
    statement = select(Environment).where(Environment.app_id == app.id)
    if name is not None:
        statement = statement.where(Environment.name == name)
    found = session.exec(statement.order_by(col(Environment.position))).first()
    if found is None:
        what = f"environment {name}" if name else "an environment"
        raise ApiError(404, "NOT_FOUND", f"app {app.slug} has no {what}")
    return found


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _seconds_back(oldest: datetime | None) -> int | None:
    if oldest is None:
        return None
    return max(1, math.ceil((utcnow() - oldest).total_seconds())) + CLOCK_MARGIN_SECONDS


async def _recent_lines(
    kube: KubeClient, namespace: str, name: str
) -> tuple[list[LogLine], str | None]:
    """The newest lines, or why there are none: a pod still being created has no log yet."""
    try:
        lines = await asyncio.to_thread(kube.read_logs, namespace, name, limit=DIAGNOSIS_LOG_LINES)
    except KubeRejected as exc:
        return [], exc.message
    return lines, None


def _public_line(line: LogLine) -> RuntimeLogLine:
    return RuntimeLogLine(
        timestamp=line.timestamp, pod=line.pod, container=line.container, message=line.message
    )


def _public_diagnosis(
    app: App,
    env: Environment,
    found: Diagnosis,
    lines: list[LogLine],
    logs_error: str | None,
) -> DiagnosisPublic:
    messages = [
        OutputMessage(object=f"pod/{pod.name}", reason=pod.waiting_reason, message=text)
        for pod in found.pods
        if (text := pod.waiting_message)
    ] + [
        OutputMessage(object=event.object, reason=event.reason, message=event.message)
        for event in found.events
        if event.message
    ]
    return DiagnosisPublic(
        app_id=app.id,
        environment=env.name,
        namespace=found.namespace,
        deployment=found.name,
        checked_at=utcnow(),
        found=found.found,
        healthy=found.healthy,
        summary=found.summary,
        platform=PlatformReport(
            image=found.image,
            replicas=found.replicas,
            ready_replicas=found.ready_replicas,
            updated_replicas=found.updated_replicas,
            available_replicas=found.available_replicas,
            conditions=[
                ConditionState.model_validate(c, from_attributes=True) for c in found.conditions
            ],
            pods=[PodState.model_validate(p, from_attributes=True) for p in found.pods],
            events=[EventState.model_validate(e, from_attributes=True) for e in found.events],
        ),
        app_output=AppOutput(
            messages=messages,
            log_lines=[_public_line(line) for line in lines],
            logs_unavailable=logs_error,
        ),
    )
