"""``otel-dist doctor``: what otel-dist would do in this environment, and whether the collector answers."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_dist.settings import SIGNALS, Settings, Signal, describe

_EMPTY_REQUESTS: dict[Signal, Any] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def probe(settings: Settings, signal: Signal) -> str:
    """Send an empty OTLP export for ``signal`` and describe the answer (never raises)."""
    otlp = settings.otlp(signal)
    if otlp.protocol == "grpc":
        return _probe_grpc(settings, signal)
    request = urllib.request.Request(  # noqa: S310 - the scheme is validated as http(s) by Settings
        otlp.endpoint,
        data=_EMPTY_REQUESTS[signal]().SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **otlp.headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=otlp.timeout) as response:  # noqa: S310
            return f"OK: HTTP {response.status} from {otlp.endpoint}"
    except urllib.error.HTTPError as error:
        return f"FAILED: HTTP {error.code} {error.reason} from {otlp.endpoint}"
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"FAILED: {reason} ({otlp.endpoint})"


def _probe_grpc(settings: Settings, signal: Signal) -> str:
    otlp = settings.otlp(signal)
    try:
        import grpc
    except ImportError:
        return "FAILED: grpc protocol chosen but grpcio is not installed (pip install 'otel-dist[grpc]')"
    service = {"traces": "trace.v1.TraceService", "metrics": "metrics.v1.MetricsService", "logs": "logs.v1.LogsService"}
    target = otlp.endpoint.split("://", 1)[-1]
    channel = (
        grpc.insecure_channel(target) if otlp.insecure else grpc.secure_channel(target, grpc.ssl_channel_credentials())
    )
    try:
        call = channel.unary_unary(
            f"/opentelemetry.proto.collector.{service[signal]}/Export",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=lambda data: data,
        )
        call(_EMPTY_REQUESTS[signal](), timeout=otlp.timeout, metadata=tuple(otlp.headers.items()))
        return f"OK: gRPC Export answered by {target}"
    except grpc.RpcError as error:
        return f"FAILED: gRPC {error.code().name} from {target}"
    finally:
        channel.close()


def report(settings: Settings, *, check: bool = True) -> str:
    """The doctor's report: every setting with its value and source, then one export probe per signal."""
    rows = describe(settings)
    width = max(len(name) for name, _, _ in rows)
    lines = ["otel-dist doctor", "", "Settings (value, then where it came from):"]
    lines += [f"  {name:<{width}}  {value}  [{source}]" for name, value, source in rows]
    if check:
        lines += ["", "OTLP export check (an empty request per signal):"]
        for signal in SIGNALS:
            if "otlp" not in getattr(settings, f"{signal}_exporter"):
                lines.append(f"  {signal:<7}  skipped: exporter is {','.join(getattr(settings, f'{signal}_exporter'))}")
            else:
                lines.append(f"  {signal:<7}  {probe(settings, signal)}")
    return "\n".join(lines)
