"""BootstrapApp: app record → repository → template pushed → connected → first deploy, as a saga
that either finishes or undoes every step it took, whatever fails or is cancelled."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.calls import Steps, execute
    from workflows.contracts import git, github, kube, records
    from workflows.deploy import DeployInput, DeployRelease, deploy_workflow_id
    from workflows.errors import code_and_message, is_cancellation, stop_if_cancelled
    from workflows.policies import StepTimeouts
    from workflows.saga import Saga

STAGES = ("app", "repo", "push", "connect", "deploy", "done")
# Runs recorded before this freed the slug in their first compensation, before the bootstrap
# record said it had ended; they replay that way.
FREE_THE_SLUG_LAST = "free-the-slug-last"


class BootstrapInput(BaseModel):
    bootstrap_id: str
    tenant_id: str
    tenant_slug: str
    app_id: str
    app_slug: str
    app_name: str
    subdomain: str
    host: str
    template_id: str
    template_source: str  # builtin:<dir> | github:<owner>/<repo>
    template_port: int
    repo_owner: str
    repo_name: str
    repo_private: bool = True
    installation_id: int
    pipeline: list[str]
    namespaces: dict[str, str]
    webhook_url: str
    kube_task_queue: str
    requested_by: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class BootstrapResult(BaseModel):
    bootstrap_id: str
    status: str  # done | failed | cancelled
    stage: str
    app_id: str
    repo_full_name: str
    deployment_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


def bootstrap_workflow_id(tenant_slug: str, app_slug: str) -> str:
    return f"bootstrap:{tenant_slug}:{app_slug}"


@workflow.defn(name="BootstrapApp")
class BootstrapApp:
    def __init__(self) -> None:
        self._stage = "app"
        self._status = "running"

    @workflow.run
    async def run(self, request: BootstrapInput) -> BootstrapResult:
        self._request = request
        self._steps = Steps(request.timeouts)
        first_env = request.pipeline[0]
        repo = github.RepositoryRef(
            full_name=f"{request.repo_owner}/{request.repo_name}",
            installation_id=request.installation_id,
        )
        marker = f"shipyard-bootstrap:{request.bootstrap_id}"
        deployment_id = str(workflow.uuid4())
        target = kube.EnvironmentTarget(
            tenant=request.tenant_slug,
            app=request.app_slug,
            environment=first_env,
            namespace=request.namespaces[first_env],
            name=request.app_slug,
        )
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.ENV.value_set(first_env),
            ]
        )
        saga = Saga()
        # A new bootstrap of the same slug may start once the slug is free; the slug is freed
        # by the very last step, so this run's record already says how it ended by then.
        free_slug_last = workflow.patched(FREE_THE_SLUG_LAST)
        try:
            await self._enter("app", "Recording the app and its environments")
            if not free_slug_last:
                saga.register("mark the app failed and free its slug", self._mark_app_failed)
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

            await self._enter("repo", f"Creating the repository {repo.full_name}")
            saga.register(
                f"delete {repo.full_name} if this bootstrap created it",
                lambda: self._steps.github(
                    github.DELETE_REPOSITORY_IF_OURS,
                    github.DeleteRepositoryInput(repository=repo, marker=marker),
                    compensation=True,
                ),
            )
            await self._create_repository(marker)

            if request.template_source.startswith("builtin:"):
                await self._enter("push", f"Pushing the {request.template_id} template")
                await self._steps.github(
                    git.PUSH_TEMPLATE,
                    git.PushTemplateInput(
                        repository=repo,
                        template_id=request.template_id,
                        values={
                            "app_name": request.app_name,
                            "app_slug": request.app_slug,
                            "tenant": request.tenant_slug,
                            "subdomain": request.host,
                            "port": str(request.template_port),
                        },
                    ),
                )

            await self._enter("connect", "Connecting the repository for push-to-deploy")
            webhook = github.WebhookInput(repository=repo, url=request.webhook_url)
            saga.register(
                "remove the webhook and the git connection", lambda: self._disconnect(webhook)
            )
            hook_id = await self._steps.github(github.ENSURE_WEBHOOK, webhook)
            await self._steps.record(
                records.SAVE_GIT_CONNECTION,
                records.GitConnectionInput(
                    app_id=request.app_id,
                    repo_full_name=repo.full_name,
                    branch="main",
                    installation_id=request.installation_id,
                    webhook_id=hook_id,
                ),
            )

            await self._enter("deploy", f"Deploying to {first_env}", deployment_id=deployment_id)
            saga.register(
                f"delete the {target.namespace} namespace",
                lambda: self._kube_compensation(target),
            )
            deployed = await workflow.execute_child_workflow(
                DeployRelease.run,
                DeployInput(
                    deployment_id=deployment_id,
                    tenant_id=request.tenant_id,
                    tenant_slug=request.tenant_slug,
                    app_id=request.app_id,
                    app_slug=request.app_slug,
                    environment=first_env,
                    namespace=target.namespace,
                    host=request.host,
                    repo_full_name=repo.full_name,
                    installation_id=request.installation_id,
                    trigger="bootstrap",
                    kube_task_queue=request.kube_task_queue,
                    timeouts=request.timeouts,
                ),
                id=deploy_workflow_id(request.app_id, first_env),
                static_summary=f"Deploy {request.tenant_slug}/{request.app_slug} to {first_env}",
            )

            await self._steps.record(
                records.SET_APP_STATUS,
                records.AppStatusInput(app_id=request.app_id, status="active"),
            )
            self._status = "done"
            await self._enter("done", f"{request.app_slug} runs at {request.host}", status="done")
            await self._audit("done", {"release_version": deployed.release_version})
            return self._result("done", deployment_id=deployment_id)
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            cancelled = is_cancellation(error)
            code, message = code_and_message(error, "BOOTSTRAP_FAILED")
            if cancelled:
                code, message = "CANCELLED", "the bootstrap was cancelled; every step was undone"
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
            if free_slug_last:
                # Audited first; then the record says it ended and the slug is free, together,
                # as the last step: whoever sees the end can bootstrap the slug again.
                await self._audit(status, {"error_code": code, "stage": failed_stage})
                await self._steps.record(
                    records.UPDATE_BOOTSTRAP, ended.model_copy(update={"app_status": "failed"})
                )
            else:
                await self._steps.record(records.UPDATE_BOOTSTRAP, ended)
                await self._audit(status, {"error_code": code, "stage": failed_stage})
            if cancelled:
                raise
            raise ApplicationError(message, type=code, non_retryable=True) from error

    async def _create_repository(self, marker: str) -> None:
        request = self._request
        common: dict[str, Any] = {
            "owner": request.repo_owner,
            "name": request.repo_name,
            "private": request.repo_private,
            "installation_id": request.installation_id,
            "marker": marker,
            "description": f"{request.app_name}, deployed by Shipyard",
        }
        if request.template_source.startswith("github:"):
            await self._steps.github(
                github.GENERATE_REPOSITORY,
                github.GenerateRepositoryInput(
                    template_full_name=request.template_source.removeprefix("github:"), **common
                ),
            )
            return
        await self._steps.github(github.CREATE_REPOSITORY, github.CreateRepositoryInput(**common))

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
        self, stage: str, details: str, *, deployment_id: str | None = None, status: str = "running"
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
            ),
        )

    async def _audit(self, result: str, detail: dict[str, Any]) -> None:
        request = self._request
        await self._steps.record(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}:outcome",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="app.bootstrap",
                target=f"app:{request.app_slug}",
                result=result,
                detail={"bootstrap_id": request.bootstrap_id, **detail},
            ),
        )

    def _result(self, status: str, *, deployment_id: str | None) -> BootstrapResult:
        request = self._request
        return BootstrapResult(
            bootstrap_id=request.bootstrap_id,
            status=status,
            stage=self._stage,
            app_id=request.app_id,
            repo_full_name=f"{request.repo_owner}/{request.repo_name}",
            deployment_id=deployment_id,
        )
