"""config.apply_secrets: an environment's secrets, decrypted in the worker, land in one
Kubernetes Secret of the fake cluster; the activity's result names them and nothing more."""

from __future__ import annotations

import base64
import uuid

import pytest
from kubernetes import client, config
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.config import ConfigActivities
from core.models import App, Environment, EnvironmentSecret, Tenant
from core.secrets import encrypt
from workflows.contracts.config import EnvironmentRef

KEY = "test-secret-key"
VALUES = {"DATABASE_URL": "postgres://u:pw-" + uuid.uuid4().hex + "@db/app", "TOKEN": "t-0k3n"}


def seed_environment(engine, namespace: str) -> tuple[str, uuid.UUID]:
    with Session(engine) as session:
        slug = "t" + uuid.uuid4().hex[:8]
        tenant = Tenant(slug=slug, name=slug)
        session.add(tenant)
        session.flush()
        app = App(
            tenant_id=tenant.id, slug="shop", name="Shop", subdomain=slug,
            template_id="static-site", repo_full_name=f"org/{slug}", pipeline=["dev"],
            status="active",
        )  # fmt: skip
        session.add(app)
        session.flush()
        environment = Environment(app_id=app.id, name="dev", position=0, namespace=namespace)
        session.add(environment)
        session.commit()
        return str(app.id), environment.id


def set_secrets(engine, environment_id: uuid.UUID, values: dict[str, str]) -> None:
    with Session(engine) as session:
        for row in session.exec(
            select(EnvironmentSecret).where(EnvironmentSecret.environment_id == environment_id)
        ).all():
            session.delete(row)
        session.flush()
        for name, value in values.items():
            session.add(
                EnvironmentSecret(
                    environment_id=environment_id, name=name, ciphertext=encrypt(value, KEY)
                )
            )
        session.commit()


@pytest.fixture
def core_api(fake_kube) -> client.CoreV1Api:
    """The official client straight from the kubeconfig, to read what the activity wrote."""
    api_client = config.new_client_from_config(
        config_file=str(fake_kube.kubeconfig_path), context=fake_kube.context
    )
    return client.CoreV1Api(api_client)


def stored(core_api: client.CoreV1Api, namespace: str) -> dict[str, str]:
    secret = core_api.read_namespaced_secret("app-env", namespace)
    return {name: base64.b64decode(value).decode() for name, value in (secret.data or {}).items()}


def test_secrets_applied_decrypted_and_idempotent(engine, kube_client, kube_namespace, core_api):
    app_id, environment_id = seed_environment(engine, kube_namespace)
    set_secrets(engine, environment_id, VALUES)
    activities = ConfigActivities(engine, kube_client, KEY)
    ref = EnvironmentRef(
        app_id=app_id, environment="dev", namespace=kube_namespace, secret_name="app-env"
    )
    env = ActivityEnvironment()
    first = env.run(activities.apply_secrets, ref)
    assert first == ["DATABASE_URL", "TOKEN"]
    assert all(value not in repr(first) for value in VALUES.values())
    secret = core_api.read_namespaced_secret("app-env", kube_namespace)
    assert secret.data == {
        name: base64.b64encode(value.encode()).decode() for name, value in VALUES.items()
    }
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "shipyard"
    again = env.run(activities.apply_secrets, ref)
    assert again == first
    assert stored(core_api, kube_namespace) == VALUES
    set_secrets(engine, environment_id, {**VALUES, "TOKEN": "rotated"})
    env.run(activities.apply_secrets, ref)
    assert stored(core_api, kube_namespace)["TOKEN"] == "rotated"


def test_a_deleted_secret_leaves_the_kubernetes_secret(
    engine, kube_client, kube_namespace, core_api
):
    app_id, environment_id = seed_environment(engine, kube_namespace)
    set_secrets(engine, environment_id, VALUES)
    activities = ConfigActivities(engine, kube_client, KEY)
    ref = EnvironmentRef(
        app_id=app_id, environment="dev", namespace=kube_namespace, secret_name="app-env"
    )
    env = ActivityEnvironment()
    env.run(activities.apply_secrets, ref)
    set_secrets(engine, environment_id, {"TOKEN": "rotated"})
    assert env.run(activities.apply_secrets, ref) == ["TOKEN"]
    assert stored(core_api, kube_namespace) == {"TOKEN": "rotated"}


def test_no_secrets_applies_an_empty_secret(engine, kube_client, kube_namespace, core_api):
    app_id, _ = seed_environment(engine, kube_namespace)
    activities = ConfigActivities(engine, kube_client, KEY)
    ref = EnvironmentRef(
        app_id=app_id, environment="dev", namespace=kube_namespace, secret_name="app-env"
    )
    assert ActivityEnvironment().run(activities.apply_secrets, ref) == []
    assert stored(core_api, kube_namespace) == {}


def test_wrong_key_and_unknown_environment_fail_for_good(engine, kube_client, kube_namespace):
    app_id, environment_id = seed_environment(engine, kube_namespace)
    set_secrets(engine, environment_id, VALUES)
    ref = EnvironmentRef(
        app_id=app_id, environment="dev", namespace=kube_namespace, secret_name="app-env"
    )
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as wrong_key:
        env.run(ConfigActivities(engine, kube_client, "another-key").apply_secrets, ref)
    assert wrong_key.value.type == "SECRET_KEY_MISMATCH" and wrong_key.value.non_retryable
    assert all(value not in str(wrong_key.value) for value in VALUES.values())
    missing = ref.model_copy(update={"environment": "prod"})
    with pytest.raises(ApplicationError) as unknown:
        env.run(ConfigActivities(engine, kube_client, KEY).apply_secrets, missing)
    assert unknown.value.type == "ENVIRONMENT_UNKNOWN"
