"""JSON shapes the fake GitHub answers with, built as GitHub's REST API and webhooks build them.

Every URL points back at the fake (`base`), so a client that follows them stays inside it.
Field sets follow GitHub's OpenAPI description, which the client tests check them against.
"""

from __future__ import annotations

import base64
from typing import Any

from .state import APP_SLUG, iso

APP_NAME = "Shipyard Sandbox"
BOT_ID = 9_100_900
PERMISSIONS = {
    "administration": "write",
    "contents": "write",
    "metadata": "read",
    "hooks": "write",
    "statuses": "write",
}
EVENTS = ["push"]


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def user(base: str, login: str, account_id: int, kind: str) -> dict[str, Any]:
    """A `simple-user`: organizations, users and bots all appear in this shape."""
    return {
        "login": login,
        "id": account_id,
        "node_id": node_id(kind, account_id),
        "avatar_url": f"{base}/avatars/{login}",
        "gravatar_id": "",
        "url": f"{base}/users/{login}",
        "html_url": f"{base}/{login}",
        "followers_url": f"{base}/users/{login}/followers",
        "following_url": f"{base}/users/{login}/following{{/other_user}}",
        "gists_url": f"{base}/users/{login}/gists{{/gist_id}}",
        "starred_url": f"{base}/users/{login}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/users/{login}/subscriptions",
        "organizations_url": f"{base}/users/{login}/orgs",
        "repos_url": f"{base}/users/{login}/repos",
        "events_url": f"{base}/users/{login}/events{{/privacy}}",
        "received_events_url": f"{base}/users/{login}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def account_user(base: str, account: dict[str, Any]) -> dict[str, Any]:
    return user(base, account["login"], account["id"], account["type"])


def bot(base: str) -> dict[str, Any]:
    return user(base, f"{APP_SLUG}[bot]", BOT_ID, "Bot")


def app(base: str, app_record: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """An `integration` (GET /app)."""
    return {
        "id": app_record["id"],
        "slug": APP_SLUG,
        "client_id": f"Iv1.{app_record['id']:016x}",
        "node_id": node_id("Integration", app_record["id"]),
        "owner": account_user(base, owner),
        "name": APP_NAME,
        "description": "Shipyard's GitHub App in the sandbox",
        "external_url": base,
        "html_url": f"{base}/apps/{APP_SLUG}",
        "created_at": iso(app_record["created_at"]),
        "updated_at": iso(app_record["created_at"]),
        "permissions": PERMISSIONS,
        "events": EVENTS,
        "installations_count": 2,
    }


def installation(
    base: str, record: dict[str, Any], account: dict[str, Any], app_id: int
) -> dict[str, Any]:
    return {
        "id": record["id"],
        "account": account_user(base, account),
        "repository_selection": "all",
        "access_tokens_url": f"{base}/app/installations/{record['id']}/access_tokens",
        "repositories_url": f"{base}/installation/repositories",
        "html_url": f"{base}/settings/installations/{record['id']}",
        "app_id": app_id,
        "app_slug": APP_SLUG,
        "client_id": f"Iv1.{app_id:016x}",
        "target_id": account["id"],
        "target_type": account["type"],
        "permissions": PERMISSIONS,
        "events": EVENTS,
        "created_at": iso(record["at"]),
        "updated_at": iso(record["at"]),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def clone_url(base: str, owner: str, name: str) -> str:
    return f"{base}/{owner}/{name}.git"


def repository(
    base: str, record: dict[str, Any], owner: dict[str, Any], *, full: bool = True
) -> dict[str, Any]:
    """A `full-repository` (full=True) or a `repository` as lists and webhooks carry it."""
    owner_login, name = record["owner"], record["name"]
    api = f"{base}/repos/{owner_login}/{name}"
    html = f"{base}/{owner_login}/{name}"
    body: dict[str, Any] = {
        "id": record["id"],
        "node_id": node_id("Repository", record["id"]),
        "name": name,
        "full_name": f"{owner_login}/{name}",
        "private": record["private"],
        "owner": account_user(base, owner),
        "html_url": html,
        "description": record["description"],
        "fork": False,
        "url": api,
        "forks_url": f"{api}/forks",
        "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events",
        "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers",
        "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges",
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads",
        "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}",
        "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments",
        "created_at": iso(record["created_at"]),
        "updated_at": iso(record["updated_at"]),
        "pushed_at": iso(record["pushed_at"]),
        "git_url": f"git://{base.split('://', 1)[-1]}/{owner_login}/{name}.git",
        "ssh_url": f"git@{base.split('://', 1)[-1].split(':')[0]}:{owner_login}/{name}.git",
        "clone_url": clone_url(base, owner_login, name),
        "svn_url": html,
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": 0,
        "license": None,
        "allow_forking": True,
        "is_template": record["is_template"],
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if record["private"] else "public",
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": record["default_branch"],
        "permissions": {
            "admin": True,
            "maintain": True,
            "push": True,
            "triage": True,
            "pull": True,
        },
    }
    if full:
        body["network_count"] = 0
        body["subscribers_count"] = 0
        if owner["type"] == "Organization":
            body["organization"] = account_user(base, owner)
    return body


def branch(
    base: str, owner: str, name: str, branch_name: str, commit: dict[str, Any]
) -> dict[str, Any]:
    """A `branch-with-protection` for an unprotected branch."""
    api = f"{base}/repos/{owner}/{name}"
    return {
        "name": branch_name,
        "commit": commit,
        "_links": {
            "self": f"{api}/branches/{branch_name}",
            "html": f"{base}/{owner}/{name}/tree/{branch_name}",
        },
        "protected": False,
        "protection": {
            "enabled": False,
            "required_status_checks": {
                "enforcement_level": "off",
                "contexts": [],
                "checks": [],
            },
        },
        "protection_url": f"{api}/branches/{branch_name}/protection",
    }


def commit(base: str, owner: str, name: str, info: dict[str, Any]) -> dict[str, Any]:
    """A `commit` from the facts git holds (sha, tree, parents, people, message)."""
    api = f"{base}/repos/{owner}/{name}"
    sha = info["sha"]
    return {
        "sha": sha,
        "node_id": node_id("Commit", int(sha[:7], 16)),
        "url": f"{api}/commits/{sha}",
        "html_url": f"{base}/{owner}/{name}/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": info["author"],
            "committer": info["committer"],
            "message": info["message"],
            "comment_count": 0,
            "tree": {"sha": info["tree"], "url": f"{api}/git/trees/{info['tree']}"},
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": None,
        "committer": None,
        "parents": [
            {
                "sha": parent,
                "url": f"{api}/commits/{parent}",
                "html_url": f"{base}/{owner}/{name}/commit/{parent}",
            }
            for parent in info["parents"]
        ],
    }


def hook(base: str, owner: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """A repository `hook`; like GitHub, the secret is never echoed back."""
    api = f"{base}/repos/{owner}/{name}/hooks/{record['id']}"
    config = {k: v for k, v in record["config"].items() if k != "secret"}
    if record["config"].get("secret"):
        config["secret"] = "********"
    return {
        "type": "Repository",
        "id": record["id"],
        "name": "web",
        "active": record["active"],
        "events": record["events"],
        "config": config,
        "updated_at": iso(record["updated_at"]),
        "created_at": iso(record["created_at"]),
        "url": api,
        "test_url": f"{api}/test",
        "ping_url": f"{api}/pings",
        "deliveries_url": f"{api}/deliveries",
        "last_response": record["last_response"],
    }


def status(base: str, owner: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """A commit `status` as its POST and the statuses list answer; the App's bot made it."""
    return {**simple_status(base, owner, name, record), "creator": bot(base)}


def simple_status(base: str, owner: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """A `simple-commit-status`, as a combined status lists it."""
    return {
        "url": f"{base}/repos/{owner}/{name}/statuses/{record['sha']}",
        "avatar_url": f"{base}/avatars/{APP_SLUG}",
        "id": record["id"],
        "node_id": node_id("StatusContext", record["id"]),
        "state": record["state"],
        "description": record["description"],
        "target_url": record["target_url"],
        "context": record["context"],
        "created_at": iso(record["created_at"]),
        "updated_at": iso(record["created_at"]),
    }


def combined_status(
    base: str, repo: dict[str, Any], sha: str, latest: list[dict[str, Any]]
) -> dict[str, Any]:
    """A `combined-commit-status`: `latest` holds the newest status of each context."""
    owner, name = repo["owner"]["login"], repo["name"]
    states = {record["state"] for record in latest}
    if states & {"error", "failure"}:
        state = "failure"
    elif not latest or "pending" in states:
        state = "pending"
    else:
        state = "success"
    api = f"{base}/repos/{owner}/{name}"
    return {
        "state": state,
        "statuses": [simple_status(base, owner, name, record) for record in latest],
        "sha": sha,
        "total_count": len(latest),
        "repository": repo,
        "commit_url": f"{api}/commits/{sha}",
        "url": f"{api}/commits/{sha}/status",
    }


def error(message: str, doc: str, status: int, **extra: Any) -> dict[str, Any]:
    """GitHub's error body (`basic-error`, or `validation-error` with `errors`)."""
    return {
        "message": message,
        "documentation_url": f"https://docs.github.com/rest{doc}",
        "status": str(status),
        **extra,
    }
