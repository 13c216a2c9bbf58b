"""The real local stack, started once per session, and the example FastAPI app run against it under uvicorn.

The stack uses free ports and a temporary data folder, so it never collides with a developer's `stack up`.
With CI=true a missing binary is built and a failure fails the run: these tests never skip in CI.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from otel_dist.stack.example import Answer, Request, start_example_app, traffic
from otel_dist.stack.example import send as send_requests
from otel_dist.stack.http import QueryError
from otel_dist.stack.supervisor import Ports, Stack, start_stack
from tests.rules.webhook import WebhookReceiver
from tests.stack.binaries import stack_binaries

#: User requests per run: every NOT_FOUND_EVERY-th is a 404, every SLOW_EVERY-th slow, every ERROR_EVERY-th a
#: real unhandled exception (500), the rest 200s; PROBES health probes go in between and must show up nowhere.
REQUESTS = 12
NOT_FOUND_EVERY = 3
ERROR_EVERY = 4
SLOW_EVERY = 5
PROBES = 3
#: Seconds a backend may take to show what was sent (Prometheus scrapes the collector every 15 s).
WAIT = 60.0
MODES = ("configure", "wrapper")
#: How each mode's app is instrumented: its own configure(app=..., health=...) call, or only the wrapper.
WRAPPED = {"configure": False, "wrapper": True}

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """One run of the example app: what it was sent and what it answered."""

    mode: str
    service: str
    answers: list[Answer]
    start: datetime
    end: datetime
    output: str  # the app's stdout and stderr

    @property
    def user(self) -> list[Answer]:
        """The user requests (the probes left out)."""
        return [a for a in self.answers if not a.request.probe]

    @property
    def request_ids(self) -> list[str]:
        return [a.request.request_id for a in self.user]

    @property
    def probe_ids(self) -> list[str]:
        return [a.request.request_id for a in self.answers if a.request.probe]

    def of_kind(self, kind: str) -> list[Answer]:
        return [a for a in self.answers if a.request.kind == kind]

    @property
    def errors(self) -> int:
        return len(self.of_kind("error"))

    def answer(self, request_id: str) -> Answer:
        return next(a for a in self.answers if a.request.request_id == request_id)


def eventually(check: Callable[[], T], timeout: float = WAIT, interval: float = 0.5) -> T:
    """Call ``check`` until it stops raising AssertionError/QueryError, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, QueryError):
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binaries = stack_binaries()
    stack = start_stack(ports=Ports.free(), data_dir=tmp_path_factory.mktemp("stack"), binaries=binaries)
    print(f"\nlocal stack ready in {stack.started_seconds:.2f}s at {stack.data_dir}")
    try:
        yield stack
    finally:
        stack.stop()


#: Every run's settings: 100 % sampling, and fast exports so the wait stays short.
APP_ENV = {
    "OTEL_DIST_SERVICE_VERSION": "1.2.3",
    "OTEL_DIST_ENVIRONMENT": "e2e",
    "OTEL_TRACES_SAMPLER": "always_on",  # 100 %: every request is a trace
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "OTEL_BLRP_SCHEDULE_DELAY": "100",
}


def planned_traffic(service: str) -> list[Request]:
    """The e2e traffic plan: the same mix for every run."""
    return traffic(
        service,
        REQUESTS,
        not_found_every=NOT_FOUND_EVERY,
        error_every=ERROR_EVERY,
        slow_every=SLOW_EVERY,
        probes=PROBES,
    )


def run_app(stack: Stack, mode: str) -> Run:
    """Serve the example app as a new service, send it the traffic, stop it (it flushes), return what happened."""
    service = f"e2e-{mode}-{uuid.uuid4().hex[:8]}"
    planned = planned_traffic(service)
    start = datetime.now(UTC) - timedelta(seconds=1)
    app = start_example_app(
        service,
        otlp_endpoint=stack.otlp_http_endpoint,
        log_path=stack.data_dir / "logs" / f"{service}.log",
        wrapper=WRAPPED[mode],
        env=APP_ENV,
    )
    with app:
        answers = send_requests(app.base_url, planned)
    output = app.output()
    # uvicorn drains and re-raises the SIGTERM it caught: dying of it is the normal end
    assert app.process.returncode in (0, -signal.SIGTERM), output[-3000:]
    # each unhandled exception is one structured JSON line, never a server's plain-text traceback
    assert "Traceback (most recent call last)" not in output, output[-3000:]
    assert "Exception in ASGI application" not in output, output[-3000:]
    return Run(
        mode=mode,
        service=service,
        answers=answers,
        start=start,
        end=datetime.now(UTC) + timedelta(seconds=1),
        output=output,
    )


@pytest.fixture(scope="session")
def runs(stack: Stack) -> dict[str, Run]:
    """The example app run once through its configure() call and once under opentelemetry-instrument."""
    return {mode: run_app(stack, mode) for mode in MODES}


@pytest.fixture(params=MODES)
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    return runs[request.param]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    """A notification receiver on 127.0.0.1 for a module's own alerting stack (tests/e2e/alerting_stack.py)."""
    server = WebhookReceiver()
    try:
        yield server
    finally:
        server.close()


# --- the examples (examples/*): one stack with test timings, shared by their modules ------------------------------


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[WebhookReceiver]:
    """The loopback webhook every receiver of the examples' Alertmanager points at."""
    server = WebhookReceiver()
    try:
        yield server
    finally:
        server.close()


@dataclass(frozen=True)
class ExampleStack:
    """The examples' stack and the copy of the configs it runs from (its rules folder is rewritten per example)."""

    stack: Stack
    repo: Path
    receiver: WebhookReceiver


@pytest.fixture(scope="session")
def examples_stack(tmp_path_factory: pytest.TempPathFactory, alert_receiver: WebhookReceiver) -> Iterator[ExampleStack]:
    from tests.e2e.example_stack import write_stack_config

    repo = tmp_path_factory.mktemp("examples-repo")
    write_stack_config(repo, alert_receiver.url)
    stack = start_stack(
        ports=Ports.free(), data_dir=tmp_path_factory.mktemp("examples-stack"), binaries=stack_binaries(), repo=repo
    )
    try:
        yield ExampleStack(stack, repo, alert_receiver)
    finally:
        stack.stop()
