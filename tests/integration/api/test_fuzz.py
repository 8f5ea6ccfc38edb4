"""The OpenAPI contract, fuzzed: schemathesis generates requests for every operation from the
schema the API serves, sends them over a real socket with a tenant admin's key and with the
platform admin's token, and checks that no answer is a 5xx, that every status is documented and
that every answer matches its documented schema.

Bounded for `make test` (SHIPYARD_FUZZ_EXAMPLES per operation, SHIPYARD_FUZZ_SECONDS in all);
raise both for a long run outside CI."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.fixtures.stack import Stack

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("SHIPYARD_FUZZ_EXAMPLES", "6"))
SECONDS = int(os.environ.get("SHIPYARD_FUZZ_SECONDS", "90"))
SCHEMATHESIS = Path(sys.executable).parent / "st"
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


async def fuzz(stack: Stack, credential: str, seconds: int, workdir: Path) -> str:
    """One schemathesis run (the API it calls is served on this event loop, so the run must
    not block it); its figures: operations tested, cases generated, failures."""
    process = await asyncio.create_subprocess_exec(
        *[
            str(SCHEMATHESIS),
            "run",
            f"{stack.settings.public_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {credential}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(EXAMPLES),
            "--max-time",
            str(seconds),
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "20261206",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
            "--no-color",
            # The GitHub webhook is signed, not keyed: its own tests cover it.
            "--exclude-path",
            "/api/v1/webhooks/github",
        ],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,  # where schemathesis keeps its cache
    )
    raw, _ = await asyncio.wait_for(process.communicate(), timeout=seconds + 120)
    output = raw.decode(errors="replace")
    assert process.returncode == 0, output[-20000:]
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    return (
        f"operations {tested.group(1) if tested else '?'}, "
        f"cases {cases.group(1) if cases else '?'}, 5xx and violations 0"
    )


async def test_no_5xx_and_no_schema_violation(stack: Stack, tmp_path: Path):
    done = await stack.bootstrap_and_wait()  # something real for the reads to find
    assert done["status"] == "done", done
    token = stack.admin_headers["Authorization"].removeprefix("Bearer ")
    for name, credential, seconds in (
        ("tenant", stack.tenant.key, SECONDS * 2 // 3),
        ("admin", token, SECONDS // 3),
    ):
        print(f"fuzz as {name}: {await fuzz(stack, credential, seconds, tmp_path)}")
