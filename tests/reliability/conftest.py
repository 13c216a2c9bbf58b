"""The fault matrix: a real stack per test, the example app under steady load, a report of what each fault cost.

Each test gets its own stack (the real collector, Prometheus, Jaeger, VictoriaLogs and Alertmanager on free
loopback ports; a warm start takes well under a second), so a test can kill, stop or freeze any of it. The
configs are the repository's, copied, with Prometheus scraping and evaluating every second so that collector
metrics and pending alerts show within seconds. What each test measured goes into one JSON report
(``.reliability/report.json``, or ``OTEL_DIST_RELIABILITY_REPORT``); ``python -m tests.reliability.report``
turns it into the table of RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from otel_dist.rules.render import render, write
from otel_dist.rules.spec import parse_spec
from otel_dist.stack import http
from otel_dist.stack.example import APP, app_environment, free_port
from otel_dist.stack.supervisor import (
    LOCAL_ONLY_CONFIGS,
    REPO_ROOT,
    SHARED_CONFIGS,
    Ports,
    Stack,
    restart_service,
    start_stack,
)
from tests.stack.binaries import stack_binaries

T = TypeVar("T")

REPORT_PATH = Path(os.environ.get("OTEL_DIST_RELIABILITY_REPORT", REPO_ROOT / ".reliability" / "report.json"))
BIN = Path(sys.executable).parent

#: The app's settings in every fault run: every request a trace, fast exports, the SDK's default export
#: timeout (10 s: the retry window of a batch) and shutdown deadline (5 s).
APP_ENV = {
    "OTEL_DIST_SERVICE_VERSION": "1.2.3",
    "OTEL_DIST_ENVIRONMENT": "reliability",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BLRP_SCHEDULE_DELAY": "200",
}
#: Seconds a backend may take to show what was sent.
WAIT = 30.0
#: platform.collector.backlog_for in the fault runs' rules (the shipped spec says 1m).
BACKLOG_FOR_SECONDS = 3


def eventually(check: Callable[[], T], timeout: float = WAIT, interval: float = 0.5) -> T:
    """Call ``check`` until it stops raising AssertionError/QueryError, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, http.QueryError):
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


def settle(read: Callable[[], int], expected: int, timeout: float = WAIT, *, stable: float | None = None) -> int:
    """Poll ``read`` until it returns ``expected`` or ``timeout`` passes; return the last value (0 on errors).

    ``stable``: also stop once a non-zero value has not changed for that many seconds (for faults that lose data
    on purpose: waiting longer would not bring it back).
    """
    deadline = time.monotonic() + timeout
    value, since = 0, time.monotonic()
    while True:
        previous = value
        with contextlib.suppress(http.QueryError):
            value = read()
        now = time.monotonic()
        if value != previous:
            since = now
        if value == expected or now > deadline or (stable is not None and value and now - since >= stable):
            return value
        time.sleep(0.5)


# --- the stack --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    return stack_binaries()


@pytest.fixture(scope="session")
def fault_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's stack configs, with Prometheus scraping and evaluating rules every second."""
    repo = tmp_path_factory.mktemp("reliability-repo")
    for path in (*SHARED_CONFIGS, *LOCAL_ONLY_CONFIGS, "collector"):
        source, target = REPO_ROOT / path, repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)
    prometheus = yaml.safe_load((REPO_ROOT / "prometheus/prometheus.yml").read_text())
    prometheus["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (repo / "prometheus/prometheus.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))
    # The same rules with the backlog alert in seconds, so a fault of seconds shows it pending and firing.
    objectives_path = REPO_ROOT / "prometheus/objectives.yaml"
    objectives = yaml.safe_load(objectives_path.read_text())
    objectives["platform"]["collector"]["backlog_for"] = f"{BACKLOG_FOR_SECONDS}s"
    write(render(parse_spec(objectives, source=objectives_path)), repo / "prometheus/rules")
    return repo


@dataclass
class FaultStack:
    """A stack of the test's own, and what it takes to restart any of its services."""

    stack: Stack
    binaries: Mapping[str, Path]
    repo: Path

    def process(self, name: str) -> psutil.Process:
        record = self.stack.records[name]
        proc = record.process()
        assert proc is not None, f"{name} is not running"
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop (or kill) one service and reap it."""
        proc = self.process(name)
        proc.send_signal(sig)
        proc.wait(timeout=15)

    def restart(self, name: str) -> None:
        restart_service(self.stack, name, binaries=self.binaries, repo=self.repo)

    def freeze(self, name: str) -> None:
        self.process(name).send_signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        self.process(name).send_signal(signal.SIGCONT)


@pytest.fixture
def fault_stack(tmp_path: Path, binaries: dict[str, Path], fault_repo: Path) -> Iterator[FaultStack]:
    stack = start_stack(ports=Ports.free(), data_dir=tmp_path / "stack", binaries=binaries, repo=fault_repo)
    try:
        yield FaultStack(stack, binaries, fault_repo)
    finally:
        for name in stack.records:  # a frozen process would ignore SIGTERM
            record = stack.records[name].process()
            if record is not None:
                record.send_signal(signal.SIGCONT)
        stack.stop()


# --- the app ----------------------------------------------------------------------------------------------


@dataclass
class App:
    """The example app served by uvicorn or gunicorn (prefork), exporting to ``endpoint``."""

    service: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(seconds=2))
    exit_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait for the exit (the server drains, then otel-dist flushes); seconds it took."""
        if self.process.poll() is None:
            started = time.monotonic()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError(f"the app did not exit within {timeout}s of SIGTERM") from None
            self.exit_seconds = time.monotonic() - started
        return self.exit_seconds or 0.0

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()


def serve(
    endpoint: str,
    log_dir: Path,
    *,
    server: str = "uvicorn",
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    app: str = APP,
    args: Sequence[str] = (),
) -> App:
    """Start ``app`` (default: the example app) as a new service exporting to ``endpoint``; wait until it answers.

    ``args`` go to the server's command line.
    """
    service = f"rel-{uuid.uuid4().hex[:8]}"
    port = free_port()
    if server == "uvicorn":
        command = [str(BIN / "python"), "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *args]
    else:
        command = [str(BIN / "gunicorn"), app, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *args]
        command += ["--worker-class", "uvicorn_worker.UvicornWorker", "--graceful-timeout", "20"]
    environment = app_environment(service, otlp_endpoint=endpoint, env={**APP_ENV, **(env or {})})
    log_path = log_dir / f"{service}.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    started = App(service, process, port, log_path)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the app exited while starting:\n{started.output()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()  # no request: it would add telemetry
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the app did not listen within 60s:\n{started.output()[-3000:]}") from None
            time.sleep(0.2)
    if server == "gunicorn":  # every worker up, not just the first
        while len(started.workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the last worker booted: give it the moment to run its lifespan
    return started


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[App]]:
    """Apps a test started; killed at the end if still running."""
    started: list[App] = []
    yield started
    for app in started:
        if app.process.poll() is None:
            app.process.kill()
            app.process.wait(timeout=10)


# --- what arrived -----------------------------------------------------------------------------------------

DURATION_COUNT = "http_server_request_duration_seconds_count"


def metric_count(stack: Stack, service: str) -> int:
    value = http.promql_scalar(stack.prometheus_url, f'sum({DURATION_COUNT}{{job="{service}"}})')
    return int(value or 0)


def trace_counts(stack: Stack, app: App) -> tuple[int, int]:
    """(traces, spans) Jaeger holds for the app's service."""
    traces = http.jaeger_traces(
        stack.jaeger_url, app.service, app.started_at, datetime.now(UTC) + timedelta(seconds=5), limit=20_000
    )
    return len(traces), sum(len(spans) for spans in traces.values())


def log_counts(stack: Stack, service: str) -> tuple[int, int]:
    """(access lines, distinct request IDs among them) VictoriaLogs holds for the service."""
    query = (
        f'"service.name":={http.logsql_quote(service)} _msg:="http.request" '
        "| stats count() lines, count_uniq(request_id) ids"
    )
    [row] = http.logsql(stack.victorialogs_url, query) or [{"lines": "0", "ids": "0"}]
    return int(row["lines"]), int(row["ids"])


def received(
    stack: Stack, app: App, expected: int, timeout: float = WAIT, *, lossy: bool = False
) -> dict[str, dict[str, int]]:
    """What each backend holds for the app, waiting up to ``timeout`` for ``expected`` in each.

    ``received`` counts distinct requests (traces in Jaeger, request IDs among the access lines); what arrived more
    than once (OTLP delivery is at-least-once) is in ``duplicates``: spans beyond one per trace, lines beyond one
    per request ID. Metrics are cumulative counters: a point delivered twice changes no count.
    ``lossy``: the fault loses data by design; stop waiting once the counts have been still for 5 s.
    """
    stable = 5.0 if lossy else None
    metrics = settle(lambda: metric_count(stack, app.service), expected, timeout, stable=stable)
    traces = settle(lambda: trace_counts(stack, app)[0], expected, timeout, stable=stable)
    _, spans = trace_counts(stack, app)
    ids = settle(lambda: log_counts(stack, app.service)[1], expected, timeout, stable=stable)
    lines, ids = log_counts(stack, app.service)
    return {
        "metrics": {"sent": expected, "received": metrics},
        "traces": {"sent": expected, "received": traces, "spans": spans, "duplicates": spans - traces},
        "logs": {"sent": expected, "received": ids, "lines": lines, "duplicates": lines - ids},
    }


def recovered_from_disk(collector_log: Path) -> dict[str, int]:
    """Items per signal the collector found in its persistent queues when it last started (0: none left).

    From its log: ``Loaded queue metadata {... "otelcol.signal": "traces", "itemsSize": 33 ...}``, one line per
    exporter, written by exporterhelper's persistent queue after the start marker the supervisor writes.
    """
    text = collector_log.read_text(errors="replace")
    last_start = text.rsplit("\n=== ", 1)[-1]
    found: dict[str, int] = {}
    for line in last_start.splitlines():
        if "Loaded queue metadata" not in line:
            continue
        fields = json.loads(line[line.index("{") :])
        found[fields["otelcol.signal"]] = found.get(fields["otelcol.signal"], 0) + int(fields.get("itemsSize", 0))
    return found


def sdk_failures(stack: Stack, service: str) -> dict[str, int]:
    """The SDK's own counters of what it could not export or dropped, per signal (from Prometheus)."""
    counters = {
        "spans_failed": 'otel_sdk_exporter_span_exported_total{job="%s", error_type!=""}',
        "logs_failed": 'otel_sdk_exporter_log_exported_total{job="%s", error_type!=""}',
        "spans_dropped_queue_full": 'otel_sdk_processor_span_processed_total{job="%s", error_type="queue_full"}',
        "logs_dropped_queue_full": 'otel_sdk_processor_log_processed_total{job="%s", error_type="queue_full"}',
    }
    found = {}
    for name, selector in counters.items():
        value = http.promql_scalar(stack.prometheus_url, f"sum({selector % service})")
        found[name] = int(value or 0)
    return found


# --- the report -------------------------------------------------------------------------------------------


class Report:
    """Per-fault results, merged into the JSON report when the session ends (a rerun replaces its rows)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def record(self, fault: str, **result: Any) -> None:
        self.rows[fault] = {"fault": fault, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}

    def write(self, path: Path = REPORT_PATH) -> None:
        if not self.rows:
            return
        existing: dict[str, Any] = {}
        if path.exists():
            try:
                existing = json.loads(path.read_text())
            except ValueError:
                existing = {}
        faults = {**existing.get("faults", {}), **self.rows}
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "faults": faults}
        path.write_text(json.dumps(document, indent=2) + "\n")


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    collected = Report()
    yield collected
    collected.write()
