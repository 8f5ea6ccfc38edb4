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


MAX_PIPELINE = 6


def pipeline_problem(names: list[str]) -> str | None:
    """Why `names` is not a pipeline (1 to 6 distinct environment names, each a DNS label like
    a slug), or None when it is."""
    if not 1 <= len(names) <= MAX_PIPELINE:
        return f"must name 1 to {MAX_PIPELINE} environments"
    for name in names:
        problem = slug_problem(name)
        if problem:
            return f"environment {name!r} {problem}"
    if len(set(names)) != len(names):
        return "must not name an environment twice"
    return None


def namespace_for(tenant: str, app: str, env: str) -> str:
    """`<tenant>-<app>-<env>`, shortened with a stable hash suffix when over 63 characters."""
    name = f"{tenant}-{app}-{env}"
    if len(name) <= NAMESPACE_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: NAMESPACE_MAX - 9].rstrip('-')}-{digest}"


_BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_problem(name: str) -> str | None:
    """Why `name` is not a branch name git accepts (`git check-ref-format --branch`), or None."""
    if not name or len(name) > 250:
        return "must be 1 to 250 characters"
    if _BRANCH_FORBIDDEN.search(name):
        return "must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    if name.startswith(("/", "-")) or name.endswith(("/", ".")):
        return "must not start with '/' or '-', nor end with '/' or '.'"
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return "must not contain '..', '//' or '@{', nor be '@'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "no part may start with '.' or end with '.lock'"
    return None


def host_for(subdomain: str, environment: str, pipeline: list[str], base_domain: str) -> str:
    """`<subdomain>.<base>` for the first environment, `<subdomain>-<env>.<base>` for later
    ones, so no two environments of an app claim the same host."""
    if environment == pipeline[0]:
        return f"{subdomain}.{base_domain}"
    return f"{subdomain}-{environment}.{base_domain}"
