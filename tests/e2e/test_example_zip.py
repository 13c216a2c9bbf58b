"""End to end: seed 001's ZIP-to-docs service (examples/zip_service) on the real stack, with its own rules.

The service runs in pull mode, as the seed has it: it serves ``/metrics`` itself and Prometheus's ``apps`` job
scrapes it (every 2 s here); traces and logs go over OTLP. Its work directory is a real 64 MiB tmpfs, a disk quota
the test fills by converting archives until it is full:

* ``DiskSpaceLow`` (the seed's LowDiskSpace; its 1 GiB floor scaled to 24 MiB for the 64 MiB quota) pages
  through the real Alertmanager (critical: pager), with the example's playbook;
* damaged archives, and extractions that run out of space, raise ``OperationErrorRateHigh`` (the seed's
  HighExtractionFailureRate, warning: chat only);
* freeing the space resolves the page; stopping the service fires ``ServiceDown`` (its scrape fails).

The tests also read the seed's metrics from /metrics and from Prometheus (HTTP by method/route/status, extraction
files and bytes, active conversions, CPU, memory and free disk), one conversion's trace in Jaeger, its log lines
in VictoriaLogs by request_id, the health endpoints, and every query of the example's dashboards.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otel_dist.stack import http
from otel_dist.stack.example import ExampleApp, free_port, start_example_app
from otel_dist.stack.supervisor import REPO_ROOT, Stack
from tests.e2e.alerting_stack import (
    assert_panel_returns_series,
    dashboard_panels,
    rendered_with,
    run_runbook_step,
    runbook_steps,
    start_alerting_stack,
)
from tests.e2e.conftest import APP_ENV, eventually
from tests.rules.webhook import WebhookReceiver
from tests.stack.binaries import in_ci

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

EXAMPLE = REPO_ROOT / "examples/zip_service"
SPEC = EXAMPLE / "monitoring/objectives.yaml"
SERVICE = "zip-service"  # the job of the example's ServiceDown rule
QUOTA_MIB = 64
FLOOR = 24 * 2**20  # the seed's 1 GiB floor, scaled to the 64 MiB quota
PLAYBOOKS = "https://github.com/otel-dist/otel-dist/blob/main/examples/zip_service/runbooks"
WAIT = 120.0
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name, text in files.items():
            out.writestr(name, text)
    return buffer.getvalue()


def corrupt(seed: int) -> bytes:
    """A ZIP whose directory is fine and whose content is damaged: it passes inspection, its extraction fails."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
        out.writestr("docs/index.md", f"# Damaged {seed}\n" + "text " * 200)
    data = bytearray(buffer.getvalue())
    data[60] ^= 0xFF  # inside the stored member: its CRC-32 no longer matches
    return bytes(data)


def documentation(megabytes: float, seed: int) -> bytes:
    """A documentation archive of about ``megabytes`` of text that does not compress much (no ZIP bomb)."""
    rng = random.Random(seed)
    pages = {}
    for page in range(4):
        words = " ".join(f"{rng.getrandbits(64):x}" for _ in range(int(megabytes * 2**20 / 4 / 17)))
        pages[f"docs/page-{page}.md"] = f"# Page {page}\n\n{words}\n"
    return archive(pages)


@dataclass
class Answer:
    request_id: str
    status: int
    trace_id: str | None
    body: dict[str, Any]


@dataclass
class ZipRun:
    app: ExampleApp
    work: Path
    answers: list[Answer] = field(default_factory=list)

    def convert(self, request_id: str, blob: bytes) -> Answer:
        request = urllib.request.Request(
            f"{self.app.base_url}/api/v1/convert",
            data=blob,
            method="POST",
            headers={"Content-Type": "application/zip", "X-Request-ID": request_id},
        )
        try:
            with _opener.open(request, timeout=60) as response:
                status, headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, payload = error.code, error.headers, error.read()
        traceresponse = headers.get("traceresponse") or ""
        answer = Answer(request_id, status, traceresponse.split("-")[1] if traceresponse.count("-") == 3 else None, {})
        answer.body = json.loads(payload)
        self.answers.append(answer)
        return answer

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with _opener.open(f"{self.app.base_url}{path}", timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def free(self) -> int:
        stats = os.statvfs(self.work)
        return stats.f_bavail * stats.f_frsize


def shorten(spec: dict[str, Any]) -> None:
    """Seconds instead of minutes, and the floor scaled to the quota."""
    spec["defaults"]["disk"]["free_bytes"] = {"critical": FLOOR, "critical_for": "5s"}
    spec["operations"][0]["error_ratio"]["warning_for"] = "5s"
    spec["alerts"][0]["for"] = "5s"


@pytest.fixture(scope="module")
def quota(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real 64 MiB filesystem (tmpfs) for the service's work directory."""
    work = tmp_path_factory.mktemp("zip-quota")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={QUOTA_MIB}m,mode=0755", "tmpfs", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs quota (root and CAP_SYS_ADMIN needed): {mounted.stderr.strip()}"
        if in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield work
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)


@pytest.fixture(scope="module")
def zip_stack(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Iterator[Stack]:
    stack = start_alerting_stack(tmp_path_factory, receiver.url, rendered_with(SPEC, shorten), scrape_interval="2s")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def run(zip_stack: Stack, quota: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZipRun]:
    port = free_port()
    targets = zip_stack.data_dir / "prometheus/etc/targets/apps-zip.yml"
    targets.write_text(
        f"- targets: [127.0.0.1:{port}]\n"
        f"  labels: {{job: {SERVICE}, deployment_environment_name: e2e, service_version: 1.2.3}}\n"
    )
    private = tmp_path_factory.mktemp("zip-app")
    env = {
        **APP_ENV,
        "OTEL_METRICS_EXPORTER": "prometheus",  # pull mode: the seed's /metrics
        "OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR": str(private / "metrics"),  # the app serves /metrics itself
        "OTEL_DIST_FILESYSTEM_PATHS": str(quota),
        "OTEL_DIST_MEMORY_LIMIT": "2Gi",
        "ZIP_WORK_DIR": str(quota),
        "ZIP_MIN_FREE_BYTES": str(FLOOR),
    }
    app = start_example_app(
        SERVICE,
        otlp_endpoint=zip_stack.otlp_http_endpoint,
        log_path=private / "zip-service.log",
        env=env,
        app="examples.zip_service.app:app",
        port=port,
    )
    with app:
        zipped = ZipRun(app, quota)
        # Healthy traffic: conversions, an archive that is not one, a ZIP bomb.
        for n in range(3):
            answer = zipped.convert(f"zip-ok-{n}", archive({"docs/index.md": f"# Doc {n}\n\nHello.\n", "a.txt": "x"}))
            assert answer.status == 200, answer
        assert zipped.convert("zip-not-a-zip", b"this is not a zip archive").status == 422
        bomb = archive({"bomb.txt": "0" * (20 * 2**20)})
        assert zipped.convert("zip-bomb", bomb).body["reason"] == "zip_bomb"
        # One damaged archive, as a service that has run for a while has seen: in pull mode a counter series
        # is visible to rate() only from its second sample, so the failure series must exist before the burst.
        assert zipped.convert("zip-corrupt-0", corrupt(0)).body["error"] == "damaged_archive"
        yield zipped
    targets.unlink(missing_ok=True)


def fill(run: ZipRun) -> None:
    """Convert 5 MB archives until less than the floor is free; then damaged archives and 12 MB ones, whose
    extraction fails (a bad CRC, no space left)."""
    if any(a.request_id.startswith("zip-fill-") for a in run.answers):
        return
    for n in range(20):
        assert run.convert(f"zip-fill-{n:02d}", documentation(5, n)).status == 200
        if run.free() < FLOOR:
            break
    assert run.free() < FLOOR
    for n in range(1, 7):
        assert run.convert(f"zip-corrupt-{n}", corrupt(n)).status == 422
    for n in range(3):
        answer = run.convert(f"zip-full-{n}", documentation(12, 100 + n))
        assert (answer.status, answer.body["error"]) == (507, "disk_full"), answer


def pages(receiver: WebhookReceiver, alert: str, action: str) -> list[dict[str, Any]]:
    return [
        m
        for m in receiver.at("/pager")
        if m["event_action"] == action and f"{alert} on {SERVICE}:" in m["payload"]["summary"]
    ]


def test_the_metrics_endpoint_serves_the_seeds_metrics(run: ZipRun) -> None:
    def scraped() -> str:
        status, body = run.get("/metrics")
        text = body.decode()
        assert status == 200
        assert "zip_extraction_files_bucket" in text
        return text

    text = eventually(scraped)
    assert "# HELP" in text
    assert "# TYPE http_server_request_duration_seconds histogram" in text
    convert = [
        line
        for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_count{")
        and 'http_route="/api/v1/convert"' in line
        and 'http_request_method="POST"' in line
    ]
    assert {'http_response_status_code="200"' in line for line in convert} == {True, False}  # 200s and 422s
    for name in ("zip_extraction_size_bytes_bucket", "operation_active", "system_filesystem_usage_bytes"):
        assert f"\n{name}{{" in text, name
    assert "/health" not in "".join(convert)


def test_a_full_disk_pages_and_failing_extractions_reach_the_chat(
    zip_stack: Stack, run: ZipRun, receiver: WebhookReceiver
) -> None:
    fill(run)
    receiver.wait_for(lambda: bool(pages(receiver, "DiskSpaceLow", "trigger")), timeout=WAIT, what="the disk page")
    page = pages(receiver, "DiskSpaceLow", "trigger")[0]
    assert page["payload"]["severity"] == "critical"
    assert page["links"] == [{"href": f"{PLAYBOOKS}/DiskSpaceLow.md", "text": "Runbook"}]
    description = page["payload"]["custom_details"]["description"]
    assert f"Filesystem {run.work} (tmpfs) of {SERVICE}" in description
    assert "(critical below 24MiB)" in description

    def extraction_chat() -> bool:
        return any(
            "OperationErrorRateHigh" in m["attachments"][0]["title"] and SERVICE in m["attachments"][0]["title"]
            for m in receiver.at("/chat")
        )

    receiver.wait_for(extraction_chat, timeout=WAIT, what="the extraction-failure chat message")
    assert not pages(receiver, "OperationErrorRateHigh", "trigger"), "a warning goes to the chat only"
    # Damaged archives (422) and extractions out of space (507), recorded by exception type.
    errors = http.promql(
        zip_stack.prometheus_url,
        f'sum by (operation_name, error_type) (operation_outcomes_total{{job="{SERVICE}", operation_outcome="error"}})',
    )
    assert {e["metric"]["error_type"] for e in errors} == {"BadZipFile", "OSError"}


def test_freeing_the_disk_resolves_the_page(zip_stack: Stack, run: ZipRun, receiver: WebhookReceiver) -> None:
    fill(run)
    receiver.wait_for(lambda: bool(pages(receiver, "DiskSpaceLow", "trigger")), timeout=WAIT, what="the disk page")
    for result in (run.work / "results").glob("*.md"):
        result.unlink()
    assert run.free() > FLOOR
    receiver.wait_for(lambda: bool(pages(receiver, "DiskSpaceLow", "resolve")), timeout=WAIT, what="the resolve")


def test_the_seeds_metrics_are_in_prometheus(zip_stack: Stack, run: ZipRun) -> None:
    fill(run)
    prometheus = zip_stack.prometheus_url
    job = f'job="{SERVICE}"'

    def present() -> None:
        names = http.metric_names(prometheus, f"{{{job}}}")
        wanted = {
            "http_server_request_duration_seconds_bucket",
            "zip_extraction_files_bucket",
            "zip_extraction_size_bytes_bucket",
            "operation_active",
            "operation_duration_seconds_bucket",
            "process_cpu_time_seconds_total",
            "process_memory_usage_bytes",
            "process_memory_limit_bytes",
            "system_filesystem_usage_bytes",
            "security_events_total",
            "up",
        }
        assert sorted(wanted - names) == []

    eventually(present)
    by_status = http.promql(
        prometheus,
        f"sum by (http_request_method, http_route, http_response_status_code) "
        f"(http_server_request_duration_seconds_count{{{job}}})",
    )
    statuses = {(s["metric"]["http_route"], s["metric"]["http_response_status_code"]) for s in by_status}
    assert {("/api/v1/convert", status) for status in ("200", "422", "507")} <= statuses
    (limit,) = http.promql(prometheus, f"max(process_memory_limit_bytes{{{job}}})")
    assert float(limit["value"][1]) == 2 * 2**30
    (free,) = http.promql(
        prometheus,
        f'min(system_filesystem_usage_bytes{{{job}, system_filesystem_mountpoint="{run.work}",'
        ' system_filesystem_state="free"})',
    )
    assert float(free["value"][1]) <= QUOTA_MIB * 2**20
    rejected = http.promql(prometheus, f"sum by (security_event_reason) (security_events_total{{{job}}})")
    assert {r["metric"]["security_event_reason"] for r in rejected} == {"not_a_zip", "zip_bomb"}


def test_one_conversion_is_one_trace_and_its_logs_share_the_request_id(zip_stack: Stack, run: ZipRun) -> None:
    answer = next(a for a in run.answers if a.request_id == "zip-ok-0")
    assert answer.trace_id

    def spans() -> list[str]:
        names = sorted(s["name"] for s in http.jaeger_trace(zip_stack.jaeger_url, answer.trace_id or ""))
        assert {"POST /api/v1/convert", "zip.extract", "docs.convert"} <= set(names), names
        return names

    eventually(spans)

    def lines() -> list[dict[str, str]]:
        found = http.logsql(zip_stack.victorialogs_url, f'"service.name":="{SERVICE}" request_id:="zip-ok-0"')
        assert {"conversion.completed", "http.request"} <= {line["_msg"] for line in found}
        return found

    found = eventually(lines)
    assert {line["trace_id"] for line in found} == {answer.trace_id}
    assert next(line for line in found if line["_msg"] == "conversion.completed")["files"] == "2"


def test_the_health_endpoints(run: ZipRun) -> None:
    status, body = run.get("/health")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    status, body = run.get("/health/disk")
    assert status in (200, 503)  # 503 while the quota is full
    assert json.loads(body)["checks"]["disk"]["status"] in ("ok", "failing")


PANELS = dashboard_panels(EXAMPLE / "monitoring/dashboards")


@pytest.mark.parametrize(("dashboard", "title", "expr"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_every_dashboard_query_returns_the_services_series(
    zip_stack: Stack, run: ZipRun, dashboard: str, title: str, expr: str
) -> None:
    fill(run)
    eventually(lambda: assert_panel_returns_series(zip_stack.prometheus_url, SERVICE, dashboard, title, expr))


STEPS = runbook_steps(EXAMPLE / "runbooks")


@pytest.mark.parametrize(("alert", "index", "block"), STEPS, ids=[f"{a}:{b.lang}:{i}" for a, i, b in STEPS])
def test_every_step_of_the_examples_runbooks_runs(
    zip_stack: Stack, run: ZipRun, alert: str, index: int, block: Any
) -> None:
    fill(run)
    answer = next(a for a in run.answers if a.request_id == "zip-ok-0")
    values = {"service": SERVICE, "request_id": answer.request_id, "trace_id": answer.trace_id or "", "env": "e2e"}
    eventually(lambda: run_runbook_step(zip_stack, block, values))


def test_a_stopped_service_fires_service_down(zip_stack: Stack, run: ZipRun, receiver: WebhookReceiver) -> None:
    run.app.stop()
    receiver.wait_for(lambda: bool(pages(receiver, "ServiceDown", "trigger")), timeout=WAIT, what="ServiceDown")
    page = pages(receiver, "ServiceDown", "trigger")[0]
    assert page["links"] == [{"href": f"{PLAYBOOKS}/ServiceDown.md", "text": "Runbook"}]
    assert "does not answer /metrics" in page["payload"]["summary"]
