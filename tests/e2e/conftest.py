"""The real local stack, started once per session, and the example workload run against it.

The stack uses free ports and a temporary data folder, so it never collides with a developer's `stack up`.
With CI=true a missing binary is built and a failure fails the run: these tests never skip in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from otel_dist.stack.http import QueryError
from otel_dist.stack.supervisor import Ports, Stack, start_stack
from tests.stack.binaries import stack_binaries

#: Units of work per run; every ERROR_EVERY-th fails with a 500; PROBES /health spans the collector must drop.
REQUESTS = 12
ERROR_EVERY = 4
PROBES = 3
#: Seconds a backend may take to show what was sent (Prometheus scrapes the collector every 15 s).
WAIT = 60.0
MODES = ("configure", "wrapper")
BIN = Path(sys.executable).parent

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """One run of the workload process."""

    mode: str
    service: str
    request_ids: list[str]
    errors: int
    probes: int
    start: datetime
    end: datetime
    stdout: str


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


def run_workload(stack: Stack, mode: str) -> Run:
    service = f"e2e-{mode}-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_DIST_SERVICE_VERSION="1.2.3",
        OTEL_DIST_ENVIRONMENT="e2e",
        OTEL_EXPORTER_OTLP_ENDPOINT=stack.otlp_http_endpoint,
        OTEL_TRACES_SAMPLER="always_on",  # 100 %: every request is a trace
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
    )
    command = [
        str(BIN / "python"),
        "-m",
        "otel_dist.stack.workload",
        f"--requests={REQUESTS}",
        f"--error-every={ERROR_EVERY}",
        f"--probes={PROBES}",
        f"--id-prefix={service}",
    ]
    if mode == "wrapper":
        env["OTEL_PYTHON_DISTRO"] = "otel_dist"
        command = [str(BIN / "opentelemetry-instrument"), *command]
    start = datetime.now(UTC) - timedelta(seconds=1)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])["workload"]
    assert summary["service"] == service
    return Run(
        mode=mode,
        service=service,
        request_ids=summary["request_ids"],
        errors=summary["errors"],
        probes=summary["probes"],
        start=start,
        end=datetime.now(UTC) + timedelta(seconds=1),
        stdout=result.stdout,
    )


@pytest.fixture(scope="session")
def runs(stack: Stack) -> dict[str, Run]:
    """The workload run once directly (configure()) and once under opentelemetry-instrument."""
    return {mode: run_workload(stack, mode) for mode in MODES}


@pytest.fixture(params=MODES)
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    return runs[request.param]
