"""What an app environment is in Kubernetes: its spec, and the Deployment, Service and Ingress
manifests applied for it (server-side apply, by digest)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

CONTAINER_NAME = "app"


LABEL_NAME = "app.kubernetes.io/name"


LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"


LABEL_TENANT = "shipyard.dev/tenant"


LABEL_APP = "shipyard.dev/app"


LABEL_ENVIRONMENT = "shipyard.dev/environment"


class ResourceSettings(BaseModel):
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"


class AppEnvironmentSpec(BaseModel):
    """Everything that makes one app run in one environment, without any secret value."""

    namespace: str
    tenant: str
    app: str = Field(description="the app slug; also the Deployment, Service and Ingress name")
    environment: str
    image: str = Field(description="registry/repository@sha256:<digest>")
    port: int = Field(default=8080, ge=1, le=65535)
    health_path: str = "/healthz"
    replicas: int = Field(default=1, ge=0)
    subdomain: str
    base_domain: str
    env: dict[str, str] = Field(default_factory=dict)
    env_secret_name: str | None = Field(
        default=None, description="a Secret in the namespace whose keys become variables"
    )
    image_pull_secret: str | None = None
    progress_deadline_seconds: int = Field(default=600, ge=1)
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    annotations: dict[str, str] = Field(
        default_factory=dict, description="on the Deployment only, so they cause no rollout"
    )
    ingress_class_name: str | None = None

    @field_validator("image")
    @classmethod
    def _by_digest(cls, value: str) -> str:
        if "@sha256:" not in value:
            raise ValueError("the image must be referenced by digest (repository@sha256:...)")
        return value

    @property
    def host(self) -> str:
        return f"{self.subdomain}.{self.base_domain}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_NAME: self.app,
            LABEL_MANAGED_BY: "shipyard",
            LABEL_TENANT: self.tenant,
            LABEL_APP: self.app,
            LABEL_ENVIRONMENT: self.environment,
        }


class AppliedEnvironment(BaseModel):
    namespace: str
    deployment: str
    service: str
    ingress: str
    host: str
    image: str
    generation: int
    deployment_uid: str


def deployment_manifest(spec: AppEnvironmentSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in sorted(spec.env.items())],
        "readinessProbe": {
            "httpGet": {"path": spec.health_path, "port": spec.port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {
                "cpu": spec.resources.cpu_request,
                "memory": spec.resources.memory_request,
            },
            "limits": {"cpu": spec.resources.cpu_limit, "memory": spec.resources.memory_limit},
        },
    }
    if spec.env_secret_name:
        container["envFrom"] = [{"secretRef": {"name": spec.env_secret_name}}]
    pod_spec: dict[str, Any] = {"containers": [container]}
    if spec.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": spec.app,
            "namespace": spec.namespace,
            "labels": spec.labels,
            "annotations": spec.annotations,
        },
        "spec": {
            "replicas": spec.replicas,
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "selector": {"matchLabels": {LABEL_NAME: spec.app}},
            "template": {"metadata": {"labels": spec.labels}, "spec": pod_spec},
        },
    }


def service_manifest(spec: AppEnvironmentSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.app, "namespace": spec.namespace, "labels": spec.labels},
        "spec": {
            "selector": {LABEL_NAME: spec.app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def ingress_manifest(spec: AppEnvironmentSpec) -> dict[str, Any]:
    ingress_spec: dict[str, Any] = {
        "rules": [
            {
                "host": spec.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": spec.app, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
    }
    if spec.ingress_class_name:
        ingress_spec["ingressClassName"] = spec.ingress_class_name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": spec.app, "namespace": spec.namespace, "labels": spec.labels},
        "spec": ingress_spec,
    }
