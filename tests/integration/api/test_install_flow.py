"""The GitHub App install flow end to end, on SQLite and PostgreSQL: install-start, the fake
GitHub's install page over a real socket redirecting the browser to Shipyard's Setup URL, the
poll, install-complete binding once; every refusal with its code, audited, binding nothing; and
the repositories a bound installation reaches, paged, read live from the fake GitHub."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from core.clock import utcnow
from core.install_states import state_hash
from core.logging import mask_text
from core.models import AuditEvent, GitHubInstallation, GitHubInstallState
from core.settings import Settings
from core.temporal import TemporalGateway
from sandbox.github import FakeGitHub
from sandbox.net import free_port, serve

API = "/api/v1"


@dataclass
class Caller:
    tenant: str
    tenant_id: uuid.UUID
    headers: dict[str, str]

    @property
    def base(self) -> str:
        return f"{API}/tenants/{self.tenant}/github-installations"


@dataclass
class Flow:
    api: httpx.AsyncClient
    browser: httpx.AsyncClient
    engine: Engine
    github: FakeGitHub
    admin_headers: dict[str, str]

    async def tenant(self) -> Caller:
        slug = "i" + uuid.uuid4().hex[:10]
        made = await self.api.post(
            f"{API}/tenants", json={"slug": slug, "name": slug}, headers=self.admin_headers
        )
        assert made.status_code == 201, made.text
        body = made.json()
        return Caller(
            slug,
            uuid.UUID(body["tenant"]["id"]),
            {"Authorization": f"Bearer {body['admin_key']['key']}"},
        )

    async def member(self, caller: Caller, scopes: list[str]) -> Caller:
        made = await self.api.post(
            f"{API}/tenants/{caller.tenant}/keys",
            json={"subject": "m-" + uuid.uuid4().hex[:8], "role": "member", "scopes": scopes},
            headers=caller.headers,
        )
        assert made.status_code == 201, made.text
        return Caller(caller.tenant, caller.tenant_id, {"X-API-Key": made.json()["key"]})

    async def start(self, caller: Caller) -> dict[str, Any]:
        started = await self.api.post(f"{caller.base}/install-start", headers=caller.headers)
        assert started.status_code == 201, started.text
        return dict(started.json())

    async def install(self, started: dict[str, Any], org: str) -> httpx.Response:
        """What a person's browser does: open the install URL, pick `org`, follow GitHub's
        redirect back to Shipyard."""
        url = httpx.URL(started["install_url"]).copy_merge_params({"org": org})
        return await self.browser.get(url, follow_redirects=True)

    async def complete(self, caller: Caller, state: str, installation_id: int) -> httpx.Response:
        return await self.api.post(
            f"{caller.base}/install-complete",
            json={"state": state, "installation_id": installation_id},
            headers=caller.headers,
        )

    async def status(self, caller: Caller, started: dict[str, Any]) -> dict[str, Any]:
        shown = await self.api.get(started["status_url"], headers=caller.headers)
        assert shown.status_code == 200, shown.text
        return dict(shown.json())

    def bound(self, installation_id: int) -> GitHubInstallation | None:
        with Session(self.engine) as session:
            return session.get(GitHubInstallation, installation_id)

    def refusals(self, caller: Caller) -> list[str]:
        with Session(self.engine) as session:
            events = session.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == caller.tenant_id,
                    AuditEvent.action == "github_installation.install_complete",
                )
                .order_by(col(AuditEvent.created_at))
            ).all()
        assert all(event.result == "refused" for event in events)
        return [event.detail["code"] for event in events]


@pytest.fixture
async def flow(
    database_url: str, engine: Engine, admin_token: str, fake_github: FakeGitHub
) -> AsyncIterator[Flow]:
    settings = Settings(
        environment="test",
        database_url=database_url,
        admin_token=admin_token,  # type: ignore[arg-type]
        public_url=f"http://127.0.0.1:{free_port()}",
        github_api_url=fake_github.url,
        github_app_id=str(fake_github.app_id),
        github_app_private_key_file=Path(fake_github.private_key_path),
        rate_limit_per_minute=1_000_000,
    )
    # Nothing here asks Temporal; the gateway would connect on first use only.
    app = create_app(settings, engine=engine, temporal=TemporalGateway(settings))
    previous, fake_github.setup_url = fake_github.setup_url, settings.github_setup_url
    try:
        async with (
            serve(app, settings.public_url),
            httpx.AsyncClient(base_url=settings.public_url, trust_env=False) as api,
            httpx.AsyncClient(trust_env=False) as browser,
        ):
            yield Flow(
                api, browser, engine, fake_github, {"Authorization": f"Bearer {admin_token}"}
            )
    finally:
        fake_github.setup_url = previous


def new_org() -> str:
    return "org-" + uuid.uuid4().hex[:8]


async def test_install_round_trip_binds_once_and_lists_repositories(flow: Flow):
    caller = await flow.tenant()
    started = await flow.start(caller)
    state = started["state"]
    assert started["install_url"].startswith(flow.github.install_url + "?state=sis_")
    masked = f"opened {flow.github.install_url}?state=[redacted]"
    assert mask_text(f"opened {started['install_url']}") == masked
    assert mask_text(state) == "[redacted]"
    assert (await flow.status(caller, started))["status"] == "pending"
    with Session(flow.engine) as session:
        row = session.get(GitHubInstallState, uuid.UUID(started["state_id"]))
        assert row is not None and row.state_hash == state_hash(state)
        audit = session.exec(select(AuditEvent).where(AuditEvent.tenant_id == caller.tenant_id))
        assert state not in repr(row) and state not in repr(audit.all())

    org = new_org()
    page = await flow.install(started, org)
    assert page.status_code == 200, page.text
    assert "Return to your terminal" in page.text
    assert str(page.url).startswith(f"{flow.api.base_url}{API}/github/setup?")
    shown = await flow.status(caller, started)
    assert shown["status"] == "returned"
    installation_id = shown["installation_id"]
    assert flow.bound(installation_id) is None  # the browser's return binds nothing

    bound = await flow.complete(caller, state, installation_id)
    assert bound.status_code == 201, bound.text
    assert bound.json()["installation_id"] == installation_id
    assert (bound.json()["account_login"], bound.json()["account_type"]) == (org, "Organization")
    row_bound = flow.bound(installation_id)
    assert row_bound is not None and row_bound.tenant_id == caller.tenant_id
    assert (await flow.status(caller, started))["status"] == "completed"
    listed = await flow.api.get(caller.base, headers=caller.headers)
    assert [item["installation_id"] for item in listed.json()["items"]] == [installation_id]

    replayed = await flow.complete(caller, state, installation_id)
    assert (replayed.status_code, replayed.json()["code"]) == (409, "INSTALL_STATE_USED")
    assert flow.refusals(caller) == ["INSTALL_STATE_USED"]

    for number in range(5):
        flow.github.state.create_repo(org, f"repo-{number}")
    url = f"{caller.base}/{installation_id}/repositories"
    names: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        listed = await flow.api.get(url, params=params, headers=caller.headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["total"] == 5
        names += [item["name"] for item in listed.json()["items"]]
        assert all(item["full_name"] == f"{org}/{item['name']}" for item in listed.json()["items"])
        cursor = listed.json()["next_cursor"]
    assert names == [f"repo-{number}" for number in range(5)] and cursor is None
    first = (await flow.api.get(url, params={"limit": 2}, headers=caller.headers)).json()
    other_limit = await flow.api.get(
        url, params={"limit": 3, "cursor": first["next_cursor"]}, headers=caller.headers
    )
    assert (other_limit.status_code, other_limit.json()["code"]) == (422, "VALIDATION_FAILED")


async def test_each_refusal_has_its_code_binds_nothing_and_is_audited(flow: Flow):
    caller = await flow.tenant()
    colleague = await flow.member(caller, ["apps:read", "apps:write"])
    other = await flow.tenant()

    unknown = await flow.complete(caller, "sis_" + "x" * 43, flow.github.installation_id)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "INSTALL_STATE_UNKNOWN")

    started = await flow.start(caller)
    org = new_org()
    await flow.install(started, org)
    installation_id = (await flow.status(caller, started))["installation_id"]
    state = started["state"]

    not_mine = await flow.complete(colleague, state, installation_id)
    assert (not_mine.status_code, not_mine.json()["code"]) == (403, "INSTALL_STATE_NOT_YOURS")
    peek = await flow.api.get(started["status_url"], headers=colleague.headers)
    assert peek.status_code == 404
    leaked = await flow.complete(other, state, installation_id)
    assert (leaked.status_code, leaked.json()["code"]) == (403, "INSTALL_STATE_NOT_YOURS")
    across = await flow.api.get(started["status_url"], headers=other.headers)
    assert across.status_code == 404
    mismatch = await flow.complete(caller, state, installation_id + 1)
    assert (mismatch.status_code, mismatch.json()["code"]) == (409, "INSTALL_STATE_MISMATCH")

    # A state that was never returned through the browser can name any installation id.
    unreturned = await flow.start(caller)
    missing = await flow.complete(caller, unreturned["state"], 987_654_321)
    assert (missing.status_code, missing.json()["code"]) == (422, "INSTALLATION_NOT_FOUND")

    taken = await flow.start(other)
    other_org = new_org()
    await flow.install(taken, other_org)
    taken_id = (await flow.status(other, taken))["installation_id"]
    assert (await flow.complete(other, taken["state"], taken_id)).status_code == 201
    elsewhere = await flow.complete(caller, unreturned["state"], taken_id)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (
        409,
        "INSTALLATION_BOUND_ELSEWHERE",
    )
    assert (await flow.status(caller, unreturned))["status"] == "pending"  # not used up

    with Session(flow.engine) as session:
        row = session.get(GitHubInstallState, uuid.UUID(started["state_id"]))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()
    assert (await flow.status(caller, started))["status"] == "expired"
    expired = await flow.complete(caller, state, installation_id)
    assert (expired.status_code, expired.json()["code"]) == (410, "INSTALL_STATE_EXPIRED")
    back_late = await flow.browser.get(
        f"{flow.api.base_url}{API}/github/setup",
        params={"state": state, "installation_id": installation_id},
    )
    assert (back_late.status_code, back_late.json()["code"]) == (410, "INSTALL_STATE_EXPIRED")

    assert flow.bound(installation_id) is None
    bound_elsewhere = flow.bound(taken_id)
    assert bound_elsewhere is not None and bound_elsewhere.tenant_id == other.tenant_id
    assert flow.refusals(caller) == [
        "INSTALL_STATE_UNKNOWN",
        "INSTALL_STATE_NOT_YOURS",
        "INSTALL_STATE_MISMATCH",
        "INSTALLATION_NOT_FOUND",
        "INSTALLATION_BOUND_ELSEWHERE",
        "INSTALL_STATE_EXPIRED",
    ]
    assert flow.refusals(other) == ["INSTALL_STATE_NOT_YOURS"]
    listed = await flow.api.get(caller.base, headers=caller.headers)
    assert listed.json()["items"] == []


async def test_concurrent_completions_bind_once(flow: Flow):
    caller = await flow.tenant()
    started = await flow.start(caller)
    await flow.install(started, new_org())
    installation_id = (await flow.status(caller, started))["installation_id"]
    answers = await asyncio.gather(
        *(flow.complete(caller, started["state"], installation_id) for _ in range(4))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 409, 409, 409], [answer.text for answer in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"INSTALL_STATE_USED"}
    with Session(flow.engine) as session:
        binds = session.exec(
            select(AuditEvent).where(
                AuditEvent.tenant_id == caller.tenant_id,
                AuditEvent.action == "github_installation.bind",
            )
        ).all()
    assert len(binds) == 1


async def test_the_setup_page_keeps_the_first_report(flow: Flow):
    caller = await flow.tenant()
    started = await flow.start(caller)
    setup = f"{flow.api.base_url}{API}/github/setup"
    unknown = await flow.browser.get(setup, params={"state": "sis_nope", "installation_id": 5})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "INSTALL_STATE_UNKNOWN")
    first = await flow.browser.get(setup, params={"state": started["state"], "installation_id": 7})
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/html")
    again = await flow.browser.get(setup, params={"state": started["state"], "installation_id": 7})
    assert again.status_code == 200
    other = await flow.browser.get(setup, params={"state": started["state"], "installation_id": 8})
    assert (other.status_code, other.json()["code"]) == (409, "INSTALL_STATE_RETURNED")
    assert (await flow.status(caller, started))["installation_id"] == 7


async def test_repositories_need_a_bound_installation_and_a_live_github(flow: Flow):
    caller = await flow.tenant()
    reader = await flow.member(caller, ["apps:read"])
    writer_only = await flow.member(caller, ["apps:write"])
    url = f"{caller.base}/{flow.github.installation_id}/repositories"
    not_bound = await flow.api.get(url, headers=caller.headers)
    assert not_bound.status_code == 404
    started = await flow.start(caller)
    await flow.install(started, new_org())
    installation_id = (await flow.status(caller, started))["installation_id"]
    assert (await flow.complete(caller, started["state"], installation_id)).status_code == 201
    url = f"{caller.base}/{installation_id}/repositories"
    assert (await flow.api.get(url, headers=writer_only.headers)).status_code == 403
    empty = await flow.api.get(url, headers=reader.headers)
    assert empty.json() == {"items": [], "total": 0, "next_cursor": None}
    flow.github.fail_next("GET", "^/installation/repositories$", status=502)
    down = await flow.api.get(url, headers=reader.headers)
    assert (down.status_code, down.json()["code"]) == (503, "GITHUB_UNAVAILABLE")
    assert "502" in down.json()["detail"]
    bad = await flow.api.get(url, params={"cursor": "nope"}, headers=reader.headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "VALIDATION_FAILED")
