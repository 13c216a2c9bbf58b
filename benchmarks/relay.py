"""The real OpenTelemetry Collector between the benchmarked servers and the sink (``--receiver collector``).

The servers then export to the collector build the stack ships (``otel_dist.stack.build``: the pinned otelcol),
which answers them as it would in production — its OTLP/HTTP receiver decodes every request, ``memory_limiter``
runs first, the exporters batch in their sending queues as in ``collector/otelcol.yaml`` — and forwards
everything to the sink, which keeps counting items per server. One receiver and one exporter per sink port, so
each server still has its own counters. The collector runs on the load cores: its CPU is never counted with a
server's.

Only the backends are left out (the sink stands in for Prometheus, Jaeger and VictoriaLogs, which cost the
application nothing): what the app pays for is the export, the receiver's answer time and its refusals, and that
is the same path.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.servers import Sink, _stop, clean_environ, free_port
from otel_dist.stack import http

_PIPELINE_SIGNALS = ("traces", "metrics", "logs")


def collector_config(front_ports: list[int], sink: Sink, health_port: int) -> str:
    """The relay's configuration (JSON is YAML): receiver ``otlp/i`` on ``front_ports[i]`` -> sink port ``i``."""
    receivers: dict[str, Any] = {}
    exporters: dict[str, Any] = {}
    pipelines: dict[str, Any] = {}
    for index, port in enumerate(front_ports):
        receivers[f"otlp/{index}"] = {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}
        exporters[f"otlp_http/{index}"] = {
            "endpoint": sink.endpoint(index),
            "compression": "none",
            "timeout": "10s",
            "retry_on_failure": {"enabled": True, "initial_interval": "1s", "max_elapsed_time": "60s"},
            # as collector/otelcol.yaml batches (in memory here: durability is not what this measures)
            "sending_queue": {
                "enabled": True,
                "num_consumers": 2,
                "sizer": "requests",
                "queue_size": 1000,
                "batch": {"sizer": "items", "flush_timeout": "1s", "min_size": 1024, "max_size": 2048},
            },
        }
        for signal in _PIPELINE_SIGNALS:
            pipelines[f"{signal}/{index}"] = {
                "receivers": [f"otlp/{index}"],
                "processors": ["memory_limiter"],
                "exporters": [f"otlp_http/{index}"],
            }
    config = {
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
        "receivers": receivers,
        "processors": {"memory_limiter": {"check_interval": "1s", "limit_mib": 1024, "spike_limit_mib": 256}},
        "exporters": exporters,
        "service": {
            "extensions": ["health_check"],
            "pipelines": pipelines,
            "telemetry": {"logs": {"level": "warn"}, "metrics": {"level": "none"}},
        },
    }
    return json.dumps(config, indent=1)


@dataclass
class Relay:
    process: subprocess.Popen[bytes]
    front_ports: list[int]
    log_path: Path

    def stop(self) -> None:
        _stop(self.process)


def start_relay(sink: Sink, cores: set[int], out: Path) -> Relay:
    """Start the collector in front of every sink port and point ``sink``'s endpoints at it."""
    from otel_dist.stack.build import ensure_binaries

    binary = ensure_binaries(["otelcol"])["otelcol"]
    front_ports = [free_port() for _ in sink.ports]
    health_port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "relay-collector.yaml"
    config_path.write_text(collector_config(front_ports, sink, health_port))
    log_path = out / "relay-collector.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(binary), "--config", str(config_path)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),  # noqa: PLW1509 - sets only the child's affinity
            start_new_session=True,
            env=clean_environ(),
        )
    relay = Relay(process, front_ports, log_path)
    deadline = time.monotonic() + 60
    while not http.is_ready(f"http://127.0.0.1:{health_port}/", timeout=2):
        if process.poll() is not None:
            raise RuntimeError(f"the relay collector exited: {log_path.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            relay.stop()
            raise RuntimeError(f"the relay collector did not become healthy: {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    sink.front_ports = front_ports
    return relay
