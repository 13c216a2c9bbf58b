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
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    App,
    FaultStack,
    Report,
    eventually,
    received,
    sdk_failures,
    serve,
)
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


def run_phases(load: Load, fault_start: object, fault_end: object) -> None:
    """before -> inject -> fault -> heal -> after."""
    time.sleep(BEFORE)
    load.set_phase("fault")
    fault_start()  # type: ignore[operator]
    time.sleep(FAULT)
    fault_end()  # type: ignore[operator]
    load.set_phase("after")
    time.sleep(AFTER)


def check_not_blocked(load: Load) -> None:
    failed = [s for s in load.samples if s.status != 200]
    assert not failed, f"{len(failed)} requests failed, e.g. {failed[:3]}"
    slowest = max(s.seconds for s in load.samples if not s.path.startswith("/slow"))
    assert slowest < NOT_BLOCKED_SECONDS, f"a request took {slowest:.2f}s: it waited for the exporter"


def loaded_app(fault_stack: FaultStack, apps: list[App], tmp_path: Path, endpoint: str, **kwargs: object) -> App:
    app = serve(endpoint, tmp_path / "apps", **kwargs)  # type: ignore[arg-type]
    apps.append(app)
    return app


def test_no_fault(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """The reference: the same load and phases with nothing broken; every signal complete."""
    stack = fault_stack.stack
    app = loaded_app(fault_stack, apps, tmp_path, stack.otlp_http_endpoint)
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        run_phases(load, lambda: None, lambda: None)
    check_not_blocked(load)
    exit_seconds = app.terminate()
    served = len(load.served())
    signals = received(stack, app, served)
    report.record("none", server="uvicorn", **load.summary(), exit_seconds=round(exit_seconds, 2), signals=signals)
    assert {name: s["received"] for name, s in signals.items()} == dict.fromkeys(signals, served)


def test_collector_absent_at_start_up(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """The app starts and serves with no collector; what it could not send is counted; data flows once it appears."""
    stack = fault_stack.stack
    fault_stack.stop("otelcol")
    app = loaded_app(fault_stack, apps, tmp_path, stack.otlp_http_endpoint)
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        load.set_phase("fault")
        time.sleep(FAULT)
        fault_stack.restart("otelcol")
        load.set_phase("after")
        time.sleep(AFTER + 2)
    check_not_blocked(load)
    app.terminate()
    served = len(load.served())
    after = {s.request_id for s in load.served("after")}
    signals = received(stack, app, served, timeout=20)
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
    """Zero loss when the collector stops and is back within the exporters' retry window (10 s per batch)."""
    stack = fault_stack.stack
    app = loaded_app(fault_stack, apps, tmp_path, stack.otlp_http_endpoint)
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        run_phases(
            load,
            lambda: fault_stack.stop("otelcol", getattr(signal, how)),
            lambda: fault_stack.restart("otelcol"),
        )
    check_not_blocked(load)
    exit_seconds = app.terminate()
    served = len(load.served())
    signals = received(stack, app, served, timeout=40 if how == "SIGTERM" else 15)
    report.record(
        f"collector killed ({how}) and restarted after {FAULT:.0f} s",
        server="uvicorn",
        **load.summary(),
        exit_seconds=round(exit_seconds, 2),
        signals=signals,
        sdk_counted=sdk_failures(stack, app.service),
    )
    counts = {name: s["received"] for name, s in signals.items()}
    if how == "SIGTERM":  # a graceful stop drains the collector's queues first: nothing is lost
        assert counts == dict.fromkeys(counts, served), signals
        assert signals["traces"]["spans"] == served  # nor duplicated
        assert signals["logs"]["distinct_request_ids"] == served
    else:  # a crash loses what the collector had accepted but not yet forwarded (its queues are in memory)
        assert signals["metrics"]["received"] == served  # cumulative: the next export carries the total
        for name in ("traces", "logs"):
            assert served * 0.8 <= counts[name] <= served, signals


def test_collector_blackholed(fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report) -> None:
    """A collector that accepts connections and never answers: requests unaffected, memory bounded by the
    queues, shutdown within its deadline while the fault lasts."""
    stack = fault_stack.stack
    upstream = ("127.0.0.1", stack.ports.otlp_http)
    with FaultProxy(upstream) as proxy:
        app = loaded_app(fault_stack, apps, tmp_path, proxy.endpoint)
        with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
            time.sleep(BEFORE)
            load.set_phase("fault")
            proxy.set_mode("blackhole")
            time.sleep(FAULT * 2)
        check_not_blocked(load)
        exit_seconds = app.terminate()  # still blackholed: the flush at exit must give up at its deadline
    served = len(load.served())
    signals = received(stack, app, served, timeout=10)
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
    stack = fault_stack.stack
    app = loaded_app(fault_stack, apps, tmp_path, stack.otlp_http_endpoint)
    with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
        run_phases(load, lambda: fault_stack.freeze("otelcol"), lambda: fault_stack.thaw("otelcol"))
    check_not_blocked(load)
    exit_seconds = app.terminate()
    served = len(load.served())
    signals = received(stack, app, served, timeout=30)
    report.record(
        f"collector SIGSTOPped for {FAULT:.0f} s",
        server="uvicorn",
        **load.summary(),
        exit_seconds=round(exit_seconds, 2),
        signals=signals,
        sdk_counted=sdk_failures(stack, app.service),
    )
    counts = {name: s["received"] for name, s in signals.items()}
    assert counts["metrics"] == served
    for name in ("traces", "logs"):
        assert served * 0.8 <= counts[name] <= served, signals


@pytest.mark.parametrize(("status", "retry_after"), [(503, "2"), (429, "2")])
def test_collector_refuses_with_retry_after(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report, status: int, retry_after: str
) -> None:
    """503 / 429 with Retry-After: the exporters wait as told between attempts (no storm), memory stays
    bounded, and the batches retried after the collector recovers arrive."""
    stack = fault_stack.stack
    upstream = ("127.0.0.1", stack.ports.otlp_http)
    with FaultProxy(upstream, status=status, retry_after=retry_after) as proxy:
        app = loaded_app(fault_stack, apps, tmp_path, proxy.endpoint)
        with Load(app.port, app.service, rate=RATE, pid=app.process.pid) as load:
            time.sleep(BEFORE)
            load.set_phase("fault")
            started = time.monotonic()
            proxy.set_mode("status")
            time.sleep(FAULT * 2)
            ended = time.monotonic()
            proxy.set_mode("pass")
            load.set_phase("after")
            time.sleep(AFTER)
        check_not_blocked(load)
        exit_seconds = app.terminate()
        attempts = proxy.attempts_between(started, ended)
    served = len(load.served())
    signals = received(stack, app, served, timeout=20)
    per_path: dict[str, list[float]] = {}
    for attempt in attempts:
        per_path.setdefault(attempt.path, []).append(attempt.at)
    gaps = {path: [b - a for a, b in itertools.pairwise(times)] for path, times in per_path.items()}
    window = ended - started
    report.record(
        f"collector answers {status} with Retry-After: {retry_after}",
        server="uvicorn",
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
        assert len(times) <= window / float(retry_after) * 1.5 + 2, (path, len(times))
        median_gap = sorted(gaps[path])[len(gaps[path]) // 2] if gaps[path] else float(retry_after)
        assert median_gap >= float(retry_after) * 0.9, (path, gaps[path])
