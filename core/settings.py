"""Shipyard's one settings class: every knob is a `SHIPYARD_` environment variable or .env line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changethis", "change-me", "secret", "dev-admin-token"}
# Where GitHub sends the browser back after the App was installed (the App's Setup URL is
# PUBLIC_URL followed by this); the API serves it.
GITHUB_SETUP_PATH = "/api/v1/github/setup"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SHIPYARD_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    state_dir: Path = Path(".shipyard")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    database_url: str = "sqlite:///.shipyard/shipyard.db"

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "shipyard"
    # Where operators open runs; responses link workflows there. `make dev` serves it here.
    temporal_ui_url: str = "http://127.0.0.1:8233"

    admin_token: SecretStr = SecretStr("")
    # Encrypts environment secrets at rest (core.secrets); changing it makes them unreadable.
    secret_key: SecretStr = SecretStr("")

    # Requests per minute and API key (or admin token) before 429 with Retry-After.
    rate_limit_per_minute: int = Field(default=600, ge=1)
    # Failed authentications per minute from one client address, and with one key id from one
    # address, before 429 with Retry-After (api.failed_auth says why both).
    failed_auth_per_minute: int = Field(default=30, ge=1)
    failed_auth_per_key_per_minute: int = Field(default=10, ge=1)
    # Where the API replicas count rate limits together; empty: each process on its own.
    redis_url: str = ""
    # How long an API process trusts a key it read lately without reading it again; a key
    # revoked through another process may work in this one for this long (api.auth.KeyCache).
    api_key_cache_seconds: float = Field(default=5, ge=0, le=60)

    # How long a web console sign-in lasts before the key must be given again.
    console_session_hours: float = Field(default=8, gt=0, le=24 * 30)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"

    github_api_url: str = "https://api.github.com"
    github_app_id: str = ""
    github_app_private_key: SecretStr = SecretStr("")
    github_app_private_key_file: Path | None = None
    github_webhook_secret: SecretStr = SecretStr("")
    # The App's install page, which install URLs point at; empty: the App's own page as GitHub
    # names it (`<html_url of GET /app>/installations/new`, github.com/apps/<slug>/...).
    github_app_install_url: str = ""
    # How long a state handed out by install-start can complete an install.
    github_install_state_seconds: int = Field(default=600, ge=1, le=86_400)
    # The organization and installation the sandbox's fake GitHub seeds (`make dev` fills these).
    sandbox_github_owner: str = ""
    sandbox_github_installation_id: int | None = None

    registry_url: str = "http://127.0.0.1:5000"
    registry_username: str = ""
    registry_password: SecretStr = SecretStr("")

    kubeconfig: Path | None = None
    kube_context: str | None = None
    # Cluster work runs on this queue, so a worker inside the cluster can serve it alone.
    kube_task_queue: str = "k8s-default"

    # Limits of workflow steps; an operator (or a crash test) can tighten them.
    step_timeout_seconds: float = Field(default=60, gt=0)
    heartbeat_timeout_seconds: float = Field(default=20, gt=0)
    build_timeout_seconds: float = Field(default=600, gt=0)
    rollout_timeout_seconds: float = Field(default=300, gt=0)
    # How long a run's next task waits for the worker that ran it last before any worker may
    # take it: after that worker died, the run is stalled this long (Temporal's default is 10s).
    sticky_queue_timeout_seconds: float = Field(default=10, gt=0)
    # The worker touches this file while it serves and Temporal answers; a container healthcheck
    # reads it with `python -m core.liveness`. Unset: the worker keeps no heartbeat.
    worker_health_file: Path | None = None
    # How much the worker takes on at once, per task queue it serves: workflow tasks, activities
    # and local activities (records). Synchronous activities get a thread each, so the pool has
    # as many threads as both activity limits together. Measured with bench/bootstrap.py
    # (README, "Worker limits").
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1, le=1_000)
    worker_max_concurrent_activities: int = Field(default=100, ge=1, le=1_000)
    worker_max_concurrent_local_activities: int = Field(default=100, ge=1, le=1_000)
    # Where the worker serves Prometheus metrics (Temporal's own and Shipyard's) at /metrics.
    # Unset: no metrics endpoint, so several workers on one machine never compete for a port.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Retention never deletes the last this-many rollback targets of any environment.
    retention_rollback_targets: int = Field(default=3, ge=0, le=100)

    # Outbound webhooks: a receiver on a loopback, private, link-local, unique-local, multicast or
    # unspecified address is refused (at creation and at each delivery) unless this allows it,
    # so a tenant cannot make Shipyard probe its own network. `make dev` and the tests allow it.
    webhook_allow_private_networks: bool = False
    # Each delivery's retry budget: attempts in all, the first and the longest wait between
    # them (doubling), and how long one attempt may take.
    webhook_delivery_attempts: int = Field(default=8, ge=1, le=100)
    webhook_retry_initial_seconds: float = Field(default=2, gt=0)
    webhook_retry_max_seconds: float = Field(default=600, gt=0)
    webhook_attempt_timeout_seconds: float = Field(default=30, gt=0, le=600)

    base_domain: str = "apps.localhost"
    base_image_registry: str = ""
    # Credentials of BASE_IMAGE_REGISTRY, when it is not the registry itself.
    base_image_registry_username: str = ""
    base_image_registry_password: SecretStr = SecretStr("")
    # Where Dockerfile builds keep their workspace while they run (the system's temp dir if
    # unset); each build removes its own when it ends.
    build_dir: Path | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "redis+unix://")):
            raise ValueError("must be a redis://, rediss:// or redis+unix:// URL, or empty")
        return value

    @field_validator("public_url", "github_api_url", "registry_url", "temporal_ui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("github_app_install_url")
    @classmethod
    def _optional_http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, or be empty")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            for name in ("admin_token", "github_webhook_secret", "secret_key"):
                if getattr(self, name).get_secret_value() in PLACEHOLDER_SECRETS:
                    raise ValueError(f"SHIPYARD_{name.upper()} must be set to a real secret")
        return self

    @property
    def github_private_key(self) -> str:
        """The GitHub App key, from the variable itself or from the file it names."""
        if self.github_app_private_key_file is not None:
            return self.github_app_private_key_file.read_text()
        return self.github_app_private_key.get_secret_value()

    @property
    def github_setup_url(self) -> str:
        """The App's Setup URL: Shipyard's page that GitHub sends the browser back to."""
        return self.public_url + GITHUB_SETUP_PATH

    @property
    def base_images_at(self) -> str:
        """Where template base images are pulled from: BASE_IMAGE_REGISTRY or the registry."""
        return (self.base_image_registry or self.registry_url).rstrip("/")

    def base_image_credentials(self) -> tuple[str, str]:
        """(username, password) for pulling base images; empty when none are needed."""
        if self.base_images_at == self.registry_url.rstrip("/"):
            return self.registry_username, self.registry_password.get_secret_value()
        return (
            self.base_image_registry_username,
            self.base_image_registry_password.get_secret_value(),
        )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; a bad value stops the process with the variable named."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = ["Shipyard cannot start: the configuration is invalid."]
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            name = f"SHIPYARD_{field.upper()}" if error["loc"] else "settings"
            lines.append(f"  {name}: {error['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
