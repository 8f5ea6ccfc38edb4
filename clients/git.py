"""Git over HTTP(S) with an installation token, in pure Python (dulwich): push, read heads, fetch.

The functions are synchronous, as dulwich is; activities run them in a thread (a sync activity
or `asyncio.to_thread`). They authenticate with HTTP basic auth `x-access-token:<token>`, never
with credentials in the URL, and every error they raise has the token scrubbed out, so neither
Temporal's history nor a log line can ever show it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dulwich import porcelain
from dulwich.client import (
    GitClient,
    HTTPUnauthorized,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tree
from dulwich.pack import pack_objects_to_data
from dulwich.refs import Ref
from dulwich.repo import MemoryRepo

from core.source import SourceFile, SourceTree

ZERO_SHA = b"0" * 40
TOKEN_USER = "x-access-token"  # noqa: S105 - GitHub's fixed user name for token auth


class GitError(Exception):
    """A git failure in words; `code` becomes the API error code."""

    code = "GIT_ERROR"
    retryable = False


class GitAuthError(GitError):
    """The token was refused (401) or does not reach the repository (403/404)."""

    code = "GIT_AUTH_FAILED"


class GitUnavailable(GitError):
    """The server could not be reached or failed; trying again may help."""

    code = "GIT_UNAVAILABLE"
    retryable = True


class BranchNotEmpty(GitError):
    """The branch already has history that is not the commit we would make."""

    code = "BRANCH_NOT_EMPTY"


class PushRejected(GitError):
    """The server refused to move the branch (for example, it moved meanwhile)."""

    code = "PUSH_REJECTED"
    retryable = True


def branch_head(clone_url: str, token: str, branch: str) -> str | None:
    """The sha at the tip of `branch`, or None if the branch (or any commit) does not exist yet."""
    with _scrubbed(token, clone_url, f"read branch {branch}"):
        result = porcelain.ls_remote(clone_url, username=TOKEN_USER, password=token)
        sha = result.refs.get(Ref(b"refs/heads/" + branch.encode()))
        return sha.decode() if sha else None


def fetch_tree(clone_url: str, token: str, sha: str) -> SourceTree:
    """Every file of commit `sha`, with its executable bit."""
    with _scrubbed(token, clone_url, f"fetch commit {sha[:12]}"):
        repo, commit = _fetch_commit(clone_url, token, sha)
        return _read_tree(repo, commit.tree)


def push_initial_commit(
    clone_url: str,
    token: str,
    files: SourceTree,
    message: str,
    author: str,
    branch: str = "main",
) -> str:
    """The first commit of an empty repository holding `files`; returns its sha.

    Idempotent: if the branch already holds exactly this tree as its only commit (a retried
    push that had succeeded), that commit's sha is returned. Any other history is refused.
    """
    with _scrubbed(token, clone_url, f"push the first commit to {branch}"):
        objects, tree_id = _tree_objects(files)
        head = branch_head(clone_url, token, branch)
        if head is not None:
            _, existing = _fetch_commit(clone_url, token, head)
            if existing.tree == tree_id and not existing.parents:
                return head
            raise BranchNotEmpty(
                f"branch {branch} of {_safe(clone_url)} already has commits; "
                "Shipyard pushes a template only into an empty repository"
            )
        commit = _commit(tree_id, [], message, author)
        _send(clone_url, token, branch, None, commit.id, [*objects, commit])
        return commit.id.decode()


def push_commit(
    clone_url: str,
    token: str,
    files: SourceTree,
    message: str,
    author: str,
    branch: str = "main",
) -> str:
    """A new commit whose tree is exactly `files`, on top of `branch` (created if missing)."""
    with _scrubbed(token, clone_url, f"push a commit to {branch}"):
        objects, tree_id = _tree_objects(files)
        head = branch_head(clone_url, token, branch)
        parents = [ObjectID(head.encode())] if head else []
        commit = _commit(tree_id, parents, message, author)
        _send(
            clone_url, token, branch, parents[0] if parents else None, commit.id, [*objects, commit]
        )
        return commit.id.decode()


# ---- plumbing ----------------------------------------------------------------------------


def _client(clone_url: str, token: str) -> tuple[GitClient, str]:
    return get_transport_and_path(clone_url, username=TOKEN_USER, password=token)


def _fetch_commit(clone_url: str, token: str, sha: str) -> tuple[MemoryRepo, Commit]:
    """Fetch commit `sha` into memory: alone if a branch points at it, else with the history of
    every branch (servers need not serve a commit that no ref advertises)."""
    wanted = ObjectID(sha.encode())
    advertised = porcelain.ls_remote(clone_url, username=TOKEN_USER, password=token).refs
    tips = sorted({tip for tip in advertised.values() if tip is not None})
    alone = wanted in tips

    def determine_wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        return [wanted] if alone else tips

    repo = MemoryRepo()
    client, path = _client(clone_url, token)
    client.fetch(path, repo, determine_wants=determine_wants, depth=1 if alone else None)
    try:
        commit = repo[wanted]
    except KeyError:
        raise GitError(f"commit {sha} is not in {_safe(clone_url)}") from None
    if not isinstance(commit, Commit):
        raise GitError(f"{sha} in {_safe(clone_url)} is not a commit")
    return repo, commit


def _send(
    clone_url: str,
    token: str,
    branch: str,
    old: ObjectID | None,
    new: ObjectID,
    objects: list[ShaFile],
) -> None:
    client, path = _client(clone_url, token)
    ref = Ref(b"refs/heads/" + branch.encode())

    def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        current = refs.get(ref)
        if current != old and not (current is None and old is None):
            raise PushRejected(
                f"branch {branch} of {_safe(clone_url)} moved while pushing; push again"
            )
        return {**refs, ref: new}

    def generate_pack_data(have, want, *, ofs_delta=False, progress=None):
        return pack_objects_to_data(objects, ofs_delta=ofs_delta)

    result = client.send_pack(path.encode(), update_refs, generate_pack_data)
    failure = (result.ref_status or {}).get(ref)
    if failure:
        raise PushRejected(f"{_safe(clone_url)} refused to update {branch}: {failure}")


def _tree_objects(files: SourceTree) -> tuple[list[ShaFile], ObjectID]:
    """Blobs and trees for `files`, and the root tree's id (the same files give the same id)."""
    objects: list[ShaFile] = []
    root: dict[str, Any] = {}
    for path in sorted(files):
        node = root
        *dirs, leaf = path.strip("/").split("/")
        for part in dirs:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise GitError(f"{path} is below a file named {part}")
            node = child
        blob = Blob.from_string(files[path].data)
        objects.append(blob)
        node[leaf] = (0o100755 if files[path].executable else 0o100644, blob.id)

    def store(node: dict[str, Any]) -> ObjectID:
        tree = Tree()
        for name, child in node.items():
            if isinstance(child, dict):
                tree.add(name.encode(), 0o040000, store(child))
            else:
                tree.add(name.encode(), child[0], child[1])
        objects.append(tree)
        return tree.id

    return objects, store(root)


def _commit(tree_id: ObjectID, parents: list[ObjectID], message: str, author: str) -> Commit:
    commit = Commit()
    commit.tree = tree_id
    commit.parents = parents
    commit.author = commit.committer = author.encode()
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = message.encode() if message.endswith("\n") else message.encode() + b"\n"
    return commit


def _read_tree(repo: MemoryRepo, tree_id: ObjectID) -> SourceTree:
    files: SourceTree = {}
    for entry in repo.object_store.iter_tree_contents(tree_id):
        blob = repo[entry.sha]
        assert isinstance(blob, Blob)
        files[entry.path.decode()] = SourceFile(blob.data, executable=bool(entry.mode & 0o111))
    return files


def _safe(clone_url: str) -> str:
    """The URL without any user info, as it may be shown."""
    scheme, sep, rest = clone_url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else clone_url


@contextmanager
def _scrubbed(token: str, clone_url: str, doing: str) -> Iterator[None]:
    """Turn dulwich's failures into GitErrors that name the repository but never the token."""
    where = _safe(clone_url)
    try:
        yield
    except GitError as exc:
        raise type(exc)(_scrub(str(exc), token)) from None
    except HTTPUnauthorized:
        raise GitAuthError(
            f"could not {doing} in {where}: the server refused the installation token"
        ) from None
    except NotGitRepository:
        raise GitAuthError(
            f"could not {doing} in {where}: repository not found, or the token cannot reach it"
        ) from None
    except (GitProtocolError, HangupException, OSError) as exc:
        detail = _scrub(str(exc), token)
        # What the server said, without the addresses the message names: a port or a
        # repository name holding "404" is no answer of the server's.
        said = ADDRESS.sub("", detail).lower()
        if "404" in said or "not found" in said:
            raise GitAuthError(
                f"could not {doing} in {where}: repository not found, or the token cannot reach it"
            ) from None
        raise GitUnavailable(f"could not {doing} in {where}: {detail}") from None


ADDRESS = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text
