"""htmx comes from one npm release everywhere: the Makefile, the image and the setting agree."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def makefile_variable(name: str) -> str:
    found = re.search(rf"^{name} := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, f"the Makefile sets no {name}"
    return found.group(1).strip()


def test_the_image_installs_the_release_the_makefile_does():
    found = re.search(r"^ARG HTMX_VERSION=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert found, "the Dockerfile sets no HTMX_VERSION"
    assert found.group(1) == makefile_variable("HTMX_VERSION")


def test_the_setting_finds_what_the_makefile_installs():
    installed = makefile_variable("HTMX").replace("$(VENV)", makefile_variable("VENV"))
    assert Settings.model_fields["console_htmx_file"].default == ROOT / installed
