"""A stand-in for the example service: N units of work shaped like HTTP requests, through ``configure()``.

Until the ASGI example app drives the stack, this is what the demo and the end-to-end tests run. Each unit of
work is what one HTTP request will produce once the ASGI layer exists, with the same names:

- a SERVER span named ``"{method} {route}"`` with ``http.request.method``, ``http.route``, ``url.path``,
  ``http.response.status_code`` and ``request_id``; status ERROR and an exception event on a 500;
- one log line (``request.handled`` / ``request.failed``, the latter with a structured exception) carrying the
  same ``request_id`` and the span's trace_id;
- one ``http.server.request.duration`` measurement (seconds) with ``http.route``, ``http.request.method`` and
  ``http.response.status_code``, plus ``http.server.active_requests``.

It also emits ``--probes`` spans for ``GET /health``, which the collector drops (probe paths are not user
traffic), and nothing else for them. Settings come from the environment (``OTEL_SERVICE_NAME``, ...)::

    python -m otel_dist.stack.workload --requests 20 --error-every 5 --slow-every 10
    OTEL_PYTHON_DISTRO=otel_dist opentelemetry-instrument python -m otel_dist.stack.workload --requests 20

The last stdout line is a JSON summary: ``{"workload": {"service": ..., "request_ids": [...], ...}}``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence

from opentelemetry import metrics, trace

import otel_dist
from otel_dist.context import reset_request_id, set_request_id
from otel_dist.settings import REQUEST_ID_KEY

#: (method, route template, path for request i)
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/items/{item_id}", "/items/{i}"),
    ("POST", "/orders", "/orders"),
    ("GET", "/search", "/search"),
)
SLOW_SECONDS = 1.2


class WorkFailedError(RuntimeError):
    """The simulated failure of a request that answers 500."""


def run(
    requests: int,
    *,
    id_prefix: str,
    error_every: int = 0,
    slow_every: int = 0,
    probes: int = 0,
    seed: int = 0,
) -> dict[str, object]:
    """Do the work (telemetry must be configured); return a summary."""
    rng = random.Random(seed)
    tracer = trace.get_tracer("otel_dist.stack.workload")
    meter = metrics.get_meter("otel_dist.stack.workload")
    duration = meter.create_histogram(
        "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
    )
    active = meter.create_up_down_counter(
        "http.server.active_requests", unit="{request}", description="Number of active HTTP server requests."
    )
    log = otel_dist.get_logger("otel_dist.stack.workload")
    request_ids: list[str] = []
    errors = slow = 0
    for number in range(1, requests + 1):
        method, route, path = ROUTES[number % len(ROUTES)]
        path = path.format(i=number)
        request_id = f"{id_prefix}-{number:04d}"
        failing = bool(error_every) and number % error_every == 0
        is_slow = bool(slow_every) and number % slow_every == 0
        status = 500 if failing else 200
        token = set_request_id(request_id)
        started = time.perf_counter()
        method_attrs = {"http.request.method": method}
        span_attrs = {**method_attrs, "http.route": route, "url.path": path, "url.scheme": "http"}
        active.add(1, method_attrs)
        try:
            with tracer.start_as_current_span(
                f"{method} {route}",
                kind=trace.SpanKind.SERVER,
                attributes={**span_attrs, REQUEST_ID_KEY: request_id},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                time.sleep(SLOW_SECONDS if is_slow else rng.uniform(0.001, 0.01))
                span.set_attribute("http.response.status_code", status)
                if failing:
                    try:
                        raise WorkFailedError(f"simulated failure of request {number}")
                    except WorkFailedError as error:
                        span.record_exception(error)
                        span.set_status(trace.StatusCode.ERROR, str(error))
                        log.exception("request.failed", route=route, status=status)
                    errors += 1
                else:
                    log.info("request.handled", route=route, status=status)
                slow += is_slow
                # Recorded while the span is current, so the measurement can carry it as an exemplar.
                duration.record(
                    time.perf_counter() - started,
                    {**method_attrs, "http.route": route, "http.response.status_code": status},
                )
        finally:
            active.add(-1, method_attrs)
            reset_request_id(token)
        request_ids.append(request_id)
    for _ in range(probes):
        with tracer.start_as_current_span(
            "GET /health",
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.route": "/health", "url.path": "/health"},
        ) as span:
            span.set_attribute("http.response.status_code", 200)
    return {"request_ids": request_ids, "errors": errors, "slow": slow, "probes": probes}


def main(argv: Sequence[str] | None = None) -> int:
    """Configure telemetry from the environment, run the work, flush, print the summary."""
    parser = argparse.ArgumentParser(prog="python -m otel_dist.stack.workload", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="units of work (default 20)")
    parser.add_argument("--id-prefix", default=None, help="request IDs are PREFIX-0001, ... (default: random)")
    parser.add_argument("--error-every", type=int, default=0, help="every Kth request fails with a 500")
    parser.add_argument("--slow-every", type=int, default=0, help=f"every Kth request takes {SLOW_SECONDS}s")
    parser.add_argument("--probes", type=int, default=0, help="GET /health spans to emit (the collector drops them)")
    parser.add_argument(
        "--linger", type=float, default=0.0, help="seconds to stay up after the work (pull mode: to be scraped)"
    )
    args = parser.parse_args(argv)

    telemetry = otel_dist.configure()  # under opentelemetry-instrument: the wrapper's handle
    prefix = args.id_prefix or f"req-{random.getrandbits(32):08x}"
    summary = run(
        args.requests,
        id_prefix=prefix,
        error_every=args.error_every,
        slow_every=args.slow_every,
        probes=args.probes,
    )
    flushed = telemetry.force_flush(timeout=10.0)
    if args.linger > 0:
        print(json.dumps({"lingering": args.linger}), flush=True)
        time.sleep(args.linger)
    telemetry.shutdown(timeout=10.0)
    summary = {"service": telemetry.settings.service_name, "flushed": flushed, **summary}
    print(json.dumps({"workload": summary}), flush=True)
    return 0 if flushed else 1


if __name__ == "__main__":
    sys.exit(main())
