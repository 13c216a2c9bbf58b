"""The three signals, exported over real OTLP and decoded from protobuf as a collector would see them."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import metrics, trace

import otel_dist
from tests.support.otlp_receiver import OtlpReceiver, running_grpc_receiver, wait_for


def stdout_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_span_metric_and_log_arrive_correlated(receiver, configure: OtlpReceiver, capsys) -> None:
    telemetry = configure(service_name="parser", service_version="1.4.0", endpoint=receiver.endpoint)
    log = otel_dist.get_logger("parser.core")
    documents = metrics.get_meter("parser").create_counter("parser.documents")

    with trace.get_tracer("parser").start_as_current_span("parse") as span:
        log.info("document.parsed", pages=12)
        documents.add(1, {"kind": "markdown"})
    assert telemetry.force_flush(5)

    [exported_span] = [s for s in receiver.spans() if s.item.name == "parse"]
    [record] = receiver.logs()
    assert exported_span.resource["service.name"] == "parser"
    assert exported_span.resource["service.version"] == "1.4.0"
    assert record.item.body.string_value == "document.parsed"
    assert record.item.severity_text == "INFO"
    assert record.attributes == {"pages": 12, "logger.name": "parser.core"}
    assert record.item.trace_id == exported_span.item.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")
    assert record.item.span_id == exported_span.item.span_id
    assert record.scope == "parser.core"
    assert wait_for(lambda: receiver.latest_points("parser.documents"))[0][1].as_int == 1

    [line] = [line for line in stdout_lines(capsys) if line["event"] == "document.parsed"]
    assert line["trace_id"] == exported_span.item.trace_id.hex()
    assert line["span_id"] == exported_span.item.span_id.hex()
    assert line["service.name"] == "parser"
    assert line["level"] == "info"
    assert line["pages"] == 12


def test_each_event_is_exported_exactly_once(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none")
    otel_dist.get_logger("a").info("from.structlog")
    logging.getLogger("b").warning("from stdlib")
    logging.getLogger("uvicorn.error").info("from uvicorn")
    telemetry.force_flush(5)
    bodies = sorted(r.item.body.string_value for r in receiver.logs())
    assert bodies == ["from stdlib", "from uvicorn", "from.structlog"]


def test_stdlib_records_have_the_same_shape_as_structlog_lines(receiver, configure: OtlpReceiver, capsys) -> None:
    uvicorn_logger = logging.getLogger("uvicorn.error")
    uvicorn_logger.addHandler(logging.StreamHandler())  # what uvicorn's own config would have installed
    configure(service_name="api", endpoint=receiver.endpoint, metrics_exporter="none")
    with trace.get_tracer("t").start_as_current_span("request"):
        otel_dist.get_logger("app").info("structlog.line", user="u1")
        uvicorn_logger.info("Started server process [%d]", 42)
        logging.getLogger("library").error("failed", extra={"attempt": 3})

    lines = stdout_lines(capsys)
    assert [line["event"] for line in lines] == ["structlog.line", "Started server process [42]", "failed"]
    common = {"event", "level", "logger", "timestamp", "service.name", "trace_id", "span_id"}
    for line in lines:
        assert common <= set(line), line
    assert len({line["trace_id"] for line in lines}) == 1
    assert lines[2]["attempt"] == 3
    assert lines[1]["logger"] == "uvicorn.error"
    assert uvicorn_logger.handlers == []


def test_trace_ids_appear_when_the_span_is_not_sampled(receiver, configure: OtlpReceiver, capsys) -> None:
    telemetry = configure(endpoint=receiver.endpoint, sampler="parentbased_always_off", metrics_exporter="none")
    with trace.get_tracer("t").start_as_current_span("unsampled") as span:
        otel_dist.get_logger().info("inside")
    telemetry.force_flush(5)
    assert not span.get_span_context().trace_flags.sampled
    assert receiver.spans() == []
    [record] = receiver.logs()
    assert record.item.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")
    [line] = stdout_lines(capsys)
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_exceptions_are_structured_in_both_outputs(receiver, configure: OtlpReceiver, capsys) -> None:
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none")
    api_key = "sk-live-123"  # noqa: F841 - a local that must not be logged
    try:
        raise ValueError("bad input")
    except ValueError:
        otel_dist.get_logger("app").exception("conversion.failed")
    telemetry.force_flush(5)
    [line] = stdout_lines(capsys)
    assert line["level"] == "error"
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "sk-live-123" not in json.dumps(line)  # no locals in tracebacks
    [record] = receiver.logs()
    assert record.attributes["exception.type"] == "ValueError"
    assert record.attributes["exception.message"] == "bad input"
    assert "raise ValueError" in record.attributes["exception.stacktrace"]


def test_secret_named_fields_are_redacted_everywhere(receiver, configure: OtlpReceiver, capsys) -> None:
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none", redact_keys="ssn")
    otel_dist.get_logger().info("login", user="ana", password="hunter2", ssn="123-45-6789", nested={"api_key": "k"})
    logging.getLogger("lib").info("stdlib", extra={"access_token": "tok-secret-9"})
    telemetry.force_flush(5)
    out = capsys.readouterr().out
    exported = " ".join(str(r.attributes) for r in receiver.logs())
    for secret in ("hunter2", "123-45-6789", "'k'", "tok-secret-9"):
        assert secret not in out
        assert secret not in exported
    assert "ana" in out
    assert "ana" in exported


def test_development_profile_prints_console_lines(receiver, configure: OtlpReceiver, capsys) -> None:
    telemetry = configure(endpoint=receiver.endpoint, environment="development")
    otel_dist.get_logger().debug("debug.visible", step=1)
    assert telemetry.settings.log_format == "console"
    out = capsys.readouterr().out
    assert "debug.visible" in out
    assert not out.lstrip().startswith("{")


def test_grpc_protocol_exports_all_signals(configure) -> None:
    with running_grpc_receiver() as grpc_receiver:
        telemetry = configure(endpoint=grpc_receiver.endpoint, protocol="grpc")
        with trace.get_tracer("t").start_as_current_span("over-grpc"):
            otel_dist.get_logger().info("grpc.log")
        metrics.get_meter("m").create_counter("grpc.count").add(2)
        telemetry.force_flush(5)
        assert [s.item.name for s in grpc_receiver.spans()] == ["over-grpc"]
        assert [r.item.body.string_value for r in grpc_receiver.logs()] == ["grpc.log"]
        assert wait_for(lambda: grpc_receiver.latest_points("grpc.count"))


def test_headers_and_compression_reach_the_collector(receiver, configure: OtlpReceiver) -> None:
    telemetry = configure(endpoint=receiver.endpoint, headers={"authorization": "Bearer t0k"}, compression="gzip")
    with trace.get_tracer("t").start_as_current_span("s"):
        pass
    telemetry.force_flush(5)
    assert receiver.spans()
    assert all(h.get("authorization") == "Bearer t0k" and h.get("content-encoding") == "gzip" for h in receiver.headers)


def test_changing_the_environment_after_configure_changes_nothing(
    receiver: OtlpReceiver, configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = configure(endpoint=receiver.endpoint, metrics_exporter="none")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "changed")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_DIST_LOG_LEVEL", "error")
    with trace.get_tracer("t").start_as_current_span("after-env-change"):
        otel_dist.get_logger().info("still.info")
    telemetry.force_flush(5)
    [span] = receiver.spans()
    assert span.resource["service.name"] == "unknown_service:python"
    assert [r.item.body.string_value for r in receiver.logs()] == ["still.info"]


def test_configure_twice_returns_the_same_handle_and_installs_nothing_twice(receiver, configure: OtlpReceiver) -> None:
    first = configure(endpoint=receiver.endpoint, metrics_exporter="none")
    handlers = list(logging.getLogger().handlers)
    with pytest.warns(UserWarning, match="ignores: service_name"):
        second = otel_dist.configure(service_name="other")
    assert second is first
    assert logging.getLogger().handlers == handlers
    otel_dist.get_logger().info("once")
    first.force_flush(5)
    assert len(receiver.logs()) == 1


def test_sdk_disabled_keeps_log_lines_and_exports_nothing(receiver, configure: OtlpReceiver, capsys) -> None:
    telemetry = configure(endpoint=receiver.endpoint, sdk_disabled=True)
    with trace.get_tracer("t").start_as_current_span("s"):
        otel_dist.get_logger().info("still.logged")
    telemetry.force_flush(2)
    assert telemetry.tracer_provider is None
    assert receiver.spans() == []
    assert receiver.logs() == []
    assert stdout_lines(capsys)[0]["event"] == "still.logged"
