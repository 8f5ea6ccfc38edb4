"""`python -m sandbox` (`make sandbox`): the registry, fake GitHub and fake Kubernetes until Ctrl-C.

State lives in SHIPYARD_STATE_DIR (`.shipyard`); ports come from SHIPYARD_SANDBOX_REGISTRY_PORT,
SHIPYARD_SANDBOX_GITHUB_PORT and SHIPYARD_SANDBOX_KUBE_PORT. Once everything answers it writes
`<state>/sandbox.env` and prints `Sandbox ready.`.
"""

from __future__ import annotations

import signal
import sys
import threading

from clients.registry import RegistryError
from core.settings import load_settings
from sandbox.stack import READY_LINE, Sandbox, SandboxError, SandboxPorts


def main() -> None:
    settings = load_settings()
    stopping = threading.Event()
    # Installed before starting, so a stop asked for meanwhile ends the run as soon as it is up.
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        sandbox = Sandbox(
            settings.state_dir,
            SandboxPorts.from_environ(),
            github_setup_url=settings.github_setup_url,
        )
        sandbox.start()
    except (SandboxError, RegistryError, RuntimeError, TimeoutError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    try:
        print("\n".join(sandbox.describe()), flush=True)
        print(READY_LINE, flush=True)
        stopping.wait()
        print("Stopping the sandbox...", flush=True)
    finally:
        sandbox.stop()
    print("Sandbox stopped. State is kept in", sandbox.state_dir, flush=True)


if __name__ == "__main__":
    main()
