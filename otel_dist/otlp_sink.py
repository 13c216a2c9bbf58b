"""A minimal OTLP/HTTP receiver that decodes what exporters send: for tests, the demo and benchmarks.

It is not a collector: it keeps every decoded request in memory and answers 200 (or the status you set, to
simulate a refusing collector). Tests use it to check telemetry the way a collector sees it: from the real
protobuf bytes, not console output.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

REQUESTS: dict[str, tuple[Any, Any]] = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


#: Field names of each request type: (resource groups, scope groups, items).
_LAYOUT: dict[str, tuple[str, str, str]] = {
    "traces": ("resource_spans", "scope_spans", "spans"),
    "metrics": ("resource_metrics", "scope_metrics", "metrics"),
    "logs": ("resource_logs", "scope_logs", "log_records"),
}


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes_of(items: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in items}


@dataclass
class Record:
    """One decoded item with the resource attributes and scope it arrived under."""

    resource: dict[str, Any]
    scope: str
    item: Any

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes_of(self.item.attributes)


@dataclass
class OtlpReceiver:
    """Decoded requests per signal, and knobs to misbehave (status code, Retry-After)."""

    requests: dict[str, list[Any]] = field(default_factory=lambda: {s: [] for s in REQUESTS})
    headers: list[dict[str, str]] = field(default_factory=list)
    status: int = 200
    retry_after: str | None = None
    #: (time.monotonic(), signal) of every request, refused ones included: how often exporters retried.
    attempts: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""

    def store(self, signal: str, body: bytes, headers: dict[str, str]) -> None:
        request = REQUESTS[signal][0]()
        request.ParseFromString(body)
        with self.lock:
            self.requests[signal].append(request)
            self.headers.append(headers)

    def _records(self, signal: str) -> list[Record]:
        """Every item of ``signal`` with its resource and scope, oldest request first.

        The three OTLP request types nest the same way under signal-specific field names:
        resource_<x> -> scope_<x> -> items.
        """
        outer, inner, items = _LAYOUT[signal]
        with self.lock:
            return [
                Record(attributes_of(resource_group.resource.attributes), scope_group.scope.name, item)
                for request in self.requests[signal]
                for resource_group in getattr(request, outer)
                for scope_group in getattr(resource_group, inner)
                for item in getattr(scope_group, items)
            ]

    def spans(self) -> list[Record]:
        """Every span received."""
        return self._records("traces")

    def logs(self) -> list[Record]:
        """Every log record received."""
        return self._records("logs")

    def metrics(self, name: str | None = None) -> list[Record]:
        """Every metric (latest requests last); filter by name."""
        return [m for m in self._records("metrics") if name is None or m.item.name == name]

    def latest_points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of the newest export of metric ``name`` (cumulative: the newest has all)."""
        found = self.metrics(name)
        if not found:
            return []
        metric = found[-1].item
        data = getattr(metric, metric.WhichOneof("data"))
        return [(attributes_of(p.attributes), p) for p in data.data_points]

    def clear(self) -> None:
        with self.lock:
            for items in self.requests.values():
                items.clear()


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until ``condition()`` is truthy; return its value or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def _handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            signal = self.path.rstrip("/").rsplit("/", 1)[-1]
            with receiver.lock:
                receiver.attempts.append((time.monotonic(), signal))
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            if receiver.status != 200 or signal not in REQUESTS:
                self.send_response(receiver.status if signal in REQUESTS else 404)
                if receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            receiver.store(signal, body, {k.lower(): v for k, v in self.headers.items()})
            payload = REQUESTS[signal][1]().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class running_http_receiver:
    """``with running_http_receiver() as receiver:`` serves OTLP/HTTP on 127.0.0.1 until the block ends."""

    def __enter__(self) -> OtlpReceiver:
        self.receiver = OtlpReceiver()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.receiver))
        self.server.daemon_threads = True
        self.receiver.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
