"""Telemetry failures never break or block the application, and what is lost is counted."""

from __future__ import annotations

import time

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_dist
from otel_dist.bootstrap import Extras
from tests.support.otlp_receiver import OtlpReceiver, blackhole, free_port


def point_sum(reader: InMemoryMetricReader, name: str, **attributes: object) -> int:
    data = reader.get_metrics_data()
    total = 0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    if all(point.attributes.get(k) == v for k, v in attributes.items()):
                        total += int(point.value)
    return total


def test_full_span_queue_drops_are_counted_and_never_block(configure) -> None:
    reader = InMemoryMetricReader()
    with blackhole() as hung_collector:
        configure(
            endpoint=hung_collector,
            metrics_exporter="none",
            logs_exporter="none",
            span_queue_size=20,
            span_batch_size=10,
            _extras=Extras(metric_readers=(reader,), cache_loggers=False),
        )
        tracer = trace.get_tracer("load")
        for i in range(1000):  # the exporter is stuck in its first request: the queue fills at once
            with tracer.start_as_current_span(f"request-{i}"):
                pass
        dropped = point_sum(reader, "otel.sdk.processor.span.processed", **{"error.type": "queue_full"})
    assert 900 <= dropped <= 1000


def test_failed_exports_are_counted_when_the_collector_is_down(configure) -> None:
    reader = InMemoryMetricReader()
    telemetry = configure(
        endpoint=f"http://127.0.0.1:{free_port()}",
        metrics_exporter="none",
        export_timeout=0.5,
        _extras=Extras(metric_readers=(reader,), cache_loggers=False),
    )
    tracer = trace.get_tracer("load")
    log = otel_dist.get_logger("app")
    for i in range(50):
        with tracer.start_as_current_span(f"request-{i}"):
            log.info("handled", i=i)
    telemetry.force_flush(5)
    assert point_sum(reader, "otel.sdk.exporter.span.exported") == 50
    assert point_sum(reader, "otel.sdk.exporter.span.exported", **{"error.type": "ConnectionError"}) == 50
    assert point_sum(reader, "otel.sdk.exporter.log.exported", **{"error.type": "ConnectionError"}) == 50


def test_shutdown_honours_its_deadline_against_a_collector_that_never_answers(configure) -> None:
    with blackhole() as hung_collector:
        telemetry = configure(endpoint=hung_collector, export_timeout=30.0, metric_export_interval=60.0)
        with trace.get_tracer("t").start_as_current_span("stuck"):
            otel_dist.get_logger().info("stuck.log")
        metrics.get_meter("m").create_counter("stuck.count").add(1)
        time.sleep(0.3)  # the batch processors are now inside a request that will never be answered
        started = time.monotonic()
        finished = telemetry.shutdown(timeout=1.0)
        elapsed = time.monotonic() - started
    assert finished is False  # it says it gave up
    assert elapsed < 2.5  # a deadline of 1 s, not the SDK's 10 s per signal


def test_logging_and_spans_keep_working_while_the_collector_hangs(configure, capsys) -> None:
    with blackhole() as hung_collector:
        configure(endpoint=hung_collector, span_queue_size=64, log_queue_size=64)
        tracer = trace.get_tracer("t")
        log = otel_dist.get_logger("app")
        for i in range(2000):  # would take hours if any of it waited for the collector
            with tracer.start_as_current_span("request"):
                log.info("request.done", i=i)
    lines = capsys.readouterr().out.splitlines()
    assert sum('"request.done"' in line for line in lines) == 2000


def test_exporter_errors_are_rate_limited(configure, capsys) -> None:
    telemetry = configure(endpoint=f"http://127.0.0.1:{free_port()}", export_timeout=0.2, metrics_exporter="none")
    for _ in range(5):
        with trace.get_tracer("t").start_as_current_span("s"):
            pass
        telemetry.force_flush(3)
    out = capsys.readouterr().out
    failures = [line for line in out.splitlines() if "Failed to export spans" in line]
    assert len(failures) == 1, out


def test_cardinality_overflow_keeps_totals(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, cardinality_limit=5, traces_exporter="none", logs_exporter="none")
    counter = metrics.get_meter("m").create_counter("requests")
    for user in range(50):
        counter.add(2, {"user": f"u{user}"})
    telemetry.force_flush(5)
    points = receiver.latest_points("requests")
    assert len(points) == 6  # the first 5 attribute sets, then one overflow series
    overflow = [p for attrs, p in points if attrs.get("otel.metric.overflow") is True]
    assert len(overflow) == 1
    assert sum(p.as_int for _, p in points) == 100
    assert overflow[0].as_int == 2 * (50 - 5)


def test_a_batch_refused_with_503_is_counted_as_a_failure_named_after_the_status(receiver, configure) -> None:
    """The SDK alone counts a batch dropped after 503s as exported (no error.type); our transport names it."""
    reader = InMemoryMetricReader()
    receiver.status, receiver.retry_after = 503, "0"
    telemetry = configure(
        endpoint=receiver.endpoint,
        metrics_exporter="none",
        logs_exporter="none",
        export_timeout=0.5,
        _extras=Extras(metric_readers=(reader,), cache_loggers=False),
    )
    for i in range(5):
        with trace.get_tracer("t").start_as_current_span(f"refused-{i}"):
            pass
    telemetry.force_flush(5)
    assert point_sum(reader, "otel.sdk.exporter.span.exported", **{"error.type": "ServiceUnavailable"}) == 5
    receiver.status = 429
    with trace.get_tracer("t").start_as_current_span("throttled"):
        pass
    telemetry.force_flush(5)
    assert point_sum(reader, "otel.sdk.exporter.span.exported", **{"error.type": "TooManyRequests"}) == 1


def test_retry_after_holds_the_next_batch_too(receiver, configure) -> None:
    """A batch gives up when Retry-After outlasts its timeout; the next one still waits for the time named."""
    receiver.status, receiver.retry_after = 429, "1"
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none", logs_exporter="none", export_timeout=0.5)
    tracer = trace.get_tracer("t")
    with tracer.start_as_current_span("first"):
        pass
    telemetry.force_flush(5)  # refused with Retry-After: 1 s, more than its 0.5 s budget: given up at once
    receiver.status = 200
    with tracer.start_as_current_span("second"):
        pass
    telemetry.force_flush(5)
    times = [at for at, signal in receiver.attempts if signal == "traces"]
    assert len(times) == 2, times
    assert times[1] - times[0] >= 0.45  # held (up to its own 0.5 s timeout), not sent 20 ms later
    assert [s.item.name for s in receiver.spans()] == ["second"]


def test_grpc_retry_info_holds_the_next_batch_and_refusals_are_named(configure) -> None:
    """Over gRPC the SDK ignores the RetryInfo a server sends (in the status details) and sends the next batch at
    once, counting the drop as "_InactiveRpcError"; ours waits the named delay and names the code."""
    from tests.reliability.grpc_proxy import GrpcFaultProxy

    reader = InMemoryMetricReader()
    with GrpcFaultProxy(("127.0.0.1", free_port()), mode="status", retry_delay=0.4) as proxy:
        telemetry = configure(
            endpoint=proxy.endpoint,
            protocol="grpc",
            metrics_exporter="none",
            logs_exporter="none",
            export_timeout=0.3,
            _extras=Extras(metric_readers=(reader,), cache_loggers=False),
        )
        tracer = trace.get_tracer("t")
        for name in ("first", "second"):
            with tracer.start_as_current_span(name):
                pass
            telemetry.force_flush(5)  # each refused: RetryInfo 0.4 s outlasts its 0.3 s budget, given up at once
        times = [attempt.at for attempt in proxy.attempts]
    assert len(times) == 2, times
    assert times[1] - times[0] >= 0.28  # held (up to its own 0.3 s timeout), not sent at once
    assert point_sum(reader, "otel.sdk.exporter.span.exported", **{"error.type": "ResourceExhausted"}) == 2
