"""Metric shape as exported: buckets in seconds, exponential option, exemplars, pull mode, process metrics."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from opentelemetry import metrics, trace

from otel_dist.metrics import DURATION_BUCKETS, MEMORY_LIMIT_METRIC, detect_memory_limit
from tests.support.otlp_receiver import OtlpReceiver, free_port, wait_for

ONLY_METRICS = {"traces_exporter": "none", "logs_exporter": "none"}


def test_duration_histograms_use_second_buckets_and_carry_trace_exemplars(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, logs_exporter="none")
    duration = metrics.get_meter("m").create_histogram("job.duration", unit="s")
    with trace.get_tracer("t").start_as_current_span("job") as span:
        duration.record(0.3)
    telemetry.force_flush(5)
    [(_, point)] = receiver.latest_points("job.duration")
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert point.count == 1
    [exemplar] = point.exemplars
    assert exemplar.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")


def test_exponential_histograms_on_request(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(
        endpoint=receiver.endpoint, histogram_aggregation="base2_exponential_bucket_histogram", **ONLY_METRICS
    )
    metrics.get_meter("m").create_histogram("job.duration", unit="s").record(0.3)
    telemetry.force_flush(5)
    [metric] = [m.item for m in receiver.metrics("job.duration")][-1:]
    assert metric.WhichOneof("data") == "exponential_histogram"


def test_process_metrics_and_the_memory_limit_are_exported(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, system_metrics=True, memory_limit="512Mi", **ONLY_METRICS)
    telemetry.force_flush(5)
    names = {m.item.name for m in receiver.metrics()}
    assert {"process.cpu.time", "process.memory.usage", "process.thread.count", "cpython.gc.collections"} <= names
    [(_, limit)] = receiver.latest_points(MEMORY_LIMIT_METRIC)
    assert limit.as_int == 512 * 2**20


def test_prometheus_pull_mode_serves_the_same_metrics(configure) -> None:
    port = free_port()
    configure(metrics_exporter="prometheus", prometheus_port=port, **ONLY_METRICS)
    metrics.get_meter("m").create_counter("jobs.done", unit="{job}").add(3, {"queue": "default"})
    metrics.get_meter("m").create_histogram("job.duration", unit="s").record(0.3)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()

    text = wait_for(lambda: "jobs_done" in (body := scrape()) and body)
    samples = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if line[:1] not in "#"}
    [counter] = [value for name, value in samples.items() if name.startswith("jobs_done_total{")]
    assert counter == "3.0"
    assert any(n.startswith("jobs_done_total{") and 'queue="default"' in n for n in samples)
    [bucket] = [v for n, v in samples.items() if n.startswith("job_duration_seconds_bucket{") and 'le="0.5"' in n]
    assert bucket == "1.0"
    assert any(name.startswith("target_info{") and 'service_name="unknown_service:python"' in name for name in samples)


def test_cgroup_memory_limit_detection(tmp_path: Path) -> None:
    limited, unlimited, v1_unlimited = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    limited.write_text("536870912\n")
    unlimited.write_text("max\n")
    v1_unlimited.write_text(str(2**63 - 4096))
    assert detect_memory_limit([limited]) == 536870912
    assert detect_memory_limit([unlimited]) is None
    assert detect_memory_limit([v1_unlimited]) is None
    assert detect_memory_limit([tmp_path / "missing", limited]) == 536870912
