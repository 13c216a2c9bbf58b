"""OTLP/protobuf encoding of spans and log records, written directly as wire bytes, in the export threads.

The SDK's encoder (``opentelemetry.exporter.otlp.proto.common``) builds a tree of protobuf message objects per
batch (one per span, record, attribute and value) and then serialises it: ~30 µs per FastAPI server span on the
project's machine. This module writes the same bytes straight from the SDK objects (and from
:class:`LeanLogRecord`, the request path's lean log record): fields in field-number order with proto3's
presence rules, so the output is byte for byte what the SDK sends for the same batch (tests/unit/test_otlp_encoding.py
decodes both with the protobuf classes and compares). It runs only in export threads, never on the request path.

Why it is fast: attribute key/values repeat (``http.request.method=GET``, ``logger.name=app``, the resource), so
each encoded ``KeyValue`` is cached and reused; keys whose values never repeat (``request_id``, durations, paths
with IDs) stop being cached after :data:`PER_KEY_LIMIT` distinct values, which bounds the cache by itself.

Differences from the SDK encoder, deliberately: strings that are not valid UTF-8 (lone surrogates) are encoded
with replacement characters instead of failing the attribute or the whole batch; an attribute whose value cannot
be encoded (an int outside int64, an unsupported type) is left out of that item, as the SDK does, with one warning
per key rather than one per item.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

_log = logging.getLogger(__name__)

#: Distinct values one attribute key may add to the cache; beyond it, the key's values are encoded every time.
PER_KEY_LIMIT: Final = 256
#: Entries in one encoder's key/value cache, all keys together.
CACHE_LIMIT: Final = 16384

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MASK: Final = 2**64 - 1
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack
_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(128))


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the collector would reject the whole request
        return text.encode("utf-8", "replace")


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


class UnencodableValueError(ValueError):
    """An attribute value OTLP cannot carry (an int outside int64, an unsupported type)."""


def any_value(value: Any) -> bytes:
    """The body of an ``AnyValue`` message (same type order as the SDK's ``_encode_value``)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _delimited(b"\x0a", _utf8(value))
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise UnencodableValueError(f"int {value} is outside int64")
        return b"\x18" + varint(value & _UINT64_MASK)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _delimited(b"\x3a", value)
    if isinstance(value, Sequence):
        return _delimited(b"\x2a", b"".join(_delimited(b"\x0a", any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _delimited(b"\x32", b"".join(_delimited(b"\x0a", key_value(str(k), v)) for k, v in value.items()))
    raise UnencodableValueError(f"unsupported attribute type {type(value).__name__}")


def key_value(key: str, value: Any) -> bytes:
    """The body of a ``KeyValue`` message."""
    encoded_key = _utf8(key)
    head = b"\x0a" + varint(len(encoded_key)) + encoded_key if encoded_key else b""
    return head + _delimited(b"\x12", any_value(value))


class AttributeEncoder:
    """Encoded attribute fields (tag, length, ``KeyValue``), cached for values that repeat.

    Strings, ints and bools are cached per (field tag, key, type, value); floats (durations: unique, and ``-0.0 ==
    0.0``) and sequences are encoded every time. One instance per exporter: only its export thread uses it (the
    batch processor serialises exports). ``max_value_length`` truncates string values (also inside sequences) as the
    SDK's attribute limits do; it is set only for records that did not pass through the SDK's BoundedAttributes
    (:class:`LeanLogRecord`).
    """

    def __init__(self, max_value_length: int | None = None) -> None:
        self._cache: dict[tuple[bytes, str, type, Any], bytes] = {}
        self._distinct: dict[str, int] = {}
        self._warned: set[str] = set()
        self._max_value_length = max_value_length

    def fields(self, tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
        """Every attribute as a repeated field ``tag``; values that cannot be encoded are left out (as the SDK
        does), with one warning per key."""
        if not attributes:
            return []
        cache = self._cache
        out = []
        for key, value in _items(attributes):
            kind = value.__class__
            if kind is str or kind is int or kind is bool:
                cache_key = (tag, key, kind, value)
                cached = cache.get(cache_key)
                if cached is None:
                    cached = self._miss(tag, key, value)
                    if cached is None:
                        continue
                    seen = self._distinct.get(key, 0)
                    if seen < PER_KEY_LIMIT and len(cache) < CACHE_LIMIT:
                        self._distinct[key] = seen + 1
                        cache[cache_key] = cached
                out.append(cached)
            else:
                encoded = self._miss(tag, key, value)
                if encoded is not None:
                    out.append(encoded)
        return out

    def _miss(self, tag: bytes, key: str, value: Any) -> bytes | None:
        limit = self._max_value_length
        if limit is not None:
            if isinstance(value, str):
                value = value[:limit]
            elif isinstance(value, list | tuple):
                value = [v[:limit] if isinstance(v, str) else v for v in value]
        try:
            body = key_value(key, value)
        except (UnencodableValueError, RecursionError) as error:
            if key not in self._warned and len(self._warned) < CACHE_LIMIT:
                self._warned.add(key)
                _log.warning("attribute %r left out of the export: %s", key, error)
            return None
        return tag + varint(len(body)) + body


def _items(attributes: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """The items of a plain dict, a MappingProxy or the SDK's BoundedAttributes (its dict, without locking)."""
    inner = getattr(attributes, "_dict", None)
    return (inner if isinstance(inner, dict) else attributes).items()


class _Scoped(Protocol):
    """What the grouping needs of an item: its resource and instrumentation scope."""

    @property
    def resource(self) -> Any: ...

    @property
    def instrumentation_scope(self) -> Any: ...


class LeanLogRecord(NamedTuple):
    """A log record as the request path hands it to the batch queue: final values, nothing left to validate.

    ``attributes`` are already OTel-typed (see ``otel_dist.logging.processors``); limits are applied when the
    record is encoded. ``observed_timestamp`` is ``timestamp``: the record is made the instant the line is.
    """

    timestamp: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, Any]
    trace_id: int
    span_id: int
    trace_flags: int
    resource: Any
    instrumentation_scope: Any


class _Encoder:
    """Grouping by resource and scope, and their (cached) encodings, shared by the span and log encoders."""

    def __init__(self, attributes: AttributeEncoder) -> None:
        self.attributes = attributes
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    def _resource(self, resource: Any) -> bytes:
        """``resource`` field (Resource{attributes=1}) of ResourceSpans/ResourceLogs."""
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        body = b"".join(self.attributes.fields(b"\x0a", resource.attributes))
        encoded = _delimited(b"\x0a", body)
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, encoded)
        return encoded

    def _scope(self, scope: Any) -> bytes:
        """``scope`` field (InstrumentationScope{name=1, version=2, attributes=3}) of ScopeSpans/ScopeLogs."""
        if scope is None:
            return b"\x0a\x00"
        cached = self._scopes.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1]
        parts = []
        if scope.name:
            parts.append(_delimited(b"\x0a", _utf8(scope.name)))
        if scope.version:
            parts.append(_delimited(b"\x12", _utf8(scope.version)))
        parts.extend(self.attributes.fields(b"\x1a", scope.attributes))
        encoded = _delimited(b"\x0a", b"".join(parts))
        if len(self._scopes) > 1024:
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, encoded)
        return encoded

    @staticmethod
    def _groups(items: Sequence[_Scoped]) -> list[tuple[Any, dict[Any, list[int]]]]:
        """Item indexes grouped by resource (equal resources together, in order of first appearance) and scope.

        Resources are compared by identity first: the SDK's ``Resource.__hash__`` serialises the attributes to
        JSON on every call.
        """
        groups: list[tuple[Any, dict[Any, list[int]]]] = []
        last_resource: Any = _MISSING
        last_scopes: dict[Any, list[int]] = {}
        for index, item in enumerate(items):
            resource = item.resource
            if resource is not last_resource:
                for known, known_scopes in groups:
                    if known is resource or known == resource:
                        scopes = known_scopes
                        break
                else:
                    scopes = {}
                    groups.append((resource, scopes))
                last_resource, last_scopes = resource, scopes
            scope = item.instrumentation_scope or None
            indexes = last_scopes.get(scope)
            if indexes is None:
                indexes = last_scopes[scope] = []
            indexes.append(index)
        return groups

    def _request(self, items: Sequence[_Scoped], encoded: list[bytes]) -> bytes:
        """Export*ServiceRequest{resource_*=1}: ResourceX{resource=1, scope_x=2, schema_url=3},
        ScopeX{scope=1, items=2, schema_url=3}."""
        out = []
        for resource, scopes in self._groups(items):
            resource_parts = [self._resource(resource)]
            for scope, indexes in scopes.items():
                scope_parts = [self._scope(scope)]
                scope_parts.extend(_delimited(b"\x12", encoded[i]) for i in indexes)
                schema_url = getattr(scope, "schema_url", None)
                if schema_url:
                    scope_parts.append(_delimited(b"\x1a", _utf8(schema_url)))
                resource_parts.append(_delimited(b"\x12", b"".join(scope_parts)))
            schema_url = getattr(resource, "schema_url", None)
            if schema_url:
                resource_parts.append(_delimited(b"\x1a", _utf8(schema_url)))
            out.append(_delimited(b"\x0a", b"".join(resource_parts)))
        return b"".join(out)


_MISSING: Final = object()
_SPAN_KINDS: Final = {value: b"\x30" + varint(value + 1) for value in range(5)}  # SpanKind -> Span.kind field
_LINK_FLAGS: Final = {False: b"\x35" + _pack_fixed32(0x100), True: b"\x35" + _pack_fixed32(0x300)}
_SPAN_FLAGS: Final = {False: b"\x85\x01" + _pack_fixed32(0x100), True: b"\x85\x01" + _pack_fixed32(0x300)}


class SpanEncoder(_Encoder):
    """ReadableSpans -> ExportTraceServiceRequest bytes."""

    def __init__(self) -> None:
        super().__init__(AttributeEncoder())

    def encode(self, spans: Sequence[Any]) -> bytes:
        return self._request(spans, [self._span(span) for span in spans])

    def _span(self, span: Any) -> bytes:
        """Span{trace_id=1, span_id=2, trace_state=3, parent_span_id=4, name=5, kind=6, start=7, end=8,
        attributes=9, dropped_attributes_count=10, events=11, dropped_events_count=12, links=13,
        dropped_links_count=14, status=15, flags=16}."""
        context = span.context
        parent = span.parent
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
        trace_state = context.trace_state
        if trace_state:
            parts.append(_delimited(b"\x1a", _utf8(",".join(f"{k}={v}" for k, v in trace_state.items()))))
        if parent is not None:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        if span.name:
            parts.append(_delimited(b"\x2a", _utf8(span.name)))
        parts.append(_SPAN_KINDS[span.kind.value])
        if span.start_time:
            parts += (b"\x39", _pack_fixed64(span.start_time))
        if span.end_time:
            parts += (b"\x41", _pack_fixed64(span.end_time))
        attributes = getattr(span, "_attributes", None)
        parts += self.attributes.fields(b"\x4a", span.attributes if attributes is None else attributes)
        if span.dropped_attributes:
            parts += (b"\x50", varint(span.dropped_attributes))
        events = getattr(span, "_events", None)  # the SDK's property copies it into a tuple
        for event in span.events if events is None else events:
            parts.append(_delimited(b"\x5a", self._event(event)))
        if span.dropped_events:
            parts += (b"\x60", varint(span.dropped_events))
        links = getattr(span, "_links", None)
        for link in span.links if links is None else links:
            parts.append(_delimited(b"\x6a", self._link(link)))
        if span.dropped_links:
            parts += (b"\x70", varint(span.dropped_links))
        status = span.status
        code = status.status_code.value
        if status.description:
            message = _delimited(b"\x12", _utf8(status.description))
            parts.append(_delimited(b"\x7a", message + (b"\x18" + varint(code) if code else b"")))
        else:
            parts.append(b"\x7a\x02\x18" + _ONE_BYTE[code] if code else b"\x7a\x00")
        parts.append(_SPAN_FLAGS[bool(parent is not None and parent.is_remote)])
        return b"".join(parts)

    def _event(self, event: Any) -> bytes:
        """Span.Event{time_unix_nano=1, name=2, attributes=3, dropped_attributes_count=4}."""
        parts: list[bytes] = []
        if event.timestamp:
            parts += (b"\x09", _pack_fixed64(event.timestamp))
        if event.name:
            parts.append(_delimited(b"\x12", _utf8(event.name)))
        parts += self.attributes.fields(b"\x1a", event.attributes)
        if event.dropped_attributes:
            parts += (b"\x20", varint(event.dropped_attributes))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        """Span.Link{trace_id=1, span_id=2, attributes=4, dropped_attributes_count=5, flags=6} (the SDK sends
        no trace_state for links)."""
        context = link.context
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
        parts += self.attributes.fields(b"\x22", link.attributes)
        if link.dropped_attributes:
            parts += (b"\x28", varint(link.dropped_attributes))
        parts.append(_LINK_FLAGS[bool(context.is_remote)])
        return b"".join(parts)


class LogEncoder(_Encoder):
    """ReadableLogRecords and LeanLogRecords -> ExportLogsServiceRequest bytes.

    ``max_attributes`` / ``max_value_length`` are the log-record limits, applied to lean records only (SDK
    records were bounded when they were made): the newest attributes are kept, as the SDK's BoundedAttributes
    does, and strings are truncated.
    """

    def __init__(self, max_attributes: int | None = None, max_value_length: int | None = None) -> None:
        super().__init__(AttributeEncoder())
        self._lean_attributes = AttributeEncoder(max_value_length)
        self._max_attributes = max_attributes

    def encode(self, records: Sequence[Any]) -> bytes:
        encoded = [self._lean(r) if isinstance(r, LeanLogRecord) else self._sdk(r) for r in records]
        return self._request(records, encoded)

    @staticmethod
    def _record(  # noqa: PLR0917 - the LogRecord fields, in field order
        timestamp: int | None,
        severity_number: int | None,
        severity_text: str | None,
        body: bytes,
        attributes: list[bytes],
        dropped: int,
        flags: int,
        trace_id: int | None,
        span_id: int | None,
        observed: int | None,
        event_name: str | None,
    ) -> bytes:
        """LogRecord{time_unix_nano=1, severity_number=2, severity_text=3, body=5, attributes=6,
        dropped_attributes_count=7, flags=8, trace_id=9, span_id=10, observed_time_unix_nano=11, event_name=12}."""
        parts: list[bytes] = []
        if timestamp:
            parts += (b"\x09", _pack_fixed64(timestamp))
        if severity_number:
            parts += (b"\x10", varint(severity_number))
        if severity_text:
            parts.append(_delimited(b"\x1a", _utf8(severity_text)))
        parts.append(_delimited(b"\x2a", body))
        parts += attributes
        if dropped:
            parts += (b"\x38", varint(dropped))
        if flags:
            parts += (b"\x45", _pack_fixed32(flags))
        if trace_id:
            parts += (b"\x4a\x10", trace_id.to_bytes(16, "big"))
        if span_id:
            parts += (b"\x52\x08", span_id.to_bytes(8, "big"))
        if observed:
            parts += (b"\x59", _pack_fixed64(observed))
        if event_name:
            parts.append(_delimited(b"\x62", _utf8(event_name)))
        return b"".join(parts)

    def _sdk(self, readable: Any) -> bytes:
        record = readable.log_record
        try:
            body = any_value(record.body)
        except UnencodableValueError:  # the SDK would fail the whole batch; the text of it is better than nothing
            body = any_value(str(record.body))
        return self._record(
            record.timestamp,
            getattr(record.severity_number, "value", None),
            record.severity_text,
            body,
            self.attributes.fields(b"\x32", record.attributes),
            readable.dropped_attributes,
            int(record.trace_flags or 0),
            record.trace_id,
            record.span_id,
            record.observed_timestamp,
            record.event_name,
        )

    def _lean(self, record: LeanLogRecord) -> bytes:
        attributes = record.attributes
        dropped = 0
        if "" in attributes:  # the SDK drops empty keys and counts them
            attributes = {k: v for k, v in attributes.items() if k}
            dropped = 1
        limit = self._max_attributes
        if limit is not None and len(attributes) > limit:  # the SDK keeps the newest
            dropped += len(attributes) - limit
            attributes = dict(list(attributes.items())[-limit:])
        return self._record(
            record.timestamp,
            record.severity_number,
            record.severity_text,
            any_value(record.body),
            self._lean_attributes.fields(b"\x32", attributes),
            dropped,
            record.trace_flags,
            record.trace_id,
            record.span_id,
            record.timestamp,
            None,
        )
