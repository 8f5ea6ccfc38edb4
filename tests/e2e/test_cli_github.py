"""`shipyard github install` against the API over a real socket and the fake GitHub: it prints
the install URL, waits while a browser installs the App and comes back, binds the installation;
`shipyard github repositories` lists what it reaches."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tests.e2e.test_cli_output import run
from tests.e2e.test_cli_watch import ROOT
from tests.integration.api.test_install_flow import Flow, flow, new_org

__all__ = ["flow"]  # the fixture, used by name


async def test_install_waits_for_the_browser_then_binds(flow: Flow):
    caller = await flow.tenant()
    key = caller.headers["Authorization"].removeprefix("Bearer ")
    org = new_org()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(
        SHIPYARD_CONFIG=os.devnull, SHIPYARD_API_URL=str(flow.api.base_url), SHIPYARD_API_KEY=key
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "github", "install", "--tenant", caller.tenant,
        "--org", org, "--timeout", "60", "-o", "json",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    url = ""
    while not url:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line, "the CLI ended without printing the install URL"
        if line.strip().startswith("http"):
            url = line.strip()
    assert url.startswith(flow.github.install_url) and f"org={org}" in url
    back = await flow.browser.get(url, follow_redirects=True)
    assert back.status_code == 200, back.text
    out, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, errors.decode()
    bound = json.loads(out)
    assert bound["account_login"] == org

    flow.github.state.create_repo(org, "shop")
    code, listed, errors_text = await run(
        "github", "repositories", str(bound["installation_id"]), "--tenant", caller.tenant,
        "-o", "json", url=str(flow.api.base_url), key=key,
    )  # fmt: skip
    assert code == 0, errors_text
    assert [item["full_name"] for item in json.loads(listed)["items"]] == [f"{org}/shop"]
    code, table, _ = await run(
        "github", "repositories", str(bound["installation_id"]), "--tenant", caller.tenant,
        url=str(flow.api.base_url), key=key,
    )  # fmt: skip
    assert code == 0 and f"{org}/shop" in table
