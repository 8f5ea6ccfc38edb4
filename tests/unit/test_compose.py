"""docker-compose.yml (no Docker engine here): every SHIPYARD_ variable it sets is a setting."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# Where temporalio/admin-tools keeps the PostgreSQL 12+ schemas of its Temporal version.
SCHEMAS = "/etc/temporal/schema/postgresql/v12"


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


def one_shots() -> set[str]:
    """Services others wait to have finished: they run once, and must not be restarted."""
    return {
        dependency
        for service in COMPOSE["services"].values()
        for dependency, rule in (service.get("depends_on") or {}).items()
        if rule["condition"] == "service_completed_successfully"
    }


def test_long_running_services_come_back_after_a_crash():
    services = COMPOSE["services"]
    assert {"shipyard-migrate", "temporal-init"} <= one_shots()
    for name, service in services.items():
        restart = str(service.get("restart", "no"))
        if name in one_shots():
            assert not restart.startswith("always") and restart != "unless-stopped", name
        else:
            assert restart == "unless-stopped" or restart.startswith("on-failure"), name


def test_worker_healthcheck_reads_its_heartbeat():
    worker = COMPOSE["services"]["shipyard-worker"]
    assert worker["environment"]["SHIPYARD_WORKER_HEALTH_FILE"]
    test = worker["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:] == ["python", "-m", "core.liveness"]
    assert importlib.util.find_spec("core.liveness") is not None
    # A worker that has not reached Temporal yet is not counted unhealthy too soon.
    assert worker["healthcheck"]["start_period"]


def test_temporal_server_schema_is_set_up_by_admin_tools():
    services = COMPOSE["services"]
    assert not [name for name, s in services.items() if "auto-setup" in s.get("image", "")]
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    setups = [
        name
        for name, rule in temporal["depends_on"].items()
        if rule["condition"] == "service_completed_successfully"
        and services[name]["image"].startswith("temporalio/admin-tools:")
    ]
    assert len(setups) == 1, temporal["depends_on"]
    setup = services[setups[0]]
    assert setup["depends_on"]["postgres"]["condition"] == "service_healthy"
    # The schema tools match the server's version.
    server_version = temporal["image"].split(":")[1].split(".")[:2]
    assert setup["image"].split(":")[1].split(".")[:2] == server_version

    # The same PostgreSQL as Shipyard's, and the databases the server reads are the ones set up.
    environment = setup["environment"]
    assert (environment["SQL_PLUGIN"], environment["SQL_HOST"]) == ("postgres12", "postgres")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgres"
    command = " ".join(setup["command"])
    schemas = {
        temporal["environment"]["DBNAME"]: "temporal",
        temporal["environment"]["VISIBILITY_DBNAME"]: "visibility",
    }
    for database, schema in schemas.items():
        steps = [
            f"--db {database} create-database",
            f"--db {database} setup-schema -v 0.0",
            f"--db {database} update-schema -d {SCHEMAS}/{schema}/versioned",
        ]
        places = [command.find(step) for step in steps]
        assert -1 not in places and places == sorted(places), (database, command)


def test_default_namespace_is_created_at_init():
    command = " ".join(COMPOSE["services"]["temporal-init"]["command"])
    assert "operator namespace create --namespace default" in command


def test_the_image_carries_shipyard_and_nothing_of_the_sandbox():
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.MULTILINE))
    imported = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in ("sandbox", "tests", "bench", "cli")
    }
    assert imported <= copied, f"the image lacks {sorted(imported - copied)}"
    assert "sandbox" not in copied and "apt-get" not in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[[line.startswith("#") for line in ignored].index(False)] == "*"
    allowed = [line for line in ignored if line.startswith("!")]
    assert not any(name in line for line in allowed for name in (".shipyard", ".venv", ".git"))
