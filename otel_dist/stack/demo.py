"""README command 1 (``./dev demo``): the real stack, the example FastAPI app, and one request in every backend.

1. Builds (first time only) and starts the local stack, or reuses the one already running from ``.stack/``.
2. Serves the example app (``examples/fastapi_app``, instrumented by ``configure()``) under uvicorn on a free
   loopback port, exporting to the stack's collector at 100 % sampling.
3. Puts it under a bounded load from the load test (locust, ``examples/loadtest/locustfile.py``: 4 users, 300
   requests, loopback only), then sends it the requests it follows, each with its own ``X-Request-ID``: item
   reads, missing items (404), unhandled exceptions (500), slow requests, and health probes that otel-dist keeps
   out of every signal. Then stops the app, which flushes its telemetry.
4. Waits until Prometheus, Jaeger and VictoriaLogs hold what it sent, prints a summary per backend and follows
   one failed request from its metric series (exemplar) to its trace and its log lines, joined by trace_id and
   request_id. It also prints where to look.

The stack keeps running afterwards (``./dev stack down`` or ``otel-dist stack down`` stops it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from otel_dist.stack import http
from otel_dist.stack.build import BuildError
from otel_dist.stack.example import (
    SLOW_SECONDS,
    Answer,
    ExampleAppError,
    send,
    start_example_app,
    traffic,
)
from otel_dist.stack.loadtest import MAX_REQUESTS as MAX_LOAD_REQUESTS
from otel_dist.stack.loadtest import LoadTestError, run_load
from otel_dist.stack.supervisor import Stack, StackError, load_stack, print_line, start_stack

T = TypeVar("T")
WAIT_SECONDS = 60.0
DURATION = "http_server_request_duration_seconds"
#: The traffic's mix: every Kth request is a 500, slow, a 404; PROBES health probes go in between.
ERROR_EVERY, SLOW_EVERY, NOT_FOUND_EVERY, PROBES = 7, 10, 5, 3
MIN_REQUESTS, MAX_REQUESTS = max(ERROR_EVERY, SLOW_EVERY, NOT_FOUND_EVERY), 1000  # at least one of each kind
#: The load before them: locust users and requests (README command 1's traffic; 0 requests: no load phase).
LOAD_USERS, LOAD_REQUESTS, LOAD_SECONDS = 4, 300, 60
#: The app's settings: 100 % sampling and quick exports, so the backends fill within seconds.
APP_ENV = {
    "OTEL_DIST_SERVICE_VERSION": "0.1.0",
    "OTEL_DIST_ENVIRONMENT": "demo",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
}


def _wait(what: str, check: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except http.QueryError:
            value = None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not arrive within {timeout:.0f}s")
        time.sleep(0.5)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"between {low} and {high}")
        return number

    return parse


_requests = _bounded(MIN_REQUESTS, MAX_REQUESTS)


def _load(base_url: str, requests: int) -> int:
    """The load phase: a bounded locust run against the app; the number of requests it made."""
    if not requests:
        return 0
    result = run_load(base_url, "ExampleApiUser", users=LOAD_USERS, requests=requests, seconds=LOAD_SECONDS)
    total = result.total
    p95 = total.percentile(0.95)
    print(
        f"   load: {total.requests} requests from {LOAD_USERS} locust users in {total.seconds:.1f}s "
        f"({total.rate:.0f}/s, p95 {p95 if p95 is not None else '-'} ms, {total.failures} failed)",
        flush=True,
    )
    return total.requests


def _serve_and_send(stack: Stack, service: str, requests: int, load_requests: int) -> tuple[list[Answer], int]:
    """Start the example app, load it, send the followed traffic, stop the app (it flushes).

    Returns the followed requests' answers and the number of load requests.
    """
    log_path = stack.log_path("example-app")
    app = start_example_app(service, otlp_endpoint=stack.otlp_http_endpoint, log_path=log_path, env=APP_ENV)
    with app:
        print(f"   serving {app.base_url} (uvicorn, pid {app.process.pid}; its output: {log_path})", flush=True)
        loaded = _load(app.base_url, load_requests)
        planned = traffic(
            service,
            requests,
            not_found_every=NOT_FOUND_EVERY,
            error_every=ERROR_EVERY,
            slow_every=SLOW_EVERY,
            probes=PROBES,
        )
        answers = send(app.base_url, planned)
    output = app.output()
    kinds = Counter(a.request.kind for a in answers)
    statuses = Counter(a.status for a in answers if not a.request.probe)
    by_status = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
    print(
        f"   sent {len(answers) - kinds['probe']} requests ({by_status}; the 500s are unhandled exceptions,"
        f" {kinds['slow']} slow at {SLOW_SECONDS}s) and {kinds['probe']} health probes, then stopped the app"
    )
    failed = next(a for a in answers if a.request.kind == "error")
    example = next((line for line in output.splitlines() if failed.request_id in line and '"http.request"' in line), "")
    print(f"   {len(output.splitlines())} lines on its stdout; the access line of a failed request:\n   {example}")
    return answers, loaded


def _follow_failed_request(
    stack: Stack, service: str, answers: Sequence[Answer], start: datetime
) -> tuple[Answer, dict[str, Any] | None]:
    """The failed request to follow: the one a 500 series' exemplar points at (else the first 500)."""
    failed = {a.trace_id: a for a in answers if a.request.kind == "error"}

    def exemplar() -> dict[str, Any] | None:
        found = http.get_json(
            f"{stack.prometheus_url}/api/v1/query_exemplars",
            {
                "query": f'{DURATION}_bucket{{job="{service}", http_response_status_code="500"}}',
                "start": str(start.timestamp()),
                "end": str(time.time() + 60),
            },
        )["data"]
        for group in found:
            for item in group["exemplars"]:
                if item["labels"].get("trace_id") in failed:
                    return {**item, "series": group["seriesLabels"]}
        return None

    try:
        linked = _wait("an exemplar", exemplar, timeout=10)
    except SystemExit:
        return next(iter(failed.values())), None
    return failed[linked["labels"]["trace_id"]], linked


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m otel_dist.stack.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests",
        type=_requests,
        default=30,
        help=f"requests to send and follow ({MIN_REQUESTS}-{MAX_REQUESTS}, default 30)",
    )
    parser.add_argument(
        "--load-requests",
        type=_bounded(0, MAX_LOAD_REQUESTS),
        default=LOAD_REQUESTS,
        help=f"requests of the load phase before them (locust, {LOAD_USERS} users; 0: none; default {LOAD_REQUESTS})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the stack's folder: reuse the stack running there, or start one there (default: .stack/)",
    )
    args = parser.parse_args(argv)

    print("== 1. the local stack (collector, Prometheus, Jaeger, VictoriaLogs, Alertmanager) ==", flush=True)
    stack = load_stack(args.data_dir)
    if stack is None:
        try:
            stack = start_stack(data_dir=args.data_dir, out=print_line)
        except (StackError, BuildError) as error:
            print(f"demo: {error}", file=sys.stderr)
            return 1
        print(f"   started in {stack.started_seconds:.1f}s")
    else:
        print(f"   already running from {stack.data_dir}")

    service = f"demo-shop-{uuid.uuid4().hex[:4]}"
    print(
        f"\n== 2. the example FastAPI app as service {service!r}: {args.load_requests} load requests, then "
        f"{args.requests} followed ones ==",
        flush=True,
    )
    start = datetime.now(UTC) - timedelta(seconds=1)
    try:
        answers, loaded = _serve_and_send(stack, service, args.requests, args.load_requests)
    except (ExampleAppError, LoadTestError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    end = datetime.now(UTC) + timedelta(seconds=1)
    user = [a for a in answers if not a.request.probe]
    total = len(user) + loaded

    print("\n== 3. what arrived ==", flush=True)
    job = f'job="{service}"'
    _wait(
        "the metrics",
        lambda: http.promql_scalar(stack.prometheus_url, f"sum({DURATION}_count{{{job}}}) == {total}"),
    )
    count_query = f"sum by (http_route, http_response_status_code) ({DURATION}_count{{{job}}})"
    counts = http.promql(stack.prometheus_url, count_query)
    # a probe would be a /health... route; an unmatched path would have none
    probe_series = sum(i["metric"].get("http_route", "/health").startswith("/health") for i in counts)
    print(f"   Prometheus   {DURATION}_count by route and status ({probe_series} series of a probe):")
    for item in sorted(counts, key=lambda i: sorted(i["metric"].items())):
        labels = item["metric"]
        route = labels.get("http_route", "(no route)")
        print(f"                  {route:<18} {labels['http_response_status_code']}  {item['value'][1]}")
    p95 = http.promql_scalar(
        stack.prometheus_url, f"histogram_quantile(0.95, sum by (le) ({DURATION}_bucket{{{job}}}))"
    )
    if p95 is not None:
        print(f"                  p95 latency (from the buckets): {p95:.3f}s")
    traces = _wait(
        "the traces",
        lambda: ((t := http.jaeger_traces(stack.jaeger_url, service, start, end)) and len(t) >= total and t) or None,
    )
    spans = [span for spans in traces.values() for span in spans]
    errors = sum(span.get("status", {}).get("code") == 2 for span in spans)
    names = Counter(span["name"] for span in spans)
    probe_spans = sum("/health" in span["name"] for span in spans)
    print(
        f"   Jaeger       {len(traces)} traces of {len(spans)} server spans ({errors} with status ERROR,"
        f" {probe_spans} of a probe):"
    )
    for name, count in sorted(names.items()):
        print(f"                  {name:<24} {count}")
    log_query = f'"service.name":={http.logsql_quote(service)}'

    def all_access_lines() -> list[dict[str, str]] | None:
        found = http.logsql(stack.victorialogs_url, log_query)
        access = {line.get("request_id") for line in found if line["_msg"] == "http.request"}
        return found if access >= {a.request_id for a in user} else None

    lines = _wait("the logs", all_access_lines)
    in_requests = [line for line in lines if line.get("request_id")]
    events = Counter((line["_msg"], line.get("severity_text", "?")) for line in in_requests)
    probe_ids = {a.request_id for a in answers if a.request.probe}
    probe_lines = sum(line["request_id"] in probe_ids for line in in_requests)
    print(
        f"   VictoriaLogs {len(in_requests)} log lines with a request_id ({probe_lines} of a probe), by event, level:"
    )
    for (event, level), count in sorted(events.items()):
        print(f"                  {event:<34} {level:<5} {count}")
    print(f"                  and {len(lines) - len(in_requests)} lines outside requests (uvicorn start-up, shutdown)")

    failed, exemplar = _follow_failed_request(stack, service, answers, start)
    request_id, trace_id = failed.request_id, failed.trace_id or ""
    print(f"\n== 4. one failed request, request_id={request_id} ==")
    print(
        f"   client    HTTP {failed.status} {failed.body.decode(errors='replace')}"
        f"  (X-Request-ID: {failed.request_id}, traceresponse trace ID {trace_id})"
    )
    if exemplar is not None:
        series = exemplar["series"]
        print(
            f'   metric    {DURATION}_bucket{{http_route="{series.get("http_route")}",'
            f' http_response_status_code="{series.get("http_response_status_code")}"}}'
            f" exemplar: {float(exemplar['value']):.4f}s, trace_id={exemplar['labels']['trace_id']}"
        )
    else:
        print("   metric    (no exemplar on the 500 series this time)")
    trace_spans = _wait("its trace", lambda: http.jaeger_trace(stack.jaeger_url, trace_id) or None)
    span = trace_spans[0]
    attributes = http.attributes(span["attributes"])
    status = "ERROR" if span.get("status", {}).get("code") == 2 else "UNSET/OK"
    print(
        f"   trace     {span['name']} status={status} http.response.status_code="
        f"{attributes.get('http.response.status_code')} error.type={attributes.get('error.type')}"
        f" request_id={attributes.get('request_id')}"
    )
    request_query = f"{log_query} request_id:={http.logsql_quote(request_id)}"
    request_lines = http.logsql(stack.victorialogs_url, request_query)
    for line in request_lines:
        detail = (
            f"exception.type={line.get('exception.type')} exception.message={line.get('exception.message')!r}"
            if "exception.type" in line
            else f"{line.get('http.request.method')} {line.get('url.path')} {line.get('http.response.status_code')}"
        )
        print(
            f"   log line  {line['_time']} {line['severity_text']:<5} {line['_msg']}  {detail}"
            f"  trace_id={line['trace_id']}"
        )
    correlated = (
        bool(trace_id)
        and attributes.get("request_id") == request_id
        and bool(request_lines)
        and all(line.get("trace_id") == trace_id for line in request_lines)
        and (exemplar is None or exemplar["labels"]["trace_id"] == trace_id)
    )

    print("\n== where to look ==")
    promql = f"sum by (http_route, http_response_status_code) (rate({DURATION}_count{{{job}}}[5m]))"
    print(f"   PromQL      {stack.prometheus_url}/api/v1/query?query={quote(promql)}")
    exemplars = f'{DURATION}_bucket{{{job}, http_response_status_code="500"}}'
    print(f"   exemplars   {stack.prometheus_url}/api/v1/query_exemplars?query={quote(exemplars)}")
    print(f"   the trace   {stack.jaeger_url}/api/v3/traces/{trace_id}")
    search = urlencode(
        {
            "query.service_name": service,
            "query.start_time_min": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "query.start_time_max": (end + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    print(f"   its traces  {stack.jaeger_url}/api/v3/traces?{search}")
    logsql = f'"service.name":="{service}" request_id:="{request_id}"'
    print(f"   log query   {stack.victorialogs_url}/select/logsql/query?query={quote(logsql)}")
    print(f"   log UI      {stack.victorialogs_url}/select/vmui/  (LogsQL: {logsql})")
    print(
        f"   Alertmanager {stack.alertmanager_url}   (Prometheus and Jaeger have no web UI in this build: use the APIs)"
    )
    print(f"   the app's stdout: {stack.log_path('example-app')}")
    down = "./dev stack down" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    print(f"   stop the stack: {down}")
    print(
        "\none request as metric, trace and log, joined by trace_id and request_id"
        if correlated
        else "\nNOT CORRELATED: " + json.dumps({"request_id": request_id, "trace_id": trace_id})
    )
    return 0 if correlated else 1


if __name__ == "__main__":
    sys.exit(main())
