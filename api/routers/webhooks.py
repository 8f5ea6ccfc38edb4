"""GitHub webhooks: signed pushes to a connected branch deploy that commit (coalesced)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.contract import problems
from api.deploys import deploy_input, run_labels
from api.deps import SessionDep, SettingsDep, TemporalDep
from api.errors import ApiError
from api.routers import API_PREFIX
from api.schemas.webhooks import WebhookOutcome
from api.workflow_calls import reaching_temporal
from core import commit_messages
from core.clock import utcnow
from core.models import App, GitConnection, WebhookDelivery
from core.pauses import describe, pause_of
from workflows.deploy import PUSH_SIGNAL, DeployRelease, PushedCommit, deploy_workflow_id

router = APIRouter(prefix=f"{API_PREFIX}/webhooks", tags=["webhooks"])
NO_COMMIT = "0" * 40
LIVE_APP = ("active", "bootstrapping")


def signature_matches(secret: str, body: bytes, presented: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), presented.encode())


@router.post(
    "/github",
    name="receive_github_webhook",
    response_model=WebhookOutcome,
    status_code=status.HTTP_202_ACCEPTED,
    summary="GitHub webhook deliveries",
    responses=problems(503),
)
async def github_webhook(
    request: Request, session: SessionDep, settings: SettingsDep, temporal: TemporalDep
) -> JSONResponse:
    """Authenticated by `X-Hub-Signature-256` over the raw body, not by an API key."""
    secret = settings.github_webhook_secret.get_secret_value()
    if not secret:
        raise ApiError(503, "WEBHOOKS_NOT_CONFIGURED", "SHIPYARD_GITHUB_WEBHOOK_SECRET is not set")
    body = await request.body()
    if not signature_matches(secret, body, request.headers.get("x-hub-signature-256", "")):
        raise ApiError(401, "SIGNATURE_INVALID", "the X-Hub-Signature-256 signature does not match")
    event = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "")
    if event == "ping":
        return JSONResponse({"status": "pong"}, status_code=status.HTTP_200_OK)
    if not delivery:
        raise ApiError(400, "BAD_REQUEST", "X-GitHub-Delivery is missing")
    try:
        payload: dict[str, Any] = json.loads(body)
    except json.JSONDecodeError:
        raise ApiError(400, "BAD_REQUEST", "the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "BAD_REQUEST", "the webhook body is not a JSON object")
    full_name = str((payload.get("repository") or {}).get("full_name", ""))
    if session.get(WebhookDelivery, delivery) is not None:
        return _answer("duplicate", f"delivery {delivery} was already handled")
    handled = Handled(session, delivery, event, full_name)
    if event != "push":
        return handled.answer("ignored", f"{event or 'unknown'} events start nothing")

    ref, after = str(payload.get("ref", "")), str(payload.get("after", ""))
    if not ref.startswith("refs/heads/") or after in ("", NO_COMMIT):
        return handled.answer("ignored", "not a push of a branch commit")
    branch = ref.removeprefix("refs/heads/")
    installation = (payload.get("installation") or {}).get("id")
    connected = _connected_app(session, full_name, branch, installation)
    if connected is None:
        return handled.answer(
            "ignored",
            f"no app deploys {full_name} branch {branch} through installation {installation}",
        )
    app, connection = connected
    _keep_messages(session, app, payload)
    workflow_input = deploy_input(session, settings, app, connection, trigger="webhook")
    paused = pause_of(session, app.id, app.tenant_id)
    workflow_id = deploy_workflow_id(str(app.id), workflow_input.environment)
    # Signal-with-start: a deploy already running for this app and environment takes the
    # commit as its next one (coalescing newer pushes); otherwise a new run deploys it. The
    # delivery counts as handled only once Temporal has it, so a refused one can be delivered
    # again; a redelivery racing this one is dropped by the workflow, which knows its id.
    async with reaching_temporal("deploy the push"):
        client = await temporal.client()
        await client.start_workflow(
            DeployRelease.run,
            workflow_input,
            id=workflow_id,
            task_queue=settings.task_queue,
            start_signal=PUSH_SIGNAL,
            start_signal_args=[PushedCommit(sha=after, received_at=utcnow(), delivery_id=delivery)],
            **run_labels(workflow_input),
        )
    if paused is not None:
        # The run holds it (it checks the pause itself, so a pause that lands between the
        # look above and the signal holds it too); resume deploys the newest held push.
        handled.note(f"held: {after[:12]} waits, {describe(paused)}")
    else:
        handled.note(f"deploy of {after[:12]} requested")
    return JSONResponse(
        {
            "status": "accepted" if paused is None else "held",
            "app_id": str(app.id),
            "commit_sha": after,
            "workflow_id": workflow_id,
        },
        status_code=status.HTTP_202_ACCEPTED,
    )


class Handled:
    """Records a delivery once it has been dealt with; a concurrent copy that got there first
    has recorded the same thing."""

    def __init__(self, session: Session, delivery: str, event: str, full_name: str) -> None:
        self._session = session
        self._row = WebhookDelivery(id=delivery, event=event, repo_full_name=full_name)

    def note(self, outcome: str) -> None:
        self._row.outcome = outcome[:300]
        self._session.add(self._row)
        try:
            self._session.commit()
        except IntegrityError:
            self._session.rollback()

    def answer(self, outcome: str, detail: str) -> JSONResponse:
        self.note(f"{outcome}: {detail}")
        return _answer(outcome, detail)


def _keep_messages(session: Session, app: App, payload: dict[str, Any]) -> None:
    """What the pushed commits say, kept for the deployments that show them; a copy of this
    delivery racing it keeps the same."""
    commit_messages.record(session, app.id, commit_messages.pushed_commits(payload))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()


def _connected_app(
    session: Session, full_name: str, branch: str, installation: object
) -> tuple[App, GitConnection] | None:
    """The app connected to exactly this repository and branch through the installation the
    delivery names: another tenant's installation can never reach it."""
    if not isinstance(installation, int) or isinstance(installation, bool) or not full_name:
        return None
    rows = session.exec(
        select(App, GitConnection)
        .join(GitConnection, col(GitConnection.app_id) == col(App.id))
        .where(
            GitConnection.repo_full_name == full_name,
            GitConnection.branch == branch,
            GitConnection.installation_id == installation,
            col(App.status).in_(LIVE_APP),
        )
    ).first()
    return (rows[0], rows[1]) if rows else None


def _answer(outcome: str, detail: str) -> JSONResponse:
    code = status.HTTP_200_OK if outcome == "duplicate" else status.HTTP_202_ACCEPTED
    return JSONResponse({"status": outcome, "detail": detail}, status_code=code)
