"""The worker's Prometheus metrics: the Temporal SDK's own and Shipyard's, on one endpoint.

`SHIPYARD_WORKER_METRICS_PORT` starts the endpoint (`http://<SHIPYARD_WORKER_METRICS_HOST>:
<port>/metrics`); unset, the worker serves none and every `record_*` call below costs nothing.
Shipyard's metrics are made with the Temporal runtime's own meter, so one scrape gives both,
and each worker process counts what its own activities did.

They are observed in activities, never in workflow code: a workflow replays its history, so a
counter there would count one outcome many times. An activity records an outcome once, in the
attempt that writes it to the database.

Labels. Counters carry `tenant`, `app`, `environment` and `outcome` (slugs, never ids): a
platform's apps are counted in hundreds or thousands, each with a handful of environments and
outcomes, which Prometheus holds easily. Histograms are bucketed, so they multiply series by
their buckets: they carry `tenant` and `environment` (build durations `tenant` and `outcome`),
not `app`. Temporal adds `namespace`, `task_queue` and `activity_type` to everything recorded in
an activity.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.settings import Settings

DEPLOYMENTS = "shipyard_deployments"
PROMOTIONS = "shipyard_promotions"
ROLLBACKS = "shipyard_rollbacks"
BUILD_DURATION = "shipyard_build_duration_seconds"
ROLLOUT_DURATION = "shipyard_rollout_duration_seconds"
APPROVAL_WAIT = "shipyard_approval_wait_seconds"
RETENTION_DELETIONS = "shipyard_retention_deletions"
WEBHOOK_DELIVERIES = "shipyard_webhook_deliveries"

# Seconds. Builds and rollouts take seconds to minutes; approvals minutes to days.
BUCKETS: dict[str, list[float]] = {
    BUILD_DURATION: [1, 5, 10, 30, 60, 120, 300, 600, 1200],
    ROLLOUT_DURATION: [1, 5, 10, 30, 60, 120, 300, 600],
    APPROVAL_WAIT: [60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600],
}


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving /metrics on the configured port, or None when unset."""
    if settings.worker_metrics_port is None:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides=BUCKETS,
            ),
            global_tags={"service": "shipyard-worker"},
            attach_service_name=False,
        )
    )


def metrics_url(settings: Settings) -> str | None:
    if settings.worker_metrics_port is None:
        return None
    return f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"


def _meter() -> MetricMeter | None:
    """The running activity's meter (a no-op one when the worker serves no metrics)."""
    if not activity.in_activity():
        return None
    try:
        return activity.metric_meter()
    except RuntimeError:
        return None


def _count(name: str, description: str, labels: Mapping[str, str], value: int = 1) -> None:
    meter = _meter()
    if meter is not None and value > 0:
        meter.create_counter(name, description).add(value, dict(labels))


def _observe(name: str, description: str, seconds: float, labels: Mapping[str, str]) -> None:
    meter = _meter()
    if meter is not None:
        meter.create_histogram_float(name, description, "s").record(max(seconds, 0.0), dict(labels))


def deployment_finished(
    tenant: str, app: str, environment: str, trigger: str, outcome: str
) -> None:
    """A deployment ended (`outcome`: succeeded, failed, cancelled); a rollback counts in
    `shipyard_rollbacks_total` too."""
    labels = {"tenant": tenant, "app": app, "environment": environment, "outcome": outcome}
    by_trigger = {**labels, "trigger": trigger}
    _count(DEPLOYMENTS, "Deployments finished, by trigger and outcome", by_trigger)
    if trigger == "rollback":
        _count(ROLLBACKS, "Rollbacks finished, by outcome", labels)


def promotion_finished(tenant: str, app: str, environment: str, outcome: str) -> None:
    """A promotion ended: succeeded, failed, rejected, cancelled or expired."""
    labels = {"tenant": tenant, "app": app, "environment": environment, "outcome": outcome}
    _count(PROMOTIONS, "Promotions finished, by outcome", labels)


def build_took(tenant: str, seconds: float, outcome: str) -> None:
    _observe(
        BUILD_DURATION,
        "Image builds, from fetching the source to every blob uploaded",
        seconds,
        {"tenant": tenant, "outcome": outcome},
    )


def rollout_took(tenant: str, environment: str, seconds: float, outcome: str) -> None:
    _observe(
        ROLLOUT_DURATION,
        "Waits for a Kubernetes rollout to finish",
        seconds,
        {"tenant": tenant, "environment": environment, "outcome": outcome},
    )


def approval_waited(tenant: str, environment: str, seconds: float) -> None:
    _observe(
        APPROVAL_WAIT,
        "Time from a promotion's request until its approvals were complete",
        seconds,
        {"tenant": tenant, "environment": environment},
    )


def retention_deleted(tenant: str, images: int) -> None:
    _count(RETENTION_DELETIONS, "Images deleted by retention", {"tenant": tenant}, images)


def webhook_delivered(outcome: str, tenant: str = "") -> None:
    """An outbound webhook delivery attempt ended: `delivered`, `retrying`, `failed`."""
    _count(
        WEBHOOK_DELIVERIES,
        "Outbound webhook deliveries, by outcome",
        {"tenant": tenant, "outcome": outcome},
    )
