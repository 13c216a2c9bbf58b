"""A notification receiver on 127.0.0.1 for the local Alertmanager variant: records every POST by path.

It answers each receiver the way the real service does, so Alertmanager counts the notification as delivered:
Slack incoming webhooks (``/chat``, ``/chat-low-priority``) answer ``ok`` as text, PagerDuty's events API
(``/pager``) 202 with JSON, a heartbeat URL (``/heartbeat``) 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    """Start with ``WebhookReceiver()``; ``url`` is its base URL; ``close()`` stops it."""

    def __init__(self) -> None:
        self.received: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.received.append((time.monotonic(), self.path, json.loads(body)))
                if self.path.startswith("/chat"):
                    status, kind, reply = 200, "text/plain", b"ok"
                elif self.path == "/pager":
                    status, kind, reply = (
                        202,
                        "application/json",
                        b'{"status": "success", "message": "Event processed"}',
                    )
                else:
                    status, kind, reply = 200, "application/json", b"{}"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[dict[str, Any]]:
        """Bodies received at ``path``, oldest first."""
        with self.lock:
            return [body for _, p, body in self.received if p == path]

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p, _ in self.received]

    def wait_for(self, check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
        """Poll ``check`` until it is true, failing after ``timeout`` seconds with what arrived."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                with self.lock:
                    last = [(p, json.dumps(b)[:300]) for _, p, b in self.received[-5:]]
                raise AssertionError(
                    f"timed out waiting for {what or check}; {len(self.received)} received, last: {last}"
                )
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
