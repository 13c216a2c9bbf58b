"""A pytest plugin: capture the spans, metric points and log records your code produces, in memory.

Installed with otel-dist (``pytest11`` entry point); use the fixture in your own tests::

    def test_parse_records_a_span(otel_capture):
        parse("# hello")
        assert otel_capture.span_names() == ["parse"]
        assert otel_capture.metric_value("parser.documents", kind="markdown") == 1
        assert otel_capture.logs[0].body == "document.parsed"

Each test gets a freshly configured process (the same configure() as production, exporters replaced by
in-memory ones) and everything is torn down afterwards, so tests do not see each other's telemetry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dist import bootstrap
from otel_dist.settings import Options

__all__ = ["CapturedTelemetry", "capture", "otel_capture", "reset_global_providers"]


def reset_global_providers() -> None:
    """Forget the global tracer, meter and logger providers so a later configure() can install new ones.

    The OpenTelemetry API lets a process install each global provider once; tests need it many times. This
    resets the API's private set-once guards (the same thing the OpenTelemetry project's test utilities do).
    """
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()
    metrics._internal._METER_PROVIDER = None
    _logs._internal._LOGGER_PROVIDER_SET_ONCE = Once()
    _logs._internal._LOGGER_PROVIDER = None


@dataclass
class CapturedTelemetry:
    """What the code under test produced. Spans and logs arrive as they end; metrics are collected on demand."""

    telemetry: bootstrap.Telemetry
    _spans: InMemorySpanExporter
    _logs: InMemoryLogRecordExporter
    _metrics: InMemoryMetricReader
    _metric_points: list[tuple[str, Mapping[str, Any], Any]] = field(default_factory=list)

    @property
    def spans(self) -> list[ReadableSpan]:
        """Ended spans, oldest first."""
        return list(self._spans.get_finished_spans())

    @property
    def logs(self) -> list[ReadableLogRecord]:
        """Emitted OTel log records, oldest first."""
        return list(self._logs.get_finished_logs())

    def span_names(self) -> list[str]:
        """Names of the ended spans, oldest first."""
        return [span.name for span in self.spans]

    def metric_points(self, name: str) -> list[tuple[Mapping[str, Any], Any]]:
        """(attributes, point) of every data point of metric ``name``, collected now."""
        data = self._metrics.get_metrics_data()
        found: list[tuple[Mapping[str, Any], Any]] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
        return found

    def metric_value(self, name: str, **attributes: Any) -> Any:
        """The value (sum, or count for histograms) of the point of ``name`` whose attributes include these."""
        for point_attributes, point in self.metric_points(name):
            if all(point_attributes.get(k) == v for k, v in attributes.items()):
                return getattr(point, "value", None) if hasattr(point, "value") else point.count
        return None

    def clear(self) -> None:
        """Forget spans and logs captured so far (metrics are cumulative, as in production)."""
        self._spans.clear()
        self._logs.clear()


def capture(**options: Any) -> CapturedTelemetry:
    """Configure otel-dist with in-memory exporters (and no network, no process metrics unless asked)."""
    spans = InMemorySpanExporter()
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    reader = InMemoryMetricReader()
    defaults: Options = {
        "service_name": "test",
        "traces_exporter": "none",
        "metrics_exporter": "none",
        "logs_exporter": "none",
        "system_metrics": False,
        "handle_sigterm": False,
    }
    telemetry = bootstrap.configure(
        _extras=bootstrap.Extras(
            span_processors=(SimpleSpanProcessor(spans),),
            log_processors=(SimpleLogRecordProcessor(logs),),
            metric_readers=(reader,),
            cache_loggers=False,  # module-level loggers must follow each test's configuration
        ),
        **{**defaults, **options},
    )
    return CapturedTelemetry(telemetry, spans, logs, reader)


@pytest.fixture
def otel_capture() -> Iterator[CapturedTelemetry]:
    """Telemetry of this test, captured in memory; isolated from other tests."""
    if bootstrap.current() is not None:
        pytest.fail("otel-dist is already configured in this process; otel_capture needs a clean process")
    captured = capture()
    try:
        yield captured
    finally:
        captured.telemetry.shutdown(timeout=5)
        reset_global_providers()
