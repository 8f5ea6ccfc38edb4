"""Naming rules: DNS-label slugs and Kubernetes namespaces `<tenant>-<app>-<env>`."""

from __future__ import annotations

import hashlib
import re

SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,29}$"
_SLUG = re.compile(SLUG_PATTERN)
NAMESPACE_MAX = 63


def slug_problem(value: str) -> str | None:
    """Why `value` is not a valid tenant or app slug, or None when it is."""
    if not value:
        return "must not be empty"
    if len(value) > 30:
        return "must be at most 30 characters"
    if not _SLUG.match(value):
        return "must start with a letter and contain only a-z, 0-9 and '-'"
    if value.endswith("-"):
        return "must not end with '-'"
    return None


def namespace_for(tenant: str, app: str, env: str) -> str:
    """`<tenant>-<app>-<env>`, shortened with a stable hash suffix when over 63 characters."""
    name = f"{tenant}-{app}-{env}"
    if len(name) <= NAMESPACE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAMESPACE_MAX - 9].rstrip('-')}-{digest}"
