"""What a run says of itself as it moves: the stage as a search attribute and the details in
words for the Web UI, and the same in the records the API reads. Shared by the runs that change
an environment (deploys and rollbacks write deployment records)."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import search
    from workflows.calls import Steps
    from workflows.contracts import records


def show(stage: str, details: str) -> None:
    workflow.upsert_search_attributes([search.STAGE.value_set(stage)])
    workflow.set_current_details(details)


async def report_deployment(
    steps: Steps, deployment_id: str, status: str, stage: str, details: str, **fields: Any
) -> None:
    """Shown in the Web UI, and written to the deployment's record with a log line."""
    show(stage, details)
    await steps.record(
        records.UPDATE_DEPLOYMENT,
        records.DeploymentProgress(
            deployment_id=deployment_id,
            status=status,
            stage=stage,
            log_line=f"[{workflow.now().isoformat(timespec='seconds')}] {details}",
            **fields,
        ),
    )
