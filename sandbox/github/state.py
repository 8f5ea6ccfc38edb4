"""The fake GitHub's persistent world: accounts, App installations, repositories, hooks, tokens.

Everything lives in one state directory: `state.json` for the records, `app-private-key.pem`
for the App's key, and `repos/<id>.git` for real bare git repositories. A restart of the fake
on the same directory finds everything as it was, as GitHub would.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

ORG = "sandbox-org"
USER = "sandbox-user"
ORG_INSTALLATION_ID = 1001
USER_INSTALLATION_ID = 1002
# Organizations the App is installed on through its install page get ids and installation ids
# from these on, as GitHub hands out new ones.
FIRST_NEW_ACCOUNT_ID = 9_200_000
FIRST_NEW_INSTALLATION_ID = 2000
TEMPLATE_REPO = "template-static-site"
APP_SLUG = "shipyard-sandbox"
TOKEN_LIFETIME_SECONDS = 3600
ZERO_SHA = "0" * 40

# A static site with a build script, so generate-from-template copies an executable file too.
TEMPLATE_FILES: dict[str, tuple[bytes, bool]] = {
    "README.md": (b"# Static site\n\nServed by a tiny web server.\n", False),
    "public/index.html": (b"<!doctype html>\n<h1>Hello from the template</h1>\n", False),
    "scripts/build.sh": (b"#!/bin/sh\nset -e\ncp -r public dist\n", True),
    # So that a Shipyard `github:` template made from this repository builds as it is.
    "shipyard.toml": (
        b'[build]\nbase_image = "base/busybox:1.35"\n'
        b'command = ["httpd", "-f", "-v", "-p", "8080", "-h", "/app/public"]\n'
        b'port = 8080\nhealth_path = "/"\n',
        False,
    ),
}


def iso(epoch: float) -> str:
    """GitHub's timestamp format: UTC, whole seconds, a Z suffix."""
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenGrant:
    token: str
    installation_id: int
    expires_at: float


class GitHubState:
    """Thread-safe records with a JSON file behind them, and the bare repositories on disk."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.repos_dir = self.state_dir / "repos"
        self._file = self.state_dir / "state.json"
        self._key_file = self.state_dir / "app-private-key.pem"
        self._lock = threading.RLock()
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        if self._file.exists():
            self._data: dict[str, Any] = json.loads(self._file.read_text())
        else:
            self._data = self._seed()
        self.private_key_pem = self._key_file.read_text()

    # ---- persistence -------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            yield self._data
            tmp = self._file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data, indent=1, sort_keys=True))
            os.replace(tmp, self._file)

    def _seed(self) -> dict[str, Any]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._key_file.write_text(pem)
        self._key_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
        now = time.time()
        self._data = {
            # A random App id per state dir keeps two fakes in one process from sharing caches.
            "app": {"id": random.randint(100_000, 999_999), "slug": APP_SLUG, "created_at": now},
            "accounts": {
                ORG: {"login": ORG, "id": 9_100_001, "type": "Organization", "created_at": now},
                USER: {"login": USER, "id": 9_100_002, "type": "User", "created_at": now},
            },
            "installations": {
                str(ORG_INSTALLATION_ID): {"id": ORG_INSTALLATION_ID, "account": ORG, "at": now},
                str(USER_INSTALLATION_ID): {"id": USER_INSTALLATION_ID, "account": USER, "at": now},
            },
            "repos": {},
            "tokens": {},
            "counters": {"repo": 700_000_000, "hook": 400_000_000},
            "tokens_minted": 0,
        }
        with self._writing():
            pass
        template = self.create_repo(ORG, TEMPLATE_REPO, private=False, is_template=True)
        files = {path: (data, executable) for path, (data, executable) in TEMPLATE_FILES.items()}
        self.write_single_commit(template["id"], files, "Initial commit")
        return self._data

    # ---- app, accounts, installations ----------------------------------------------------

    @property
    def app_id(self) -> int:
        return int(self._data["app"]["id"])

    @property
    def app(self) -> dict[str, Any]:
        return dict(self._data["app"])

    @property
    def tokens_minted(self) -> int:
        return int(self._data["tokens_minted"])

    def account(self, login: str) -> dict[str, Any] | None:
        with self._lock:
            for account in self._data["accounts"].values():
                if account["login"].lower() == login.lower():
                    return dict(account)
        return None

    def add_organization(self, login: str) -> dict[str, Any]:
        """An organization where the App is not installed (as many on GitHub are): its
        repositories are invisible to every installation token. Adding it again changes
        nothing."""
        found = self.account(login)
        if found is not None:
            return found
        with self._writing() as data:
            account_id = 9_100_100 + len(data["accounts"])
            record = {
                "login": login,
                "id": account_id,
                "type": "Organization",
                "created_at": time.time(),
            }
            data["accounts"][login] = record
        return dict(record)

    def installations(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(i) for i in sorted(self._data["installations"].values(), key=_by_id)]

    def installation(self, installation_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._data["installations"].get(str(installation_id))
            return dict(found) if found else None

    def installation_for(self, login: str) -> dict[str, Any] | None:
        for installation in self.installations():
            if installation["account"].lower() == login.lower():
                return installation
        return None

    def install_app(self, org: str) -> tuple[dict[str, Any], bool]:
        """The App installed on organization `org` (made if GitHub has none of that name):
        a new installation, or the one the account already has (False) as GitHub keeps one
        installation per account."""
        with self._writing() as data:
            counters = data["counters"]
            account = self.account(org)
            if account is None:
                counters.setdefault("account", FIRST_NEW_ACCOUNT_ID)
                counters["account"] += 1
                account = {
                    "login": org,
                    "id": counters["account"],
                    "type": "Organization",
                    "created_at": time.time(),
                }
                data["accounts"][org] = account
            existing = self.installation_for(account["login"])
            if existing is not None:
                return existing, False
            counters.setdefault("installation", FIRST_NEW_INSTALLATION_ID)
            counters["installation"] += 1
            installation = {
                "id": counters["installation"],
                "account": account["login"],
                "at": time.time(),
            }
            data["installations"][str(installation["id"])] = installation
        return dict(installation), True

    # ---- installation tokens -------------------------------------------------------------

    def mint_token(self, installation_id: int) -> TokenGrant:
        grant = TokenGrant(
            token="ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36],
            installation_id=installation_id,
            expires_at=time.time() + TOKEN_LIFETIME_SECONDS,
        )
        with self._writing() as data:
            now = time.time()
            data["tokens"] = {t: g for t, g in data["tokens"].items() if g["expires_at"] > now}
            data["tokens"][grant.token] = {
                "installation_id": installation_id,
                "expires_at": grant.expires_at,
            }
            data["tokens_minted"] += 1
        return grant

    def token_grant(self, token: str) -> TokenGrant | None:
        with self._lock:
            found = self._data["tokens"].get(token)
        if found is None or found["expires_at"] <= time.time():
            return None
        return TokenGrant(token, int(found["installation_id"]), float(found["expires_at"]))

    # ---- repositories --------------------------------------------------------------------

    def repos(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in sorted(self._data["repos"].values(), key=_by_id)]

    def repo(self, owner: str, name: str) -> dict[str, Any] | None:
        full_name = f"{owner}/{name}".lower()
        with self._lock:
            for repo in self._data["repos"].values():
                if f"{repo['owner']}/{repo['name']}".lower() == full_name:
                    return dict(repo)
        return None

    def repo_by_id(self, repo_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._data["repos"].get(str(repo_id))
            return dict(found) if found else None

    def repo_path(self, repo_id: int) -> Path:
        return self.repos_dir / f"{repo_id}.git"

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = False,
        description: str | None = None,
        is_template: bool = False,
        template: str | None = None,
    ) -> dict[str, Any]:
        """A new empty repository; the caller has checked that the name is free."""
        account = self.account(owner)
        if account is None:
            raise KeyError(owner)
        now = time.time()
        with self._writing() as data:
            data["counters"]["repo"] += 1
            repo_id = data["counters"]["repo"]
            record = {
                "id": repo_id,
                "owner": account["login"],
                "name": name,
                "private": private,
                "description": description,
                "is_template": is_template,
                "template": template,
                "default_branch": "main",
                "created_at": now,
                "updated_at": now,
                "pushed_at": now,
                "hooks": [],
            }
            data["repos"][str(repo_id)] = record
            Repo.init_bare(str(self.repo_path(repo_id)), mkdir=True, default_branch=b"main")
        return dict(record)

    def delete_repo(self, repo_id: int) -> None:
        with self._writing() as data:
            data["repos"].pop(str(repo_id), None)
            data.get("statuses", {}).pop(str(repo_id), None)
        shutil.rmtree(self.repo_path(repo_id), ignore_errors=True)

    def touch_pushed(self, repo_id: int) -> None:
        with self._writing() as data:
            record = data["repos"].get(str(repo_id))
            if record is not None:
                record["pushed_at"] = record["updated_at"] = time.time()

    # ---- hooks ---------------------------------------------------------------------------

    def add_hook(self, repo_id: int, config: dict[str, Any], events: list[str], active: bool):
        now = time.time()
        with self._writing() as data:
            data["counters"]["hook"] += 1
            hook = {
                "id": data["counters"]["hook"],
                "config": config,
                "events": events,
                "active": active,
                "created_at": now,
                "updated_at": now,
                "last_response": {"code": None, "status": "unused", "message": None},
            }
            data["repos"][str(repo_id)]["hooks"].append(hook)
        return dict(hook)

    def remove_hook(self, repo_id: int, hook_id: int) -> bool:
        with self._writing() as data:
            record = data["repos"].get(str(repo_id))
            if record is None:
                return False
            kept = [h for h in record["hooks"] if h["id"] != hook_id]
            removed = len(kept) != len(record["hooks"])
            record["hooks"] = kept
        return removed

    def record_hook_response(self, repo_id: int, hook_id: int, code: int | None, message: str):
        with self._writing() as data:
            record = data["repos"].get(str(repo_id))
            for hook in record["hooks"] if record else []:
                if hook["id"] == hook_id:
                    status = "active" if code is not None and code < 400 else "misconfigured"
                    hook["last_response"] = {"code": code, "status": status, "message": message}

    # ---- commit statuses -----------------------------------------------------------------

    def add_status(self, repo_id: int, sha: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A new status on a commit (GitHub keeps every one; the newest per context counts)."""
        now = time.time()
        with self._writing() as data:
            counters = data["counters"]
            counters["status"] = counters.get("status", 500_000_000) + 1
            record = {"id": counters["status"], "sha": sha, "created_at": now, **fields}
            data.setdefault("statuses", {}).setdefault(str(repo_id), []).append(record)
        return dict(record)

    def statuses(self, repo_id: int, sha: str) -> list[dict[str, Any]]:
        """A commit's statuses, newest first."""
        with self._lock:
            kept = self._data.get("statuses", {}).get(str(repo_id), [])
            return [dict(s) for s in reversed(kept) if s["sha"] == sha]

    def resolve_commit(self, repo_id: int, ref: str) -> str | None:
        """The commit a ref names: a full sha the repository holds, or a branch's head."""
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            with self.open_git(repo_id) as git:
                try:
                    return ref if isinstance(git[ref.encode()], Commit) else None
                except KeyError:
                    return None
        return self.branch_sha(repo_id, ref.removeprefix("heads/"))

    # ---- git content ---------------------------------------------------------------------

    def open_git(self, repo_id: int) -> Repo:
        return Repo(str(self.repo_path(repo_id)))

    def branch_sha(self, repo_id: int, branch: str) -> str | None:
        with self.open_git(repo_id) as git:
            try:
                return git.refs[Ref(b"refs/heads/" + branch.encode())].decode()
            except KeyError:
                return None

    def read_files(self, repo_id: int, sha: str) -> dict[str, tuple[bytes, bool]]:
        """Every file of a commit: path -> (content, executable)."""
        files: dict[str, tuple[bytes, bool]] = {}
        with self.open_git(repo_id) as git:
            commit = git[sha.encode()]
            assert isinstance(commit, Commit)
            for entry in git.object_store.iter_tree_contents(commit.tree):
                blob = git[entry.sha]
                assert isinstance(blob, Blob)
                executable = bool(entry.mode & 0o111)
                files[entry.path.decode()] = (blob.data, executable)
        return files

    def commit_info(self, repo_id: int, sha: str) -> dict[str, Any]:
        """The facts of one commit that the REST API shows."""
        with self.open_git(repo_id) as git:
            commit = git[sha.encode()]
            assert isinstance(commit, Commit)
            return {
                "sha": sha,
                "tree": commit.tree.decode(),
                "parents": [p.decode() for p in commit.parents],
                "author": person(commit.author, commit.author_time),
                "committer": person(commit.committer, commit.commit_time),
                "message": commit.message.decode(errors="replace").rstrip("\n"),
            }

    def write_single_commit(
        self, repo_id: int, files: dict[str, tuple[bytes, bool]], message: str
    ) -> str:
        """A fresh root commit holding `files` on the default branch (what generation makes)."""
        record = self.repo_by_id(repo_id)
        assert record is not None
        with self.open_git(repo_id) as git:
            tree_id = _write_tree(git, files)
            commit = Commit()
            commit.tree = tree_id
            commit.author = commit.committer = b"GitHub <noreply@github.com>"
            commit.author_time = commit.commit_time = int(time.time())
            commit.author_timezone = commit.commit_timezone = 0
            commit.message = message.encode() + b"\n"
            git.object_store.add_object(commit)
            git.refs[Ref(b"refs/heads/" + record["default_branch"].encode())] = commit.id
        self.touch_pushed(repo_id)
        return commit.id.decode()


def person(raw: bytes, when: int) -> dict[str, Any]:
    """A git identity line ("Name <email>") and a time as GitHub shows them."""
    name, _, email = raw.decode(errors="replace").partition(" <")
    return {"name": name, "email": email.rstrip(">"), "date": iso(when)}


def _by_id(record: dict[str, Any]) -> int:
    return int(record["id"])


def _write_tree(git: Repo, files: dict[str, tuple[bytes, bool]]) -> ObjectID:
    """Store blobs and nested trees for `files`; returns the root tree id."""
    root: dict[str, Any] = {}
    for path, (data, executable) in files.items():
        node = root
        *dirs, leaf = path.split("/")
        for part in dirs:
            node = node.setdefault(part, {})
        blob = Blob.from_string(data)
        git.object_store.add_object(blob)
        node[leaf] = (0o100755 if executable else 0o100644, blob.id)

    def store(node: dict[str, Any]) -> ObjectID:
        tree = Tree()
        for name, child in node.items():
            if isinstance(child, dict):
                tree.add(name.encode(), 0o040000, store(child))
            else:
                tree.add(name.encode(), child[0], child[1])
        git.object_store.add_object(tree)
        return tree.id

    return store(root)
