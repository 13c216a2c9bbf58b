"""Settings -> TracerProvider: sampler, limits, batch processors with bounded queues."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from otel_dist.exporters import span_exporters
from otel_dist.self_metrics import sdk_self_metrics
from otel_dist.settings import Settings


def build_sampler(settings: Settings) -> Sampler:
    """The sampler named by ``sampler`` (the OTEL_TRACES_SAMPLER names), with ``sampler_ratio``."""
    root: Sampler
    name = settings.sampler.removeprefix("parentbased_")
    if name == "always_on":
        root = ALWAYS_ON
    elif name == "always_off":
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(settings.sampler_ratio)
    return ParentBased(root) if settings.sampler.startswith("parentbased_") else root


def build_span_limits(settings: Settings) -> SpanLimits:
    """Every limit given explicitly, so SpanLimits reads nothing from the environment."""
    return SpanLimits(
        max_attributes=settings.attribute_count_limit,
        max_span_attributes=settings.attribute_count_limit,
        max_event_attributes=settings.attribute_count_limit,
        max_link_attributes=settings.attribute_count_limit,
        max_events=settings.span_event_count_limit,
        max_links=settings.span_link_count_limit,
        max_attribute_length=settings.attribute_value_length_limit,
        max_span_attribute_length=settings.attribute_value_length_limit,
    )


def build_tracer_provider(settings: Settings, resource: Resource, meter_provider: MeterProvider) -> TracerProvider:
    """A TracerProvider with one batch processor per configured exporter.

    Shutdown at exit is ours (bootstrap), with a deadline, so the SDK's own atexit hook is off.
    """
    provider = TracerProvider(
        sampler=build_sampler(settings),
        resource=resource,
        span_limits=build_span_limits(settings),
        shutdown_on_exit=False,
    )
    with sdk_self_metrics():
        for exporter in span_exporters(settings, meter_provider):
            provider.add_span_processor(
                BatchSpanProcessor(
                    exporter,
                    max_queue_size=settings.span_queue_size,
                    schedule_delay_millis=settings.span_schedule_delay * 1000,
                    max_export_batch_size=settings.span_batch_size,
                    export_timeout_millis=settings.span_export_timeout * 1000,
                    meter_provider=meter_provider,
                )
            )
    return provider
