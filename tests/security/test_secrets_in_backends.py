"""A corpus of secrets sent the way they leak in real services must be in no exported byte: checked in the real
backends (Jaeger, VictoriaLogs, Prometheus), and in the app's own log lines.

The app (tests/security/app.py) is careless on purpose: it logs secret fields and messages quoting secrets, sets
secret span attributes, raises exceptions whose messages carry secrets. The requests carry secrets in the
Authorization, Cookie and X-Api-Key headers, in the query string and in the URL path (``/reset/{token}``, and a
parameter named in OTEL_DIST_REDACT_PATH_PARAMS), with header capture switched on for every header; the server's
command line carries one too (process.command_args must never be exported).
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from otel_dist.stack import http
from tests.reliability.conftest import App, FaultStack, Report, eventually, serve

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]


def secret(kind: str) -> str:
    """A distinctive secret: whatever part of it shows up somewhere, the search finds it."""
    return f"{kind}{secrets.token_hex(8)}"


CORPUS = {
    name: secret(name[:3].upper())
    for name in (
        "password",  # query parameter, log field, stdlib message, URL userinfo, exception message
        "api_key",  # query parameter, nested log field, bearer in a message, span URL, Set-Cookie
        "authorization",  # Authorization: Bearer header
        "cookie",  # Cookie header
        "x_api_key",  # X-Api-Key header
        "token",  # query parameter -> handled exception message, span event
        "argv",  # on the server's command line
        "session",  # query parameter named session_id
        "path_token",  # in the URL path: /reset/{token}
        "path_code",  # in the URL path under a name listed in OTEL_DIST_REDACT_PATH_PARAMS: /invites/{code}/accept
    )
}
# A JSON Web Token in the URL path under a name that says nothing (/links/{link_id}) and in a log message: found by
# its shape. Its signature is searched for on its own too, so a token cut in half would still count as a leak.
CORPUS["jwt_signature"] = secrets.token_hex(12)
CORPUS["jwt"] = f"eyJhbGciOiJIUzI1NiJ9.eyJ{secrets.token_hex(8)}.{CORPUS['jwt_signature']}"


def send(app: App, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"{app.base_url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def exported_text(fault_stack: FaultStack, app: App) -> dict[str, str]:
    """Everything each backend holds for the app's service, as raw text."""
    stack = fault_stack.stack
    traces = http.get(
        f"{stack.jaeger_url}/api/v3/traces",
        {
            "query.service_name": app.service,
            "query.start_time_min": app.started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "query.start_time_max": "2100-01-01T00:00:00.000000Z",
            "query.num_traces": 100,
        },
    ).decode()
    logs = http.get(
        f"{stack.victorialogs_url}/select/logsql/query",
        {"query": f'"service.name":={http.logsql_quote(app.service)}', "limit": 10_000},
    ).decode()
    series = http.get(f"{stack.prometheus_url}/api/v1/series", {"match[]": f'{{job="{app.service}"}}'}).decode()
    return {"jaeger": traces, "victorialogs": logs, "prometheus": series}


@pytest.mark.parametrize("flavour", ["fastapi", "starlette"])
def test_no_secret_reaches_any_backend(
    fault_stack: FaultStack, apps: list[App], tmp_path: Path, report: Report, flavour: str
) -> None:
    stack = fault_stack.stack
    app = serve(
        stack.otlp_http_endpoint,
        tmp_path / "apps",
        app="tests.security.app:app" if flavour == "fastapi" else "tests.security.starlette_app:app",
        args=["--header", f"x-deploy-token:{CORPUS['argv']}"],
        env={
            # capture every request and response header on the server spans (the contrib option)
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": ".*",
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": ".*",
            "OTEL_DIST_REDACT_PATH_PARAMS": "code",
        },
    )
    apps.append(app)
    headers = {
        "Authorization": f"Bearer {CORPUS['authorization']}",
        "Cookie": f"session={CORPUS['cookie']}; theme=dark",
        "X-Api-Key": CORPUS["x_api_key"],
    }
    query = f"user=alice&password={CORPUS['password']}&api_key={CORPUS['api_key']}&session_id={CORPUS['session']}"
    statuses = [
        send(app, f"/login?{query}", headers),
        send(app, f"/boom?password={CORPUS['password']}", headers),
        send(app, f"/handled?token={CORPUS['token']}", headers),
        send(app, f"/reset/{CORPUS['path_token']}", headers),
        send(app, f"/invites/{CORPUS['path_code']}/accept", headers),
        send(app, f"/links/{CORPUS['jwt']}", headers),
    ]
    assert statuses == [200, 500, 200, 200, 200, 200], app.output()[-3000:]
    app.terminate()

    def everything_arrived() -> dict[str, str]:
        exported = exported_text(fault_stack, app)
        assert exported["jaeger"].count('"traceId"') >= 6
        assert "/links/[REDACTED]" in exported["jaeger"]
        assert "link.opened" in exported["victorialogs"]
        assert "/reset/[REDACTED]" in exported["jaeger"]  # url.path (or http.target) kept, the token blanked
        assert "/reset/[REDACTED]" in exported["victorialogs"]  # the access line's url.path
        assert "/invites/[REDACTED]/accept" in exported["victorialogs"]
        assert "login.attempt" in exported["victorialogs"]
        assert "upstream.failed" in exported["victorialogs"]
        assert "http_server_request_duration_seconds" in exported["prometheus"]
        return exported

    exported = eventually(everything_arrived)
    exported["app stdout"] = app.output()
    leaks = {
        (where, name): text.count(value)
        for where, text in exported.items()
        for name, value in CORPUS.items()
        if value in text
    }
    report.record(
        f"secrets corpus ({flavour})",
        secrets=sorted(CORPUS),
        checked=sorted(exported),
        leaks={f"{where}: {name}": count for (where, name), count in leaks.items()},
    )
    contexts = [
        f"{where}: ...{exported[where][max(0, i - 150) : i + 60]}..."
        for (where, name) in leaks
        for i in [exported[where].index(CORPUS[name])]
    ]
    assert leaks == {}, "\n".join(contexts)
    # Not vacuous: the redacted values are there, marked.
    assert "[REDACTED]" in exported["jaeger"]
    assert "[REDACTED]" in exported["victorialogs"]
    assert "process.command_args" not in exported["jaeger"]
    spans = json.loads(exported["jaeger"])["result"]["resourceSpans"]
    keys = {
        attribute["key"]
        for resource_spans in spans
        for scope in resource_spans["scopeSpans"]
        for span in scope["spans"]
        for attribute in span.get("attributes", [])
    }
    if flavour == "fastapi":
        assert "db.password" in keys  # the attribute is kept, its value blanked
    if flavour == "starlette":  # the server span captured every header; their values are blanked
        assert {"http.request.header.authorization", "http.request.header.cookie"} <= keys, sorted(keys)
        assert {"http.request.header.x_api_key", "http.response.header.set_cookie"} <= keys, sorted(keys)
