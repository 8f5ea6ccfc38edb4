"""Workflows decide and activities act: no workflow module imports I/O or the API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
FORBIDDEN = (
    "httpx", "kubernetes", "sqlmodel", "sqlalchemy", "githubkit", "dulwich", "api",
    "activities", "core", "sandbox", "requests", "socket", "subprocess",
)  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "module", sorted(WORKFLOWS.rglob("*.py")), ids=lambda path: str(path.relative_to(WORKFLOWS))
)
def test_workflow_module_imports_no_io(module: Path):
    offending = {name for name in imported_modules(module) if name.split(".")[0] in FORBIDDEN}
    assert offending == set(), f"{module.name} imports {sorted(offending)}"


def handlers(tree: ast.AST) -> list[list[ast.ExceptHandler]]:
    return [node.handlers for node in ast.walk(tree) if isinstance(node, ast.Try)]


@pytest.mark.parametrize(
    "module", sorted(WORKFLOWS.rglob("*.py")), ids=lambda path: str(path.relative_to(WORKFLOWS))
)
def test_a_workflow_lets_an_eviction_through(module: Path):
    """A worker evicting a run from its cache may throw GeneratorExit into its coroutines from
    another thread, even inside another run's event loop: a handler that catches BaseException
    must let it through first, or its compensation would act in a run that is not its own."""
    for caught in handlers(ast.parse(module.read_text())):
        names = [ast.unparse(handler.type) if handler.type else "" for handler in caught]
        if "BaseException" in names or "" in names:
            before = names[: names.index("BaseException" if "BaseException" in names else "")]
            assert "GeneratorExit" in before, f"{module.name}: {names} catches an eviction"
