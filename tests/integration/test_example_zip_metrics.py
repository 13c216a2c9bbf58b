"""Seed 001's tests of the metrics endpoint (its tests/test_monitoring.py), against the real zip service example.

The service under uvicorn in pull mode serves /metrics itself: Prometheus text with # HELP and # TYPE, the request
count by method, route and status (probes and scrapes left out), the extraction metrics after a conversion.
No stack is needed; tests/e2e/test_example_zip.py runs the same service against the real one.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator

import pytest

from otel_dist.stack.example import ExampleApp, start_example_app

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleApp]:
    folder = tmp_path_factory.mktemp("zip")
    env = {
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR": str(folder / "metrics"),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "ZIP_WORK_DIR": str(folder / "work"),
        "ZIP_MIN_FREE_BYTES": "1",
    }
    with start_example_app(
        "zip-service", otlp_endpoint=None, log_path=folder / "app.log", env=env, app="examples.zip_service.app:app"
    ) as running:
        yield running


def request(app: ExampleApp, path: str, data: bytes | None = None) -> tuple[int, bytes]:
    outgoing = urllib.request.Request(f"{app.base_url}{path}", data=data, method="POST" if data is not None else "GET")
    try:
        with _opener.open(outgoing, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def metrics_after(app: ExampleApp, wanted: str, timeout: float = 15.0) -> str:
    """/metrics once it shows ``wanted`` (each worker writes its snapshot every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = request(app, "/metrics")
        assert status == 200
        text = body.decode()
        if wanted in text or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def test_the_metrics_endpoint_exists_and_speaks_the_prometheus_format(app: ExampleApp) -> None:
    text = metrics_after(app, "process_memory_usage_bytes")
    assert "# HELP" in text
    assert "# TYPE" in text


def test_request_and_extraction_metrics_are_recorded(app: ExampleApp) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr("docs/index.md", "# Index\n")
    status, body = request(app, "/api/v1/convert", buffer.getvalue())
    assert status == 200, body
    result_id = json.loads(body)["id"]
    assert request(app, f"/api/v1/results/{result_id}") == (200, b"## docs/index.md\n\n# Index\n\n\n")
    assert request(app, "/health")[0] == 200
    text = metrics_after(app, "zip_extraction_files_count")
    counts = [line for line in text.splitlines() if line.startswith("http_server_request_duration_seconds_count{")]
    assert any('http_route="/api/v1/convert"' in c and 'http_response_status_code="200"' in c for c in counts)
    assert any('http_request_method="GET"' in c and 'http_route="/api/v1/results/{result_id}"' in c for c in counts)
    assert not any("/health" in c or "/metrics" in c for c in counts)  # probes and scrapes are not traffic
    for name in ("zip_extraction_files_count", "zip_extraction_size_bytes_sum", "operation_active{"):
        assert name in text, name
    assert 'operation_name="zip.extract"' in text


def test_the_health_endpoint(app: ExampleApp) -> None:
    status, body = request(app, "/health/ready")
    assert status == 200
    assert json.loads(body)["checks"]["disk"]["status"] == "ok"
