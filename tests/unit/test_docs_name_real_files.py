"""Docstrings, comments and the README name only files and folders that are in the repository:
a module moved or renamed leaves no reader looking for it where it was."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "cli", "ops", "activities", "clients", "core", "workflows", "sandbox", "bench")
TOP = (*PACKAGES, "tests", "migrations", "templates")
DOCUMENTS = ("README.md", "worker.py", "Makefile", "Dockerfile", "pyproject.toml")
# A path into the repository: a top-level folder, then a file with an ending or a folder with a
# trailing slash (a bare `core/v1` is Kubernetes' apiVersion, `bench/app` an image's name).
MENTION = re.compile(
    r"(?<![\w/.-])((?:" + "|".join(TOP) + r")/(?:[\w-]+/)*(?:[\w-]+\.(?:py|md|toml|ya?ml|ini)|))"
    r"(?![\w/])"
)


def readable_files() -> list[Path]:
    files = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    return files + [ROOT / name for name in DOCUMENTS if (ROOT / name).exists()]


def test_every_path_mentioned_exists():
    missing = [
        f"{path.relative_to(ROOT)}:{number}: {mentioned}"
        for path in readable_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for mentioned in MENTION.findall(line)
        if "{" not in mentioned and not (ROOT / mentioned).exists()
    ]
    assert missing == [], "\n".join(missing)


def test_the_check_sees_a_missing_file():
    assert MENTION.findall("lives in api/cli.py, see workflows/contracts/ and core/v1") == [
        "api/cli.py",
        "workflows/contracts/",
    ]
