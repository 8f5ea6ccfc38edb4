"""A repository tree in memory: what git reads from a commit and what the image builder packs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    data: bytes
    executable: bool = False


# Relative POSIX paths ("app/main.py") to file contents; directories are implied by the paths.
SourceTree = dict[str, SourceFile]
