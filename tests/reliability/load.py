"""A bounded, steady load on loopback: open-loop at a fixed rate, a few worker threads, every request recorded.

Requests are ``GET /items/<n>`` with ``X-Request-ID: <prefix>-<n>`` (one server span, one duration measurement
and one ``http.request`` access line each), plus optional slow ones. Each is tagged with the phase current when
it was sent (``before``, ``fault``, ``after``, ...), so latency under a fault is compared with the no-fault
phase of the same run. The process's peak RSS (children included, for prefork servers) is sampled per phase.
"""

from __future__ import annotations

import http.client
import queue
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil


@dataclass(frozen=True)
class Sample:
    phase: str
    request_id: str
    path: str
    started: float  # time.monotonic()
    seconds: float
    status: int | None  # None: no answer (connection refused or reset)
    error: str | None = None


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


@dataclass
class Load:
    """``with Load(port, prefix, rate=...) as load:`` sends until the block ends (or ``limit`` requests)."""

    port: int
    prefix: str
    rate: float = 40.0  # requests per second
    workers: int = 4
    limit: int = 5000  # never more than this many requests, whatever happens
    slow_every: int = 0  # every n-th request is GET /slow?seconds=slow_seconds (0: none)
    slow_seconds: float = 1.0
    pid: int | None = None  # the server process whose RSS is sampled
    samples: list[Sample] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)
    phase: str = "before"

    def __post_init__(self) -> None:
        self._tickets: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # --- phases ------------------------------------------------------------------------------------------
    @contextmanager
    def in_phase(self, name: str) -> Iterator[None]:
        previous, self.phase = self.phase, name
        try:
            yield
        finally:
            self.phase = previous

    def set_phase(self, name: str) -> None:
        self.phase = name

    # --- running -----------------------------------------------------------------------------------------
    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._schedule, daemon=True)]
        self._threads += [threading.Thread(target=self._work, daemon=True) for _ in range(self.workers)]
        if self.pid is not None:
            self._threads.append(threading.Thread(target=self._sample_rss, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop scheduling and wait for the requests in flight."""
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _schedule(self) -> None:
        started = time.monotonic()
        for number in range(1, self.limit + 1):
            due = started + (number - 1) / self.rate
            while (delay := due - time.monotonic()) > 0:
                if self._stop.wait(min(delay, 0.05)):
                    break
            if self._stop.is_set():
                break
            self._tickets.put((number, self.phase))
        for _ in range(self.workers):
            self._tickets.put(None)

    def _path(self, number: int) -> str:
        if self.slow_every and number % self.slow_every == 0:
            return f"/slow?seconds={self.slow_seconds}"
        return f"/items/{number % 400}" if number % 400 != 404 else "/items/1"

    def _work(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while (ticket := self._tickets.get()) is not None:
            number, phase = ticket
            path = self._path(number)
            request_id = f"{self.prefix}-{number:05d}"
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            for attempt in (1, 2):  # a pooled connection the server closed: once more on a fresh one
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    connection.request("GET", path, headers={"X-Request-ID": request_id})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    if response.getheader("connection", "").lower() == "close":
                        connection.close()
                        connection = None
                    break
                except (OSError, http.client.HTTPException) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    if connection is not None:
                        connection.close()
                    connection = None
                    if attempt == 2 or isinstance(exc, ConnectionRefusedError):
                        break
                    started = time.monotonic()
            sample = Sample(phase, request_id, path, started, time.monotonic() - started, status, error)
            with self._lock:
                self.samples.append(sample)
        if connection is not None:
            connection.close()

    def _sample_rss(self) -> None:
        assert self.pid is not None
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.wait(0.2):
            try:
                processes = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in processes)
            except psutil.Error:
                continue
            with self._lock:
                self.peak_rss[self.phase] = max(self.peak_rss.get(self.phase, 0), rss)

    # --- results -----------------------------------------------------------------------------------------
    def served(self, phase: str | None = None) -> list[Sample]:
        """Requests answered (any status), in ``phase`` or all."""
        return [s for s in self.samples if s.status is not None and (phase is None or s.phase == phase)]

    def ok(self) -> list[Sample]:
        """Requests answered 200."""
        return [s for s in self.samples if s.status == 200]

    def latency(self, phase: str, *, fast_only: bool = True) -> dict[str, float | int | None]:
        seconds = [s.seconds for s in self.served(phase) if not (fast_only and s.path.startswith("/slow"))]
        return {
            "requests": len(seconds),
            "p50_ms": _ms(percentile(seconds, 0.5)),
            "p99_ms": _ms(percentile(seconds, 0.99)),
            "max_ms": _ms(max(seconds) if seconds else None),
            "mean_ms": _ms(statistics.fmean(seconds) if seconds else None),
        }

    def summary(self, baseline: str = "before", fault: str = "fault") -> dict[str, Any]:
        """Served counts, p50/p99 per phase and their ratios (fault / baseline), peak RSS in MiB."""
        phases = sorted({s.phase for s in self.samples}, key=[s.phase for s in self.samples].index)
        latencies = {phase: self.latency(phase) for phase in phases}
        base, under = latencies.get(baseline, {}), latencies.get(fault, {})
        return {
            "requests_sent": len(self.samples),
            "requests_served": len(self.served()),
            "requests_ok": len(self.ok()),
            "requests_failed": len(self.samples) - len(self.ok()),
            "latency": latencies,
            "p50_ratio": _ratio(under.get("p50_ms"), base.get("p50_ms")),
            "p99_ratio": _ratio(under.get("p99_ms"), base.get("p99_ms")),
            "peak_rss_mib": {phase: round(rss / 2**20, 1) for phase, rss in self.peak_rss.items()},
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _ratio(value: Any, base: Any) -> float | None:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or base <= 0:
        return None
    return round(value / base, 2)
