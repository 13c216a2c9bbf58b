"""Exporter factories: Settings -> the span, metric and log exporters of each chosen kind.

The OTLP exporters are imported lazily so that the gRPC stack (grpcio) is only loaded when a signal uses it.
Every value is passed explicitly: the exporters would otherwise read OTEL_* variables on their own.

With ``fast_export`` (the default) spans and log records sent over OTLP/HTTP are encoded by
:mod:`otel_dist.otlp_encoding` instead of the SDK's protobuf object tree: the exporters below are the SDK's own
OTLP/HTTP exporters (session, TLS, headers, compression, retries with backoff, timeout, shutdown, the
``otel.sdk.exporter.*`` self-metrics) with only the encoding step replaced. ``fast_export=False`` gives the stock
exporters; gRPC always uses the stock ones.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_dist.otlp_encoding import LogEncoder, SpanEncoder
from otel_dist.settings import ConfigurationError, OtlpSignalSettings, Settings, Signal
from otel_dist.transport import gated_grpc_exporter

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

#: What the encoding-only override relies on in the SDK's OTLP/HTTP exporters; without any of it (another SDK
#: version), the exporter falls back to the SDK's own export().
_SDK_EXPORTER_PARTS: Final = ("_shutdown", "_metrics", "_max_request_size", "_client")


def _export_encoded(exporter: Any, count: int, encode: Callable[[], bytes], kind: str, log: logging.Logger) -> bool:
    """The SDK exporters' export() with our encoding: the same checks, self-metrics, size limit and transport."""
    from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError, _is_request_too_large
    from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

    if exporter._shutdown:
        log.warning("Exporter already shutdown, ignoring batch")
        return False
    with exporter._metrics.export_operation(count) as result:
        try:
            data = encode()
        except Exception as error:  # noqa: BLE001 - as the SDK does: the batch fails, the thread goes on
            log.error("Failed to encode %s batch: %s", kind, error)
            result.error = error
            return False
        if _is_request_too_large(data, exporter._max_request_size):
            log.warning(
                "Dropping %s batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                kind,
                len(data),
                exporter._max_request_size,
            )
            result.error = RequestPayloadTooLargeError(
                f"Serialized {kind} request size {len(data)} bytes exceeds max_request_size "
                f"{exporter._max_request_size} bytes."
            )
            return False
        outcome = exporter._client.export(data)
        if not outcome.success:
            result.error = outcome.error
            result.error_attrs = (
                {HTTP_RESPONSE_STATUS_CODE: outcome.status_code} if outcome.status_code is not None else None
            )
            return False
    return True


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter with :class:`~otel_dist.otlp_encoding.SpanEncoder` as its encoding."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()
        self._fast = all(hasattr(self, part) for part in _SDK_EXPORTER_PARTS)
        # The SDK exporter module's logger: rate-limited, and never exported (an export failure must not produce
        # more records to export).
        self._log = logging.getLogger(OTLPSpanExporter.__module__)

    @property
    def encodes_directly(self) -> bool:
        """False when the installed SDK exporter lacks the parts the direct encoding relies on (its export() runs)."""
        return self._fast

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._fast:
            return super().export(spans)
        ok = _export_encoded(self, len(spans), lambda: self._encoder.encode(spans), "span", self._log)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class FastOTLPLogExporter(OTLPLogExporter):
    """The SDK's OTLP/HTTP log exporter with :class:`~otel_dist.otlp_encoding.LogEncoder` as its encoding.

    It also takes the request path's :class:`~otel_dist.otlp_encoding.LeanLogRecord` (see
    :class:`otel_dist.logs.LeanBatchLogRecordProcessor`), bounded here by the log-record limits.
    """

    def __init__(
        self, *, max_attributes: int | None = None, max_value_length: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._encoder = LogEncoder(max_attributes, max_value_length)
        self._fast = all(hasattr(self, part) for part in _SDK_EXPORTER_PARTS)
        self._log = logging.getLogger(OTLPLogExporter.__module__)

    @property
    def takes_lean_records(self) -> bool:
        """True when export() encodes LeanLogRecords itself (the SDK's export() would not)."""
        return self._fast

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if not self._fast:
            return super().export(batch)
        ok = _export_encoded(self, len(batch), lambda: self._encoder.encode(batch), "logs", self._log)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


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
                exporters.append((FastOTLPSpanExporter if settings.fast_export else OTLPSpanExporter)(**kwargs))
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
            elif settings.fast_export:
                limits = {
                    "max_attributes": settings.attribute_count_limit,
                    "max_value_length": settings.attribute_value_length_limit,
                }
                exporters.append(FastOTLPLogExporter(**limits, **kwargs))
            else:
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
