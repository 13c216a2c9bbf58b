"""The example FastAPI app under real uvicorn processes: configure(), the wrapper, both, two workers, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.otlp_receiver import OtlpReceiver, free_port, wait_for

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


@contextmanager
def uvicorn(
    receiver: OtlpReceiver,
    *,
    wrapper: bool = False,
    configure: bool = True,
    workers: int = 1,
    gunicorn: tuple[str, ...] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Serve the example app: uvicorn, or gunicorn with uvicorn workers and ``gunicorn`` as extra arguments."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FASTAPI_"))}
    environment.update(
        OTEL_SERVICE_NAME="example-api",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_DIST_SYSTEM_METRICS="false",
        OTEL_PYTHON_DISTRO="otel_dist",
        PYTHONPATH=str(ROOT),
    )
    if not configure:
        environment["EXAMPLE_SKIP_CONFIGURE"] = "1"
    environment.update(env or {})
    command = [str(BIN / "uvicorn"), "examples.fastapi_app.app:app", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    if gunicorn is not None:
        command = [str(BIN / "gunicorn"), "examples.fastapi_app.app:app", "--bind", f"127.0.0.1:{port}"]
        command += ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers), *gunicorn]
    if wrapper:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    process = subprocess.Popen(
        command, env=environment, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:  # listening (a request would add telemetry of its own)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    try:
        wait_for(ready, timeout=30, interval=0.1)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        reader.join(timeout=5)
        uvicorn.output = "".join(output)  # type: ignore[attr-defined]


def server_spans(receiver: OtlpReceiver) -> list:
    return [s for s in receiver.spans() if s.item.kind == 2]


@pytest.mark.parametrize(
    ("wrapper", "configure"),
    [(False, True), (True, False), (True, True)],
    ids=["configure", "wrapper", "wrapper+configure"],
)
def test_exactly_one_server_span_and_duration_per_request(
    receiver: OtlpReceiver, wrapper: bool, configure: bool
) -> None:
    with uvicorn(receiver, wrapper=wrapper, configure=configure) as base:
        for item in range(5):
            response = httpx.get(f"{base}/items/{item}", headers={"x-request-id": f"req-{item}"})
            assert response.headers["x-request-id"] == f"req-{item}"
        wait_for(lambda: len(server_spans(receiver)) >= 5)
        wait_for(lambda: sum(p.count for _, p in receiver.latest_points("http.server.request.duration")) >= 5)
        time.sleep(1.0)  # anything duplicated would have arrived by now
    spans = server_spans(receiver)
    assert sorted(s.attributes["request_id"] for s in spans) == [f"req-{i}" for i in range(5)]
    assert {s.item.name for s in spans} == {"GET /items/{item_id}"}
    points = receiver.latest_points("http.server.request.duration")
    assert sum(p.count for _, p in points) == 5


def test_a_real_500_is_stamped_and_logged_once(receiver: OtlpReceiver) -> None:
    with uvicorn(receiver) as base:
        response = httpx.get(f"{base}/fail", headers={"x-request-id": "req-fail"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "req-fail"
        assert response.json() == {"error": "internal_server_error", "request_id": "req-fail"}
        wait_for(lambda: server_spans(receiver))
    output = uvicorn.output  # type: ignore[attr-defined]
    assert output.count("the example failed on purpose") == 1, output
    assert "Exception in ASGI application" not in output
    [span] = server_spans(receiver)
    assert span.item.status.code == 2


def test_request_id_and_trace_context_reach_the_upstream(receiver: OtlpReceiver) -> None:
    with uvicorn(receiver) as base:
        response = httpx.get(f"{base}/proxy/5", params={"upstream": base}, headers={"x-request-id": "req-chain"})
        assert response.status_code == 200
        assert response.json()["upstream"]["request_id"] == "req-chain"
        wait_for(lambda: len(server_spans(receiver)) >= 2)
    spans = receiver.spans()
    servers = server_spans(receiver)
    assert {s.attributes["request_id"] for s in servers} == {"req-chain"}
    assert len({s.item.trace_id for s in spans}) == 1  # outer request, client call, inner request: one trace
    [client] = [s for s in spans if s.item.kind == 3]  # SPAN_KIND_CLIENT
    [inner] = [s for s in servers if s.item.name == "GET /items/{item_id}"]
    assert inner.item.parent_span_id == client.item.span_id


def test_two_workers_export_under_their_own_instance_ids(receiver: OtlpReceiver) -> None:
    with uvicorn(receiver, workers=2) as base:
        with httpx.Client() as client:
            for item in range(40):
                client.get(f"{base}/items/{item}", headers={"connection": "close"})
        wait_for(lambda: len(server_spans(receiver)) >= 40)
    instances = Counter(s.resource["service.instance.id"] for s in server_spans(receiver))
    assert sum(instances.values()) == 40
    pids = {s.resource["process.pid"] for s in server_spans(receiver)}
    assert len(instances) == len(pids)  # one instance ID per worker process, never shared


def test_sigterm_lets_in_flight_requests_finish_and_flushes(receiver: OtlpReceiver) -> None:
    results: list[int] = []
    with uvicorn(receiver) as base:
        slow = threading.Thread(
            target=lambda: results.append(httpx.get(f"{base}/slow?seconds=1.5", timeout=10).status_code)
        )
        slow.start()
        time.sleep(0.5)
    slow.join(timeout=10)
    assert results == [200]
    assert [s.item.name for s in server_spans(receiver) if s.item.name.startswith("GET /slow")] == ["GET /slow"]


@pytest.mark.parametrize("preload", [False, True], ids=["gunicorn", "gunicorn-preload"])
def test_gunicorn_workers_each_get_their_own_providers_and_identity(receiver: OtlpReceiver, preload: bool) -> None:
    with uvicorn(receiver, workers=2, gunicorn=("--preload",) if preload else ()) as base:
        with httpx.Client() as client:
            for item in range(40):
                client.get(f"{base}/items/{item}", headers={"connection": "close"})
        wait_for(lambda: len(server_spans(receiver)) >= 40)
        wait_for(lambda: sum(p.count for _, p in receiver.latest_points("http.server.request.duration")) > 0)
    spans = server_spans(receiver)
    assert len(spans) == 40
    by_instance = Counter(s.resource["service.instance.id"] for s in spans)
    assert len(by_instance) == len({s.resource["process.pid"] for s in spans})
    # every worker's metric points arrive under that worker's own identity, never mixed
    instances = {m.resource["service.instance.id"] for m in receiver.metrics("http.server.request.duration")}
    assert set(by_instance) <= instances


def test_pull_mode_merges_every_workers_metrics(receiver: OtlpReceiver, tmp_path: Path) -> None:
    env = {"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR": str(tmp_path)}
    with uvicorn(receiver, workers=2, gunicorn=(), env=env) as base:
        with httpx.Client() as client:
            for item in range(40):
                client.get(f"{base}/items/{item}", headers={"connection": "close"})

        def scraped_count() -> dict[str, float]:
            text = httpx.get(f"{base}/metrics").text
            counts: dict[str, float] = {}
            for line in text.splitlines():
                if line.startswith("http_server_request_duration_seconds_count{"):
                    instance = line.split('service_instance_id="', 1)[1].split('"', 1)[0]
                    counts[instance] = counts.get(instance, 0) + float(line.rsplit(" ", 1)[1])
            return counts if sum(counts.values()) == 40 else {}

        counts = wait_for(scraped_count, timeout=20, interval=0.5)
    assert len(counts) == len({s.resource["service.instance.id"] for s in server_spans(receiver)})
    assert set(counts) == {s.resource["service.instance.id"] for s in server_spans(receiver)}
