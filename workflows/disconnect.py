"""DisconnectRepository: stop push-to-deploy for an app: Shipyard's webhook is removed from the
repository, then the git connection from the records, so a crash or an outage midway finishes
later rather than leaving a webhook nobody knows of."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import policies, records, steps

# Runs recorded before this left the git connection's row to the API.
THE_RUN_REMOVES_THE_CONNECTION = "the-run-removes-the-connection"


class DisconnectInput(BaseModel):
    app_id: str
    tenant_id: str
    repo_full_name: str
    installation_id: int
    webhook_url: str
    requested_by: str


def disconnect_workflow_id(app_id: str) -> str:
    return f"disconnect:{app_id}"


@workflow.defn(name="DisconnectRepository")
class DisconnectRepository:
    @workflow.run
    async def run(self, request: DisconnectInput) -> None:
        workflow.set_current_details(f"Removing the webhook from {request.repo_full_name}")
        await workflow.execute_activity(
            steps.REMOVE_WEBHOOK,
            steps.WebhookInput(
                repository=steps.RepositoryRef(
                    full_name=request.repo_full_name, installation_id=request.installation_id
                ),
                url=request.webhook_url,
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=policies.COMPENSATION,
            summary="remove the push webhook",
        )
        if workflow.patched(THE_RUN_REMOVES_THE_CONNECTION):
            workflow.set_current_details("Removing the git connection")
            await workflow.execute_activity(
                records.DELETE_GIT_CONNECTION,
                request.app_id,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=policies.DATABASE,
                summary="remove the git connection",
            )
        await workflow.execute_activity(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="git_connection.disconnect",
                target=f"repo:{request.repo_full_name}",
                result="done",
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=policies.DATABASE,
            summary="record the outcome",
        )
