"""DisconnectRepository: stop push-to-deploy for an app: Shipyard's webhook is removed from the
repository, then the git connection from the records, so a crash or an outage midway finishes
later rather than leaving a webhook nobody knows of."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.calls import Steps
    from workflows.contracts import github, records
    from workflows.policies import StepTimeouts

# Runs recorded before this left the git connection's row to the API.
THE_RUN_REMOVES_THE_CONNECTION = "the-run-removes-the-connection"


class DisconnectInput(BaseModel):
    app_id: str
    tenant_id: str
    repo_full_name: str
    installation_id: int
    webhook_url: str
    requested_by: str
    # The operator's step limits, as every run that calls GitHub takes them.
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


def disconnect_workflow_id(app_id: str) -> str:
    return f"disconnect:{app_id}"


@workflow.defn(name="DisconnectRepository")
class DisconnectRepository:
    @workflow.run
    async def run(self, request: DisconnectInput) -> None:
        steps = Steps(request.timeouts)
        workflow.set_current_details(f"Removing the webhook from {request.repo_full_name}")
        await steps.github(
            github.REMOVE_WEBHOOK,
            github.WebhookInput(
                repository=github.RepositoryRef(
                    full_name=request.repo_full_name, installation_id=request.installation_id
                ),
                url=request.webhook_url,
            ),
            compensation=True,
            summary="remove the push webhook",
        )
        if workflow.patched(THE_RUN_REMOVES_THE_CONNECTION):
            workflow.set_current_details("Removing the git connection")
            await steps.record(records.DELETE_GIT_CONNECTION, request.app_id)
        await steps.record(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="git_connection.disconnect",
                target=f"repo:{request.repo_full_name}",
                result="done",
            ),
        )
