"""The example FastAPI service (``examples/fastapi_app``) as a uvicorn process, and the traffic sent to it.

Used by ``./dev demo`` and the end-to-end tests. :func:`start_example_app` serves the app on a free loopback port
(instrumented by its own ``configure()`` call, or only by the ``opentelemetry-instrument`` wrapper) and waits until
it accepts connections. :func:`traffic` plans real HTTP requests, each with its own ``X-Request-ID``: item reads
(200), missing items (404), unhandled exceptions (500), slow requests and health probes, which otel-dist keeps out
of every signal. :func:`send` sends them and checks each answer.

Standard library only, like the rest of the stack's tooling; the app's own process needs the ``fastapi`` extra and
uvicorn (the ``dev`` extra has both).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from otel_dist.stack.supervisor import LOOPBACK, REPO_ROOT

#: The ASGI application, importable from the repository root.
APP: Final = "examples.fastapi_app.app:app"
#: Seconds a slow request sleeps: above the 1 s latency threshold, which is a bucket edge.
SLOW_SECONDS: Final = 1.2
#: The item ID the example answers with 404.
MISSING_ITEM: Final = 404
#: The probe paths (the app's health endpoints), sent in turn.
PROBE_PATHS: Final = ("/health", "/health/ready", "/health/disk")
#: Seconds to wait for the app to accept connections, and for it to exit (and flush) after SIGTERM.
READY_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 30.0
#: Seconds one request may take.
REQUEST_TIMEOUT: Final = 10.0


class ExampleAppError(RuntimeError):
    """The example app did not start, or answered differently than planned."""


@dataclass(frozen=True)
class Request:
    """One planned request and the answer the app must give."""

    method: str
    path: str  # with the query string
    route: str | None  # the route template the app matches; None for the probes (kept out of telemetry)
    status: int | None  # the expected status; None when it depends on the mode (probes without health checks)
    request_id: str
    kind: str  # "ok", "not_found", "error", "slow" or "probe"

    @property
    def probe(self) -> bool:
        return self.kind == "probe"


@dataclass(frozen=True)
class Answer:
    """What the app answered to one request."""

    request: Request
    status: int
    request_id: str  # the X-Request-ID it echoed
    trace_id: str | None  # from its ``traceresponse`` header
    seconds: float
    body: bytes


def traffic(
    prefix: str,
    requests: int,
    *,
    not_found_every: int = 3,
    error_every: int = 4,
    slow_every: int = 5,
    probes: int = 3,
) -> list[Request]:
    """``requests`` requests of user traffic, IDs ``PREFIX-0001``..., with ``probes`` health probes among them.

    Request ``n`` is a 500 (``GET /fail``) when ``error_every`` divides it, otherwise slow (``GET /slow``) when
    ``slow_every`` does, otherwise a 404 (``GET /items/404``) when ``not_found_every`` does (or ``n`` is 404),
    otherwise a 200 (``GET /items/n``). 0 turns a kind off. The probes (``PREFIX-probe-1``, ...) are spread
    evenly through the traffic.
    """
    if requests < 0 or probes < 0:
        raise ValueError("requests and probes must not be negative")
    planned: list[Request] = []
    for number in range(1, requests + 1):
        request_id = f"{prefix}-{number:04d}"
        if error_every and number % error_every == 0:
            planned.append(Request("GET", "/fail", "/fail", 500, request_id, "error"))
        elif slow_every and number % slow_every == 0:
            path = f"/slow?seconds={SLOW_SECONDS}"
            planned.append(Request("GET", path, "/slow", 200, request_id, "slow"))
        elif (not_found_every and number % not_found_every == 0) or number == MISSING_ITEM:
            path = f"/items/{MISSING_ITEM}"
            planned.append(Request("GET", path, "/items/{item_id}", 404, request_id, "not_found"))
        else:
            planned.append(Request("GET", f"/items/{number}", "/items/{item_id}", 200, request_id, "ok"))
    for index in range(probes):
        path = PROBE_PATHS[index % len(PROBE_PATHS)]
        probe = Request("GET", path, None, None, f"{prefix}-probe-{index + 1}", "probe")
        planned.insert((index + 1) * requests // (probes + 1) + index, probe)
    return planned


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def send(base_url: str, planned: Iterable[Request], *, timeout: float = REQUEST_TIMEOUT) -> list[Answer]:
    """Send the planned requests one after the other; raise :class:`ExampleAppError` on an unplanned answer."""
    answers = []
    for request in planned:
        outgoing = urllib.request.Request(  # noqa: S310 - a loopback http:// URL
            f"{base_url}{request.path}", method=request.method, headers={"X-Request-ID": request.request_id}
        )
        started = time.perf_counter()
        try:
            with _opener.open(outgoing, timeout=timeout) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:  # 4xx and 5xx
            status, headers, body = error.code, error.headers, error.read()
        except (urllib.error.URLError, OSError) as error:
            raise ExampleAppError(f"{request.method} {request.path}: {error}") from error
        seconds = time.perf_counter() - started
        traceresponse = headers.get("traceresponse")
        answer = Answer(
            request=request,
            status=status,
            request_id=headers.get("x-request-id", ""),
            trace_id=traceresponse.split("-")[1] if traceresponse and traceresponse.count("-") == 3 else None,
            seconds=seconds,
            body=body,
        )
        if (request.status is not None and status != request.status) or answer.request_id != request.request_id:
            raise ExampleAppError(
                f"{request.method} {request.path} (X-Request-ID {request.request_id}): expected status"
                f" {request.status}, got {status} with X-Request-ID {answer.request_id!r}: {body[:300]!r}"
            )
        answers.append(answer)
    return answers


def free_port() -> int:
    """A port the kernel says is free right now on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ExampleApp:
    """A running example app (see :func:`start_example_app`); a context manager that stops it."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    command: tuple[str, ...]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output(self) -> str:
        """Everything the process wrote so far (its JSON log lines and uvicorn's)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (uvicorn drains, then otel-dist flushes at exit); SIGKILL after ``timeout``. The exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def app_environment(
    service: str,
    *,
    otlp_endpoint: str | None,
    wrapper: bool = False,
    env: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The app's environment: ``base`` (default: ours) without OTEL_*/FASTAPI_* settings, then the app's own."""
    base = os.environ if base is None else base
    environment = {k: v for k, v in base.items() if not k.startswith(("OTEL_", "FASTAPI_", "EXAMPLE_"))}
    python_path = [str(REPO_ROOT), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment.update(OTEL_SERVICE_NAME=service, PYTHONPATH=os.pathsep.join(python_path))
    if otlp_endpoint is not None:
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
    if wrapper:  # only the wrapper instruments the app, through our distro
        environment.update(EXAMPLE_SKIP_CONFIGURE="1", OTEL_PYTHON_DISTRO="otel_dist")
    environment.update(env or {})
    return environment


def app_command(port: int, *, wrapper: bool = False, app: str = APP) -> list[str]:
    """uvicorn serving ``app`` on ``127.0.0.1:port``, under ``opentelemetry-instrument`` if ``wrapper``."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", LOOPBACK, "--port", str(port)]
    if wrapper:
        instrument = Path(sys.executable).parent / "opentelemetry-instrument"
        if not instrument.exists():
            raise ExampleAppError(f"{instrument} is missing: pip install opentelemetry-instrumentation")
        command = [str(instrument), *command]
    return command


def start_example_app(
    service: str,
    *,
    otlp_endpoint: str | None,
    log_path: Path,
    wrapper: bool = False,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    ready_timeout: float = READY_TIMEOUT,
    app: str = APP,
) -> ExampleApp:
    """Serve the example app as ``service`` and wait until it accepts connections.

    ``otlp_endpoint``: where it exports (``OTEL_EXPORTER_OTLP_ENDPOINT``). ``wrapper``: run it under
    ``opentelemetry-instrument`` with its own ``configure()`` call skipped. ``env``: more settings
    (``OTEL_TRACES_SAMPLER``, ...). Its output goes to ``log_path`` (truncated first). Readiness is a TCP
    connection, not a request: a request would add telemetry of its own. ``app``: another ASGI application of the
    repository (``examples.parser_service.app:app``).
    """
    port = port or free_port()
    command = app_command(port, wrapper=wrapper, app=app)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=app_environment(service, otlp_endpoint=otlp_endpoint, wrapper=wrapper, env=env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = ExampleApp(process=process, port=port, log_path=log_path, command=tuple(command))
    try:
        _wait_listening(running, ready_timeout)
    except BaseException:
        running.stop(timeout=5)
        raise
    return running


def _wait_listening(app: ExampleApp, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = app.process.poll()
        if code is not None:
            raise ExampleAppError(f"the example app exited with status {code} while starting:\n{_tail(app.output())}")
        try:
            socket.create_connection((LOOPBACK, app.port), timeout=0.5).close()
        except OSError:
            if time.monotonic() > deadline:
                raise ExampleAppError(
                    f"the example app did not listen on port {app.port} within {timeout:.0f}s:\n{_tail(app.output())}"
                ) from None
            time.sleep(0.1)
        else:
            return


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def expected_counts(answers: Sequence[Answer]) -> dict[tuple[str, str, str], int]:
    """(route, method, status) -> requests, for the user traffic (what the duration histogram must count)."""
    counts: dict[tuple[str, str, str], int] = {}
    for answer in answers:
        request = answer.request
        if request.route is not None:
            key = (request.route, request.method, str(answer.status))
            counts[key] = counts.get(key, 0) + 1
    return counts
