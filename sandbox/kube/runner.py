"""Runs the fake Kubernetes API server over HTTPS in a background thread, with its state,
certificates and kubeconfig in one directory."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import uvicorn

from sandbox.holds import Hold, ResponseHolds
from sandbox.kube.certs import ensure_certificates
from sandbox.kube.controllers import SandboxControls
from sandbox.kube.kubeconfig import CONTEXT_NAME, write_kubeconfig
from sandbox.kube.refusals import Refusals
from sandbox.kube.resources import BY_KIND
from sandbox.kube.server import KubeApiServer
from sandbox.kube.store import ObjectStore
from sandbox.net import free_port, port_is_open

DEFAULT_ROLLOUT_DELAY = 0.3
BUILT_IN_NAMESPACES = ("default", "kube-system", "kube-public")


class _PromptlyStoppingServer(uvicorn.Server):
    """Drops open connections at shutdown instead of closing them gracefully.

    Closing an idle keep-alive TLS connection waits for the peer's close_notify, which pooled
    clients (urllib3, kubectl) never send, so a graceful stop would always sit out its timeout.
    A stopping API server that drops connections is also what clients must survive anyway.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await super().shutdown(sockets)


class FakeKubernetes:
    """A stateful stand-in for a Kubernetes cluster's API, reached through a kubeconfig.

    Everything lives in `state_dir`: the CA and server certificate, the bearer token, the
    objects (`objects.json`), the failure injection (`controls.json`) and `kubeconfig`.
    Starting a new runner on the same directory brings the cluster back as it was, on the
    same port when no port is given and that port is free. Another process steers failure
    injection over HTTPS without credentials: `POST /_sandbox/failing-images {"images": [..]}`,
    `POST /_sandbox/fail-after {"images": {image: seconds}}`,
    `POST /_sandbox/rollout-delay {"seconds": s}`, `GET /_sandbox/controls`,
    `GET /_sandbox/objects`.
    """

    def __init__(self, state_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port or self._remembered_or_free_port()
        self.context = CONTEXT_NAME
        self._api: KubeApiServer | None = None
        self._server: _PromptlyStoppingServer | None = None
        self._thread: threading.Thread | None = None
        self._controls = self._load_controls()
        self._holds = ResponseHolds()
        self._refusals = Refusals()

    # -- where to find it ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    @property
    def token(self) -> str:
        return self._token()

    @property
    def store(self) -> ObjectStore:
        """The live object store, for tests that look behind the API."""
        if self._api is None:
            raise RuntimeError("the fake Kubernetes API is not running")
        return self._api.store

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> FakeKubernetes:
        """Serve in a background thread; return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the fake Kubernetes API is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        certs = ensure_certificates(self.state_dir / "pki", [self.host])
        store = ObjectStore(self.state_dir / "objects.json")
        namespaces = BY_KIND["Namespace"]
        for name in BUILT_IN_NAMESPACES:
            if store.find(namespaces, "", name) is None:
                store.create(namespaces, "", {"metadata": {"name": name}})
        self._api = KubeApiServer(
            store,
            self._controls,
            self._token(),
            f"{self.host}:{self.port}",
            on_controls_changed=self._save_controls,
        )
        config = uvicorn.Config(
            self._refusals.wrap(self._holds.wrap(self._api.app)),
            host=self.host,
            port=self.port,
            ssl_certfile=str(certs.server_cert),
            ssl_keyfile=str(certs.server_key),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = _PromptlyStoppingServer(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"fake-kubernetes:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread = None
                raise RuntimeError(
                    f"the fake Kubernetes API did not start on {self.url} (is the port taken?)"
                )
            time.sleep(0.02)
        (self.state_dir / "server.json").write_text(
            json.dumps({"host": self.host, "port": self.port, "url": self.url})
        )
        write_kubeconfig(self.kubeconfig_path, self.url, certs.ca_pem(), self._token())
        return self

    def stop(self) -> None:
        """Stop serving and write the state out; safe to call twice."""
        if self._thread is None or self._server is None or self._api is None:
            return
        self._holds.release_all()
        self._api.begin_shutdown()
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._thread = None
        self._api.store.flush()

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and port_is_open(self.host, self.port)

    # -- failure injection -----------------------------------------------------------------

    def set_failing_images(self, images: Iterable[str]) -> None:
        """Containers of these images crash at start (CrashLoopBackOff) from now on."""
        self._controls.failing_images = set(images)
        self._controls_changed()

    def fail_after(self, image: str, seconds: float) -> None:
        """Containers of this image (or `repository@*`) stop `seconds` after they became
        ready, from now on: the pod turns unready and the container crash-loops."""
        self._controls.fail_after = {**self._controls.fail_after, image: float(seconds)}
        self._controls_changed()

    def set_rollout_delay(self, seconds: float) -> None:
        """How long the Deployment controller waits before acting on a spec change made from
        now on; a change already waiting keeps the delay it began with."""
        self._controls.rollout_delay = float(seconds)
        self._controls_changed()

    def hold_next(self, method: str, path_regex: str) -> Hold:
        """Answer the next matching request only once the test releases it; the request
        itself is handled at once, e.g. the object is applied (see sandbox.holds)."""
        return self._holds.hold_next(method, path_regex)

    def refuse_next(self, method: str, path_regex: str, status: int = 403, times: int = 1) -> None:
        """Refuse the next `times` matching requests with a Kubernetes Status of `status`, as
        an API server whose RBAC forbids them would; nothing of them is done."""
        self._refusals.refuse_next(method, path_regex, status, times)

    def reset_controls(self) -> None:
        self._holds.release_all()
        self._refusals.clear()
        self._controls.failing_images = set()
        self._controls.fail_after = {}
        self._controls.rollout_delay = DEFAULT_ROLLOUT_DELAY
        self._controls_changed()

    # -- state files -----------------------------------------------------------------------

    def _token(self) -> str:
        path = self.state_dir / "token"
        if not path.exists():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _remembered_or_free_port(self) -> int:
        remembered = self.state_dir / "server.json"
        if remembered.exists():
            port = int(json.loads(remembered.read_text())["port"])
            if not port_is_open(self.host, port):
                return port
        return free_port(self.host)

    def _load_controls(self) -> SandboxControls:
        path = self.state_dir / "controls.json"
        if path.exists():
            return SandboxControls.from_json(json.loads(path.read_text()))
        return SandboxControls(rollout_delay=DEFAULT_ROLLOUT_DELAY)

    def _controls_changed(self) -> None:
        if self._api is None:
            self._save_controls()
        else:
            self._api.controls_changed()  # saves them too, through on_controls_changed

    def _save_controls(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "controls.json").write_text(json.dumps(self._controls.to_json()))
