"""The README's webhook receiver, run as written: it takes a body signed as Shipyard signs it,
prints the event once however often the same delivery comes, and refuses a bad signature."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from core import webhooks
from sandbox.net import free_port, wait_for_port

README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## Webhooks") :]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


def test_the_readme_receiver_checks_signatures_and_dedupes(tmp_path: Path):
    script = tmp_path / "receiver.py"
    script.write_text(receiver_snippet())
    secret, port = "s" * 40, free_port()
    env = {**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)}
    receiver = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for_port("127.0.0.1", port, 10)
        body = webhooks.encode(
            {"id": 1, "type": "app.deleted", "app": {"id": "a", "slug": "shop"},
             "links": {"status_url": "http://127.0.0.1:8000/api/v1/apps/a"}}
        )  # fmt: skip
        headers = {
            "Content-Type": "application/json",
            webhooks.EVENT_HEADER: "app.deleted",
            webhooks.DELIVERY_HEADER: str(uuid.uuid4()),
            webhooks.SIGNATURE_HEADER: webhooks.signature(secret, body),
        }
        url = f"http://127.0.0.1:{port}/hooks"
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        forged = {**headers, webhooks.SIGNATURE_HEADER: webhooks.signature("other", body)}
        assert httpx.post(url, content=body, headers=forged).status_code == 401
        time.sleep(0.2)
    finally:
        receiver.terminate()
        out, _ = receiver.communicate(timeout=10)
    assert out.decode().splitlines() == ["app.deleted shop http://127.0.0.1:8000/api/v1/apps/a"]
