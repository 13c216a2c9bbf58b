"""Experiment (not used by the library): how much of the export path is the SDK's OTLP encoder?

The SDK builds a tree of protobuf message objects per batch (one per span, attribute, value) and serialises it.
This writes the same bytes directly (varints and length prefixes, attribute key/values cached as encoded
bytes, except the request ID: unique per span, it is encoded every time), checks that the result decodes to the
same spans, and times both on one batch of 512 FastAPI server spans (status UNSET/ERROR without message; no
events or links). Run with the ``ours`` environment::

    benchmarks/.venvs/ours/bin/python benchmarks/experiments/lean_span_encoder.py
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from micro_export import ATTRIBUTES, BATCH, _Collect  # type: ignore[import-not-found,unused-ignore]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

_KV_CACHE: dict[tuple[str, type, Any], bytes] = {}
#: Attributes whose values are unique per request: caching them would only fill the cache.
_UNIQUE_KEYS = frozenset({"request_id"})


def _varint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _field(number: int, payload: bytes | bytearray, out: bytearray) -> None:
    _varint((number << 3) | 2, out)
    _varint(len(payload), out)
    out += payload


def _key_value(key: str, value: Any) -> bytes:
    """KeyValue{key=1, value=2: AnyValue{string=1, bool=2, int=3, double=4}}, cached (attribute sets repeat)."""
    cache_key = (key, type(value), value)
    cached = _KV_CACHE.get(cache_key)
    if cached is not None:
        return cached
    any_value = bytearray()
    if isinstance(value, str):
        _field(1, value.encode(), any_value)
    elif isinstance(value, bool):
        any_value.append(0x10)
        _varint(int(value), any_value)
    elif isinstance(value, int):
        any_value.append(0x18)
        _varint(value & 0xFFFFFFFFFFFFFFFF, any_value)
    else:
        any_value.append(0x21)
        any_value += struct.pack("<d", float(value))
    out = bytearray()
    _field(1, key.encode(), out)
    _field(2, any_value, out)
    encoded = bytes(out)
    if len(_KV_CACHE) < 4096 and key not in _UNIQUE_KEYS:
        _KV_CACHE[cache_key] = encoded
    return encoded


def _span(span: ReadableSpan) -> bytearray:
    out = bytearray()
    context = span.context
    assert context is not None
    assert span.start_time is not None
    assert span.end_time is not None
    _field(1, context.trace_id.to_bytes(16, "big"), out)
    _field(2, context.span_id.to_bytes(8, "big"), out)
    if span.parent is not None:
        _field(4, span.parent.span_id.to_bytes(8, "big"), out)
    _field(5, span.name.encode(), out)
    out.append(6 << 3)
    _varint(span.kind.value + 1, out)
    out.append((7 << 3) | 1)
    out += struct.pack("<Q", span.start_time)
    out.append((8 << 3) | 1)
    out += struct.pack("<Q", span.end_time)
    for key, value in (span.attributes or {}).items():
        _field(9, _key_value(key, value), out)
    status = bytearray()
    if span.status.status_code.value:  # Status{message=2, code=3}; UNSET is an empty message
        status.append(3 << 3)
        _varint(span.status.status_code.value, status)
    _field(15, status, out)
    _varint((16 << 3) | 5, out)
    out += struct.pack("<I", 0x100)  # flags: parent is not remote (what the SDK writes)
    return out


def encode(spans: list[ReadableSpan], resource: bytes, scope: bytes) -> bytes:
    scope_spans = bytearray()
    _field(1, scope, scope_spans)
    for span in spans:
        _field(2, _span(span), scope_spans)
    resource_spans = bytearray()
    _field(1, resource, resource_spans)
    _field(2, scope_spans, resource_spans)
    request = bytearray()
    _field(1, resource_spans, request)
    return bytes(request)


def main() -> None:
    collect = _Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(collect))
    tracer = provider.get_tracer("bench")
    for index in range(BATCH):  # a new request ID per span, as in real traffic (so it is never a cache hit)
        attributes = {**ATTRIBUTES, "request_id": f"{index:032x}"}
        tracer.start_span("GET /items/{item_id}", kind=SpanKind.SERVER, attributes=attributes).end()
    batch = collect.spans[:BATCH]
    resource = bytearray()
    for key, value in batch[0].resource.attributes.items():
        _field(1, _key_value(key, value), resource)
    scope = bytearray()
    _field(1, b"bench", scope)

    lean, stock = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    lean.ParseFromString(encode(batch, bytes(resource), bytes(scope)))
    stock.ParseFromString(encode_spans(batch).SerializeToString())
    ours_spans, sdk_spans = lean.resource_spans[0].scope_spans[0].spans, stock.resource_spans[0].scope_spans[0].spans
    assert list(ours_spans) == list(sdk_spans), "the lean encoding must decode to the same spans"

    rounds = 40
    started = time.thread_time()
    for _ in range(rounds):
        encode_spans(batch).SerializeToString()
    sdk_us = (time.thread_time() - started) / (rounds * BATCH) * 1e6
    started = time.thread_time()
    for _ in range(rounds):
        encode(batch, bytes(resource), bytes(scope))
    lean_us = (time.thread_time() - started) / (rounds * BATCH) * 1e6
    print(f"SDK encode_spans().SerializeToString(): {sdk_us:.2f} us/span ({1e6 / sdk_us:,.0f} spans/CPU-s)")
    print(f"direct wire encoding, cached attributes: {lean_us:.2f} us/span ({1e6 / lean_us:,.0f} spans/CPU-s)")
    print(f"ratio: {sdk_us / lean_us:.1f}x; identical spans after decoding: yes")


if __name__ == "__main__":
    main()
