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


def fast_paths(settings: Settings) -> list[str]:
    """Whether each fast path can run on the installed SDK and FastAPI, or falls back to their public paths.

    The fast paths check the internals they use when they start and quietly take the public path when those are
    not what they were written against (correct, only slower); this says which, so an upgrade that turns one off
    is visible without a profiler.
    """

    def state(enabled: bool, supported: bool, what: str) -> str:
        if not enabled:
            return f"off (setting): {what} through the SDK's public path"
        return f"on: {what}" if supported else f"FALLBACK: {what} not possible with the installed SDK; public path used"

    export = _fast_export_supported()
    metrics = _fast_metrics_supported()
    attributes = _fast_attributes_supported()
    lines = [
        f"  fast_export     {state(settings.fast_export, export, 'direct OTLP/HTTP encoding, lean log records')}",
        f"  fast_recording  {state(settings.fast_recording, metrics, 'HTTP metrics through bound attribute sets')}",
        f"                  {state(settings.fast_recording, attributes, 'server-span attributes written directly')}",
    ]
    if settings.server_spans == "native":
        lines.append("  server_spans    native: FastAPI's native telemetry (the contrib ASGI middleware elsewhere)")
    else:
        lines.append(f"  server_spans    otel_dist: {_fastapi_hooks_state()}")
    return lines


def _fast_export_supported() -> bool:
    from otel_dist.exporters import FastOTLPSpanExporter

    exporter = FastOTLPSpanExporter(endpoint="http://127.0.0.1:4318/v1/traces")  # nothing is sent
    return exporter.encodes_directly


def _fast_metrics_supported() -> bool:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_dist.bound_metrics import fast_path_supported

    provider = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False)
    try:
        return fast_path_supported(provider.get_meter("otel_dist.doctor").create_histogram("probe"))
    finally:
        provider.shutdown()


def _fast_attributes_supported() -> bool:
    from otel_dist.span_attributes import shape_supported

    return shape_supported()


def _fastapi_hooks_state() -> str:
    try:
        import fastapi
    except ImportError:
        return "our server-span layer (FastAPI not installed: Starlette routes name the spans)"
    from otel_dist.asgi.server_telemetry import fastapi_hooks

    version = getattr(fastapi, "__version__", "?")
    if fastapi_hooks() is None:
        return (
            f"our server-span layer; FastAPI {version}'s routing hooks NOT found: routes come from Starlette's "
            "matched routes (OTEL_DIST_SERVER_SPANS=native is FastAPI's own telemetry)"
        )
    return f"our server-span layer, FastAPI {version}'s routing hooks found"


def report(settings: Settings, *, check: bool = True) -> str:
    """The doctor's report: every setting with its value and source, the fast paths, then one export probe per
    signal."""
    rows = describe(settings)
    width = max(len(name) for name, _, _ in rows)
    lines = ["otel-dist doctor", "", "Settings (value, then where it came from):"]
    lines += [f"  {name:<{width}}  {value}  [{source}]" for name, value, source in rows]
    lines += ["", "Fast paths (the SDK and FastAPI internals they use, checked on this installation):"]
    lines += fast_paths(settings)
    if check:
        lines += ["", "OTLP export check (an empty request per signal):"]
        for signal in SIGNALS:
            if "otlp" not in getattr(settings, f"{signal}_exporter"):
                lines.append(f"  {signal:<7}  skipped: exporter is {','.join(getattr(settings, f'{signal}_exporter'))}")
            else:
                lines.append(f"  {signal:<7}  {probe(settings, signal)}")
    return "\n".join(lines)
