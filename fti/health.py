"""Liveness, readiness and Prometheus metrics of one service, on one HTTP port.

- `/healthz`: 200 while the process serves requests (it is alive).
- `/readyz`: 200 once the service called `set_ready` (flow built and running, champion
  loaded, consumer subscribed), else 503; both with a JSON body naming the reason.
- `/metrics`: the Prometheus text exposition of the process's registry.

The server is stdlib `http.server` in a daemon thread, bound to loopback by default.

>>> import json, urllib.request
>>> server = HealthServer(0).start()
>>> url = f"http://127.0.0.1:{server.port}"
>>> urllib.request.urlopen(url + "/healthz").status
200
>>> server.set_ready("flow running")
>>> json.load(urllib.request.urlopen(url + "/readyz"))
{'ready': True, 'reason': 'flow running'}
>>> server.stop()
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


class HealthServer:
    """Serve `/healthz`, `/readyz` and `/metrics` on host:port (port 0 = any free port).

    Readiness starts as "starting" (503) and follows `set_ready` / `set_not_ready`.
    """

    def __init__(
        self, port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
    ) -> None:
        self.host, self.registry = host, registry
        self._port = port
        self._ready = False
        self._reason = "starting"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port served on: the one asked for, or the one picked when asked for 0."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def running(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._server is not None

    def set_ready(self, reason_ok: str = "ready") -> None:
        """Report ready: `/readyz` answers 200 with `reason_ok`."""
        with self._lock:
            changed = not self._ready
            self._ready, self._reason = True, reason_ok
        if changed:
            log.info("ready: %s", reason_ok, extra={"event": "ready"})

    def set_not_ready(self, reason: str) -> None:
        """Report not ready: `/readyz` answers 503 with `reason` (e.g. "stopping")."""
        with self._lock:
            changed = self._ready
            self._ready, self._reason = False, reason
        if changed:
            log.info("not ready: %s", reason, extra={"event": "not_ready"})

    def readiness(self) -> tuple[bool, str]:
        """The current readiness and its reason.

        >>> HealthServer(0).readiness()
        (False, 'starting')
        """
        with self._lock:
            return self._ready, self._reason

    def start(self) -> HealthServer:
        """Bind the port and serve in a daemon thread; return self."""
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer((self.host, self._port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"fti-health-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def _handler_for(health: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server looks up
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._json(HTTPStatus.OK, {"alive": True})
            elif path == "/readyz":
                ready, reason = health.readiness()
                status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
                self._json(status, {"ready": ready, "reason": reason})
            elif path == "/metrics":
                self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(health.registry))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path {path!r}; try "
                                                  "/healthz, /readyz or /metrics"})

        def _json(self, status: HTTPStatus, body: dict[str, object]) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def serve_health_and_metrics(port: int, host: str = "127.0.0.1") -> HealthServer:
    """Start a `HealthServer` on host:port for this process; port 0 = off.

    With port 0 nothing is served, but the returned object still accepts `set_ready`, so
    callers need no special case.

    >>> serve_health_and_metrics(0).running
    False
    """
    server = HealthServer(port, host)
    if port:
        server.start()
        log.info("serving /healthz, /readyz and /metrics on %s:%d", host, server.port)
    return server
