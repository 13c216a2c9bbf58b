"""Hostile input against the real backends: request IDs that must not pass, floods of unmatched paths and random
header values that must not grow the series in Prometheus, values beyond every limit that must arrive truncated.

The requests are written on raw sockets where an HTTP client would refuse to send them.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
from pathlib import Path

import pytest

from otel_dist.stack import http
from tests.reliability.conftest import App, FaultStack, Report, eventually, serve

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

#: Incoming request IDs that must be replaced (the raw bytes as sent on the wire).
HOSTILE_IDS = {
    "10 KB": b"a" * 10_240,
    "unicode": "idé-日本-🙂".encode(),
    "format strings": b"%s%n%x{0}{__class__}${jndi:ldap://x}",
    "control characters": b"abc\x00\x1b[31mred\x07",
    "log injection": b'id" , "level": "critical',
    "spaces": b"has spaces",
}
LIMIT = 4096  # attribute_value_length_limit's default


def raw_get(app: App, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes]]:
    """One HTTP/1.1 request written byte for byte; the status and headers of the answer."""
    head = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    header_block = rest.partition(b"\r\n\r\n")[0]
    parsed = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed


def test_hostile_input_stays_bounded_in_every_backend(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report
) -> None:
    stack = fault_stack.stack
    app = serve(stack.otlp_http_endpoint, tmp_path / "apps", app="tests.security.app:app")
    apps.append(app)
    # 1. request IDs that must be replaced: the answer carries a fresh, safe one
    replaced, refused_by_server = {}, []
    for name, raw in HOSTILE_IDS.items():
        status, headers = raw_get(app, "/handled?token=t", [(b"X-Request-ID", raw)])
        if status == 400:  # the HTTP server itself refused it (h11: control characters): the app never saw it
            refused_by_server.append(name)
            continue
        assert status == 200, name
        assert re.fullmatch(rb"[0-9a-f]{32}", headers[b"x-request-id"]), (name, headers[b"x-request-id"])
        replaced[name] = headers[b"x-request-id"].decode()
    # 2. a flood of unmatched paths and random header values
    flood = 300
    for _ in range(flood):
        junk = secrets.token_hex(6)
        status, _ = raw_get(
            app,
            f"/scan/{junk}/../../etc/passwd?{junk}=1",
            [(b"User-Agent", f"scanner-{junk}".encode()), (f"X-{junk}".encode(), junk.encode())],
        )
        assert status == 404
    # 3. values beyond every limit
    status, _ = raw_get(app, "/huge?size=100000", [(b"X-Request-ID", b"huge-1")])
    assert status == 200
    app.terminate()

    job = f'job="{app.service}"'

    def series() -> list[dict[str, str]]:
        found = http.get_json(f"{stack.prometheus_url}/api/v1/series", {"match[]": f"{{{job}}}"})["data"]
        assert any(s["__name__"] == "http_server_request_duration_seconds_count" for s in found)
        assert (
            http.promql_scalar(stack.prometheus_url, f"sum(http_server_request_duration_seconds_count{{{job}}})")
            == len(replaced) + flood + 1
        )
        return list(found)

    found = eventually(series)
    duration_series = [s for s in found if s["__name__"] == "http_server_request_duration_seconds_count"]
    text = json.dumps(found)
    # the route label is absent for unmatched paths: 300 random paths make one 404 series, not 300
    assert len(duration_series) <= 3, duration_series
    assert "scan" not in text
    assert "passwd" not in text

    def huge_arrived() -> tuple[list[int], list[dict[str, str]]]:
        traces = http.jaeger_traces(stack.jaeger_url, app.service, app.started_at, app.started_at.replace(year=2100))
        blobs = [
            len(a["value"]["stringValue"])
            for spans in traces.values()
            for span in spans
            for a in span.get("attributes", [])
            if a["key"] == "app.blob"
        ]
        assert blobs
        lines = http.logsql(
            stack.victorialogs_url, f'"service.name":={http.logsql_quote(app.service)} request_id:="huge-1"'
        )
        assert len(lines) >= 3
        return blobs, lines

    blobs, lines = eventually(huge_arrived)
    assert blobs == [LIMIT]  # the span attribute, truncated to the limit
    field = next(line for line in lines if line.get("_msg") == "huge.field")
    assert len(field["blob"]) == LIMIT  # the log-record attribute too
    ids = {
        line.get("request_id")
        for line in http.logsql(
            stack.victorialogs_url, f'"service.name":={http.logsql_quote(app.service)} _msg:="http.request"'
        )
    }
    assert set(replaced.values()) <= ids  # the access lines carry the replacements
    assert not any(raw.decode("latin-1") in ids for raw in HOSTILE_IDS.values())
    report.record(
        "hostile input (security)",
        hostile_request_ids=sorted(HOSTILE_IDS),
        refused_by_the_http_server=refused_by_server,
        unmatched_paths_sent=flood,
        duration_series=len(duration_series),
        longest_span_attribute=max(blobs),
        longest_log_field=len(field["blob"]),
    )
