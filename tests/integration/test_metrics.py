"""Metric shape as exported: buckets in seconds, exponential option, exemplars, pull mode, process metrics."""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import metrics, trace

from otel_dist.filesystem_metrics import FILESYSTEM_USAGE_METRIC, Filesystem, filesystems_of
from otel_dist.metrics import DURATION_BUCKETS, MEMORY_LIMIT_METRIC, SIZE_BUCKETS, detect_memory_limit
from otel_dist.settings import ConfigurationError, resolve
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


def test_size_histograms_use_byte_buckets(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, **ONLY_METRICS)
    metrics.get_meter("m").create_histogram("document.size", unit="By").record(250_000)
    telemetry.force_flush(5)
    [(_, point)] = receiver.latest_points("document.size")
    assert tuple(point.explicit_bounds) == SIZE_BUCKETS
    assert list(point.bucket_counts)[SIZE_BUCKETS.index(250_000)] == 1  # le 250 kB: an upper bound is inclusive


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


@contextlib.contextmanager
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A fresh 8 MiB tmpfs where the machine lets us mount one (root in a sandbox), else ``tmp_path``'s own."""
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], capture_output=True, check=False
        ).returncode
        == 0
    )
    try:
        yield mountpoint
    finally:
        if mounted:
            subprocess.run(["umount", str(mountpoint)], check=False)


def test_the_filesystems_of_the_services_paths_are_reported(receiver, configure: OtlpReceiver, tmp_path: Path) -> None:
    with small_filesystem(tmp_path) as data_dir:
        telemetry = configure(
            endpoint=receiver.endpoint,
            system_metrics=True,
            filesystem_paths=[str(data_dir), str(data_dir / ".")],  # one filesystem, reported once
            **ONLY_METRICS,
        )
        (holding,) = filesystems_of([str(data_dir)])
        (data_dir / "blob").write_bytes(b"x" * 2**20)  # 1 MiB more used, 1 MiB less free
        telemetry.force_flush(5)
        points = {
            attributes["system.filesystem.state"]: (attributes, point.as_int)
            for attributes, point in receiver.latest_points(FILESYSTEM_USAGE_METRIC)
        }
        assert set(points) == {"used", "free", "reserved"}
        attributes = points["free"][0]
        assert attributes["system.filesystem.mountpoint"] == holding.mountpoint
        assert attributes["system.filesystem.mode"] == "rw"
        stat = os.statvfs(data_dir)
        assert sum(value for _, value in points.values()) == stat.f_blocks * stat.f_frsize  # states add up to the size
        if holding.type == "tmpfs" and holding.mountpoint == str(data_dir):
            assert points["used"][1] >= 2**20
            assert points["free"][1] <= 8 * 2**20 - 2**20


def test_a_missing_filesystem_path_fails_fast_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"OTEL_DIST_FILESYSTEM_PATHS.*not a directory"):
        resolve({}, {"OTEL_DIST_FILESYSTEM_PATHS": f"{tmp_path},{tmp_path / 'missing'}"})
    assert resolve({}, {"OTEL_DIST_FILESYSTEM_PATHS": "none"}).filesystem_paths == ()


def test_a_path_belongs_to_the_innermost_mount() -> None:
    mounts = [
        Filesystem("/", "/dev/root", "ext4", "rw"),
        Filesystem("/data", "/dev/sdb1", "xfs", "rw"),
        Filesystem("/data/cache", "tmpfs", "tmpfs", "rw"),
    ]
    found = filesystems_of(["/data/uploads", "/data/cache/x", "/datastore", "/data"], mounts)
    assert [f.mountpoint for f in found] == ["/data", "/data/cache", "/"]
