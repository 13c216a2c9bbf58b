"""Settings -> TracerProvider: sampler, limits, batch processors with bounded queues."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from otel_dist.exporters import span_exporters
from otel_dist.scrubbing import (
    PATH_ATTRIBUTES,
    REDACTED,
    URL_ATTRIBUTES,
    Redactor,
    redact_path_attribute,
    redact_query,
)
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


_URL, _PATH, _SECRET, _TEXT = 0, 1, 2, 3
_CACHE_LIMIT = 4096


class RedactingSpanExporter(SpanExporter):
    """Blanks secrets in span attributes on their way out: secret query parameters in URL attributes, the
    values of secret-named attributes (captured Authorization, Cookie, Set-Cookie, API-key headers among them),
    and ``key=value``, bearer and URL-password secrets quoted in any text (exception messages and tracebacks,
    URLs the application records), on the span and in its events.

    It runs in the batch processor's thread, off the request path, and copies only the spans it changes.
    Instrumentations may set an attribute again after the span started (the contrib ASGI middleware does), so
    redacting when spans start would not be enough.
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor
        # Span attribute keys repeat endlessly: their verdict (_URL, _PATH, _SECRET, _TEXT) is decided once per key,
        # and the query-redacted form of each URL value once per value (both bounded; this thread alone uses them).
        self._verdicts: dict[str, int] = {}
        self._urls: dict[str, str] = {}

    def _verdict(self, key: str) -> int:
        if key in URL_ATTRIBUTES:
            verdict = _URL
        elif key in PATH_ATTRIBUTES and not self._redactor.is_secret(key):
            verdict = _PATH
        else:
            verdict = _SECRET if self._redactor.is_secret(key) else _TEXT
        if len(self._verdicts) < _CACHE_LIMIT:
            self._verdicts[key] = verdict
        return verdict

    def _query_redacted(self, value: str) -> str:
        redacted = self._urls.get(value)
        if redacted is None:
            redacted = redact_query(value, self._redactor)
            if len(self._urls) >= _CACHE_LIMIT:
                self._urls.clear()
            self._urls[value] = redacted
        return redacted

    def _redacted(self, attributes: Mapping[str, Any]) -> dict[str, Any] | None:
        changed: dict[str, Any] | None = None
        route = attributes.get("http.route")
        templated = isinstance(route, str) and "{" in route
        verdicts = self._verdicts
        for key, value in attributes.items():
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = self._verdict(key)
            if verdict == _SECRET:
                new = REDACTED
            elif not isinstance(value, str):
                continue
            elif verdict == _URL:
                new = self._query_redacted(value)
                if templated and key in PATH_ATTRIBUTES:
                    new = redact_path_attribute(key, new, str(route), self._redactor)
                new = self._redactor.redact_credentials(new)  # a token in the path: /verify/eyJ...
            elif verdict == _PATH and templated:  # url.path: /reset/{token}
                new = redact_path_attribute(key, value, str(route), self._redactor)
                new = self._redactor.redact_credentials(new)
            else:  # key=value, bearer and URL-password secrets quoted in any text
                new = self._redactor.redact_text(value)
            if new != value:
                changed = changed if changed is not None else dict(attributes)
                changed[key] = new
        return changed

    def _clean_events(self, events: Sequence[Event]) -> list[Event] | None:
        """Events with secrets blanked (an ``exception`` event quotes the message and the traceback)."""
        changed: list[Event] | None = None
        for index, event in enumerate(events):
            attributes = self._redacted(event.attributes or {})
            if attributes is not None:
                changed = changed if changed is not None else list(events)
                changed[index] = Event(event.name, attributes, event.timestamp)
        return changed

    def _clean(self, span: ReadableSpan) -> ReadableSpan:
        attributes = self._redacted(span.attributes or {})
        events = self._clean_events(span.events) if span.events else None
        if attributes is None and events is None:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=span.attributes if attributes is None else attributes,
            events=span.events if events is None else events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._clean(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


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
    redactor = Redactor(settings.redact_keys, settings.redact_allow, settings.redact_path_params)
    with sdk_self_metrics():
        for exporter in span_exporters(settings, meter_provider):
            provider.add_span_processor(
                BatchSpanProcessor(
                    RedactingSpanExporter(exporter, redactor),
                    max_queue_size=settings.span_queue_size,
                    schedule_delay_millis=settings.span_schedule_delay * 1000,
                    max_export_batch_size=settings.span_batch_size,
                    export_timeout_millis=settings.span_export_timeout * 1000,
                    meter_provider=meter_provider,
                )
            )
    return provider
