"""What the runs that put an app on Shipyard share (BootstrapApp, ImportApp): the app and its
environments recorded, the repository connected for push-to-deploy, the first deploy as a child
DeployRelease, and the end — done, or every step undone in reverse and the record saying how."""

from __future__ import annotations

from typing import Any, NoReturn

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.calls import RECORDS_RUN_LOCALLY, Steps, execute
    from workflows.contracts import github, kube, records
    from workflows.deploy import DeployInput, DeployRelease, deploy_workflow_id
    from workflows.errors import code_and_message, is_cancellation, stop_if_cancelled
    from workflows.policies import StepTimeouts
    from workflows.saga import Saga


class OnboardingInput(BaseModel):
    """What every run that puts an app on Shipyard is given; `bootstrap_id` names the record
    the API follows it by (a bootstrap's or an import's)."""

    bootstrap_id: str
    tenant_id: str
    tenant_slug: str
    app_id: str
    app_slug: str
    app_name: str
    subdomain: str
    host: str
    installation_id: int
    pipeline: list[str]
    namespaces: dict[str, str]
    webhook_url: str
    kube_task_queue: str
    requested_by: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class OnboardingResult(BaseModel):
    bootstrap_id: str
    status: str  # done | failed | cancelled
    stage: str
    app_id: str
    repo_full_name: str
    deployment_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class AppOnboarding:
    """The steps and the ending shared by the onboarding sagas; a subclass names what it is
    (`what`, used in messages, audit actions and the default error code) and runs its steps
    between them."""

    what = "bootstrap"

    def __init__(self) -> None:
        self._stage = "app"
        self._status = "running"

    def _begin(self, request: OnboardingInput) -> kube.EnvironmentTarget:
        """Remembers the request and sets the run's search attributes; gives the first
        environment, where the first deploy goes."""
        self._request = request
        # From this patch on, records are local activities, and a stage's end is one write:
        # the run's record, the app's status and the audit event together.
        self._local_records = workflow.patched(RECORDS_RUN_LOCALLY)
        self._steps = Steps(request.timeouts, local_records=self._local_records)
        first_env = request.pipeline[0]
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.ENV.value_set(first_env),
            ]
        )
        return kube.EnvironmentTarget(
            tenant=request.tenant_slug,
            app=request.app_slug,
            environment=first_env,
            namespace=request.namespaces[first_env],
            name=request.app_slug,
        )

    async def _record_app(self) -> None:
        request = self._request
        await self._steps.record(
            records.PREPARE_APP,
            records.PrepareAppInput(
                app_id=request.app_id,
                environments=[
                    records.EnvironmentSpec(
                        name=name, position=index, namespace=request.namespaces[name]
                    )
                    for index, name in enumerate(request.pipeline)
                ],
            ),
        )

    async def _connect(self, saga: Saga, repo: github.RepositoryRef, branch: str) -> None:
        """The push webhook, then the git connection; undone together."""
        webhook = github.WebhookInput(repository=repo, url=self._request.webhook_url)
        saga.register(
            "remove the webhook and the git connection", lambda: self._disconnect(webhook)
        )
        hook_id = await self._steps.github(github.ENSURE_WEBHOOK, webhook)
        await self._steps.record(
            records.SAVE_GIT_CONNECTION,
            records.GitConnectionInput(
                app_id=self._request.app_id,
                repo_full_name=repo.full_name,
                branch=branch,
                installation_id=repo.installation_id,
                webhook_id=hook_id,
            ),
        )

    async def _first_deploy(
        self,
        saga: Saga,
        target: kube.EnvironmentTarget,
        deployment_id: str,
        repo: github.RepositoryRef,
        *,
        branch: str = "main",
        commit_sha: str | None = None,
        trigger: str = "bootstrap",
    ) -> None:
        """The first deploy to the first environment, as a child run; then the app is active
        and the run's record says done."""
        request = self._request
        await self._enter(
            "deploy", f"Deploying to {target.environment}", deployment_id=deployment_id
        )
        saga.register(
            f"delete the {target.namespace} namespace", lambda: self._kube_compensation(target)
        )
        deployed = await workflow.execute_child_workflow(
            DeployRelease.run,
            DeployInput(
                deployment_id=deployment_id,
                tenant_id=request.tenant_id,
                tenant_slug=request.tenant_slug,
                app_id=request.app_id,
                app_slug=request.app_slug,
                environment=target.environment,
                namespace=target.namespace,
                host=request.host,
                repo_full_name=repo.full_name,
                installation_id=repo.installation_id,
                branch=branch,
                commit_sha=commit_sha,
                trigger=trigger,
                kube_task_queue=request.kube_task_queue,
                timeouts=request.timeouts,
            ),
            id=deploy_workflow_id(request.app_id, target.environment),
            static_summary=(
                f"Deploy {request.tenant_slug}/{request.app_slug} to {target.environment}"
            ),
        )
        outcome = {"release_version": deployed.release_version}
        if self._local_records:
            self._status = "done"
            await self._enter(
                "done",
                f"{request.app_slug} runs at {request.host}",
                status="done",
                app_status="active",
                audit=self._audit_event("done", outcome),
            )
            return
        await self._steps.record(
            records.SET_APP_STATUS,
            records.AppStatusInput(app_id=request.app_id, status="active"),
        )
        self._status = "done"
        await self._enter("done", f"{request.app_slug} runs at {request.host}", status="done")
        await self._audit("done", outcome)

    async def _end_undone(
        self, error: BaseException, saga: Saga, deployment_id: str, *, free_slug_last: bool
    ) -> NoReturn:
        """Every step taken is undone, newest first; the record says how the run ended and the
        slug is free again; then the run ends failed (with the error's code) or cancelled."""
        request = self._request
        cancelled = is_cancellation(error)
        code, message = code_and_message(error, f"{self.what.upper()}_FAILED")
        if cancelled:
            code, message = "CANCELLED", f"the {self.what} was cancelled; every step was undone"
        failed_stage = self._stage
        undo_failures = await saga.compensate()
        if undo_failures:
            message += "; could not undo: " + "; ".join(
                f"{failure.name} ({failure.reason})" for failure in undo_failures
            )
        status = "cancelled" if cancelled else "failed"
        self._status = status
        self._stage = failed_stage
        workflow.set_current_details(f"{status}: {message}")
        ended = records.BootstrapProgress(
            bootstrap_id=request.bootstrap_id,
            stage=failed_stage,
            status=status,
            deployment_id=deployment_id if failed_stage == "deploy" else None,
            error_code=code,
            error_message=message,
        )
        if self._local_records:
            # One write, the last step: the audit event, and the record saying the run ended
            # with the slug free again: whoever sees the end can use the slug again.
            await self._steps.record(
                records.UPDATE_BOOTSTRAP,
                ended.model_copy(
                    update={
                        "app_status": "failed",
                        "audit": self._audit_event(
                            status, {"error_code": code, "stage": failed_stage}
                        ),
                    }
                ),
            )
        elif free_slug_last:
            # Audited first; then the record says it ended and the slug is free, together,
            # as the last step: whoever sees the end can use the slug again.
            await self._audit(status, {"error_code": code, "stage": failed_stage})
            await self._steps.record(
                records.UPDATE_BOOTSTRAP, ended.model_copy(update={"app_status": "failed"})
            )
        else:
            await self._steps.record(records.UPDATE_BOOTSTRAP, ended)
            await self._audit(status, {"error_code": code, "stage": failed_stage})
        if cancelled:
            raise error
        raise ApplicationError(message, type=code, non_retryable=True) from error

    async def _disconnect(self, webhook: github.WebhookInput) -> None:
        await self._steps.github(github.REMOVE_WEBHOOK, webhook, compensation=True)
        await self._steps.record(records.DELETE_GIT_CONNECTION, self._request.app_id)

    async def _mark_app_failed(self) -> None:
        await self._steps.record(
            records.SET_APP_STATUS,
            records.AppStatusInput(app_id=self._request.app_id, status="failed"),
        )

    async def _kube_compensation(self, target: kube.EnvironmentTarget) -> None:
        await execute(
            kube.DELETE_ENVIRONMENT,
            target,
            start_to_close=self._request.timeouts.call,
            retry=policies.COMPENSATION,
            task_queue=self._request.kube_task_queue,
            summary=f"delete namespace {target.namespace}",
        )

    async def _enter(
        self,
        stage: str,
        details: str,
        *,
        deployment_id: str | None = None,
        status: str = "running",
        app_status: str | None = None,
        audit: records.AuditEventInput | None = None,
    ) -> None:
        stop_if_cancelled()
        self._stage = stage
        workflow.upsert_search_attributes([search.STAGE.value_set(stage)])
        workflow.set_current_details(details)
        await self._steps.record(
            records.UPDATE_BOOTSTRAP,
            records.BootstrapProgress(
                bootstrap_id=self._request.bootstrap_id,
                stage=stage,
                status=status,
                deployment_id=deployment_id,
                app_status=app_status,
                audit=audit,
            ),
        )

    async def _audit(self, result: str, detail: dict[str, Any]) -> None:
        await self._steps.record(records.RECORD_AUDIT_EVENT, self._audit_event(result, detail))

    def _audit_event(self, result: str, detail: dict[str, Any]) -> records.AuditEventInput:
        """The run's outcome for the audit log, keyed by the run so it is written once."""
        request = self._request
        return records.AuditEventInput(
            event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}:outcome",
            tenant_id=request.tenant_id,
            actor=request.requested_by,
            action=f"app.{self.what}",
            target=f"app:{request.app_slug}",
            result=result,
            detail={"bootstrap_id": request.bootstrap_id, **detail},
        )
