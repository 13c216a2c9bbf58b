"""README command 1 (``./dev demo``): the real stack, the example workload, and one request in every backend.

1. Builds (first time only) and starts the local stack, or reuses the one already running from ``.stack/``.
2. Runs the example workload as its own process through ``configure()``: requests of several routes, some
   failing with a 500, some slow, plus health probes the collector drops.
3. Waits until Prometheus, Jaeger and VictoriaLogs hold what it sent, then prints a summary per backend and one
   failed request followed through all three: its metric series, its trace and its log line, joined by trace_id
   and request_id. It also prints where to look.

The stack keeps running afterwards (``otel-dist stack down`` stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from otel_dist.stack import http
from otel_dist.stack.build import BuildError
from otel_dist.stack.supervisor import Stack, StackError, load_stack, print_line, start_stack

T = TypeVar("T")
WAIT_SECONDS = 60.0


def _wait(what: str, check: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            value = check()
        except http.QueryError:
            value = None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not arrive within {WAIT_SECONDS:.0f}s")
        time.sleep(0.5)


def _run_workload(stack: Stack, service: str, requests: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_DIST_SERVICE_VERSION="0.1.0",
        OTEL_DIST_ENVIRONMENT="demo",
        OTEL_EXPORTER_OTLP_ENDPOINT=stack.otlp_http_endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_TRACES_SAMPLER="always_on",
    )
    command = [
        sys.executable,
        "-m",
        "otel_dist.stack.workload",
        f"--requests={requests}",
        "--error-every=7",
        "--slow-every=10",
        "--probes=3",
        f"--id-prefix={service}",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: the workload failed ({result.returncode}):\n{result.stderr[-2000:]}")
    lines = result.stdout.strip().splitlines()
    print(f"   {len(lines) - 1} JSON log lines on its stdout, for example:\n   {lines[0]}")
    summary: dict[str, Any] = json.loads(lines[-1])["workload"]
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m otel_dist.stack.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30, help="requests to send (default 30)")
    args = parser.parse_args(argv)

    print("== 1. the local stack (collector, Prometheus, Jaeger, VictoriaLogs, Alertmanager) ==", flush=True)
    stack = load_stack()
    if stack is None:
        try:
            stack = start_stack(out=print_line)
        except (StackError, BuildError) as error:
            print(f"demo: {error}", file=sys.stderr)
            return 1
        print(f"   started in {stack.started_seconds:.1f}s")
    else:
        print(f"   already running from {stack.data_dir}")

    service = f"demo-shop-{uuid.uuid4().hex[:4]}"
    print(f"\n== 2. the example workload: {args.requests} requests as service {service!r} ==", flush=True)
    start = datetime.now(UTC) - timedelta(seconds=1)
    summary = _run_workload(stack, service, args.requests)
    end = datetime.now(UTC) + timedelta(seconds=1)
    total = len(summary["request_ids"])
    print(f"   sent {total} requests ({summary['errors']} failed, {summary['slow']} slow), {summary['probes']} probes")

    print("\n== 3. what arrived ==", flush=True)
    job = f'job="{service}"'
    count_query = (
        f"sum by (http_route, http_response_status_code) (http_server_request_duration_seconds_count{{{job}}})"
    )
    _wait(
        "the metrics",
        lambda: http.promql_scalar(
            stack.prometheus_url, f"sum(http_server_request_duration_seconds_count{{{job}}}) == {total}"
        ),
    )
    print("   Prometheus  http_server_request_duration_seconds_count by route and status:")
    for item in sorted(http.promql(stack.prometheus_url, count_query), key=lambda i: sorted(i["metric"].items())):
        labels = item["metric"]
        print(f"                 {labels['http_route']:<18} {labels['http_response_status_code']}  {item['value'][1]}")
    p95 = http.promql_scalar(
        stack.prometheus_url,
        f"histogram_quantile(0.95, sum by (le) (http_server_request_duration_seconds_bucket{{{job}}}))",
    )
    print(f"                 p95 latency (from the buckets): {p95:.3f}s" if p95 is not None else "")
    traces = _wait(
        "the traces",
        lambda: ((t := http.jaeger_traces(stack.jaeger_url, service, start, end)) and len(t) >= total and t) or None,
    )
    print(f"   Jaeger      {len(traces)} traces (the {summary['probes']} /health probes were dropped by the collector)")
    log_query = f'"service.name":={http.logsql_quote(service)}'
    lines = _wait(
        "the logs",
        lambda: ((found := http.logsql(stack.victorialogs_url, log_query)) and len(found) >= total and found) or None,
    )
    levels: dict[str, int] = {}
    for line in lines:
        levels[line.get("severity_text", "?")] = levels.get(line.get("severity_text", "?"), 0) + 1
    print(f"   VictoriaLogs {len(lines)} log lines ({', '.join(f'{n} {k}' for k, n in sorted(levels.items()))})")

    failed = next(line for line in lines if line["_msg"] == "request.failed")
    request_id, trace_id = failed["request_id"], failed["trace_id"]
    span = http.jaeger_trace(stack.jaeger_url, trace_id)[0]
    attributes = http.attributes(span["attributes"])
    print(f"\n== 4. one failed request, request_id={request_id} ==")
    print(
        f"   log line  {failed['_time']} {failed['severity_text']} {failed['_msg']}"
        f" exception.type={failed.get('exception.type')} trace_id={trace_id}"
    )
    print(
        f"   its trace {span['name']} status={span.get('status', {}).get('message', '')!r}"
        f" http.response.status_code={attributes.get('http.response.status_code')}"
        f" request_id={attributes.get('request_id')}"
    )
    exemplars = http.get_json(
        f"{stack.prometheus_url}/api/v1/query_exemplars",
        {
            "query": f"http_server_request_duration_seconds_bucket{{{job}}}",
            "start": str(start.timestamp()),
            "end": str(time.time() + 60),
        },
    )["data"]
    linked = [e for group in exemplars for e in group["exemplars"] if e["labels"].get("trace_id") == trace_id]
    if linked:
        print(
            "   its metric exemplar on http_server_request_duration_seconds_bucket:"
            f" value {float(linked[0]['value']):.4f}s, trace_id={trace_id}"
        )
    correlated = attributes.get("request_id") == request_id

    print("\n== where to look ==")
    promql = f"sum by (http_route) (rate(http_server_request_duration_seconds_count{{{job}}}[5m]))"
    print(f"   PromQL     {stack.prometheus_url}/api/v1/query?query={quote(promql)}")
    print(f"   trace      {stack.jaeger_url}/api/v3/traces/{trace_id}")
    logsql = f'"service.name":="{service}" request_id:="{request_id}"'
    print(f"   log query  {stack.victorialogs_url}/select/logsql/query?query={quote(logsql)}")
    print(f"   log UI     {stack.victorialogs_url}/select/vmui/  (LogsQL: {logsql})")
    print(
        f"   Alertmanager {stack.alertmanager_url}   (Prometheus and Jaeger have no web UI in this build: use the APIs)"
    )
    print("   stop the stack: otel-dist stack down")
    print(
        "\none request as metric, trace and log, joined by trace_id and request_id"
        if correlated
        else "\nNOT CORRELATED"
    )
    return 0 if correlated else 1


if __name__ == "__main__":
    sys.exit(main())
