"""How Shipyard's workflows run in Temporal's sandbox: every workflow run re-imports the
workflow modules, but the shared step types and helpers are passed through, so a model built in
one workflow module is the same class in every other (pydantic checks the class)."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# Deterministic modules only: types, policies, and helpers that call workflow APIs.
SHARED_MODULES = (
    "workflows.calls",
    "workflows.cluster",
    "workflows.contracts",
    "workflows.environment",
    "workflows.errors",
    "workflows.images",
    "workflows.locks",
    "workflows.policies",
    "workflows.progress",
    "workflows.saga",
    "workflows.search",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*SHARED_MODULES)
    )
