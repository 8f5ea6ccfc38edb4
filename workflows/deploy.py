"""DeployRelease: resolve a commit, build and push its image (or reuse it), roll it out by digest
and record it — one at a time per app and environment. Pushes that arrive meanwhile are kept and
coalesced: when a deployment ends, the newest commit that arrived is deployed next."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.calls import RECORDS_RUN_LOCALLY, Steps, execute
    from workflows.cluster import Cluster
    from workflows.contracts import git, github, kube, records
    from workflows.contracts import image as images
    from workflows.environment import AppEnvironment
    from workflows.errors import code_and_message, is_cancellation, stop_if_cancelled
    from workflows.locks import LockHolder, environment_lock
    from workflows.policies import StepTimeouts
    from workflows.progress import report_deployment

PUSH_SIGNAL = "push"
CANCEL_DEPLOYMENT_UPDATE = "cancel_deployment"
# Runs from before this recorded their start outside the try, so a cancel arriving then ended
# the run at once and left its record open; they replay that way.
A_CANCEL_AT_THE_START_ENDS_THE_RECORD = "a-cancel-at-the-start-ends-the-record"
RESUME_SIGNAL = "resume"
# Runs from before this deployed every push at once; from it on, pushes and CI images wait
# while the app (or its tenant) is paused, and the newest is deployed once it is resumed.
PAUSE_HOLDS_PUSHES = "pause-holds-pushes"
# A resume wakes a holding run at once; should its signal be lost (the API stopped between
# the resume and the signal), the run looks again after this long.
PAUSE_RECHECK = timedelta(minutes=10)


class PushedCommit(BaseModel):
    """A commit pushed to the connected branch; `received_at` orders pushes by arrival."""

    sha: str
    received_at: datetime
    delivery_id: str | None = None
    # An image CI built and registered while the app was paused: deployed as it is.
    image: images.RegisteredImage | None = None


class DeployInput(AppEnvironment):
    host: str
    repo_full_name: str
    installation_id: int
    branch: str = "main"
    # The first deployment: its id and commit. A run started by a push has neither: it takes
    # the pushed commit from its start signal.
    deployment_id: str | None = None
    commit_sha: str | None = None
    trigger: str = "manual"
    force_rebuild: bool = False
    # An image built by CI: deployed as it is, with no resolve and no build.
    image: images.RegisteredImage | None = None
    replicas: int = 1
    variables: dict[str, str] = Field(default_factory=dict)
    kube_task_queue: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class DeployResult(BaseModel):
    deployment_id: str
    status: str  # succeeded | failed | cancelled
    commit_sha: str | None = None
    image_ref: str | None = None
    release_version: int | None = None
    error_code: str | None = None
    error_message: str | None = None


def deploy_workflow_id(app_id: str, environment: str) -> str:
    return f"deploy:{app_id}:{environment}"


@dataclass
class Round:
    """One deployment the workflow runs; coalesced pushes ride along in `commits`."""

    deployment_id: str
    commit_sha: str | None
    trigger: str
    commits: list[str] = field(default_factory=list)
    force_rebuild: bool = False
    image: images.RegisteredImage | None = None


@dataclass(frozen=True)
class Image:
    image_ref: str
    digest: str
    port: int
    health_path: str
    size: int | None = None  # known when this run built it


class DeploymentFailed(Exception):
    def __init__(self, result: DeployResult) -> None:
        super().__init__(result.error_message)
        self.result = result


@workflow.defn(name="DeployRelease")
class DeployRelease:
    def __init__(self) -> None:
        self._status = "pending"
        self._stage = "resolve"
        self._pending: list[PushedCommit] = []
        self._deployed_up_to: datetime | None = None
        self._current: Round | None = None
        self._current_task: asyncio.Task[DeployResult] | None = None
        self._cancel_requested: str | None = None
        self._deliveries: set[str] = set()
        self._resumes = 0
        self._holding = False
        self._pause_holds = False

    @workflow.signal(name=PUSH_SIGNAL)
    def push(self, commit: PushedCommit) -> None:
        # A delivery GitHub sent twice (a redelivery racing the first) is one push.
        if commit.delivery_id is not None:
            if commit.delivery_id in self._deliveries:
                return
            self._deliveries.add(commit.delivery_id)
        self._pending.append(commit)

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        """The app (or its tenant) was resumed: a run holding pushes looks at the pause again."""
        self._resumes += 1

    @workflow.update(name=CANCEL_DEPLOYMENT_UPDATE)
    async def cancel_deployment(self, deployment_id: str) -> None:
        """Stop the deployment in progress at its current stage; later pushes still deploy."""
        self._cancel_requested = deployment_id
        if self._current_task is not None:
            self._current_task.cancel()
        await workflow.wait_condition(lambda: not self._is_running(deployment_id))

    @cancel_deployment.validator
    def _only_the_running_one(self, deployment_id: str) -> None:
        if not self._is_running(deployment_id):
            raise ApplicationError(
                f"deployment {deployment_id} is not in progress", type="DEPLOYMENT_NOT_RUNNING"
            )

    def _is_running(self, deployment_id: str) -> bool:
        return self._current is not None and self._current.deployment_id == deployment_id

    @workflow.run
    async def run(self, request: DeployInput) -> DeployResult:
        self._request = request
        self._cluster = Cluster(request.kube_task_queue, request.timeouts)
        self._local_records = workflow.patched(RECORDS_RUN_LOCALLY)
        self._steps = Steps(request.timeouts, local_records=self._local_records)
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.ENV.value_set(request.environment),
                search.STAGE.value_set("resolve"),
            ]
        )
        self._pause_holds = workflow.patched(PAUSE_HOLDS_PUSHES)
        started_by_push = request.deployment_id is None and request.commit_sha is None
        if started_by_push:
            await self._hold_while_paused()
        first = self._next_push_round() if started_by_push else None
        if first is None:
            first = Round(
                deployment_id=request.deployment_id or str(workflow.uuid4()),
                commit_sha=request.commit_sha,
                trigger=request.trigger,
                commits=[request.commit_sha] if request.commit_sha else [],
                force_rebuild=request.force_rebuild,
                image=request.image,
            )
            self._deployed_up_to = self._deployed_up_to or workflow.now()
            if first.trigger == "ci" and first.image is not None:
                # Registered just as the app was paused: it waits like a push.
                await self._hold_while_paused(first.image.image_ref)
        result = await self._run_round(first)
        while True:
            if self._pending:
                await self._hold_while_paused()
            round_ = self._next_push_round()
            if round_ is None:
                break
            result = await self._run_round(round_)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if result.status == "failed":
            raise ApplicationError(
                result.error_message or "the deployment failed",
                type=result.error_code or "DEPLOY_FAILED",
                non_retryable=True,
            )
        return result

    def _next_push_round(self) -> Round | None:
        """The newest pushed commit not older than what was deployed, with every push it covers;
        older pushes are dropped, so an older commit never replaces a newer one."""
        newer = [
            commit
            for commit in sorted(self._pending, key=lambda commit: commit.received_at)
            if self._deployed_up_to is None or commit.received_at > self._deployed_up_to
        ]
        self._pending.clear()
        if not newer:
            return None
        newest = newer[-1]
        self._deployed_up_to = newest.received_at
        covered = list(dict.fromkeys(commit.sha for commit in newer if commit.sha))
        return Round(
            deployment_id=str(workflow.uuid4()),
            commit_sha=newest.sha or None,
            trigger="webhook" if newest.image is None else "ci",
            commits=covered,
            image=newest.image,
        )

    async def _hold_while_paused(self, waiting: str | None = None) -> None:
        """While the app or its tenant is paused, pushes wait here (in this run's state, and
        listed in the database as held); a resume, or a new push, makes it look again."""
        if not self._pause_holds:
            return
        request = self._request
        while True:
            resumes, pushes = self._resumes, len(self._pending)
            held = [waiting] if waiting else []
            held += [
                commit.sha or (commit.image.image_ref if commit.image else "")
                for commit in sorted(self._pending, key=lambda commit: commit.received_at)
            ]
            state = await self._steps.record(
                records.CHECK_PAUSE,
                records.PauseCheck(
                    app_id=request.app_id,
                    tenant_id=request.tenant_id,
                    environment=request.environment,
                    workflow_id=workflow.info().workflow_id,
                    held_commits=held,
                ),
            )
            if not state.paused:
                if self._holding:
                    self._holding = False
                    workflow.upsert_search_attributes([search.STAGE.value_set("resolve")])
                    workflow.set_current_details("Resumed: deploying the newest push")
                return
            self._holding = True
            workflow.upsert_search_attributes([search.STAGE.value_set("paused")])
            newest = f", newest {held[-1][:60]}" if held else ""
            workflow.set_current_details(
                f"Holding {len(held)} push(es){newest}: {state.description}. "
                "Resuming deploys the newest."
            )
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    functools.partial(self._changed_since, resumes, pushes), timeout=PAUSE_RECHECK
                )

    def _changed_since(self, resumes: int, pushes: int) -> bool:
        """A resume or another push arrived since the run last looked at the pause."""
        return self._resumes != resumes or len(self._pending) != pushes

    async def _run_round(self, round_: Round) -> DeployResult:
        self._current = round_
        self._current_task = asyncio.create_task(self._deploy(round_))
        try:
            return await self._current_task
        except asyncio.CancelledError:
            if self._cancel_requested != round_.deployment_id:
                raise  # the whole workflow is being cancelled
            return DeployResult(deployment_id=round_.deployment_id, status="cancelled")
        except DeploymentFailed as failed:
            return failed.result
        finally:
            self._current = None
            self._current_task = None

    async def _deploy(self, round_: Round) -> DeployResult:
        request = self._request
        started_inside = workflow.patched(A_CANCEL_AT_THE_START_ENDS_THE_RECORD)
        if not started_inside:
            await self._record_start(round_)
        target = request.target()
        previous_image: str | None = None
        rollout_began = False
        lock = contextlib.AsyncExitStack()
        try:
            if started_inside:
                await self._record_start(round_)
            while True:
                if round_.image is None:
                    commit = await self._resolve_commit(round_)
                    image = await self._image_for(round_, commit)
                else:
                    commit, image = await self._registered(round_, round_.image)
                stop_if_cancelled()
                # Only the cluster phase holds the environment, so a build never blocks a
                # rollback; a deploy that finds it held waits its turn.
                grant = await lock.enter_async_context(
                    environment_lock(
                        request.app_id,
                        request.environment,
                        "deploy",
                        request.timeouts,
                        on_wait=lambda holder: self._wait_for(round_, holder),
                        local=self._local_records,
                    )
                )
                if grant.waited_for is None or not self._take_newer_pushes(round_):
                    break
                # Newer pushes arrived while it waited: deploy the newest instead, built
                # without holding the environment.
                await lock.aclose()
            await self._move(round_, "deploying", "deploy", f"Rolling out {image.image_ref}")
            previous_image = await self._cluster.current_image(target)
            rollout_began = True
            await self._cluster.apply(request, image.image_ref, image)
            await self._cluster.wait_for_rollout(target)
            stop_if_cancelled()
            release = await self._steps.record(
                records.RECORD_RELEASE,
                records.ReleaseInput(
                    deployment_id=round_.deployment_id,
                    app_id=request.app_id,
                    environment=request.environment,
                    commit_sha=commit,
                    image_digest=image.digest,
                    image_ref=image.image_ref,
                    image_size=image.size,
                ),
            )
            # Free the environment before saying so: whoever reads "succeeded" may act on it.
            await lock.aclose()
            await self._move(
                round_,
                "succeeded",
                "done",
                f"Release v{release.version} runs in {request.environment}",
                image_ref=image.image_ref,
                finished=True,
            )
            return DeployResult(
                deployment_id=round_.deployment_id,
                status="succeeded",
                commit_sha=commit,
                image_ref=image.image_ref,
                release_version=release.version,
            )
        except GeneratorExit:
            # The worker evicted the run from its cache and it goes on elsewhere: the lock is
            # forgotten here, not released.
            lock.pop_all()
            raise
        except BaseException as error:
            cancelled = is_cancellation(error) or self._cancel_requested == round_.deployment_id
            code, message = code_and_message(error, "DEPLOY_FAILED")
            if rollout_began:
                await self._restore(target, previous_image)
            await lock.aclose()
            status = "cancelled" if cancelled else "failed"
            reason = "cancelled by request" if cancelled else f"{code}: {message}"
            await self._move(
                round_, status, self._stage, reason, failure_reason=reason, finished=True
            )
            if cancelled:
                raise asyncio.CancelledError("the deployment was cancelled") from error
            raise DeploymentFailed(
                DeployResult(
                    deployment_id=round_.deployment_id,
                    status="failed",
                    commit_sha=round_.commit_sha,
                    error_code=code,
                    error_message=message,
                )
            ) from error
        finally:
            await lock.aclose()

    async def _record_start(self, round_: Round) -> None:
        request = self._request
        await self._steps.record(
            records.START_DEPLOYMENT,
            records.DeploymentStart(
                deployment_id=round_.deployment_id,
                tenant_id=request.tenant_id,
                app_id=request.app_id,
                environment=request.environment,
                commit_sha=round_.commit_sha or "",
                commits=round_.commits,
                trigger=round_.trigger,
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
            ),
        )

    async def _wait_for(self, round_: Round, holder: LockHolder) -> None:
        waiting = holder.waiting_message(self._request.environment)
        await self._move(round_, "pending", "lock", waiting)

    def _take_newer_pushes(self, round_: Round) -> bool:
        """A push round that waited for the lock takes the pushes that arrived meanwhile, so
        the newest commit is deployed once rather than each in turn; others keep their commit."""
        if round_.trigger != "webhook":
            return False
        newer = self._next_push_round()
        if newer is None:
            return False
        round_.commit_sha = newer.commit_sha
        round_.image = newer.image  # an image CI registered is deployed as it is
        round_.commits = list(dict.fromkeys([*round_.commits, *newer.commits]))
        return True

    async def _resolve_commit(self, round_: Round) -> str:
        request = self._request
        if self._local_records and round_.commit_sha:
            # A commit named by its start (a bootstrap's push, an import's head, a manual
            # deploy's sha) needs no resolving: runs from before asked git anyway.
            await self._move(
                round_, "pending", "resolve", f"Deploying {round_.commit_sha[:12]}",
                commit_sha=round_.commit_sha,
            )  # fmt: skip
            return round_.commit_sha
        await self._move(round_, "pending", "resolve", f"Resolving the head of {request.branch}")
        result = await self._steps.git(
            git.RESOLVE_COMMIT,
            git.ResolveCommitInput(
                repository=self._repository(), branch=request.branch, commit_sha=round_.commit_sha
            ),
            summary="resolve the commit to deploy",
        )
        return result.sha

    async def _registered(
        self, round_: Round, registered: images.RegisteredImage
    ) -> tuple[str, Image]:
        """An image CI built: its commit is what CI said (if anything), its image is itself."""
        commit = round_.commit_sha or ""
        await self._move(
            round_, "pushing", "push", f"Deploying {registered.image_ref}, built by CI",
            commit_sha=commit or None,
        )  # fmt: skip
        return commit, Image(
            registered.image_ref, registered.digest, registered.port, registered.health_path
        )

    async def _image_for(self, round_: Round, commit: str) -> Image:
        """The commit's image: the one already built for it (builds are reproducible, so it is
        the same), or a new build unless `force_rebuild` asks for one anyway."""
        request = self._request
        target = images.ImageTarget(
            repository=f"{request.tenant_slug}/{request.app_slug}", tag=commit
        )
        if not round_.force_rebuild:
            found = await self._steps.registry(
                images.FIND_IMAGE, target, summary="look for an image already built for this commit"
            )
            if found.image_ref:
                await self._move(
                    round_, "pushing", "push", f"Reusing the image built for {commit[:12]}",
                    commit_sha=commit,
                )  # fmt: skip
                return Image(found.image_ref, found.digest, found.port, found.health_path)
        await self._move(round_, "building", "build", f"Building {commit[:12]}", commit_sha=commit)
        built = await execute(
            images.BUILD_IMAGE,
            images.BuildImageInput(
                source=self._repository(),
                commit_sha=commit,
                target=target,
                deployment_id=round_.deployment_id,
            ),
            start_to_close=request.timeouts.build,
            heartbeat=request.timeouts.heartbeat,
            retry=policies.REGISTRY,
            cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"build the image of {commit[:12]}",
        )
        await self._move(round_, "pushing", "push", f"Pushing {target.repository}:{commit[:12]}")
        pushed = await self._steps.registry(
            images.PUSH_IMAGE, built, summary="push the image manifest"
        )
        return Image(pushed.image_ref, pushed.digest, built.port, built.health_path, pushed.size)

    async def _restore(self, target: kube.EnvironmentTarget, previous_image: str | None) -> None:
        """Put back what ran before and wait until it runs again; a first deploy had nothing,
        so there is nothing to restore (the bootstrap's compensation removes the namespace)."""
        if previous_image is not None:
            await self._cluster.put_back(target, previous_image)

    def _repository(self) -> github.RepositoryRef:
        return github.RepositoryRef(
            full_name=self._request.repo_full_name, installation_id=self._request.installation_id
        )

    async def _move(
        self,
        round_: Round,
        status: str,
        stage: str,
        details: str,
        *,
        image_ref: str | None = None,
        commit_sha: str | None = None,
        failure_reason: str | None = None,
        finished: bool = False,
    ) -> None:
        self._status, self._stage = status, stage
        await report_deployment(
            self._steps, round_.deployment_id, status, stage, details,
            image_ref=image_ref, commit_sha=commit_sha, commits=round_.commits,
            failure_reason=failure_reason, finished=finished,
        )  # fmt: skip
