"""`python -m api`: serve the REST API with uvicorn on API_HOST:API_PORT."""

from __future__ import annotations

import sys

import uvicorn

from api.app import create_app
from core.logging import configure_logging
from core.net import port_is_open
from core.settings import load_settings
from core.tracing import configure_tracing


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, service="api")
    configure_tracing("shipyard-api")
    if port_is_open(settings.api_host, settings.api_port):
        print(
            f"Shipyard API cannot start: port {settings.api_port} on {settings.api_host} is "
            "already in use. Stop what listens there or set SHIPYARD_API_PORT.",
            file=sys.stderr,
        )
        raise SystemExit(1)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
