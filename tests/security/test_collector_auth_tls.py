"""OTLP between app and collector with TLS and a bearer token (collector/auth-tls.yaml), on the real collector.

The certificates are made at test time (trustme: a throw-away CA), the token is random; both live in the test's
temporary folder only. The collector forwards to the test's real backends, so the authenticated export is checked
where it lands.
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_dist.exporters import span_exporters
from otel_dist.settings import resolve
from otel_dist.stack import http
from otel_dist.stack.example import free_port
from otel_dist.stack.supervisor import plan
from tests.reliability.conftest import App, FaultStack, Report, eventually, metric_count, serve, trace_counts

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


@dataclass
class Secured:
    """A collector requiring TLS and a token, and the files a client needs."""

    endpoint: str  # https://127.0.0.1:<port>
    ca: Path
    token: str
    headers_file: Path  # authorization=Bearer <token>
    client_cert: Path
    client_key: Path


def _write_pems(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("otel-dist-app")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "client-cert", "client-key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_pem.write_to_path(str(paths["client-key"]))
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(paths["cert"]), append=index > 0)
    for index, blob in enumerate(client.cert_chain_pems):
        blob.write_to_path(str(paths["client-cert"]), append=index > 0)
    return paths


@pytest.fixture
def secured(fault_stack: FaultStack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Secured]:
    """A second real collector with auth-tls.yaml merged on top, in front of the test stack's backends."""
    mutual = getattr(request, "param", False)
    pems = _write_pems(tmp_path)
    token = secrets.token_urlsafe(24)
    (tmp_path / "tokens").write_text(f"{token} # the app's token\n")
    headers_file = tmp_path / "otlp-headers"
    headers_file.write_text(f"authorization=Bearer {token}\n")
    stack = fault_stack.stack
    ports = dataclasses.replace(
        stack.ports,
        otlp_grpc=free_port(),
        otlp_http=free_port(),
        collector_health=free_port(),
        collector_metrics=free_port(),
    )
    [collector] = [
        s for s in plan(ports, stack.data_dir, fault_stack.binaries, repo=fault_stack.repo) if s.name == "otelcol"
    ]
    env = {
        **collector.env,
        "OTELCOL_AUTH_TOKEN_FILE": str(tmp_path / "tokens"),
        "OTELCOL_TLS_CERT_FILE": str(pems["cert"]),
        "OTELCOL_TLS_KEY_FILE": str(pems["key"]),
        **({"OTELCOL_TLS_CLIENT_CA_FILE": str(pems["ca"])} if mutual else {}),
        # Its own persistent queues: the stack's collector holds the locks on the stack's.
        "OTELCOL_STORAGE_DIR": str(tmp_path / "queues"),
    }
    argv = [*collector.argv, f"--config=file:{fault_stack.repo / 'collector/auth-tls.yaml'}"]
    log = (tmp_path / "otelcol-auth.log").open("wb")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not http.is_ready(f"http://127.0.0.1:{ports.collector_health}/"):
            assert process.poll() is None, (tmp_path / "otelcol-auth.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the collector with auth-tls.yaml did not become ready"
            time.sleep(0.1)
        yield Secured(
            endpoint=f"https://127.0.0.1:{ports.otlp_http}",
            ca=pems["ca"],
            token=token,
            headers_file=headers_file,
            client_cert=pems["client-cert"],
            client_key=pems["client-key"],
        )
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def export_one_span(**options: Any) -> SpanExportResult:
    """Export one span with otel-dist's exporter built from ``options`` (configure()'s arguments)."""
    settings = resolve({"metrics_exporter": "none", "logs_exporter": "none", "export_timeout": 3.0, **options}, {})
    [exporter] = span_exporters(settings, None)
    span = TracerProvider().get_tracer("tls-test").start_span("probe")
    span.end()
    try:
        return exporter.export([span])  # type: ignore[list-item]
    finally:
        exporter.shutdown()


def test_the_collector_refuses_exports_without_the_token_or_over_the_wrong_tls(
    secured: Secured, tmp_path: Path
) -> None:
    other_ca = trustme.CA()
    other_ca.cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    wrong = tmp_path / "wrong-headers"
    wrong.write_text("authorization=Bearer not-the-token\n")
    plain = secured.endpoint.replace("https://", "http://")
    assert export_one_span(endpoint=secured.endpoint, certificate=str(secured.ca)) == SpanExportResult.FAILURE
    assert (
        export_one_span(endpoint=secured.endpoint, certificate=str(secured.ca), headers_file=str(wrong))
        == SpanExportResult.FAILURE
    )
    # the token, but a CA that did not sign the collector's certificate: the connection is refused by the client
    assert (
        export_one_span(
            endpoint=secured.endpoint,
            certificate=str(tmp_path / "other-ca.pem"),
            headers_file=str(secured.headers_file),
        )
        == SpanExportResult.FAILURE
    )
    assert export_one_span(endpoint=plain, headers_file=str(secured.headers_file)) == SpanExportResult.FAILURE
    assert (
        export_one_span(endpoint=secured.endpoint, certificate=str(secured.ca), headers_file=str(secured.headers_file))
        == SpanExportResult.SUCCESS
    )


def test_the_example_app_exports_through_tls_and_the_token(
    secured: Secured, fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report
) -> None:
    stack = fault_stack.stack
    app = serve(
        secured.endpoint,
        tmp_path / "apps",
        env={
            "OTEL_EXPORTER_OTLP_CERTIFICATE": str(secured.ca),
            "OTEL_DIST_OTLP_HEADERS_FILE": str(secured.headers_file),
        },
    )
    apps.append(app)
    for item in range(5):
        assert http.get_json(f"{app.base_url}/items/{item}")["item_id"] == item
    app.terminate()
    eventually(lambda: _assert_equal(trace_counts(stack, app)[0], 5))
    eventually(lambda: _assert_equal(metric_count(stack, app.service), 5))
    assert secured.token not in app.output()
    report.record("OTLP over TLS with a bearer token (security)", requests=5, traces=5, metric_count=5)


@pytest.mark.parametrize("secured", [True], indirect=True, ids=["mutual-tls"])
def test_mutual_tls_needs_the_client_certificate(secured: Secured) -> None:
    common = {"endpoint": secured.endpoint, "certificate": str(secured.ca), "headers_file": str(secured.headers_file)}
    assert export_one_span(**common) == SpanExportResult.FAILURE
    assert (
        export_one_span(**common, client_certificate=str(secured.client_cert), client_key=str(secured.client_key))
        == SpanExportResult.SUCCESS
    )


def _assert_equal(value: object, expected: object) -> None:
    assert value == expected
