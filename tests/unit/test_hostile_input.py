"""Property tests: request-ID validation and the log pipeline under arbitrary input."""

from __future__ import annotations

import io
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import otel_dist
from otel_dist.asgi.request_id import MAX_LENGTH, accept_or_generate, is_safe
from otel_dist.scrubbing import REDACTED, Redactor
from otel_dist.testing import reset_global_providers


@given(st.binary(max_size=MAX_LENGTH * 2))
@settings(max_examples=300)
def test_any_incoming_request_id_yields_a_safe_one(raw: bytes) -> None:
    request_id, rejected = accept_or_generate(raw)
    assert is_safe(request_id)
    assert len(request_id) <= MAX_LENGTH
    assert not any(c in request_id for c in "\r\n\x00 ")
    if rejected is None:
        assert request_id.encode() == raw
    else:
        assert rejected == raw
        assert len(request_id) == 32


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}", fullmatch=True))
def test_safe_request_ids_are_kept(value: str) -> None:
    assert accept_or_generate(value.encode()) == (value, None)


@pytest.fixture(scope="module")
def pipeline():
    """The real logging pipeline (no exporters), its stdout captured in a buffer."""
    telemetry = otel_dist.configure(
        traces_exporter="none", metrics_exporter="none", logs_exporter="none", system_metrics=False,
        handle_sigterm=False, log_level="debug",
    )  # fmt: skip
    yield
    telemetry.shutdown(timeout=2)
    reset_global_providers()


def render(**fields: object) -> list[str]:
    buffer, original = io.StringIO(), sys.stdout
    sys.stdout = buffer
    try:
        otel_dist.get_logger("property").info("event", **fields)
    finally:
        sys.stdout = original
    return buffer.getvalue().splitlines()


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@given(st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True), text, max_size=6), text)
@settings(max_examples=200)
def test_one_event_is_one_json_line_whatever_it_contains(pipeline, fields: dict[str, str], message: str) -> None:
    fields.pop("event", None)
    lines = render(message_text=message, **fields)
    assert len(lines) == 1
    parsed = json.loads(lines[0])
    assert parsed["message_text"] == Redactor().redact_text(message)


@given(st.sampled_from(["password", "api_key", "access_token", "client_secret", "session_id"]), text)
@settings(max_examples=100)
def test_values_under_secret_names_never_reach_the_line(pipeline, name: str, secret: str) -> None:
    [line] = render(**{name: secret, "nested": {name: secret}})
    parsed = json.loads(line)
    assert parsed[name] == REDACTED
    assert parsed["nested"][name] == REDACTED


secret_value = st.from_regex(r"[A-Za-z0-9_\-]{6,40}", fullmatch=True)
surrounding = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)


@given(surrounding, st.sampled_from(["password", "api_key", "token", "client_secret", "X-Api-Key"]), secret_value)
@settings(max_examples=300)
def test_a_key_value_secret_never_survives_in_free_text(before: str, key: str, value: str) -> None:
    text = f"{before} {key}={value}&next=1"
    assert value not in Redactor().redact_text(text).replace(before, "")


@given(st.sampled_from(["postgres", "redis", "amqp", "https"]), secret_value, surrounding)
@settings(max_examples=200)
def test_a_url_password_never_survives(scheme: str, password: str, after: str) -> None:
    text = f"cannot connect to {scheme}://app:{password}@db.internal:5432/x {after}"
    assert password not in Redactor().redact_text(text).replace(after, "")


def render_stdlib(message: str, *args: object) -> list[str]:
    import logging

    buffer, original = io.StringIO(), sys.stdout
    sys.stdout = buffer
    try:
        logging.getLogger("property.stdlib").warning(message, *args)
    finally:
        sys.stdout = original
    return buffer.getvalue().splitlines()


@given(text)
@settings(max_examples=200)
def test_a_stdlib_record_is_one_json_line_whatever_it_contains(pipeline, message: str) -> None:
    lines = render_stdlib("%s", message)
    assert len(lines) == 1
    assert json.loads(lines[0])["event"] == Redactor().redact_text(message)


def test_a_secret_in_an_exception_message_is_blanked_in_the_line(pipeline) -> None:
    buffer, original = io.StringIO(), sys.stdout
    sys.stdout = buffer
    try:
        try:
            raise RuntimeError("login failed: password=hunter2 for postgres://app:s3cr3t@db/x")
        except RuntimeError:
            otel_dist.get_logger("property").exception("login.failed")
    finally:
        sys.stdout = original
    [line] = buffer.getvalue().splitlines()
    assert "hunter2" not in line
    assert "s3cr3t" not in line
    assert json.loads(line)["exception"][0]["exc_value"] == (
        f"login failed: password={REDACTED} for postgres://app:{REDACTED}@db/x"
    )
