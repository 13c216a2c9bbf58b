"""Processors and the rate-limit filter, called as structlog and logging call them."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider

from otel_dist.context import reset_request_id, set_request_id
from otel_dist.logging.processors import (
    TIME_NS_KEY,
    AddServiceIdentity,
    add_request_id,
    add_timestamp,
    add_trace_context,
    drop_private_keys,
)
from otel_dist.logging.rate_limit import RateLimitFilter


def test_timestamp_is_iso8601_utc_and_matches_the_record_time() -> None:
    event = add_timestamp(None, "info", {})
    assert event["timestamp"].endswith("Z")
    assert "T" in event["timestamp"]
    assert isinstance(event[TIME_NS_KEY], int)
    assert TIME_NS_KEY not in drop_private_keys(None, "info", event)


def test_trace_context_only_inside_a_span() -> None:
    assert "trace_id" not in add_trace_context(None, "info", {})
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        event = add_trace_context(None, "info", {})
    assert event["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert len(event["span_id"]) == 16


def test_request_id_from_context() -> None:
    token = set_request_id("req-1")
    try:
        assert add_request_id(None, "info", {})["request_id"] == "req-1"
    finally:
        reset_request_id(token)
    assert "request_id" not in add_request_id(None, "info", {})


def test_service_identity_does_not_overwrite_an_explicit_field() -> None:
    add = AddServiceIdentity({"service.name": "api"})
    assert add(None, "info", {})["service.name"] == "api"
    assert add(None, "info", {"service.name": "other"})["service.name"] == "other"


def record(message: str, name: str = "opentelemetry.exporter") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)


def test_rate_limit_passes_one_record_per_interval_and_counts_the_rest() -> None:
    limit = RateLimitFilter(interval=3600)
    assert limit.filter(record("Failed to export %s"))
    assert not any(limit.filter(record("Failed to export %s")) for _ in range(100))
    assert limit.filter(record("another message"))


def test_rate_limit_reports_how_many_were_suppressed() -> None:
    limit = RateLimitFilter(interval=0.0)
    limit._last[("opentelemetry.exporter", "m")] = (float("inf"), 7)  # seven suppressed, interval not over
    limit._last[("opentelemetry.exporter", "m")] = (float("-inf"), 7)  # now over
    passed = record("m")
    assert limit.filter(passed)
    assert passed.suppressed == 7  # type: ignore[attr-defined]
