"""Retention: one tenant's (or one app's) expired images deleted from the registry by digest.

It plans from the release ledger (what runs, rollback targets, what is in flight, each state's
policy), stores the plan as the run's report, and — unless it is a dry run — works through the
plan's deletes in batches: claim (re-check and mark deleted, one transaction per batch; see
core.retention on why a promotion started meanwhile cannot lose its image), delete the
manifests, several at once (already gone counts as deleted), record. Started on demand by the
API and by the tenant's Temporal Schedule `retention:<tenant>`."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.calls import Steps, execute
    from workflows.contracts import registry, retention
    from workflows.errors import code_and_message
    from workflows.policies import StepTimeouts

# Each batch costs a claim that reads the stored plan and a record that writes the report back,
# whatever its size: in a run over a tenant of 10,000 releases about 0.2 s each (bench/
# retention.py), so batches of 50 would spend as long on the records as on the deletes.
DEFAULT_BATCH_SIZE = 200


class RetentionInput(BaseModel):
    tenant_id: str
    tenant_slug: str
    # Given by the API, which has already recorded the run; a scheduled run makes its own.
    run_id: str | None = None
    app_id: str | None = None
    app_slug: str | None = None
    dry_run: bool = False
    trigger: str = "schedule"  # api | schedule
    requested_by: str = "schedule"
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=500)
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class RetentionResult(BaseModel):
    run_id: str
    dry_run: bool
    kept: int
    to_delete: int
    deleted: int
    spared: int


def schedule_id(tenant_slug: str) -> str:
    return f"retention:{tenant_slug}"


def run_workflow_id(tenant_slug: str, run_id: str) -> str:
    return f"retention:{tenant_slug}:{run_id}"


@workflow.defn(name="Retention")
class Retention:
    @workflow.run
    async def run(self, request: RetentionInput) -> RetentionResult:
        self._steps = Steps(request.timeouts)
        run_id = request.run_id or str(workflow.uuid4())
        attributes = [search.TENANT.value_set(request.tenant_slug)]
        if request.app_slug:
            attributes.append(search.APP.value_set(request.app_slug))
        workflow.upsert_search_attributes(attributes)
        await self._steps.database(
            retention.START_RUN,
            retention.RunStart(
                run_id=run_id,
                tenant_id=request.tenant_id,
                app_id=request.app_id,
                dry_run=request.dry_run,
                trigger=request.trigger,
                workflow_id=workflow.info().workflow_id,
                requested_by=request.requested_by,
            ),
        )
        deleted = spared = 0
        try:
            self._move("plan", "Computing the keep-set from the release ledger")
            plan = await self._steps.database(retention.PLAN, run_id)
            if request.dry_run:
                self._move("done", f"Dry run: {plan.to_delete} to delete, {plan.kept} kept")
            else:
                for offset in range(0, plan.to_delete, request.batch_size):
                    self._move(
                        "delete",
                        f"Deleting expired images {offset + 1}-"
                        f"{min(offset + request.batch_size, plan.to_delete)} of {plan.to_delete}",
                    )
                    outcome = await self._delete_batch(request, run_id, offset)
                    deleted += len(outcome.deleted)
                    spared += len(outcome.spared)
                self._move("done", f"Deleted {deleted}, spared {spared}, kept {plan.kept}")
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            code, message = code_and_message(error, "RETENTION_FAILED")
            self._move("failed", f"{code}: {message}")
            await self._finish(request, run_id, "failed", f"{code}: {message}")
            raise
        await self._finish(request, run_id, "succeeded", None)
        return RetentionResult(
            run_id=run_id,
            dry_run=request.dry_run,
            kept=plan.kept,
            to_delete=plan.to_delete,
            deleted=deleted,
            spared=spared,
        )

    async def _delete_batch(
        self, request: RetentionInput, run_id: str, offset: int
    ) -> retention.BatchOutcome:
        claimed = await self._steps.database(
            retention.CLAIM_BATCH,
            retention.BatchRef(run_id=run_id, offset=offset, limit=request.batch_size),
        )
        gone = registry.DeletedImages()
        if claimed.claimed:
            gone = await execute(
                registry.DELETE_MANIFESTS,
                registry.DeleteManifests(images=claimed.claimed),
                start_to_close=request.timeouts.call + timedelta(seconds=len(claimed.claimed)),
                heartbeat=request.timeouts.heartbeat,
                retry=policies.REGISTRY,
                summary=f"delete {len(claimed.claimed)} manifests",
            )
        outcome = retention.BatchOutcome(run_id=run_id, deleted=gone.deleted, spared=claimed.spared)
        await self._steps.database(retention.RECORD_BATCH, outcome)
        return outcome

    async def _finish(
        self, request: RetentionInput, run_id: str, status: str, error: str | None
    ) -> None:
        await self._steps.database(
            retention.FINISH_RUN, retention.RunEnd(run_id=run_id, status=status, error=error)
        )

    def _move(self, stage: str, details: str) -> None:
        workflow.upsert_search_attributes([search.STAGE.value_set(stage)])
        workflow.set_current_details(details)
