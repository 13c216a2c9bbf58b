"""The fault itself: a TCP/HTTP proxy between the app and the real collector, owned by the tests (like toxiproxy).

Modes, switched at any time (switching closes every open connection, so pooled keep-alive connections of the
exporters see the new mode at once):

* ``pass``: bytes are forwarded both ways to the upstream (the real collector).
* ``blackhole``: connections are accepted and held; nothing is read or answered (a hung collector).
* ``status``: every HTTP request is read whole and answered with ``status`` (503, 429, ...) and a
  ``Retry-After`` header; the time and path of each request are recorded, so a test can tell how often the
  exporters retried.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

Mode = Literal["pass", "blackhole", "status"]
REASONS = {429: "Too Many Requests", 503: "Service Unavailable", 502: "Bad Gateway", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class Attempt:
    """One HTTP request answered in ``status`` mode."""

    at: float  # time.monotonic()
    path: str


@dataclass
class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``upstream`` (host, port) unless told otherwise."""

    upstream: tuple[str, int]
    mode: Mode = "pass"
    status: int = 503
    retry_after: str | None = "1"
    attempts: list[Attempt] = field(default_factory=list)
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode, *, status: int | None = None, retry_after: str | None = None) -> None:
        """Switch mode; every open connection is closed so that the next request meets the new mode."""
        with self._lock:
            self.mode = mode
            if status is not None:
                self.status = status
            if retry_after is not None:
                self.retry_after = retry_after
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def attempts_between(self, start: float, end: float) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if start <= a.at <= end]

    # --- connections -------------------------------------------------------------------------------------
    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._track(client)
            mode = self.mode
            if mode == "pass":
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()
            elif mode == "status":
                threading.Thread(target=self._answer, args=(client,), daemon=True).start()
            # blackhole: the connection stays open and unread until the mode changes

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)  # the collector is down: the client sees the connection close
            return
        upstream.settimeout(None)
        self._track(upstream)
        pump = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        pump.start()
        _pump(client, upstream)
        pump.join(timeout=5)

    def _answer(self, client: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "?"
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                while len(buffer) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                buffer = buffer[length:]
                with self._lock:
                    self.attempts.append(Attempt(time.monotonic(), path))
                    status, retry_after = self.status, self.retry_after
                headers = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", "Content-Length: 0"]
                if retry_after is not None:
                    headers.append(f"Retry-After: {retry_after}")
                client.sendall(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
        except OSError:
            return
        finally:
            _close(client)

    # --- lifecycle ---------------------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        _close(self._listener)
        self.set_mode("pass")  # closes what is still open

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
