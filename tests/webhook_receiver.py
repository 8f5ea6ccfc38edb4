"""A webhook receiver on 127.0.0.1 for tests: a real HTTP server in a thread that keeps every
request (headers, the raw body untouched, when it arrived) and answers as the test scripts it:
per path, a list of answers to give in turn (then 200), or a hold that keeps the answer back
until the test lets it go."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.net import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    @property
    def delivery(self) -> str:
        return self.headers["x-shipyard-delivery"]

    @property
    def event(self) -> str:
        return self.headers["x-shipyard-event"]

    def signed_with(self, secret: str) -> bool:
        """The receiver's check, as the README shows it: HMAC-SHA256 of the raw body."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-shipyard-signature-256", ""))


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.script: dict[str, list[Answer]] = {}
        # A path whose next request is held: set `arrived`, wait for `release`.
        self.holds: dict[str, tuple[threading.Event, threading.Event]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *answers: Answer) -> None:
        self.script[path] = list(answers)

    def hold(self, path: str) -> tuple[threading.Event, threading.Event]:
        arrived, release = threading.Event(), threading.Event()
        self.holds[path] = (arrived, release)
        return arrived, release

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                got = Received(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                with receiver._lock:
                    receiver.received.append(got)
                    hold = receiver.holds.pop(self.path, None)
                    queued = receiver.script.get(self.path) or []
                    answer = queued.pop(0) if queued else Answer()
                if hold is not None:
                    arrived, release = hold
                    arrived.set()
                    release.wait(60)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the sender is gone (a killed worker)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            for _, release in list(self.holds.values()):
                release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def receiving(port: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver(port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
