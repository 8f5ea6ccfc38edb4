"""Structured JSON logs for the API and the worker, with secrets masked before they are written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_FIELD = re.compile(r"(token|secret|password|private_key|authorization|api_key)", re.I)
SECRET_VALUE = re.compile(
    r"(shp_[0-9a-f]+_[0-9a-f]+|ghs_[A-Za-z0-9]+|sis_[A-Za-z0-9_-]+|"
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]*"
    r"-----END [A-Z ]*PRIVATE KEY-----|x-access-token:[^@\s]+)"
)
MASK = "[redacted]"


def mask_text(text: str) -> str:
    return SECRET_VALUE.sub(MASK, text)


def _mask_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if SECRET_FIELD.search(key) and value not in (None, ""):
            event[key] = MASK
        elif isinstance(value, str):
            event[key] = mask_text(value)
    return event


def configure_logging(level: str = "INFO", *, service: str) -> None:
    """JSON lines on stderr; the standard library's loggers (uvicorn, temporalio) go there too."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _mask_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
