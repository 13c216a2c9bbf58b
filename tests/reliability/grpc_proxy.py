"""The gRPC side of the fault proxy: an OTLP/gRPC server between the app and the real collector.

Modes, switched at any time (each call reads the mode it arrives in):

* ``pass``: the call's bytes go to the upstream collector's OTLP/gRPC receiver unchanged, and its answer (or
  status) comes back.
* ``status``: every call is answered with ``code`` (RESOURCE_EXHAUSTED, UNAVAILABLE, ...) and, when
  ``retry_delay`` is set, a ``google.rpc.RetryInfo`` in the status details (``grpc-status-details-bin``), where
  a gRPC server such as the collector puts it. The time and method of each call are recorded.

A real gRPC server (grpcio), no mock: the exporters talk HTTP/2 and gRPC framing to it as to the collector.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status

from tests.reliability.proxy import Attempt

GrpcMode = Literal["pass", "status"]
#: The OTLP services' methods, to the signal each carries.
METHODS = {
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "traces",
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export": "metrics",
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "logs",
}


@dataclass(frozen=True)
class _Abort(grpc.Status):  # type: ignore[misc]
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


@dataclass
class GrpcFaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards OTLP calls to ``upstream`` (host, port) unless told otherwise."""

    upstream: tuple[str, int]
    mode: GrpcMode = "pass"
    code: grpc.StatusCode = grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_delay: float | None = 2.0
    attempts: list[Attempt] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._channel = grpc.insecure_channel(f"{self.upstream[0]}:{self.upstream[1]}")
        self._forwards = {method: self._channel.unary_unary(method) for method in METHODS}  # bytes in, bytes out
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {method.rsplit("/", 1)[0].lstrip("/"): method for method in METHODS}  # service -> its one method
        for service, method in handlers.items():
            handler = grpc.unary_unary_rpc_method_handler(self._handler(method))  # no (de)serializer: raw bytes
            self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
        self.port: int = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: GrpcMode) -> None:
        with self._lock:
            self.mode = mode

    def attempts_between(self, start: float, end: float) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if start <= a.at <= end]

    def _handler(self, method: str) -> Any:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                mode, code, delay = self.mode, self.code, self.retry_delay
                if mode == "status":
                    self.attempts.append(Attempt(time.monotonic(), f"/v1/{METHODS[method]}"))
            if mode == "status":
                context.abort_with_status(_status(code, delay))
            try:
                response: bytes = self._forwards[method](request, timeout=context.time_remaining())
            except grpc.RpcError as error:  # the collector's own refusal, passed on as it came
                context.abort_with_status(_Abort(error.code(), error.details() or "", tuple(error.trailing_metadata())))
            return response

        return handle

    def close(self) -> None:
        self._server.stop(grace=None).wait(5)
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _status(code: grpc.StatusCode, retry_delay: float | None) -> _Abort:
    """A refusal as a gRPC server sends it: code, message, RetryInfo in the google.rpc.Status details."""
    message = f"refused by the fault proxy ({code.name})"
    status = Status(code=code.value[0], message=message)
    if retry_delay is not None:
        info = RetryInfo()
        info.retry_delay.seconds = int(retry_delay)
        info.retry_delay.nanos = int((retry_delay - int(retry_delay)) * 1e9)
        detail = AnyProto()
        detail.Pack(info)
        status.details.append(detail)
    return _Abort(code, message, (("grpc-status-details-bin", status.SerializeToString()),))
