"""Settings: defaults, environment variables, and bad values stopping the process in words."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import Settings, load_settings


def test_reads_prefixed_environment(monkeypatch):
    monkeypatch.setenv("SHIPYARD_API_PORT", "9001")
    monkeypatch.setenv("SHIPYARD_REGISTRY_URL", "http://registry.local:5000/")
    settings = load_settings()
    assert settings.api_port == 9001
    assert settings.registry_url == "http://registry.local:5000"
    assert settings.base_images_at == "http://registry.local:5000"


def test_bad_value_exits_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("SHIPYARD_API_PORT", "not-a-port")
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "mysql://x")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "SHIPYARD_API_PORT" in err
    assert "SHIPYARD_DATABASE_URL" in err
    assert "Traceback" not in err


def test_production_refuses_placeholder_secrets():
    with pytest.raises(ValueError, match="SHIPYARD_ADMIN_TOKEN"):
        Settings(environment="production", admin_token="changethis")  # type: ignore[arg-type]


def test_private_key_from_file(tmp_path):
    key_file = tmp_path / "app.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    settings = Settings(github_app_private_key_file=key_file)
    assert settings.github_private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert "abc" not in repr(settings)


def test_worker_refuses_bad_settings_at_start():
    result = subprocess.run(
        [sys.executable, "worker.py"],
        env={"SHIPYARD_TEMPORAL_ADDRESS": "x", "SHIPYARD_API_PORT": "70000", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SHIPYARD_API_PORT" in result.stderr
