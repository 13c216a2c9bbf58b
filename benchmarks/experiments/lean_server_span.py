"""Experiment (not used by the library): what does FastAPI's native server-span wrapper cost beyond the SDK work it
must do, and what would a lean wrapper of our own save?

Three FastAPI apps serve the benchmark endpoint in one process configured by ``otel_dist.configure()`` (full
mode, exports to a port nothing listens on: the request path is what is measured, the batch timers are far away):

``native``   what otel-dist ships: FastAPI's native telemetry (server span, duration histogram) + our middleware
``none``     ``FastAPI(telemetry={"tracing": False, "metrics": False})``: our middleware alone, no server span and
             no duration measurement (the floor both wrappers start from)
``lean``     ``none`` wrapped in :class:`LeanServerSpan` below: the same span (name from the route template,
             the same attributes, error status for 5xx, W3C parent) and the same duration measurement (recorded
             while the span is current: exemplars), with the least work around the SDK calls

``cpu`` mode interleaves rounds of each and prints main-thread CPU per request; ``callgrind`` mode runs one app
under callgrind's instrumentation for exactly the measured requests (``callgrind_ctl.so`` from the harness)::

    .venv/bin/python benchmarks/experiments/lean_server_span.py cpu
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python benchmarks/experiments/lean_server_span.py \\
        callgrind --app lean --lib benchmarks/out/callgrind/callgrind_ctl.so

The lean wrapper is a measurement device, not a replacement: it handles plain HTTP only (no websockets, no
operation spans, no mounted-app bookkeeping, no exception events), which is part of what FastAPI's costs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(
    OTEL_SERVICE_NAME="bench",
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    OTEL_BSP_SCHEDULE_DELAY="600000",
    OTEL_BLRP_SCHEDULE_DELAY="600000",
    OTEL_METRIC_EXPORT_INTERVAL="600000",
    OTEL_BSP_MAX_QUEUE_SIZE="1000000",
    OTEL_BLRP_MAX_QUEUE_SIZE="1000000",
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE="1000000",
    OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="1000000",
)

from fastapi import FastAPI
from inproc import Driver, new_loop  # type: ignore[import-not-found]
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import Histogram
from opentelemetry.trace import SpanKind, StatusCode

import otel_dist
from otel_dist.asgi.access_log import route_of
from otel_dist.metrics import DURATION_BUCKETS

_PARENT_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


class LeanServerSpan:
    """The server span and duration measurement FastAPI's native telemetry makes, with the least work around them."""

    def __init__(self, app: Any, tracer: trace.Tracer, duration: Histogram) -> None:
        self.app, self.tracer, self.duration = app, tracer, duration

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _PARENT_HEADERS}
        parent = propagate.extract(carrier) if carrier else None  # no header, no parent: skip the propagators
        host, port = scope.get("server") or ("", None)
        attributes = {
            "url.scheme": scope.get("scheme", "http"),
            "http.request.method": method,
            "network.protocol.version": scope.get("http_version", "1.1"),
            "server.address": host,
            "server.port": port,
            "url.path": scope["path"],
        }
        if scope.get("query_string"):
            attributes["url.query"] = scope["query_string"].decode("latin-1")  # redacted at export (otel-dist)
        span = self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 500
        started = time.perf_counter()

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_of(scope)
            metric_attributes = {
                "http.request.method": method,
                "url.scheme": attributes["url.scheme"],
                "network.protocol.version": attributes["network.protocol.version"],
                "http.response.status_code": status,
            }
            if route is not None:
                metric_attributes["http.route"] = route
                span.update_name(f"{method} {route}")
            span.set_attributes({"http.route": route, "http.response.status_code": status} if route else {})
            if status >= 500:
                span.set_status(StatusCode.ERROR)
                metric_attributes["error.type"] = str(status)
            self.duration.record(time.perf_counter() - started, metric_attributes)
            span.end()
            otel_context.detach(token)


def _app(kind: str) -> Any:
    app = FastAPI() if kind == "native" else FastAPI(telemetry={"tracing": False, "metrics": False})
    log = otel_dist.get_logger("app")

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        log.info("item.fetched", item_id=item_id)
        return {"item_id": item_id, "q": q, "name": "widget", "price": 9.99, "tags": ["a", "b"]}

    otel_dist.instrument_app(app)
    if kind == "lean":
        meter = otel_dist.current().meter_provider.get_meter("lean")  # type: ignore[union-attr]
        duration = meter.create_histogram(
            "http.server.request.duration", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
        )
        return LeanServerSpan(app, trace.get_tracer("lean"), duration)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["cpu", "callgrind"])
    parser.add_argument("--app", choices=["native", "none", "lean"], default="lean")
    parser.add_argument("--lib", help="callgrind_ctl.so (callgrind mode)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    otel_dist.configure(handle_sigterm=False, system_metrics=False)
    loop = new_loop()
    kinds = ["native", "none", "lean"] if args.mode == "cpu" else [args.app]
    drivers = {kind: Driver(_app(kind)) for kind in kinds}
    for driver in drivers.values():
        loop.run_until_complete(driver.startup())
        loop.run_until_complete(driver.requests(300))
    if args.mode == "callgrind":
        control = ctypes.CDLL(args.lib)
        control.bench_start()
        loop.run_until_complete(drivers[args.app].requests(args.requests))
        control.bench_stop()
        loop.run_until_complete(drivers[args.app].shutdown())
        return
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        for kind, driver in drivers.items():
            started = time.thread_time()
            loop.run_until_complete(driver.requests(2000))
            results[kind].append((time.thread_time() - started) / 2000 * 1e6)
    for kind, values in results.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"{kind:8s} main-thread µs/request: median {sorted(values)[len(values) // 2]:.1f} ({rounds})")
    for driver in drivers.values():
        loop.run_until_complete(driver.shutdown())


if __name__ == "__main__":
    main()
