"""`python -m sandbox.kube [STATE_DIR] [--port N]`: run the fake Kubernetes API until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from sandbox.kube.runner import FakeKubernetes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("state_dir", nargs="?", default=".shipyard/kube", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with FakeKubernetes(args.state_dir, host=args.host, port=args.port) as kube:
        print(f"fake Kubernetes API on {kube.url}; kubeconfig: {kube.kubeconfig_path}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
