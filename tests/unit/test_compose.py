"""docker-compose.yml (no Docker engine here): every SHIPYARD_ variable it sets is a setting."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def shipyard_variables() -> set[str]:
    names: set[str] = set()
    for service in COMPOSE["services"].values():
        environment = service.get("environment") or {}
        names |= {name for name in environment if name.startswith("SHIPYARD_")}
    return names


def test_every_shipyard_variable_is_a_setting():
    known = {f"SHIPYARD_{name.upper()}" for name in Settings.model_fields}
    variables = shipyard_variables()
    assert variables, "the Shipyard services set no SHIPYARD_ variables"
    assert variables <= known, f"not settings: {sorted(variables - known)}"


def test_production_topology():
    services = COMPOSE["services"]
    needed = ("postgres", "temporal", "temporal-ui", "registry", "shipyard-api", "shipyard-worker")
    assert set(needed) <= set(services)
    assert services["shipyard-api"]["build"] == "."
    assert services["shipyard-worker"]["command"] == ["python", "worker.py"]
    assert (ROOT / "Dockerfile").is_file()


def test_dependencies_wait_for_health():
    services = COMPOSE["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), name
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_required_secrets_must_be_given():
    text = (ROOT / "docker-compose.yml").read_text()
    for variable in (
        "SHIPYARD_ADMIN_TOKEN",
        "SHIPYARD_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "SHIPYARD_GITHUB_WEBHOOK_SECRET",
    ):
        assert re.search(r"\$\{" + variable + r":\?", text), variable


def test_search_attributes_are_registered_at_init():
    command = " ".join(COMPOSE["services"]["temporal-init"]["command"])
    for attribute in ("ShipyardTenant", "ShipyardApp", "ShipyardEnv", "ShipyardStage"):
        assert attribute in command
