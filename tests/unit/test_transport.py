"""The exporters' transport: Retry-After and RetryInfo parsing, refusal names, the wait it imposes, the CA it pins."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
from opentelemetry.sdk.metrics import MeterProvider

from otel_dist.settings import OtlpSignalSettings
from otel_dist.transport import (
    SDK_RETRY_INFO_KEY,
    CollectorRefused,
    CollectorTransport,
    GatedStub,
    RetryGate,
    gated_grpc_exporter,
    grpc_refusal,
    grpc_retry_delay,
    refusal,
    retry_after_seconds,
)


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


# --- gRPC -------------------------------------------------------------------------------------------------


def _status_details(*details: Message, code: int = 8) -> bytes:
    from google.protobuf.any_pb2 import Any as AnyProto
    from google.rpc.status_pb2 import Status

    status = Status(code=code, message="refused")
    for detail in details:
        packed = AnyProto()
        packed.Pack(detail)
        status.details.append(packed)
    return bytes(status.SerializeToString())


def _retry_info(seconds: float) -> Message:
    from google.rpc.error_details_pb2 import RetryInfo

    info = RetryInfo()
    info.retry_delay.FromNanoseconds(int(seconds * 1e9))
    return info


def test_grpc_retry_delay_is_read_from_the_status_details_where_servers_put_it() -> None:
    from google.rpc.error_details_pb2 import ErrorInfo

    details = _status_details(ErrorInfo(reason="x"), _retry_info(2.5))
    assert grpc_retry_delay([("grpc-status-details-bin", details)]) == 2.5
    assert grpc_retry_delay([(SDK_RETRY_INFO_KEY, _retry_info(0.25).SerializeToString())]) == 0.25


@pytest.mark.parametrize(
    "metadata",
    [None, [], [("grpc-status-details-bin", b"\xff\xfe not protobuf")], [("grpc-status-details-bin", "text")]],
)
def test_grpc_retry_delay_absent_or_malformed_is_none(metadata: Any) -> None:
    assert grpc_retry_delay(metadata) is None
    assert grpc_retry_delay([("grpc-status-details-bin", _status_details())]) is None


@given(st.binary(max_size=64))
def test_any_status_details_are_a_delay_or_none(value: bytes) -> None:
    seconds = grpc_retry_delay([("grpc-status-details-bin", value), (SDK_RETRY_INFO_KEY, value)])
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("RESOURCE_EXHAUSTED", "ResourceExhausted"),
        ("UNAVAILABLE", "Unavailable"),
        ("UNAUTHENTICATED", "Unauthenticated"),
    ],
)
def test_a_grpc_refusal_is_an_rpc_error_named_after_its_code(code: str, name: str) -> None:
    import grpc

    error_type = grpc_refusal(code)
    assert error_type.__qualname__ == name  # what the SDK's counter carries as error.type
    assert issubclass(error_type, grpc.RpcError)
    assert grpc_refusal(code) is error_type


class _Failed(grpc.RpcError):  # type: ignore[misc]
    """What grpc raises for a failed call: code, details and trailing metadata."""

    def __init__(self, metadata: tuple[tuple[str, bytes], ...]) -> None:
        self._metadata = metadata

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.RESOURCE_EXHAUSTED

    def details(self) -> str:
        return "memory limit"

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._metadata


@dataclass
class _Stub:
    answers: list[Exception | str]
    sent: list[float] = field(default_factory=list)

    def Export(self, request: Any, metadata: Any = None, timeout: float | None = None) -> str:
        self.sent.append(time.monotonic())
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_grpc_refusal_with_retry_info_holds_the_next_call_and_tells_the_sdk() -> None:
    stub = _Stub([_Failed((("grpc-status-details-bin", _status_details(_retry_info(0.3))),)), "ok"])
    gated = GatedStub(stub, RetryGate())
    with pytest.raises(grpc_refusal("RESOURCE_EXHAUSTED")) as caught:
        gated.Export(request=b"", metadata=(), timeout=1.0)
    # The SDK's own retry loop reads this key: it now waits the collector's delay between attempts too.
    assert grpc_retry_delay([m for m in caught.value.trailing_metadata() if m[0] == SDK_RETRY_INFO_KEY]) == 0.3
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details() == "memory limit"
    assert gated.Export(request=b"", metadata=(), timeout=1.0) == "ok"
    assert stub.sent[1] - stub.sent[0] >= 0.29


def test_a_grpc_wait_is_bounded_by_the_call_timeout_and_interrupted_by_shutdown() -> None:
    gate = RetryGate()
    gate.retry_after(3600)
    stub = _Stub(["ok"])
    started = time.monotonic()
    assert GatedStub(stub, gate).Export(request=b"", timeout=0.2) == "ok"
    assert time.monotonic() - started < 1.0
    gate.close()
    with pytest.raises(grpc_refusal("CANCELLED")):
        GatedStub(stub, gate).Export(request=b"", timeout=30)
    assert len(stub.sent) == 1


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
        ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
        ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ],
)
def test_grpc_exporters_get_the_gated_stub_also_after_reconnecting(module: str, name: str) -> None:
    """Pins the SDK internals gated_grpc_exporter relies on (_initialize_channel_and_stub, _client)."""
    import importlib

    exporter_class = getattr(importlib.import_module(module), name)
    exporter = gated_grpc_exporter(exporter_class)(endpoint="http://127.0.0.1:1", insecure=True, timeout=1)
    assert isinstance(exporter, exporter_class)
    assert type(exporter).__name__ == name
    assert isinstance(exporter._client, GatedStub)
    exporter._initialize_channel_and_stub()  # what the SDK does after UNAVAILABLE
    assert isinstance(exporter._client, GatedStub)
    exporter.shutdown()


def test_grpc_exporters_are_built_gated() -> None:
    from otel_dist.exporters import log_exporters, metric_exporter, span_exporters
    from otel_dist.settings import resolve

    settings = resolve({"protocol": "grpc", "endpoint": "http://127.0.0.1:1"}, {})
    built = [*span_exporters(settings, None), *log_exporters(settings, None)]
    built.append(metric_exporter(settings, "otlp", MeterProvider()))
    for exporter in built:
        assert isinstance(exporter._client, GatedStub), exporter  # type: ignore[attr-defined]
        exporter.shutdown()
