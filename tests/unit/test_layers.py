"""The import-linter contracts `make lint` runs hold for the tree, and break when a forbidden
import is added: each case copies the tree, adds one import a layer must not make, and expects
`lint-imports` to fail naming the broken contract."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("api", "cli", "ops", "activities", "clients", "core", "workflows", "sandbox")


def copy_of_the_tree(into: Path) -> Path:
    for package in PACKAGES:
        if (ROOT / package).is_dir():
            shutil.copytree(
                ROOT / package, into / package, ignore=shutil.ignore_patterns("__pycache__")
            )
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        # Wide enough that no contract name wraps away from its KEPT or BROKEN.
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_its_layers(tmp_path: Path):
    linted = lint_imports(copy_of_the_tree(tmp_path))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "BROKEN" not in linted.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("workflows/deploy.py", "import httpx", "Workflows decide and never act"),
        ("workflows/promote.py", "import activities.kube", "Workflows decide and never act"),
        ("core/settings.py", "import clients.github", "stand on activities, clients and core"),
        ("clients/registry.py", "import activities.registry", "stand on activities"),
        ("api/app.py", "import sandbox.net", "Only the stand-ins themselves"),
        ("core/models.py", "import sandbox", "Only the stand-ins themselves"),
        ("cli/app.py", "import core.settings", "The command line is a client of the REST API"),
        ("api/app.py", "import cli.client", "stand on activities, clients and core"),
    ],
)
def test_a_forbidden_import_breaks_the_lint(
    tmp_path: Path, module: str, forbidden: str, contract: str
):
    tree = copy_of_the_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{forbidden}  # noqa\n")
    linted = lint_imports(tree)
    assert linted.returncode != 0, linted.stdout + linted.stderr
    lines = linted.stdout.splitlines()
    assert any(contract in line and line.endswith("BROKEN") for line in lines), (
        linted.stdout + linted.stderr
    )


def test_the_worker_stands_beside_the_api():
    """worker.py is a module, which import-linter cannot take as a root package: it stands on
    activities, clients, core and workflows, and imports neither the API, the CLI nor the
    stand-ins."""
    tree = ast.parse((ROOT / "worker.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    above = {name for name in imported if name.split(".")[0] in ("api", "cli", "ops", "sandbox")}
    assert above == set()
    assert {name.split(".")[0] for name in imported} >= {"activities", "clients", "workflows"}
