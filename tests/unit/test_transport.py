"""The exporters' transport: Retry-After parsing, refusal names, the wait it imposes, the CA it pins."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport

from otel_dist.settings import OtlpSignalSettings
from otel_dist.transport import CollectorRefused, CollectorTransport, refusal, retry_after_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 0 ", 0.0), ("1.5", 1.5), ("-4", 0.0), ("soon", None), ("", None), (None, None), ("inf", None)],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now.timestamp()) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now.timestamp()) == 0.0


@given(st.text(max_size=40))
def test_any_retry_after_value_is_a_wait_or_none(value: str) -> None:
    seconds = retry_after_seconds(value)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (503, "ServiceUnavailable"),
        (429, "TooManyRequests"),
        (401, "Unauthorized"),
        (502, "BadGateway"),
        (599, "HTTPStatus599"),
    ],
)
def test_a_refusal_is_named_after_its_status(status: int, name: str) -> None:
    error_type = refusal(status)
    assert error_type.__qualname__ == name  # what the SDK's counter carries as error.type
    assert issubclass(error_type, CollectorRefused)
    assert error_type.status == status
    assert refusal(status) is error_type


@dataclass(frozen=True, slots=True)
class _Result(BaseHTTPResult):
    retry_after: str | None = None

    def content(self) -> bytes:
        return b""

    def headers(self) -> dict[str, Any]:
        return {} if self.retry_after is None else {"retry-after": self.retry_after}


@dataclass
class _Scripted(BaseHTTPTransport):
    answers: list[_Result]
    sent: list[float] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> BaseHTTPResult:
        self.sent.append(time.monotonic())
        return self.answers.pop(0)

    def close(self) -> None:
        pass

    def is_connection_error(self, exception: Exception | None) -> bool:
        return isinstance(exception, ConnectionError)


OTLP = OtlpSignalSettings("http://127.0.0.1:1/v1/traces", "http/protobuf", {}, 1.0, "none", True)


def test_the_next_request_waits_for_the_retry_after_the_collector_named() -> None:
    inner = _Scripted([_Result(429, "Too Many Requests", retry_after="0.3"), _Result(200, "OK")])
    transport = CollectorTransport(OTLP, inner)
    refused = transport.request("POST", OTLP.endpoint, timeout=1.0)
    assert isinstance(refused.error, refusal(429))
    assert transport.request("POST", OTLP.endpoint, timeout=1.0).status_code == 200
    assert inner.sent[1] - inner.sent[0] >= 0.29


def test_the_wait_never_exceeds_the_request_timeout() -> None:
    inner = _Scripted([_Result(503, "Service Unavailable", retry_after="3600"), _Result(200, "OK")])
    transport = CollectorTransport(OTLP, inner)
    transport.request("POST", OTLP.endpoint, timeout=0.2)
    started = time.monotonic()
    transport.request("POST", OTLP.endpoint, timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_closing_interrupts_the_wait() -> None:
    inner = _Scripted([_Result(503, "Service Unavailable", retry_after="60")])
    transport = CollectorTransport(OTLP, inner)
    transport.request("POST", OTLP.endpoint, timeout=30)
    transport.close()
    result = transport.request("POST", OTLP.endpoint, timeout=30)
    assert isinstance(result.error, ConnectionAbortedError)
    assert len(inner.sent) == 1


def test_success_and_connection_errors_pass_through_unchanged() -> None:
    ok, down = _Result(200, "OK"), _Result(error=ConnectionError("refused"))
    transport = CollectorTransport(OTLP, _Scripted([ok, down]))
    assert transport.request("POST", OTLP.endpoint, timeout=1) is ok
    assert transport.request("POST", OTLP.endpoint, timeout=1) is down
    assert transport.is_connection_error(down.error)


def test_a_configured_ca_wins_over_requests_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    transport = CollectorTransport(
        OtlpSignalSettings("https://c:4318/v1/traces", "http/protobuf", {}, 1.0, "none", False, str(ca))
    )
    session = transport._inner._session  # type: ignore[attr-defined]
    merged = session.merge_environment_settings("https://c:4318/v1/traces", {}, None, None, None)
    assert merged["verify"] == str(ca)


def test_grpc_exporters_get_tls_credentials_from_settings(tmp_path: Any) -> None:
    import grpc

    from otel_dist.exporters import _otlp_kwargs
    from otel_dist.settings import resolve

    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    settings = resolve({"protocol": "grpc", "endpoint": "https://collector:4317", "certificate": str(ca)}, {})
    protocol, kwargs = _otlp_kwargs(settings, "traces", None)
    assert protocol == "grpc"
    assert kwargs["insecure"] is False
    assert isinstance(kwargs["credentials"], grpc.ChannelCredentials)


def test_http_exporters_get_our_transport() -> None:
    from otel_dist.exporters import _otlp_kwargs
    from otel_dist.settings import resolve

    _, kwargs = _otlp_kwargs(resolve({}, {}), "logs", None)
    assert isinstance(kwargs["_transport"], CollectorTransport)
