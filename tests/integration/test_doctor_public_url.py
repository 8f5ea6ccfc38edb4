"""`shipyard doctor` says whether SHIPYARD_PUBLIC_URL reaches this API: served by uvicorn over
a real socket it does; a closed port or another server there is named, since GitHub's
webhooks sent to it would never deploy anything."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings
from ops.doctor import CHECKS
from sandbox.net import free_port, serve

check_public_url = CHECKS["public_url"]


def settings_at(database_url: str, public_url: str) -> Settings:
    return Settings(environment="test", database_url=database_url, public_url=public_url)


async def test_the_api_at_the_public_url(sqlite_database_url):
    settings = settings_at(sqlite_database_url, f"http://127.0.0.1:{free_port()}")
    app = create_app(settings)
    async with serve(app, settings.public_url):
        message = await check_public_url(settings)
    app.state.engine.dispose()
    assert settings.public_url in message


async def test_nothing_at_the_public_url(sqlite_database_url):
    settings = settings_at(sqlite_database_url, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeError) as refused:
        await check_public_url(settings)
    message = str(refused.value)
    assert f"SHIPYARD_PUBLIC_URL {settings.public_url} cannot be reached" in message
    assert "webhooks" in message


async def test_another_server_at_the_public_url(sqlite_database_url):
    other = FastAPI()

    @other.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    settings = settings_at(sqlite_database_url, f"http://127.0.0.1:{free_port()}")
    async with serve(other, settings.public_url):
        with pytest.raises(RuntimeError) as refused:
            await check_public_url(settings)
    message = str(refused.value)
    assert f"SHIPYARD_PUBLIC_URL {settings.public_url} answers" in message
    assert "not Shipyard's API" in message
