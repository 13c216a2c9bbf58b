"""Pull mode (``/metrics``) across prefork workers, with the OTel SDK left whole.

Each worker keeps its own MeterProvider and Prometheus reader (views, exemplars filter, cardinality limits all
apply) and every :data:`SNAPSHOT_INTERVAL` seconds writes what its reader would expose into
``<directory>/<service.instance.id>.json`` (atomically). ``/metrics``, answered by whichever worker the scrape
reaches, merges every fresh snapshot and labels each series with ``service_instance_id``, so the workers' series
never collide and no worker's counts are lost. A worker that died stops refreshing its file and drops out after
:data:`STALE_AFTER` seconds; its replacement reports under a new instance ID.

Why not ``opentelemetry-sdk-extension-prometheus-multiprocess``: it replaces the SDK's MeterProvider with
prometheus_client instruments, so views, cardinality limits, exemplars and every observable instrument (process
metrics included) are lost; it raises on mixed label sets. Measured against our needs, a snapshot per worker
costs one collection every few seconds and keeps the whole pipeline.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

SNAPSHOT_INTERVAL: Final = 5.0
STALE_AFTER: Final = 3 * SNAPSHOT_INTERVAL
INSTANCE_LABEL: Final = "service_instance_id"


class SnapshotWriter:
    """Writes this process's exposition to the shared directory, periodically and on demand."""

    def __init__(self, registry: Any, directory: Path, instance_id: Callable[[], str]) -> None:
        self._registry = registry
        self._directory = directory
        self._instance_id = instance_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        directory.mkdir(parents=True, exist_ok=True)
        os.register_at_fork(after_in_child=self._restart_in_child)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="otel-dist-metrics-snapshot", daemon=True)
        self._thread.start()

    def _restart_in_child(self) -> None:
        if self._thread is not None:  # the parent's thread does not exist in the child
            self._stop = threading.Event()
            self.start()

    def _run(self) -> None:
        while not self._stop.wait(SNAPSHOT_INTERVAL):
            self.write()

    def write(self) -> None:
        """Write one snapshot now (never raises: a failed write must not hurt the worker)."""
        families = [
            {
                "name": family.name,
                "documentation": family.documentation,
                "type": family.type,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
            for family in self._registry.collect()
        ]
        target = self._directory / f"{self._instance_id()}.json"
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_bytes(orjson.dumps(families))
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the thread and write a last snapshot."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.write()


def _fresh_snapshots(directory: Path, stale_after: float) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    now = time.time()
    for path in sorted(directory.glob("*.json")):
        try:
            if now - path.stat().st_mtime > stale_after:
                continue
            yield path.stem, orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue  # being replaced right now, or gone: the next scrape sees it


def merged_families(directory: Path, stale_after: float = STALE_AFTER) -> list[Any]:
    """Every worker's families merged by name, each sample labelled with its worker's instance ID."""
    from prometheus_client.metrics_core import Metric

    families: dict[str, Any] = {}
    for instance, snapshot in _fresh_snapshots(directory, stale_after):
        for family in snapshot:
            merged = families.get(family["name"])
            if merged is None:
                merged = families[family["name"]] = Metric(family["name"], family["documentation"], family["type"])
            for name, labels, value in family["samples"]:
                merged.add_sample(name, {INSTANCE_LABEL: instance, **labels}, value)
    return list(families.values())


def exposition(directory: Path) -> bytes:
    """The Prometheus text exposition of all workers."""
    from prometheus_client import CollectorRegistry, generate_latest

    class _Merged:
        def collect(self) -> Iterable[Any]:
            return merged_families(directory)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)
