"""The `shipyard` command's config file and where it takes the API and key from: flags, then
the environment, then the current context, then the demo key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.config import Config, Context, load_config, save_config
from cli.contexts import redacted

KEY = "shp_abc123_supersecretvalue"


def invoke(config: Path, *args: str, **env: str | None) -> str:
    base: dict[str, str | None] = {
        "SHIPYARD_CONFIG": str(config),
        "SHIPYARD_API_URL": None,
        "SHIPYARD_API_KEY": None,
        "SHIPYARD_TENANT": None,
        "SHIPYARD_CONTEXT": None,
        "SHIPYARD_STATE_DIR": str(config.parent / "no-state"),
    }
    result = CliRunner().invoke(app, list(args), env={**base, **env})
    return result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "shipyard" / "config.yaml"
    save_config(
        Config(
            current="work",
            contexts={
                "work": Context("work", "http://127.0.0.1:7", KEY, "acme"),
                "other": Context("other", "http://127.0.0.1:6", "shp_o_o"),
            },
        ),
        path,
    )
    return path


def test_the_file_is_private_and_reads_back(config: Path):
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    loaded = load_config(config)
    assert loaded.current == "work"
    assert loaded.contexts["work"] == Context("work", "http://127.0.0.1:7", KEY, "acme")


def test_a_key_is_shown_by_its_id_only():
    assert redacted(KEY) == "shp_abc123_…"
    assert "secret" not in redacted("not-a-shipyard-key-secret")


def test_flags_then_environment_then_the_context(config: Path):
    assert "API at http://127.0.0.1:7 is not reachable" in invoke(config, "apps", "list")
    out = invoke(config, "apps", "list", SHIPYARD_API_URL="http://127.0.0.1:8")
    assert "API at http://127.0.0.1:8 is not reachable" in out
    out = invoke(
        config, "--api-url", "http://127.0.0.1:9", "apps", "list",
        SHIPYARD_API_URL="http://127.0.0.1:8",
    )  # fmt: skip
    assert "API at http://127.0.0.1:9 is not reachable" in out
    out = invoke(config, "--context", "other", "apps", "list", "-t", "x")
    assert "API at http://127.0.0.1:6 is not reachable" in out
    assert "no context named 'nope'" in invoke(config, "--context", "nope", "apps", "list")


def test_without_context_or_key_the_error_says_how_to_get_one(tmp_path: Path):
    out = invoke(tmp_path / "none.yaml", "apps", "list", "-t", "x")
    assert "no API key" in out and "shipyard login" in out


def test_a_slug_needs_a_tenant(tmp_path: Path):
    out = invoke(tmp_path / "none.yaml", "apps", "show", "--app", "shop", SHIPYARD_API_KEY=KEY)
    assert "TENANT_UNKNOWN" in out and "--tenant" in out


def test_context_use_and_show_never_print_the_key(config: Path):
    assert "Now using context other" in invoke(config, "context", "use", "other")
    assert load_config(config).current == "other"
    invoke(config, "context", "use", "work")
    shown = invoke(config, "context", "show")
    assert "acme" in shown and "http://127.0.0.1:7" in shown and KEY not in shown
    listed = invoke(config, "context", "list", "-o", "yaml")
    assert "work" in listed and KEY not in listed


def test_login_refuses_to_save_when_the_api_cannot_be_reached(tmp_path: Path):
    path = tmp_path / "config.yaml"
    out = invoke(path, "login", "--url", "http://127.0.0.1:9", "--api-key", KEY)
    assert "not reachable" in out and not path.exists()
    out = invoke(path, "login", "--url", "http://127.0.0.1:9", "--api-key", KEY, "--no-verify")
    assert KEY not in out and load_config(path).current == "127.0.0.1:9"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_version_says_when_the_api_does_not_answer(tmp_path: Path):
    out = invoke(tmp_path / "none.yaml", "--api-url", "http://127.0.0.1:9", "version", "-o", "json")
    body = json.loads(out)
    assert body["api"] is None and body["api_url"] == "http://127.0.0.1:9" and body["cli"]
