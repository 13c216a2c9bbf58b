"""The direct OTLP encoder writes exactly the bytes the SDK's protobuf encoder writes for the same items."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState

from otel_dist.otlp_encoding import PER_KEY_LIMIT, LeanLogRecord, LogEncoder, SpanEncoder

RESOURCE = Resource.create({"service.name": "encoder-test", "service.version": "1.0", "host.cores": 2})

keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
strings = st.text(st.characters(codec="utf-8"), max_size=40)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False)  # NaN != NaN would make the decoded comparison meaningless (bytes still equal)
primitives = st.one_of(strings, st.booleans(), int64, floats)
#: What span attributes may hold: primitives and homogeneous sequences of them.
span_values = st.one_of(
    primitives,
    st.lists(strings, max_size=4),
    st.lists(st.booleans(), max_size=4),
    st.lists(int64, max_size=4),
    st.lists(floats, max_size=4),
)
#: Log-record attributes may also nest (the SDK's extended attributes): maps, bytes, None.
log_values = st.recursive(
    st.one_of(primitives, st.binary(max_size=8), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)
span_attributes = st.dictionaries(keys, span_values, max_size=8)


def _spans_of(build: Any) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider)
    return list(exporter.get_finished_spans())


def _assert_same_spans(spans: list[ReadableSpan]) -> None:
    ours = SpanEncoder().encode(spans)
    sdk = encode_spans(spans).SerializePartialToString()
    assert ours == sdk
    decoded = ExportTraceServiceRequest()
    decoded.ParseFromString(ours)
    assert decoded == encode_spans(spans)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.lists(span_attributes, min_size=1, max_size=4),
    event_attributes=span_attributes,
    name=strings,
    kind=st.sampled_from(list(SpanKind)),
    status=st.sampled_from([Status(StatusCode.UNSET), Status(StatusCode.OK), Status(StatusCode.ERROR, "boom")]),
    remote_parent=st.booleans(),
)
def test_spans_encode_to_the_sdk_bytes(
    attributes: list[dict[str, Any]],
    event_attributes: dict[str, Any],
    name: str,
    kind: SpanKind,
    status: Status,
    remote_parent: bool,
) -> None:
    parent = SpanContext(
        0xABC, 0xDEF, is_remote=remote_parent, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")])
    )

    def build(provider: TracerProvider) -> None:
        tracer = provider.get_tracer("lib", "2.0", schema_url="https://opentelemetry.io/schemas/1.44.0")
        other = provider.get_tracer("other")
        for index, attrs in enumerate(attributes):
            context = set_span_in_context(NonRecordingSpan(parent)) if index == 0 else None
            with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attrs) as span:
                span.add_event("event", event_attributes, timestamp=1_700_000_000_000_000_000)
                span.set_status(status)
                with other.start_as_current_span("child", links=[Link(parent, {"link": True})]):
                    pass

    _assert_same_spans(_spans_of(build))


def test_dropped_counts_and_empty_values_encode_to_the_sdk_bytes() -> None:
    def build(provider: TracerProvider) -> None:
        from opentelemetry.sdk.trace import SpanLimits

        limited = TracerProvider(
            resource=RESOURCE,
            span_limits=SpanLimits(max_span_attributes=2, max_events=1, max_links=1),
            shutdown_on_exit=False,
        )
        limited._active_span_processor = provider._active_span_processor
        tracer = limited.get_tracer("")
        with tracer.start_as_current_span("", attributes={"a": 1, "b": "", "c": 0.0, "d": False}) as span:
            span.add_event("e1")
            span.add_event("e2", {"x": ""})
        context = SpanContext(1, 2, is_remote=True)
        with tracer.start_as_current_span("links", links=[Link(context), Link(context, {"y": -1})]):
            pass

    spans = _spans_of(build)
    assert (spans[0].dropped_attributes, spans[0].dropped_events, spans[1].dropped_links) == (2, 1, 1)
    _assert_same_spans(spans)


def test_spans_of_several_resources_and_scopes_are_grouped_like_the_sdk() -> None:
    def build(provider: TracerProvider) -> None:
        for name in ("a", "b", "a", "c", "b"):
            with provider.get_tracer(name).start_as_current_span(name):
                pass

    spans = _spans_of(build)
    other = ReadableSpan(
        name="elsewhere",
        context=spans[0].context,
        resource=Resource.create({"service.name": "x"}),
        instrumentation_scope=spans[0].instrumentation_scope,
    )
    same_resource_copy = ReadableSpan(
        name="copy", context=spans[1].context, resource=Resource(dict(RESOURCE.attributes)), instrumentation_scope=None
    )
    _assert_same_spans([*spans[:2], other, *spans[2:], same_resource_copy])


def test_an_attribute_the_sdk_cannot_encode_is_left_out_alike(caplog: pytest.LogCaptureFixture) -> None:
    span = ReadableSpan(
        name="big",
        context=SpanContext(1, 2, is_remote=False),
        resource=RESOURCE,
        attributes={"ok": 1, "huge": 2**70, "also_ok": "x"},
    )
    _assert_same_spans([span, span])
    warnings = [r for r in caplog.records if r.name == "otel_dist.otlp_encoding"]
    assert [w.getMessage().split(" left out")[0] for w in warnings] == ["attribute 'huge'"]  # once, not per span


def test_invalid_utf8_is_replaced_instead_of_failing_the_batch() -> None:
    span = ReadableSpan(
        name="s\ud800", context=SpanContext(1, 2, is_remote=False), resource=RESOURCE, attributes={"text": "a\udfffb"}
    )
    decoded = ExportTraceServiceRequest()
    decoded.ParseFromString(SpanEncoder().encode([span]))
    [encoded] = decoded.resource_spans[0].scope_spans[0].spans
    assert encoded.name == "s?"
    assert encoded.attributes[0].value.string_value == "a?b"


def test_values_that_never_repeat_stop_being_cached() -> None:
    encoder = SpanEncoder()
    spans = [
        ReadableSpan(
            name="GET /",
            context=SpanContext(1, i + 1, is_remote=False),
            resource=RESOURCE,
            attributes={"http.request.method": "GET", "request_id": f"{i:032x}", "duration": i / 7},
        )
        for i in range(PER_KEY_LIMIT * 4)
    ]
    assert encoder.encode(spans) == encode_spans(spans).SerializePartialToString()
    cached_keys = [key for _tag, key, _kind, _value in encoder.attributes._cache]
    assert cached_keys.count("request_id") == PER_KEY_LIMIT
    assert cached_keys.count("http.request.method") == 1
    assert "duration" not in cached_keys  # floats are never cached


# ----------------------------------------------------------------------------------------------------------------
# Log records
# ----------------------------------------------------------------------------------------------------------------


def _sdk_records(emits: list[dict[str, Any]], limits: LogRecordLimits | None = None) -> list[ReadableLogRecord]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False, log_record_limits=limits)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    for emit in emits:
        scope = emit.pop("scope", "app")
        provider.get_logger(scope).emit(**emit)
    return list(exporter.get_finished_logs())


def _assert_same_logs(records: list[Any], sdk_records: list[ReadableLogRecord] | None = None, **limits: Any) -> None:
    ours = LogEncoder(**limits).encode(records)
    sdk = encode_logs(sdk_records if sdk_records is not None else records).SerializeToString()
    assert ours == sdk


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.lists(st.dictionaries(keys, log_values, max_size=6), min_size=1, max_size=4),
    body=st.one_of(strings, log_values),
    severity=st.sampled_from([None, *SeverityNumber]),
    severity_text=st.one_of(st.none(), strings),
    event_name=st.one_of(st.none(), strings),
)
def test_sdk_log_records_encode_to_the_sdk_bytes(
    attributes: list[dict[str, Any]],
    body: Any,
    severity: SeverityNumber | None,
    severity_text: str | None,
    event_name: str | None,
) -> None:
    span = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1)))
    emits = [
        {
            "timestamp": 1_700_000_000_123_456_789 + i,
            "observed_timestamp": 1_700_000_000_200_000_000,
            "severity_number": severity,
            "severity_text": severity_text,
            "body": body,
            "attributes": attrs,
            "event_name": event_name,
            "context": set_span_in_context(span) if i % 2 else None,
            "scope": "app" if i < 2 else "lib",
        }
        for i, attrs in enumerate(attributes)
    ]
    _assert_same_logs(_sdk_records(emits))


def _lean(record: ReadableLogRecord) -> LeanLogRecord:
    """The lean record the logging pipeline would have made for ``record``."""
    log = record.log_record
    assert log.timestamp is not None
    assert log.severity_number is not None
    assert log.severity_text is not None
    return LeanLogRecord(
        log.timestamp,
        log.severity_number.value,
        log.severity_text,
        str(log.body),
        dict(log.attributes or {}),
        log.trace_id or 0,
        log.span_id or 0,
        int(log.trace_flags or 0),
        record.resource,
        record.instrumentation_scope,
    )


#: What EmitOtelRecord hands over: OTel-typed values (primitives, lists of strings; anything else as JSON text).
lean_values = st.one_of(primitives, st.lists(strings, min_size=1, max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attributes=st.lists(st.dictionaries(keys, lean_values, max_size=8), min_size=1, max_size=4),
    body=strings,
    level=st.sampled_from([(SeverityNumber.INFO, "INFO"), (SeverityNumber.ERROR, "ERROR")]),
    sampled=st.booleans(),
)
def test_lean_log_records_encode_like_the_sdk_records_of_the_same_event(
    attributes: list[dict[str, Any]], body: str, level: tuple[SeverityNumber, str], sampled: bool
) -> None:
    span = NonRecordingSpan(SpanContext(0xFEED, 0xBEEF, is_remote=False, trace_flags=TraceFlags(int(sampled))))
    emits = [
        {
            "timestamp": 1_700_000_000_000_000_000 + i,
            "observed_timestamp": 1_700_000_000_000_000_000 + i,
            "severity_number": level[0],
            "severity_text": level[1],
            "body": body,
            "attributes": attrs,
            "context": set_span_in_context(span),
            "scope": f"logger{i % 2}",
        }
        for i, attrs in enumerate(attributes)
    ]
    sdk_records = _sdk_records(emits)
    _assert_same_logs([_lean(r) for r in sdk_records], sdk_records)
    mixed = [_lean(r) if i % 2 else r for i, r in enumerate(sdk_records)]  # one batch may hold both kinds
    _assert_same_logs(mixed, sdk_records)


@pytest.mark.filterwarnings("ignore::opentelemetry.sdk._logs.LogRecordDroppedAttributesWarning")
def test_lean_records_get_the_sdk_limits_applied_when_encoded() -> None:
    attributes = {f"k{i}": "x" * (10 + i) for i in range(8)} | {"": "empty key"}
    emit = {
        "timestamp": 1,
        "observed_timestamp": 1,
        "severity_number": SeverityNumber.WARN,
        "severity_text": "WARN",
        "body": "limited",
        "attributes": attributes,
    }
    sdk_records = _sdk_records([emit], LogRecordLimits(max_attributes=5, max_attribute_length=12))
    assert sdk_records[0].dropped_attributes == 4
    lean = _lean(sdk_records[0])._replace(attributes=attributes)
    _assert_same_logs([lean], sdk_records, max_attributes=5, max_value_length=12)


def test_a_log_body_the_sdk_cannot_encode_is_sent_as_text() -> None:
    [record] = _sdk_records([{"timestamp": 1, "body": "placeholder"}])
    record.log_record.body = object()  # the SDK encoder fails the whole batch on it
    decoded = ExportLogsServiceRequest()
    decoded.ParseFromString(LogEncoder().encode([record]))
    assert decoded.resource_logs[0].scope_logs[0].log_records[0].body.string_value.startswith("<object object")


def test_nan_and_negative_zero_keep_their_bits() -> None:
    spans = [
        ReadableSpan(name="f", context=SpanContext(1, 2, is_remote=False), resource=RESOURCE, attributes={"v": value})
        for value in (0.0, -0.0, math.nan, math.inf, 0.0)
    ]
    assert SpanEncoder().encode(spans) == encode_spans(spans).SerializePartialToString()
