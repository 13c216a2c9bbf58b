"""BoundHistogram: the same exported data as ``Histogram.record``, through the SDK internals it relies on.

These tests fail when an SDK upgrade changes the internals (then ``fast`` is False and every measurement takes the
public API: correct, slower; update otel_dist/bound_metrics.py and these tests together).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, Histogram, MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider

from otel_dist.bound_metrics import NO_EXEMPLARS, BoundHistogram, fast_path_supported

_ROUTES = ("/items/{item_id}", "/jobs", "/users/{uid}", "/a", "/b", "/c", "/d")


def _provider(**options: Any) -> tuple[MeterProvider, list[InMemoryMetricReader]]:
    readers = [
        InMemoryMetricReader(),  # cumulative
        InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA}),
    ]
    views = [
        View(instrument_name="by_route", attribute_keys={"http.route"}),
        View(instrument_name="duration", aggregation=ExplicitBucketHistogramAggregation((0.01, 0.1, 1.0))),
    ]
    provider = MeterProvider(metric_readers=readers, views=views, shutdown_on_exit=False, **options)
    return provider, readers


def _points(reader: InMemoryMetricReader) -> list[tuple[Any, ...]]:
    data = reader.get_metrics_data()
    found = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    exemplars = sorted(
                        (e.value, tuple(sorted((e.filtered_attributes or {}).items())), e.span_id)
                        for e in point.exemplars
                    )
                    found.append(
                        (
                            metric.name,
                            tuple(sorted(point.attributes.items())),
                            point.count,
                            round(point.sum, 9),
                            tuple(point.bucket_counts),
                            point.min,
                            point.max,
                            tuple(exemplars),
                        )
                    )
    return sorted(found, key=repr)


def _attributes(index: int) -> dict[str, Any]:
    return {
        "http.request.method": "GET" if index % 3 else "POST",
        "http.route": _ROUTES[index % len(_ROUTES)],
        "http.response.status_code": 200 if index % 5 else 500,
        "url.scheme": "http",
    }


def _drive(bound: bool, **options: Any) -> list[list[tuple[Any, ...]]]:
    """The same measurements, with collections between them, through either path; every reader's points."""
    provider, readers = _provider(**options)
    meter = provider.get_meter("test")
    instruments = [meter.create_histogram("duration", unit="s"), meter.create_histogram("by_route", unit="s")]
    span = TracerProvider(shutdown_on_exit=False).get_tracer("t").start_span("request")
    span.end()
    sampled = trace.set_span_in_context(span)
    binders = [BoundHistogram(h) for h in instruments]
    bindings: dict[tuple[Any, ...], Any] = {}
    collected = []
    for index in range(240):
        value = (index % 17) / 10
        context = sampled if index % 2 else NO_EXEMPLARS
        for which, histogram in enumerate(instruments):
            attributes = _attributes(index)
            if bound:
                key = (which, tuple(sorted(attributes.items())))
                if key not in bindings:
                    bindings[key] = binders[which].bind(attributes)
                binders[which].record(value, bindings[key], context)
            else:
                histogram.record(value, attributes, context=context)
        if index % 60 == 59:
            collected.extend(_points(reader) for reader in readers)
    provider.shutdown()
    return collected


def test_the_installed_sdk_has_the_internals_the_fast_path_uses() -> None:
    provider, _ = _provider()
    histogram = provider.get_meter("test").create_histogram("duration", unit="s")
    assert fast_path_supported(histogram)
    assert BoundHistogram(histogram).fast
    provider.shutdown()


@pytest.mark.parametrize("exemplar_filter", [AlwaysOnExemplarFilter(), TraceBasedExemplarFilter()])
def test_bound_measurements_export_what_the_public_api_exports(exemplar_filter: Any) -> None:
    # cumulative and delta readers, a view keeping only http.route, explicit buckets, exemplars, collections between
    public = _drive(False, exemplar_filter=exemplar_filter)
    bound = _drive(True, exemplar_filter=exemplar_filter)
    strip = [[(*point[:-1], tuple((v, a) for v, a, _ in point[-1])) for point in points] for points in public]
    assert [[p[:-1] for p in points] for points in bound] == [[p[:-1] for p in points] for points in public]
    # exemplars: the same values and filtered attributes (timestamps differ; the span is the same one)
    assert [[(*p[:-1], tuple((v, a) for v, a, _ in p[-1])) for p in points] for points in bound] == strip


def test_the_cardinality_limit_and_its_overflow_series_are_the_sdks() -> None:
    limited_public = _limited(False)
    limited_bound = _limited(True)
    assert limited_bound == limited_public
    names = {dict(point[1]).get("otel.metric.overflow") for point in limited_bound}
    assert names == {None, True}  # some sets kept, the rest in the overflow series


def _limited(bound: bool) -> list[tuple[Any, ...]]:
    reader = InMemoryMetricReader(cardinality_limits={Histogram: 3})
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    histogram = provider.get_meter("test").create_histogram("duration", unit="s")
    binder = BoundHistogram(histogram)
    for index in range(50):
        attributes = {"http.route": f"/r{index % 7}"}
        if bound:
            binder.record(0.5, binder.bind(attributes), NO_EXEMPLARS)
        else:
            histogram.record(0.5, attributes, context=NO_EXEMPLARS)
    points = [p[:-1] for p in _points(reader)]
    provider.shutdown()
    return points


def test_after_the_first_measurement_of_a_set_the_aggregation_is_reached_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _ViewInstrumentMatch

    calls: list[object] = []
    original = _ViewInstrumentMatch.consume_measurement

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(_ViewInstrumentMatch, "consume_measurement", counted)
    provider, readers = _provider()
    binder = BoundHistogram(provider.get_meter("test").create_histogram("by_route", unit="s"))
    bindings = [binder.bind(_attributes(index)) for index in range(3)]
    for _ in range(10):
        for binding in bindings:
            binder.record(0.5, binding, NO_EXEMPLARS)
    assert len(calls) == 3 * len(readers)  # each set's first measurement, per reader: the SDK creates it
    _points(readers[1])  # the delta reader releases its aggregations at collection
    binder.record(0.5, bindings[0], NO_EXEMPLARS)
    assert len(calls) == 3 * len(readers) + 1
    counts = {dict(point[1])["http.route"]: point[2] for point in _points(readers[0])}
    assert counts == {"/items/{item_id}": 11, "/jobs": 10, "/users/{uid}": 10}  # the view kept http.route only
    provider.shutdown()


def test_a_reader_added_after_binding_gets_the_measurements() -> None:
    first = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first], shutdown_on_exit=False)
    histogram = provider.get_meter("test").create_histogram("duration", unit="s")
    binder = BoundHistogram(histogram)
    binding = binder.bind({"http.route": "/a"})
    binder.record(1.0, binding, NO_EXEMPLARS)
    second = InMemoryMetricReader()
    provider.add_metric_reader(second)
    binder.record(2.0, binding, NO_EXEMPLARS)
    assert [p[2:4] for p in _points(first)] == [(2, 3.0)]
    assert [p[2:4] for p in _points(second)] == [(1, 2.0)]
    provider.shutdown()


def test_invalid_values_get_the_sdks_checks_and_warnings(caplog: pytest.LogCaptureFixture) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    binder = BoundHistogram(provider.get_meter("test").create_histogram("duration", unit="s"))
    binding = binder.bind({"http.route": "/a"})
    with caplog.at_level(logging.WARNING):
        for value in (-1.0, math.nan, math.inf):
            binder.record(value, binding, NO_EXEMPLARS)
    assert _points(reader) == []
    assert len([r for r in caplog.records if "Histogram" in r.getMessage()]) == 3
    provider.shutdown()


def test_attributes_are_validated_once_as_the_sdk_validates_them() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    binder = BoundHistogram(provider.get_meter("test").create_histogram("duration", unit="s"))
    binding = binder.bind({"tags": ["a", "b"], "": "dropped", "ok": 1})
    binder.record(1.0, binding, Context())
    [point] = _points(reader)
    assert point[1] == (("ok", 1), ("tags", ("a", "b")))
    provider.shutdown()


def test_instruments_the_fast_path_does_not_know_take_the_public_api() -> None:
    histogram = NoOpMeterProvider().get_meter("test").create_histogram("duration")
    binder = BoundHistogram(histogram)
    assert not binder.fast
    binder.record(1.0, binder.bind({"a": 1}), NO_EXEMPLARS)  # no error: the no-op instrument's record()
