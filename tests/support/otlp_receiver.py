"""Test-only peers: an OTLP/gRPC receiver, a collector that never answers, a port nothing listens on."""

from __future__ import annotations

import socket
import threading
from concurrent import futures
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from otel_dist.otlp_sink import REQUESTS, OtlpReceiver, running_http_receiver, wait_for

__all__ = ["OtlpReceiver", "blackhole", "free_port", "running_grpc_receiver", "running_http_receiver", "wait_for"]


class _Servicer:
    def __init__(self, receiver: OtlpReceiver, signal: str) -> None:
        self.receiver, self.signal = receiver, signal

    def Export(self, request: Any, context: Any) -> Any:
        with self.receiver.lock:
            self.receiver.requests[self.signal].append(request)
        return REQUESTS[self.signal][1]()


class running_grpc_receiver:
    """``with running_grpc_receiver() as receiver:`` serves OTLP/gRPC on 127.0.0.1."""

    def __enter__(self) -> OtlpReceiver:
        import grpc

        self.receiver = OtlpReceiver()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Servicer(self.receiver, "traces"), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Servicer(self.receiver, "metrics"), self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Servicer(self.receiver, "logs"), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.receiver.endpoint = f"http://127.0.0.1:{port}"
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)


class blackhole:
    """A TCP server that accepts connections and never answers (a hung collector)."""

    def __enter__(self) -> str:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.connections: list[socket.socket] = []
        self.stop = threading.Event()

        def accept() -> None:
            self.sock.settimeout(0.1)
            while not self.stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                    self.connections.append(conn)  # hold it open, read nothing, answer nothing
                except OSError:
                    continue

        self.thread = threading.Thread(target=accept, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


def free_port() -> int:
    """A TCP port nothing listens on (closed again at once): a collector that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
