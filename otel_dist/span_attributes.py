"""Attributes the server-span layer builds itself, set on SDK spans without the SDK's per-call validation.

``start_span(attributes=...)`` and ``set_attributes`` run every value through ``_clean_attribute_value`` (a chain of
``isinstance`` checks per value, a copy of the mapping, a lock per key): about 6.5 µs for the dozen HTTP attributes
of a request, 40 % of the SDK span's own cost. Those values are built by :mod:`otel_dist.asgi.server_telemetry` from
the ASGI scope: strings and integers, nothing else. :class:`SpanAttributeWriter` puts them straight into the span's
attribute map when it is safe to, and hands them to the SDK otherwise:

* the span is the SDK's ``Span`` with a ``BoundedAttributes`` map of the expected shape (checked once);
* every key is a non-empty string and every value a ``str``, ``int``, ``float`` or ``bool`` (anything else takes
  ``set_attributes``), strings within the attribute length limit, the total within the attribute count limit (the
  SDK's truncation and eviction otherwise);
* the tracer provider's sampler is one of the SDK's (they ignore attributes: the start attributes reach the sampler
  only on the SDK path) and its span processors are batch processors (their ``on_start`` reads nothing): with any
  other processor the span starts with its attributes, through the SDK, so that processor sees them.

``tests/unit/test_span_attributes.py`` fails when an SDK upgrade changes the shape, and compares the exported spans
of both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

_PLAIN: Final = frozenset({str, int, float, bool})
_SDK_SAMPLERS: Final = "opentelemetry.sdk.trace.sampling"


def shape_supported() -> bool:
    """The SDK internals the writer uses, checked on a real span."""
    span = TracerProvider(shutdown_on_exit=False).get_tracer("otel_dist").start_span("probe")
    attributes = getattr(span, "_attributes", None)
    fields = ("_dict", "_lock", "maxlen", "max_value_len", "_immutable")
    return (
        isinstance(span, SdkSpan)
        and all(hasattr(attributes, f) for f in fields)
        and isinstance(getattr(attributes, "_dict", None), dict)
        and hasattr(span, "_lock")
        and hasattr(span, "_end_time")
    )


class SpanAttributeWriter:
    """Starts and completes the server spans of one tracer provider (see the module docstring)."""

    def __init__(self, provider: Any, enabled: bool = True) -> None:
        self._provider = provider
        self._enabled = enabled and isinstance(provider, TracerProvider) and shape_supported()
        self._processors: object = None
        self._verdict = False

    @property
    def direct(self) -> bool:
        """Whether attributes may skip the SDK's validation for spans started now."""
        if not self._enabled:
            return False
        active = getattr(self._provider, "_active_span_processor", None)
        processors = getattr(active, "_span_processors", None)
        if processors is not self._processors:  # replaced (a tuple) when a processor is added
            self._processors = processors
            sampler = getattr(self._provider, "sampler", None)
            self._verdict = (
                isinstance(processors, tuple)
                and all(type(p) is BatchSpanProcessor for p in processors)
                and type(sampler).__module__ == _SDK_SAMPLERS
            )
        return self._verdict

    def write(self, span: Span, attributes: Mapping[str, Any]) -> None:
        """``span.set_attributes(attributes)``, validated by type and limits here instead of per value."""
        if not attributes:
            return
        stored = getattr(span, "_attributes", None)
        if not self._enabled or not isinstance(span, SdkSpan) or stored is None or not self._fits(stored, attributes):
            span.set_attributes(attributes)
            return
        with span._lock:
            written = span._end_time is None and not stored._immutable
            if written:
                with stored._lock:
                    stored._dict.update(attributes)
        if not written:
            span.set_attributes(attributes)  # the SDK's warning for an ended span

    @staticmethod
    def _fits(stored: Any, attributes: Mapping[str, Any]) -> bool:
        """Non-empty string keys, plain values within the length limit, all within the count limit."""
        if stored.maxlen is not None and len(stored._dict) + len(attributes) > stored.maxlen:
            return False
        limit = stored.max_value_len
        for key, value in attributes.items():
            kind = value.__class__
            if key.__class__ is not str or not key or kind not in _PLAIN:
                return False
            if kind is str and limit is not None and len(value) > limit:
                return False
        return True
