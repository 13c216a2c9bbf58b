"""OTEL_DIST_FAST_EXPORT: the direct encoder and the lean log-record path, against the stock SDK path they replace.

Both paths are run against the same real OTLP/HTTP receiver and must deliver the same spans and log records;
drops are counted by the same SDK self-metrics; the switch gives the stock exporters and processors back.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_dist
from otel_dist.bootstrap import Extras
from otel_dist.exporters import FastOTLPLogExporter, FastOTLPSpanExporter, span_exporters
from otel_dist.logs import LeanBatchLogRecordProcessor
from otel_dist.settings import resolve
from otel_dist.testing import reset_global_providers
from tests.integration.test_reliability import point_sum
from tests.support.otlp_receiver import OtlpReceiver, blackhole, wait_for

#: Fields that differ between two runs by nature (times, IDs), blanked before comparing.
_VARYING = {
    "timeUnixNano",
    "observedTimeUnixNano",
    "traceId",
    "spanId",
    "parentSpanId",
    "startTimeUnixNano",
    "endTimeUnixNano",
}
_VARYING_ATTRIBUTES = {"service.instance.id", "process.pid", "exception.stacktrace", "request_id"}


def _comparable(message: Any) -> Any:
    """A decoded item as a dict, without the fields that differ between runs."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in _VARYING}
        if isinstance(value, list):
            return [clean(v) for v in value if not (isinstance(v, dict) and v.get("key") in _VARYING_ATTRIBUTES)]
        return value

    return clean(MessageToDict(message))


def _workload() -> None:
    log = otel_dist.get_logger("app.orders")
    with trace.get_tracer("app").start_as_current_span("place-order", attributes={"order.items": 3}) as span:
        span.set_attribute("customer.tier", "gold")
        log.info("order.placed", items=3, total=9.99, tags=["a", "b"], detail={"nested": True}, password="hunter2")
        logging.getLogger("library").warning("slow call took %d ms", 250, extra={"attempt": 2})
        try:
            raise ValueError("card declined")
        except ValueError:
            log.exception("payment.failed")
    log.info("outside.any.span")


def _delivered(receiver: OtlpReceiver) -> tuple[list[Any], list[Any]]:
    spans = [(s.resource, s.scope, _comparable(s.item)) for s in receiver.spans()]
    logs = [(r.resource, r.scope, _comparable(r.item)) for r in receiver.logs()]
    for resource, _, _ in spans + logs:
        for key in _VARYING_ATTRIBUTES:
            resource.pop(key, None)
    return spans, logs


def test_both_paths_deliver_the_same_spans_and_records(receiver: OtlpReceiver, configure: Any) -> None:
    delivered = []
    for fast in (True, False):
        telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none", fast_export=fast)
        _workload()
        assert telemetry.force_flush(5)
        delivered.append(_delivered(receiver))
        telemetry.shutdown(timeout=3)
        reset_global_providers()
        receiver.clear()
    (fast_spans, fast_logs), (stock_spans, stock_logs) = delivered
    assert len(fast_logs) == 4
    assert fast_spans == stock_spans
    assert fast_logs == stock_logs
    [placed] = [item for _, _, item in fast_logs if item["body"] == {"stringValue": "order.placed"}]
    assert {"key": "password", "value": {"stringValue": "[REDACTED]"}} in placed["attributes"]
    [failed] = [item for _, _, item in fast_logs if item["body"] == {"stringValue": "payment.failed"}]
    assert {"key": "exception.type", "value": {"stringValue": "ValueError"}} in failed["attributes"]


def test_the_switch_gives_the_stock_exporters_and_processors(configure: Any) -> None:
    assert [type(e) for e in span_exporters(resolve({"fast_export": True}), None)] == [FastOTLPSpanExporter]
    assert [type(e) for e in span_exporters(resolve({"fast_export": False}), None)] == [OTLPSpanExporter]
    grpc = resolve({"fast_export": True, "protocol": "grpc"})
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    assert not isinstance(span_exporters(grpc, None)[0], FastOTLPSpanExporter)  # gRPC keeps the stock encoder

    for fast, processor_type, exporter_type in (
        (True, LeanBatchLogRecordProcessor, FastOTLPLogExporter),
        (False, BatchLogRecordProcessor, OTLPLogExporter),
    ):
        telemetry = configure(metrics_exporter="none", fast_export=fast)
        assert telemetry.logger_provider is not None
        [processor] = telemetry.logger_provider._multi_log_record_processor._log_record_processors
        assert type(processor) is processor_type
        assert type(processor._batch_processor._exporter._inner) is exporter_type  # inside the redacting wrapper
        telemetry.shutdown(timeout=3)
        reset_global_providers()


def test_log_records_dropped_on_the_lean_path_are_counted_and_never_block(configure: Any) -> None:
    reader = InMemoryMetricReader()
    with blackhole() as hung_collector:
        configure(
            endpoint=hung_collector,
            metrics_exporter="none",
            traces_exporter="none",
            log_queue_size=20,
            log_batch_size=10,
            _extras=Extras(metric_readers=(reader,), cache_loggers=False),
        )
        log = otel_dist.get_logger("load")
        for i in range(1000):  # the exporter is stuck in its first request: the queue fills at once
            log.info("request.handled", i=i)
        dropped = point_sum(reader, "otel.sdk.processor.log.processed", **{"error.type": "queue_full"})
    assert 900 <= dropped <= 1000


def test_a_processor_added_later_gets_every_record(receiver: OtlpReceiver, configure: Any) -> None:
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none")
    log = otel_dist.get_logger("app")
    log.info("before")
    memory = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    assert telemetry.logger_provider is not None
    telemetry.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    log.info("after", n=1)
    telemetry.force_flush(5)
    assert [r.log_record.body for r in memory.get_finished_logs()] == ["after"]
    assert sorted(r.item.body.string_value for r in wait_for(receiver.logs)) == ["after", "before"]
