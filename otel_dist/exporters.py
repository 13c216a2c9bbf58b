"""Exporter factories: Settings -> the span, metric and log exporters of each chosen kind.

The OTLP exporters are imported lazily so that the gRPC stack (grpcio) is only loaded when a signal uses it.
Every value is passed explicitly: the exporters would otherwise read OTEL_* variables on their own.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from otel_dist.settings import ConfigurationError, OtlpSignalSettings, Settings, Signal
from otel_dist.transport import gated_grpc_exporter

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter


def _otlp_kwargs(
    settings: Settings, signal: Signal, meter_provider: MeterProvider | None
) -> tuple[str, dict[str, Any]]:
    otlp = settings.otlp(signal)
    kwargs: dict[str, Any] = {
        "endpoint": otlp.endpoint,
        "headers": dict(otlp.headers),
        "timeout": otlp.timeout,
        "meter_provider": meter_provider,
    }
    if otlp.protocol == "grpc":
        from grpc import Compression as GrpcCompression

        kwargs["insecure"] = otlp.insecure
        kwargs["compression"] = GrpcCompression.Gzip if otlp.compression == "gzip" else GrpcCompression.NoCompression
        if not otlp.insecure:
            kwargs["credentials"] = _grpc_credentials(otlp)
    else:
        from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

        from otel_dist.transport import CollectorTransport

        kwargs["compression"] = HttpCompression.Gzip if otlp.compression == "gzip" else HttpCompression.NoCompression
        # TLS from Settings, Retry-After honoured across batches, refusals counted (see otel_dist.transport).
        kwargs["_transport"] = CollectorTransport(otlp)
    return otlp.protocol, kwargs


def _grpc_credentials(otlp: OtlpSignalSettings) -> Any:
    """TLS credentials for a grpc exporter from Settings (the exporter would read the environment itself)."""
    import grpc

    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        with open(path, "rb") as handle:
            return handle.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(otlp.certificate),
        private_key=read(otlp.client_key) if otlp.client_certificate else None,
        certificate_chain=read(otlp.client_certificate) if otlp.client_key else None,
    )


def _require_grpc(signal: Signal) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
            "'grpc' needs the grpc exporter: pip install 'otel-dist[grpc]'",
        ) from None


def span_exporters(settings: Settings, meter_provider: MeterProvider | None) -> list[SpanExporter]:
    """The span exporters chosen by ``traces_exporter``."""
    exporters: list[SpanExporter] = []
    for kind in settings.traces_exporter:
        if kind == "otlp":
            protocol, kwargs = _otlp_kwargs(settings, "traces", meter_provider)
            if protocol == "grpc":
                _require_grpc("traces")
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

                exporters.append(gated_grpc_exporter(GrpcSpanExporter)(**kwargs))
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporters.append(OTLPSpanExporter(**kwargs))
        elif kind == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter(out=sys.stderr))
    return exporters


def log_exporters(settings: Settings, meter_provider: MeterProvider | None) -> list[LogRecordExporter]:
    """The log-record exporters chosen by ``logs_exporter``."""
    exporters: list[LogRecordExporter] = []
    for kind in settings.logs_exporter:
        if kind == "otlp":
            protocol, kwargs = _otlp_kwargs(settings, "logs", meter_provider)
            if protocol == "grpc":
                _require_grpc("logs")
                from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

                exporters.append(gated_grpc_exporter(GrpcLogExporter)(**kwargs))
            else:
                from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

                exporters.append(OTLPLogExporter(**kwargs))
        elif kind == "console":
            from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

            exporters.append(ConsoleLogRecordExporter(out=sys.stderr))
    return exporters


def metric_exporter(settings: Settings, kind: str, meter_provider: MeterProvider) -> MetricExporter:
    """One push-mode metric exporter (``otlp`` or ``console``); it counts its failures into ``meter_provider``."""
    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    protocol, kwargs = _otlp_kwargs(settings, "metrics", meter_provider)
    if protocol == "grpc":
        _require_grpc("metrics")
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

        exporter: MetricExporter = gated_grpc_exporter(GrpcMetricExporter)(**kwargs)
        return exporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(**kwargs)
