"""Micro-benchmark: spans exported per CPU-second of the export path (OTLP/HTTP to the sink process).

``python benchmarks/micro_export.py CASE --spans N --endpoint URL --result FILE``, CASE one of:

``sdk``   the stock SDK pipeline: BatchSpanProcessor + OTLPSpanExporter (what opentelemetry-distro and FastAPI's
          auto-configuration build)
``ours``  otel-dist's pipeline (configure(), traces only): bounded BatchSpanProcessor with the SDK's own
          metrics + RedactingSpanExporter + the OTLP/HTTP exporter: ours with the direct encoder, or the SDK's
          with ``OTEL_DIST_FAST_EXPORT=false`` (the harness runs both)

Figures (server spans with the 10 attributes a FastAPI server span carries):

``pipeline``  CPU of creating+ending N spans with the pipeline, minus the same without any processor, i.e.
              queueing + batching + encoding + HTTP, per span (whole process: the worker thread included);
              spans are made one batch (512) at a time and flushed, so the bounded queue never drops any
``encode``    ``encode_spans(batch).SerializeToString()`` alone (the SDK's encoder), batches of 512
``fast_encode`` ``otel_dist.otlp_encoding.SpanEncoder().encode(batch)`` alone, batches of 512
``export``    ``exporter.export(batch)`` alone (encode + the HTTP POST), batches of 512
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

ATTRIBUTES: dict[str, Any] = {
    "url.scheme": "http",
    "http.request.method": "GET",
    "network.protocol.version": "1.1",
    "server.address": "127.0.0.1",
    "server.port": 8000,
    "url.path": "/items/42",
    "url.query": "q=bench",
    "http.route": "/items/{item_id}",
    "http.response.status_code": 200,
    "request_id": "0af7651916cd43dd8448eb211c80319c",
}
BATCH = 512


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _make_spans(provider: TracerProvider, n: int) -> None:
    tracer = provider.get_tracer("bench")
    for _ in range(n):
        span = tracer.start_span("GET /items/{item_id}", kind=SpanKind.SERVER, attributes=ATTRIBUTES)
        span.end()


def _cpu_of(action: Any) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["sdk", "ours"])
    parser.add_argument("--spans", type=int, default=50000)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({"service.name": "bench"})
    exporter = OTLPSpanExporter(endpoint=f"{args.endpoint}/v1/traces")
    if args.case == "sdk":
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{args.endpoint}/v1/traces")))
    else:
        import otel_dist

        telemetry = otel_dist.configure(
            service_name="bench",
            endpoint=args.endpoint,
            metrics_exporter="none",
            logs_exporter="none",
            handle_sigterm=False,
        )
        assert telemetry.tracer_provider is not None
        provider = telemetry.tracer_provider

    bare = TracerProvider(resource=resource, shutdown_on_exit=False)
    collect = _Collect()
    collecting = TracerProvider(resource=resource, shutdown_on_exit=False)
    collecting.add_span_processor(SimpleSpanProcessor(collect))
    _make_spans(collecting, BATCH)
    batch = collect.spans[:BATCH]

    _make_spans(provider, 2000)  # warm-up
    provider.force_flush()
    results: dict[str, Any] = {"case": args.case, "spans": args.spans}
    baseline = min(_cpu_of(lambda: _make_spans(bare, args.spans)) for _ in range(3))

    def make_and_flush() -> None:
        # One batch at a time: creating spans is faster than encoding them, and a full queue would drop spans
        # (counted as exported CPU they never cost). Each flush exports exactly the batch the size trigger would.
        for _ in range(args.spans // BATCH):
            _make_spans(provider, BATCH)
            provider.force_flush()

    pipeline = _cpu_of(make_and_flush)
    results["create_end_us_per_span"] = baseline / args.spans * 1e6
    results["pipeline_us_per_span"] = (pipeline - baseline) / args.spans * 1e6

    rounds = max(4, args.spans // BATCH)
    start = time.thread_time()
    for _ in range(rounds):
        encode_spans(batch).SerializeToString()
    results["encode_us_per_span"] = (time.thread_time() - start) / (rounds * BATCH) * 1e6
    try:
        from otel_dist.otlp_encoding import SpanEncoder
    except ImportError:  # the stock environment
        pass
    else:
        encoder = SpanEncoder()
        start = time.thread_time()
        for _ in range(rounds):
            encoder.encode(batch)
        results["fast_encode_us_per_span"] = (time.thread_time() - start) / (rounds * BATCH) * 1e6
    start = time.thread_time()
    for _ in range(rounds):
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            raise RuntimeError("the sink refused an export")
    results["export_us_per_span"] = (time.thread_time() - start) / (rounds * BATCH) * 1e6
    for key in ("pipeline", "encode", "fast_encode", "export"):
        per_span = results.get(f"{key}_us_per_span")
        if per_span is None:
            continue
        results[f"{key}_spans_per_cpu_s"] = 1e6 / per_span if per_span > 0 else None
    Path(args.result).write_text(json.dumps(results))
    provider.shutdown()


if __name__ == "__main__":
    main()
