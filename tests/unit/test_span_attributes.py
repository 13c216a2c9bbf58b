"""SpanAttributeWriter: the same exported spans as ``set_attributes``, through the SDK internals it relies on.

These tests fail when an SDK upgrade changes the span's attribute map (then every write takes ``set_attributes``:
correct, slower; update otel_dist/span_attributes.py and these tests together).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, SamplingResult

from otel_dist.span_attributes import SpanAttributeWriter, shape_supported

START = {"http.request.method": "GET", "url.path": "/items/1", "server.port": 8000, "sampled": True, "ratio": 0.5}
END = {"http.route": "/items/{item_id}", "http.response.status_code": 200}


def _provider(limits: SpanLimits | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False, span_limits=limits or SpanLimits())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _exported(direct: bool, start: dict[str, Any], end: dict[str, Any], limits: SpanLimits | None = None) -> Any:
    provider, exporter = _provider(limits)
    writer = SpanAttributeWriter(provider, enabled=direct)
    span = provider.get_tracer("t").start_span("GET")
    writer.write(span, start)
    writer.write(span, end)
    span.end()
    [finished] = exporter.get_finished_spans()
    provider.shutdown()
    return dict(finished.attributes), finished.dropped_attributes


def test_the_installed_sdk_has_the_span_internals_the_writer_uses() -> None:
    assert shape_supported()


@pytest.mark.parametrize(
    ("start", "end", "limits"),
    [
        (START, END, None),
        ({**START, "user_agent.original": "x" * 50}, END, SpanLimits(max_span_attribute_length=20)),  # truncated
        (START, END, SpanLimits(max_span_attributes=4)),  # the oldest evicted
        ({**START, "tags": ["a", "b"]}, END, None),  # not a plain value: the SDK converts it
        ({**START, "": "no key"}, {"http.route": None}, None),  # invalid: the SDK drops them
    ],
)
def test_written_attributes_export_what_set_attributes_exports(
    start: dict[str, Any], end: dict[str, Any], limits: SpanLimits | None
) -> None:
    assert _exported(True, start, end, limits) == _exported(False, start, end, limits)


def test_plain_attributes_within_the_limits_skip_the_sdks_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    import opentelemetry.attributes as attributes_module

    provider, exporter = _provider()
    writer = SpanAttributeWriter(provider)
    span = provider.get_tracer("t").start_span("GET")
    calls: list[object] = []
    original = attributes_module._clean_attribute_value

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(attributes_module, "_clean_attribute_value", counted)
    writer.write(span, START)
    writer.write(span, END)
    span.end()
    assert calls == []
    assert dict(exporter.get_finished_spans()[0].attributes) == {**START, **END}
    provider.shutdown()


def test_an_ended_span_gets_the_sdks_warning_and_no_attributes(caplog: pytest.LogCaptureFixture) -> None:
    provider, exporter = _provider()
    writer = SpanAttributeWriter(provider)
    span = provider.get_tracer("t").start_span("GET")
    span.end()
    with caplog.at_level(logging.WARNING):
        writer.write(span, END)
    assert "ended span" in caplog.text
    assert dict(exporter.get_finished_spans()[0].attributes) == {}
    provider.shutdown()


class _AttributeSampler(Sampler):
    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return ALWAYS_ON.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return "reads attributes"


def test_start_attributes_go_through_the_sdk_when_a_processor_or_sampler_may_read_them() -> None:
    batch = TracerProvider(shutdown_on_exit=False, sampler=ParentBased(ALWAYS_ON))
    batch.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    writer = SpanAttributeWriter(batch)
    assert writer.direct
    batch.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))  # its on_start could read them
    assert not writer.direct
    custom = TracerProvider(shutdown_on_exit=False, sampler=_AttributeSampler())
    assert not SpanAttributeWriter(custom).direct
    assert not SpanAttributeWriter(batch, enabled=False).direct
    for provider in (batch, custom):
        provider.shutdown()
