"""A pytest plugin: capture the spans, metric points and log records your code produces, in memory.

Installed with otel-dist (``pytest11`` entry point); use the fixture in your own tests::

    def test_parse_records_a_span(otel_capture):
        parse("# hello")
        assert otel_capture.span_names() == ["parse"]
        assert otel_capture.metric_value("parser.documents", kind="markdown") == 1
        assert otel_capture.logs[0].log_record.body == "document.parsed"

The process is configured once per test session (the same configure() as production, exporters replaced by
in-memory ones), because libraries create their tracers and instruments once, at import, and must keep
reporting to the same providers. Each test then starts empty: spans and log records are cleared, and metrics
are read as deltas, so a test sees only what it produced.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_dist import bootstrap
from otel_dist.settings import Options

__all__ = ["CapturedTelemetry", "capture", "otel_capture", "reset_global_providers"]

_DELTA: dict[type, AggregationTemporality] = dict.fromkeys(
    (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge),
    AggregationTemporality.DELTA,
)


def reset_global_providers() -> None:
    """Forget the global tracer, meter and logger providers so a later configure() can install new ones.

    The OpenTelemetry API lets a process install each global provider once; a test suite that configures the
    process repeatedly needs it many times. This resets the API's private set-once guards (as the
    OpenTelemetry project's own test utilities do). Instruments created before the reset keep reporting to the
    old providers: prefer the session-wide ``otel_capture`` fixture.
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
    """What the code under test produced since the last :meth:`clear`."""

    telemetry: bootstrap.Telemetry
    _spans: InMemorySpanExporter
    _logs: InMemoryLogRecordExporter
    _metrics: InMemoryMetricReader
    _points: list[tuple[str, str, Mapping[str, Any], Any]] = field(default_factory=list)

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

    def _collect(self) -> None:
        data = self._metrics.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = type(metric.data).__name__  # Sum, Gauge, Histogram, ExponentialHistogram
                    for point in metric.data.data_points:
                        self._points.append((metric.name, kind, dict(point.attributes or {}), point))

    def metric_points(self, name: str) -> list[tuple[Mapping[str, Any], Any]]:
        """(attributes, point) of every data point of metric ``name`` recorded so far in this test (deltas)."""
        self._collect()
        return [(attributes, point) for metric, _, attributes, point in self._points if metric == name]

    def metric_value(self, name: str, **attributes: Any) -> Any:
        """The total of ``name`` for series whose attributes include these: the sum of a counter, the count of a
        histogram, the last value of a gauge; None when nothing was recorded."""
        self._collect()
        matching = [
            (kind, point)
            for metric, kind, point_attributes, point in self._points
            if metric == name and all(point_attributes.get(k) == v for k, v in attributes.items())
        ]
        if not matching:
            return None
        kind = matching[0][0]
        if kind == "Gauge":
            return matching[-1][1].value
        if kind.endswith("Histogram"):
            return sum(point.count for _, point in matching)
        return sum(point.value for _, point in matching)

    def clear(self) -> None:
        """Forget everything captured so far (what the metric instruments hold is drained)."""
        self._spans.clear()
        self._logs.clear()
        self._metrics.get_metrics_data()
        self._points.clear()


def capture(**options: Any) -> CapturedTelemetry:
    """Configure otel-dist with in-memory exporters (no network, no process metrics unless asked)."""
    spans = InMemorySpanExporter()
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    reader = InMemoryMetricReader(preferred_temporality=_DELTA)
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
        ),
        **{**defaults, **options},
    )
    return CapturedTelemetry(telemetry, spans, logs, reader)


@pytest.fixture(scope="session")
def _otel_session_capture() -> Iterator[CapturedTelemetry]:
    if bootstrap.current() is not None:
        pytest.fail("otel-dist is already configured in this process; otel_capture needs to configure it itself")
    captured = capture()
    yield captured
    captured.telemetry.shutdown(timeout=5)
    reset_global_providers()


@pytest.fixture
def otel_capture(_otel_session_capture: CapturedTelemetry) -> CapturedTelemetry:
    """Telemetry produced during this test, captured in memory; nothing from earlier tests."""
    _otel_session_capture.clear()
    return _otel_session_capture
