"""What the collector's persistent sending queues cost: collector CPU (and disk writes) per item, side by side.

The shipped collector config (``collector/otelcol.yaml`` + ``logs-victorialogs.yaml``) writes every accepted
request to a ``file_storage`` queue before the receiver answers, and batches in the exporters. This harness runs
that config next to its in-memory variants, each as its own collector process exporting to the same real
backends (one local stack: Jaeger, Prometheus, VictoriaLogs), and sends each the same OTLP/HTTP load (traces,
logs and metrics requests shaped like the SDK's: 100 spans or log records, 20 data points a request). Rounds are
interleaved, the order rotated each round, and the collectors not being measured are stopped (SIGSTOP) so they
cannot run beside the measured one. A round ends when the collector's own counters say everything it accepted
was sent to the backends, so each round holds the whole cost of its items. Reported: collector CPU µs per item
(median of the rounds), the ratio to the phase-1 config (batch processor, in-memory queues), bytes written to
disk per item, and the client's median time to get an answer to one export request.

    .venv/bin/python -m benchmarks.collector_queues [--rounds 5] [--requests 100] [--variants a,b]

No timing is asserted anywhere; the figures go into collector/README.md ("Durable queues").
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from benchmarks.measure import sample
from otel_dist.stack.build import ensure_binaries
from otel_dist.stack.supervisor import LOOPBACK, REPO_ROOT, Ports, merged_collector_config, start_stack

OUT = Path(__file__).resolve().parent / "out"
SPANS_PER_REQUEST = LOGS_PER_REQUEST = 100
POINTS_PER_REQUEST = 20
SIGNALS = ("traces", "logs", "metrics")
#: The collector's counter of what it sent, per signal (exporter label decides which backend).
SENT = {
    "traces": "otelcol_exporter_sent_spans_total",
    "logs": "otelcol_exporter_sent_log_records_total",
    "metrics": "otelcol_exporter_sent_metric_points_total",
}


# --- the variants -----------------------------------------------------------------------------------------


def shipped_config() -> dict[str, Any]:
    """otelcol.yaml merged with logs-victorialogs.yaml, as the local stack runs it (anchors resolved)."""
    files = (REPO_ROOT / "collector" / name for name in ("otelcol.yaml", "logs-victorialogs.yaml"))
    return copy.deepcopy(merged_collector_config(files))


def _queues(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for exporter in config["exporters"].values():
        yield exporter["sending_queue"]


def in_memory(config: dict[str, Any]) -> dict[str, Any]:
    """The queues in memory (no storage), batching still in the exporters."""
    for queue in _queues(config):
        queue.pop("storage", None)
    config["service"]["extensions"] = [e for e in config["service"]["extensions"] if not e.startswith("file_storage")]
    config["extensions"] = {k: v for k, v in config["extensions"].items() if not k.startswith("file_storage")}
    return config


def phase_one(config: dict[str, Any]) -> dict[str, Any]:
    """What phase 1 shipped: in-memory queues, the batch processor last in every pipeline."""
    config = in_memory(config)
    for queue in _queues(config):
        queue.pop("batch", None)
    config["processors"]["batch"] = {"timeout": "1s", "send_batch_size": 1024, "send_batch_max_size": 2048}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = [*pipeline["processors"], "batch"]
    return config


def fsync(config: dict[str, Any]) -> dict[str, Any]:
    """The shipped config with an fsync after every write (survives a power loss, not only a crash)."""
    config["extensions"]["file_storage/queues"]["fsync"] = True
    return config


VARIANTS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "memory_batch_processor": ("in-memory queues, batch processor (phase 1)", phase_one),
    "memory_exporter_batch": ("in-memory queues, batching in the exporter", in_memory),
    "persistent": ("file_storage queues, batching in the exporter (shipped)", lambda c: c),
    "persistent_fsync": ("the same with fsync: true", fsync),
}


# --- a collector per variant ------------------------------------------------------------------------------


@dataclass
class Collector:
    name: str
    process: subprocess.Popen[bytes]
    http_port: int
    metrics_port: int
    queue_dir: Path
    connection: http.client.HTTPConnection | None = None
    rounds: list[dict[str, float]] = field(default_factory=list)
    accepted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))

    def post(self, path: str, body: bytes) -> float:
        """One export request; seconds until the collector answered."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(LOOPBACK, self.http_port, timeout=30)
        started = time.perf_counter()
        self.connection.request("POST", path, body=body, headers={"Content-Type": "application/x-protobuf"})
        response = self.connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.name}: {path} answered {response.status}")
        return time.perf_counter() - started

    def sent(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://{LOOPBACK}:{self.metrics_port}/metrics", timeout=5).read().decode()
        found = dict.fromkeys(SIGNALS, 0.0)
        for signal_name, metric in SENT.items():
            for match in re.finditer(rf"^{metric}{{[^}}]*}} ([0-9.e+]+)$", text, re.MULTILINE):
                found[signal_name] += float(match.group(1))
        return found

    def wait_sent(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sent = self.sent()
            if all(sent[s] >= self.accepted[s] for s in SIGNALS):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: sent {sent}, accepted {self.accepted}")
            time.sleep(0.05)


def start_collector(name: str, config: dict[str, Any], binary: Path, stack_ports: Ports, work: Path) -> Collector:
    ports = Ports.free()
    directory = work / name
    queue_dir = directory / "queues"
    queue_dir.mkdir(parents=True)
    config_path = directory / "otelcol.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTELCOL_OTLP_GRPC_ENDPOINT=f"{LOOPBACK}:{ports.otlp_grpc}",
        OTELCOL_OTLP_HTTP_ENDPOINT=f"{LOOPBACK}:{ports.otlp_http}",
        OTELCOL_HEALTH_ENDPOINT=f"{LOOPBACK}:{ports.collector_health}",
        OTELCOL_METRICS_HOST=LOOPBACK,
        OTELCOL_METRICS_PORT=str(ports.collector_metrics),
        OTELCOL_STORAGE_DIR=str(queue_dir),
        JAEGER_OTLP_GRPC_ENDPOINT=f"{LOOPBACK}:{stack_ports.jaeger_otlp_grpc}",
        PROMETHEUS_OTLP_ENDPOINT=f"http://{LOOPBACK}:{stack_ports.prometheus}/api/v1/otlp",
        VICTORIALOGS_URL=f"http://{LOOPBACK}:{stack_ports.victorialogs}",
    )
    log = (directory / "otelcol.log").open("wb")
    process = subprocess.Popen(
        [str(binary), f"--config=file:{config_path}"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=directory
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://{LOOPBACK}:{ports.collector_health}/", timeout=1).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"collector {name} did not start: {directory / 'otelcol.log'}") from None
            time.sleep(0.1)
    return Collector(name, process, ports.otlp_http, ports.collector_metrics, queue_dir)


# --- the load ---------------------------------------------------------------------------------------------


def _attrs(**values: str | int) -> list[KeyValue]:
    return [
        KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=v))
        for k, v in values.items()
    ]


def _resource(service: str) -> Resource:
    return Resource(attributes=_attrs(**{"service.name": service, "service.instance.id": f"{service}-1"}))


def traces_request(service: str, seq: int) -> bytes:
    now = time.time_ns()
    spans = [
        Span(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name="GET /items/{item_id}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=now - 2_000_000,
            end_time_unix_nano=now,
            attributes=_attrs(
                **{
                    "http.request.method": "GET",
                    "http.route": "/items/{item_id}",
                    "url.path": f"/items/{seq * SPANS_PER_REQUEST + i}",
                    "http.response.status_code": 200,
                    "request_id": os.urandom(8).hex(),
                }
            ),
        )
        for i in range(SPANS_PER_REQUEST)
    ]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=_resource(service), scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def logs_request(service: str, seq: int) -> bytes:
    now = time.time_ns()
    records = [
        LogRecord(
            time_unix_nano=now,
            observed_time_unix_nano=now,
            severity_number=9,
            severity_text="INFO",
            body=AnyValue(string_value="http.request"),
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            attributes=_attrs(
                **{"http.route": "/items/{item_id}", "status": 200, "request_id": f"{seq}-{i}-{os.urandom(4).hex()}"}
            ),
        )
        for i in range(LOGS_PER_REQUEST)
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=_resource(service), scope_logs=[ScopeLogs(log_records=records)])]
    )
    return request.SerializeToString()


def metrics_request(service: str, seq: int) -> bytes:
    now = time.time_ns()
    points = [
        NumberDataPoint(
            start_time_unix_nano=now - 10**12,
            time_unix_nano=now,
            as_int=seq,
            attributes=_attrs(**{"http.route": f"/route/{i}"}),
        )
        for i in range(POINTS_PER_REQUEST)
    ]
    metric = Metric(
        name="bench.requests",
        unit="{request}",
        sum=Sum(
            data_points=points,
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
        ),
    )
    request = ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(resource=_resource(service), scope_metrics=[ScopeMetrics(metrics=[metric])])]
    )
    return request.SerializeToString()


ENCODERS = {"traces": traces_request, "logs": logs_request, "metrics": metrics_request}
ITEMS = {"traces": SPANS_PER_REQUEST, "logs": LOGS_PER_REQUEST, "metrics": POINTS_PER_REQUEST}


def one_round(collector: Collector, requests: int, seq: int) -> dict[str, float]:
    """Send ``requests`` export requests per signal (encoded beforehand), wait until all was sent on; measure."""
    service = f"bench-{collector.name}"
    bodies = [
        (signal_name, ENCODERS[signal_name](service, seq * requests + i))
        for i in range(requests)
        for signal_name in SIGNALS
    ]
    proc = psutil.Process(collector.process.pid)
    written_before = proc.io_counters().write_bytes
    before = sample(collector.process.pid)
    latencies = []
    for signal_name, body in bodies:
        latencies.append(collector.post(f"/v1/{signal_name}", body))
        collector.accepted[signal_name] += ITEMS[signal_name]
    collector.wait_sent()
    after = sample(collector.process.pid)
    items = requests * sum(ITEMS.values())
    return {
        "cpu_us_per_item": (after - before).cpu / items * 1e6,
        "disk_bytes_per_item": (proc.io_counters().write_bytes - written_before) / items,
        "answer_ms_p50": statistics.median(latencies) * 1e3,
        "answer_ms_p99": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1e3,
        "rss_mib": after.rss / 2**20,
    }


def run(rounds: int, requests: int, names: list[str]) -> dict[str, Any]:
    binaries = ensure_binaries(["otelcol", "prometheus", "jaeger", "victorialogs", "alertmanager"])
    with tempfile.TemporaryDirectory(prefix="otel-dist-bench-queues-") as tmp:
        work = Path(tmp)
        stack = start_stack(ports=Ports.free(), data_dir=work / "stack", binaries=binaries)
        collectors: list[Collector] = []
        try:
            for name in names:
                collectors.append(
                    start_collector(name, VARIANTS[name][1](shipped_config()), binaries["otelcol"], stack.ports, work)
                )
            for collector in collectors:  # warm-up: connections to the backends, first allocations
                one_round(collector, max(requests // 5, 2), seq=10_000)
                collector.process.send_signal(signal.SIGSTOP)
            for number in range(rounds):
                order = collectors[number % len(collectors) :] + collectors[: number % len(collectors)]
                for collector in order:
                    collector.process.send_signal(signal.SIGCONT)
                    time.sleep(0.3)
                    collector.rounds.append(one_round(collector, requests, seq=number))
                    collector.process.send_signal(signal.SIGSTOP)
                    print(f"round {number + 1}/{rounds} {collector.name}: {collector.rounds[-1]}", flush=True)
        finally:
            for collector in collectors:
                collector.process.send_signal(signal.SIGCONT)
                collector.process.terminate()
                collector.process.wait(timeout=15)
            stack.stop()
    return summarise(collectors, rounds, requests)


def summarise(collectors: list[Collector], rounds: int, requests: int) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "rounds": rounds,
        "requests_per_signal_per_round": requests,
        "items_per_round": requests * sum(ITEMS.values()),
        "variants": {},
    }
    baseline = None
    for collector in collectors:
        cpu = [r["cpu_us_per_item"] for r in collector.rounds]
        row = {
            "what": VARIANTS[collector.name][0],
            "cpu_us_per_item": round(statistics.median(cpu), 2),
            "cpu_us_per_item_min_max": [round(min(cpu), 2), round(max(cpu), 2)],
            "disk_bytes_per_item": round(statistics.median(r["disk_bytes_per_item"] for r in collector.rounds)),
            "answer_ms_p50": round(statistics.median(r["answer_ms_p50"] for r in collector.rounds), 2),
            "answer_ms_p99": round(statistics.median(r["answer_ms_p99"] for r in collector.rounds), 2),
            "rss_mib": round(max(r["rss_mib"] for r in collector.rounds), 1),
        }
        if baseline is None:
            baseline = row["cpu_us_per_item"]
        row["ratio"] = round(row["cpu_us_per_item"] / baseline, 2)
        results["variants"][collector.name] = row
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| variant | collector CPU µs/item (min-max) | ratio | disk bytes/item | answer ms p50 / p99 | RSS MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in results["variants"].items():
        low, high = row["cpu_us_per_item_min_max"]
        lines.append(
            f"| `{name}`: {row['what']} | {row['cpu_us_per_item']} ({low}-{high}) | {row['ratio']} | "
            f"{row['disk_bytes_per_item']} | {row['answer_ms_p50']} / {row['answer_ms_p99']} | {row['rss_mib']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100, help="export requests per signal per round")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; the first is the baseline")
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    results = run(args.rounds, args.requests, names)
    OUT.mkdir(exist_ok=True)
    (OUT / "collector_queues.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (OUT / "collector_queues.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
