"""The fault matrix: each fault on the real collector and backends, the example app under steady load.

Every test serves the example FastAPI app (uvicorn, or gunicorn prefork), sends it a steady, bounded load on
loopback (``Load``) in phases (``before`` the fault, during the ``fault``, ``after`` it), injects one fault, then
stops the app (it flushes) and counts what arrived in Prometheus, Jaeger and VictoriaLogs. What it measured goes
into the report (requests served, p50/p99 under the fault vs before it, peak RSS, sent vs received per signal).

Latency is reported, never asserted, except by bounds generous enough to prove only "not blocked": no request
may wait anything like the exporter's 10 s timeout.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from otel_dist.stack import http
from tests.reliability.conftest import (
    BACKLOG_FOR_SECONDS,
    App,
    FaultStack,
    Report,
    eventually,
    received,
    recovered_from_disk,
    sdk_failures,
    serve,
)
from tests.reliability.grpc_proxy import GrpcFaultProxy
from tests.reliability.load import Load
from tests.reliability.proxy import FaultProxy

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

#: Requests per second, and seconds per phase.
RATE = 40.0
BEFORE, FAULT, AFTER = 3.0, 5.0, 3.0
#: "Not blocked": far below the exporter's 10 s timeout, far above any honest request on a busy 2-core machine.
NOT_BLOCKED_SECONDS = 3.0
#: The app's own shutdown deadline (OTEL_DIST_SHUTDOWN_TIMEOUT default) plus the server's drain and exit.
SHUTDOWN_BOUND_SECONDS = 5.0 + 10.0
#: The collector's early warning for a backend it cannot reach (prometheus/rules/otel-dist-platform-alerts.yml).
BACKLOG_ALERT = "OTelCollectorBackendUnreachable"


def run_phases(load: Load, fault_start: Callable[[], object], fault_end: Callable[[], object]) -> None:
    """before -> inject -> fault -> heal -> after."""
    time.sleep(BEFORE)
    load.set_phase("fault")
    fault_start()
    time.sleep(FAULT)
    fault_end()
    load.set_phase("after")
    time.sleep(AFTER)


def check_not_blocked(load: Load) -> None:
    failed = [s for s in load.samples if s.status != 200]
    assert not failed, f"{len(failed)} requests failed, e.g. {failed[:3]}"
    slowest = max(s.seconds for s in load.samples if not s.path.startswith("/slow"))
    assert slowest < NOT_BLOCKED_SECONDS, f"a request took {slowest:.2f}s: it waited for the exporter"


def loaded_app(apps: list[App], tmp_path: Path, endpoint: str, **kwargs: object) -> App:
    app = serve(endpoint, tmp_path / "apps", **kwargs)  # type: ignore[arg-type]
    apps.append(app)
    return app


@dataclass
class Outcome:
    load: Load
    served: int
    signals: dict[str, dict[str, int]]
    counts: dict[str, int]


def run_standard_fault(
    fault_stack: FaultStack,
    apps: list[App],
    tmp_path: Path,
    report: Report,
    name: str,
    inject: Callable[[], object],
    heal: Callable[[], object],
    *,
    timeout: float = 30.0,
    lossy: bool = False,
    extra: Callable[[], dict[str, object]] = dict,
) -> Outcome:
    """The example app under load: before, ``inject``, the fault, ``heal``, after; stop it; count and report."""
    stack = fault_stack.stack
    app = loaded_app(apps, tmp_path, stack.otlp_http_endpoint)
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        run_phases(load, inject, heal)
    check_not_blocked(load)
    exit_seconds = app.terminate()
    served = len(load.served())
    signals = received(stack, app, served, timeout=timeout, lossy=lossy)
    report.record(
        name,
        server="uvicorn",
        **load.summary(),
        exit_seconds=round(exit_seconds, 2),
        signals=signals,
        sdk_counted=sdk_failures(stack, app.service),
        **extra(),
    )
    return Outcome(load, served, signals, {signal: s["received"] for signal, s in signals.items()})


def test_no_fault(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """The reference: the same load and phases with nothing broken; every signal complete."""
    outcome = run_standard_fault(fault_stack, apps, tmp_path, report, "none", lambda: None, lambda: None)
    assert outcome.counts == dict.fromkeys(outcome.counts, outcome.served)


def test_collector_absent_at_start_up(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """The app starts and serves with no collector; what it could not send is counted; data flows once it appears."""
    stack = fault_stack.stack
    fault_stack.stop("otelcol")
    app = loaded_app(apps, tmp_path, stack.otlp_http_endpoint)
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid, phase="fault") as load:
        time.sleep(FAULT)
        fault_stack.restart("otelcol")
        load.set_phase("after")
        time.sleep(AFTER + 2)
    check_not_blocked(load)
    app.terminate()
    served = len(load.served())
    after = {s.request_id for s in load.served("after")}
    signals = received(stack, app, served, timeout=20, lossy=True)
    failures = eventually(lambda: sdk_failures(stack, app.service))
    report.record(
        "collector absent at start-up",
        server="uvicorn",
        **load.summary(baseline="after"),
        signals=signals,
        sdk_counted=failures,
        note="latency ratio: while absent vs after the collector appeared",
    )
    # Once the collector is there, everything sent from then on arrives: at least the "after" phase, in full.
    for name in ("metrics", "traces", "logs"):
        assert signals[name]["received"] >= len(after), signals
    # What could not be sent is counted, or nothing was lost at all (the exporter's retries outlasted the gap).
    lost = served - signals["traces"]["received"]
    assert lost == 0 or failures["spans_failed"] + failures["spans_dropped_queue_full"] >= lost, (signals, failures)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_collector_killed_and_restarted_within_the_retry_window(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report, how: str
) -> None:
    """Zero loss when the collector stops or crashes and is back within the exporters' retry window (10 s per
    batch): N requests = N counts in Prometheus = N traces in Jaeger = N access lines in VictoriaLogs."""
    outcome = run_standard_fault(
        fault_stack,
        apps,
        tmp_path,
        report,
        f"collector killed ({how}) and restarted after {FAULT:.0f} s",
        lambda: fault_stack.stop("otelcol", getattr(signal, how)),
        lambda: fault_stack.restart("otelcol"),
        timeout=40,
        extra=lambda: {"recovered_from_disk": recovered_from_disk(fault_stack.stack.log_path("otelcol"))},
    )
    served, signals, counts = outcome.served, outcome.signals, outcome.counts
    # SIGTERM: a graceful stop drains the collector's queues. SIGKILL: what the receivers had acknowledged is in the
    # persistent queues (collector/otelcol.yaml) and is sent after the restart. Either way nothing is lost.
    assert counts == dict.fromkeys(counts, served), signals


def test_collector_blackholed(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """A collector that accepts connections and never answers: requests unaffected, memory bounded by the
    queues, shutdown within its deadline while the fault lasts."""
    stack = fault_stack.stack
    upstream = ("127.0.0.1", stack.ports.otlp_http)
    with FaultProxy(upstream) as proxy:
        app = loaded_app(apps, tmp_path, proxy.endpoint)
        with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
            time.sleep(BEFORE)
            load.set_phase("fault")
            proxy.set_mode("blackhole")
            time.sleep(FAULT * 2)
        check_not_blocked(load)
        exit_seconds = app.terminate()  # still blackholed: the flush at exit must give up at its deadline
    served = len(load.served())
    signals = received(stack, app, served, timeout=10, lossy=True)
    report.record(
        "collector blackholed (accepts, never answers)",
        server="uvicorn",
        **load.summary(),
        exit_seconds=round(exit_seconds, 2),
        signals=signals,
        note="the app is stopped while the fault lasts: what was queued is lost, by design of the deadline",
    )
    assert exit_seconds < SHUTDOWN_BOUND_SECONDS
    before = len(load.served("before"))
    assert signals["traces"]["received"] >= before * 0.9, signals  # what was sent before the fault arrived


def test_collector_sigstopped(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """A frozen collector (SIGSTOP): the kernel still accepts connections; requests unaffected; after SIGCONT
    within the export timeout, the held requests are answered and nothing is lost."""
    outcome = run_standard_fault(
        fault_stack,
        apps,
        tmp_path,
        report,
        f"collector SIGSTOPped for {FAULT:.0f} s",
        lambda: fault_stack.freeze("otelcol"),
        lambda: fault_stack.thaw("otelcol"),
        lossy=True,
    )
    assert outcome.counts["metrics"] == outcome.served
    for name in ("traces", "logs"):
        assert outcome.served * 0.8 <= outcome.counts[name] <= outcome.served, outcome.signals


REFUSALS = {
    "503": ("http/protobuf", "collector answers 503 with Retry-After: 2"),
    "429": ("http/protobuf", "collector answers 429 with Retry-After: 2"),
    "RESOURCE_EXHAUSTED": ("grpc", "collector answers RESOURCE_EXHAUSTED with RetryInfo 2 s (gRPC)"),
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_collector_refuses_with_retry_after(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report, refusal: str
) -> None:
    """503 / 429 with Retry-After over HTTP, RESOURCE_EXHAUSTED with RetryInfo over gRPC: the exporters wait as
    told between attempts and between batches (no storm), memory stays bounded, and the batches retried after the
    collector recovers arrive."""
    stack = fault_stack.stack
    protocol, name = REFUSALS[refusal]
    retry_after = 2.0
    proxy: FaultProxy | GrpcFaultProxy
    if protocol == "grpc":
        proxy = GrpcFaultProxy(("127.0.0.1", stack.ports.otlp_grpc), retry_delay=retry_after)
    else:
        proxy = FaultProxy(("127.0.0.1", stack.ports.otlp_http), status=int(refusal), retry_after=f"{retry_after:g}")
    with proxy:
        app = loaded_app(apps, tmp_path, proxy.endpoint, env={"OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
        with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
            time.sleep(BEFORE)
            load.set_phase("fault")
            started = time.monotonic()
            proxy.set_mode("status")
            time.sleep(FAULT + 3)
            ended = time.monotonic()
            proxy.set_mode("pass")
            load.set_phase("after")
            time.sleep(AFTER)
        check_not_blocked(load)
        exit_seconds = app.terminate()
        attempts = proxy.attempts_between(started, ended)
    served = len(load.served())
    signals = received(stack, app, served, timeout=20, lossy=True)
    per_path: dict[str, list[float]] = {}
    for attempt in attempts:
        per_path.setdefault(attempt.path, []).append(attempt.at)
    gaps = {path: [b - a for a, b in itertools.pairwise(times)] for path, times in per_path.items()}
    window = ended - started
    report.record(
        name,
        server="uvicorn",
        protocol=protocol,
        **load.summary(),
        exit_seconds=round(exit_seconds, 2),
        signals=signals,
        sdk_counted=sdk_failures(stack, app.service),
        attempts_during_fault={path: len(times) for path, times in per_path.items()},
        fault_seconds=round(window, 1),
        min_gap_seconds={path: round(min(g), 2) if g else None for path, g in gaps.items()},
    )
    assert set(per_path) == {"/v1/traces", "/v1/metrics", "/v1/logs"}, per_path
    for path, times in per_path.items():
        # No storm: about one attempt per Retry-After per signal, not one per batch or per millisecond.
        assert len(times) <= window / retry_after * 1.5 + 2, (path, len(times))
        # Held as told within a batch and across batches: the SDK alone sends the next batch at once (HTTP, and
        # gRPC, where it also ignores the RetryInfo of the status details), see otel_dist/transport.py.
        assert min(gaps[path], default=retry_after) >= retry_after * 0.9, (path, gaps[path])


def test_a_backend_down_behind_the_collector(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report
) -> None:
    """The log store goes down: the collector queues and retries, the app never notices, the collector's metrics
    and the pipeline alerts show it (OTelCollectorBackendUnreachable pending, then firing, long before the retries
    run out), and once the store is back every line arrives."""
    stack = fault_stack.stack
    exporter = 'exporter="otlp_http/victorialogs"'
    app = loaded_app(apps, tmp_path, stack.otlp_http_endpoint)
    seen: dict[str, float] = {"queue_size": 0.0, "scrape_target_down_alert": 0.0}
    since: dict[str, float] = {}  # alert state -> seconds after the store stopped when it was first seen
    stopped_at = time.monotonic()

    def watch_the_collector() -> None:
        deadline = time.monotonic() + FAULT * 3
        while time.monotonic() < deadline:
            queued = http.promql_scalar(stack.prometheus_url, f"max(otelcol_exporter_queue_size{{{exporter}}})")
            alert = http.promql_scalar(
                stack.prometheus_url, 'count(ALERTS{alertname="ScrapeTargetDown", job="victorialogs"})'
            )
            seen["queue_size"] = max(seen["queue_size"], queued or 0.0)
            seen["scrape_target_down_alert"] = max(seen["scrape_target_down_alert"], alert or 0.0)
            for row in http.promql(stack.prometheus_url, f'ALERTS{{alertname="{BACKLOG_ALERT}", {exporter}}}'):
                since.setdefault(row["metric"]["alertstate"], round(time.monotonic() - stopped_at, 1))
            time.sleep(0.5)

    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        time.sleep(BEFORE)
        load.set_phase("fault")
        fault_stack.stop("victorialogs")
        stopped_at = time.monotonic()
        watch_the_collector()  # while the store is down, then bring it back
        fault_stack.restart("victorialogs")
        load.set_phase("after")
        time.sleep(AFTER)
    check_not_blocked(load)
    app.terminate()
    served = len(load.served())
    signals = received(stack, app, served, timeout=60)
    failures = sdk_failures(stack, app.service)
    sent_failed = http.promql_scalar(
        stack.prometheus_url, f"sum(otelcol_exporter_send_failed_log_records_total{{{exporter}}})"
    )
    report.record(
        f"log store down behind the collector for {FAULT * 3:.0f} s",
        server="uvicorn",
        **load.summary(),
        signals=signals,
        sdk_counted=failures,
        collector={**seen, "send_failed_log_records": sent_failed or 0.0},
        backlog_alert_seconds_after_the_stop=since,
        backlog_for_seconds=BACKLOG_FOR_SECONDS,
        note="send_failed counts only batches whose retries ran out (after 5 min): none here, by design",
    )
    assert failures == dict.fromkeys(failures, 0)  # the app never noticed
    assert seen["queue_size"] > 0  # the collector held the lines
    assert seen["scrape_target_down_alert"] >= 1  # the pipeline alert went pending
    assert {"pending", "firing"} <= set(since), since  # the backlog alert, before any retry ran out
    counts = {name: s["received"] for name, s in signals.items()}
    assert counts == dict.fromkeys(counts, served), signals


def readiness_probe(app: App, statuses: list[tuple[float, int | None]], stop: threading.Event) -> None:
    """GET /health/ready as fast as possible until told to stop: (time sent, status or None for no answer)."""
    while not stop.is_set():
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(f"{app.base_url}/health/ready", timeout=2) as response:
                statuses.append((sent, response.status))
        except urllib.error.HTTPError as error:
            statuses.append((sent, error.code))
        except OSError:
            statuses.append((sent, None))
        time.sleep(0.002)


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_sigterm_under_load(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report, server: str
) -> None:
    """SIGTERM with requests in flight: they finish, readiness turns 503, and the last batches of all three
    signals arrive before the process exits."""
    stack = fault_stack.stack
    app = loaded_app(apps, tmp_path, stack.otlp_http_endpoint, server=server)
    probes: list[tuple[float, int | None]] = []
    stop = threading.Event()
    with Load(app.port, app.service, rate=RATE, slow_every=10, pid=app.process.pid) as load:
        time.sleep(BEFORE - 0.5)
        probers = [threading.Thread(target=readiness_probe, args=(app, probes, stop), daemon=True) for _ in range(3)]
        for probe in probers:  # probes are excluded from every signal: they change no count
            probe.start()
        time.sleep(0.5)
        load.set_phase("fault")
        app.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            app.process.wait(timeout=SHUTDOWN_BOUND_SECONDS + 20)  # gunicorn's graceful timeout is 20 s
        finally:
            exit_seconds = time.monotonic() - signalled
            time.sleep(0.5)  # a moment of refused requests after the exit
            stop.set()
            for probe in probers:
                probe.join()
    in_flight = [s for s in load.samples if s.started < signalled and s.started + s.seconds > signalled]
    # A probe sent in the instant before the server ran its signal handler may still see 200.
    statuses = [status for sent, status in probes if sent > signalled + 0.01]
    served = len(load.served())
    signals = received(stack, app, served)
    report.record(
        f"SIGTERM under load ({server})",
        server=server,
        **load.summary(),
        exit_seconds=round(exit_seconds, 2),
        signals=signals,
        in_flight_at_sigterm=len(in_flight),
        readiness_after_sigterm={str(k): statuses.count(k) for k in dict.fromkeys(statuses)},
        note="requests sent after SIGTERM are refused (the server stopped listening): not served, not counted",
    )
    assert [s for s in load.samples if s.started < signalled and s.status != 200] == []  # in flight: finished
    assert any(s.path.startswith("/slow") for s in in_flight)  # the slow ones were in flight indeed
    assert {status for sent, status in probes if sent < signalled - 0.05} == {200}  # ready until the signal
    # Never "ready" once told to stop. The server stops listening at its next tick (uvicorn: within 0.1 s), so
    # how many probes get in to see the 503 is luck; the report has the count.
    assert 200 not in statuses, statuses
    counts = {name: s["received"] for name, s in signals.items()}
    assert counts == dict.fromkeys(counts, served), signals


def test_a_prefork_worker_crashes_and_is_respawned(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report
) -> None:
    """gunicorn respawns a SIGKILLed worker: the new one exports under its own service.instance.id; no series is
    duplicated or shared by two processes; only what the dead worker had not exported yet is lost."""
    stack = fault_stack.stack
    app = loaded_app(apps, tmp_path, stack.otlp_http_endpoint, server="gunicorn")
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        time.sleep(BEFORE)
        load.set_phase("fault")
        victim = app.workers()[0]
        victim.kill()
        deadline = time.monotonic() + 30
        while {w.pid for w in app.workers()} & {victim.pid} or len(app.workers()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not respawn the worker"
            time.sleep(0.1)
        time.sleep(FAULT)
        load.set_phase("after")
        time.sleep(AFTER)
    app.terminate()
    served = len(load.served())
    signals = received(stack, app, served, timeout=15, lossy=True)
    job = f'job="{app.service}"'

    def instances() -> dict[str, int]:
        rows = http.promql(
            stack.prometheus_url, f"count by (instance) (group by (instance, process_pid) (target_info{{{job}}}))"
        )
        found = {row["metric"]["instance"]: int(row["value"][1]) for row in rows}
        assert len(found) == 3, found  # two workers, then the respawned one
        return found

    found = eventually(instances)
    pids = http.promql(stack.prometheus_url, f"count by (process_pid) (target_info{{{job}}})")
    report.record(
        "prefork worker SIGKILLed and respawned (gunicorn, 2 workers)",
        server="gunicorn",
        **load.summary(),
        signals=signals,
        instances=len(found),
        note="lost: what the killed worker had served since its last export (metrics every 1 s, spans every 0.2 s)",
    )
    assert set(found.values()) == {1}  # one process per instance ID: nothing shared
    assert sorted(int(row["value"][1]) for row in pids) == [1, 1, 1]  # one instance ID per process
    assert all(s.status == 200 for s in load.samples), [s for s in load.samples if s.status != 200][:3]
    for name in ("metrics", "traces", "logs"):
        assert served * 0.8 <= signals[name]["received"] <= served, signals
