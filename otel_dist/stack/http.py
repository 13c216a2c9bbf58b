"""Small HTTP clients for the stack's APIs (standard library only): readiness, PromQL, Jaeger, LogsQL.

Used by the supervisor (readiness), the demo and the end-to-end tests. Every call is loopback-only in practice
and bounded by a timeout.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

#: Seconds one request may take.
DEFAULT_TIMEOUT = 5.0


class QueryError(RuntimeError):
    """A backend answered with an error (or not at all)."""


def get(url: str, params: Mapping[str, str | int] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """GET ``url`` (with ``params`` as its query string) and return the body; raise QueryError unless 2xx."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    if not url.startswith(("http://", "https://")):
        raise QueryError(f"not an HTTP URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:500]
        raise QueryError(f"GET {url}: HTTP {error.code}: {detail}") from error
    except (urllib.error.URLError, OSError) as error:
        raise QueryError(f"GET {url}: {error}") from error


def is_ready(url: str, *, timeout: float = 1.0) -> bool:
    """Tell whether ``url`` answers 2xx right now."""
    try:
        get(url, timeout=timeout)
    except QueryError:
        return False
    return True


def get_json(url: str, params: Mapping[str, str | int] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """GET and decode a JSON body."""
    return json.loads(get(url, params, timeout=timeout))


# --- Prometheus -------------------------------------------------------------------------------------------


def promql(prometheus_url: str, query: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """Run an instant PromQL query; return the result vector (``[{"metric": {...}, "value": [ts, "v"]}]``)."""
    answer = get_json(f"{prometheus_url}/api/v1/query", {"query": query}, timeout=timeout)
    if answer.get("status") != "success":
        raise QueryError(f"PromQL {query!r}: {answer}")
    return cast("list[dict[str, Any]]", answer["data"]["result"])


def promql_scalar(prometheus_url: str, query: str, *, timeout: float = DEFAULT_TIMEOUT) -> float | None:
    """The value of a query that yields at most one series (e.g. a ``sum(...)``); None when it yields none."""
    result = promql(prometheus_url, query, timeout=timeout)
    if not result:
        return None
    if len(result) > 1:
        raise QueryError(f"PromQL {query!r} returned {len(result)} series, expected one")
    return float(result[0]["value"][1])


def metric_names(prometheus_url: str, selector: str, *, timeout: float = DEFAULT_TIMEOUT) -> set[str]:
    """Names of the metrics that have series matching ``selector`` (e.g. ``{job="checkout"}``)."""
    answer = get_json(f"{prometheus_url}/api/v1/label/__name__/values", {"match[]": selector}, timeout=timeout)
    return set(answer.get("data") or [])


# --- Jaeger (API v3, OTLP JSON) ---------------------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jaeger_traces(
    jaeger_url: str,
    service: str,
    start: datetime,
    end: datetime,
    *,
    limit: int = 1000,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, list[dict[str, Any]]]:
    """The traces of ``service`` that started between ``start`` and ``end``: trace_id (hex) -> its spans.

    Each span is the OTLP JSON span with its resource attributes added under ``"resource"`` (a flat dict).
    """
    params: dict[str, str | int] = {
        "query.service_name": service,
        "query.start_time_min": _rfc3339(start),
        "query.start_time_max": _rfc3339(end),
        "query.num_traces": limit,
    }
    try:
        answer = get_json(f"{jaeger_url}/api/v3/traces", params, timeout=timeout)
    except QueryError as error:
        if "HTTP 404" in str(error):  # Jaeger answers 404 "No traces found"
            return {}
        raise
    traces: dict[str, list[dict[str, Any]]] = {}
    for resource_spans in answer.get("result", {}).get("resourceSpans", []):
        resource = attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                traces.setdefault(span["traceId"].lower(), []).append({**span, "resource": resource})
    return traces


def jaeger_trace(jaeger_url: str, trace_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """The spans of one trace (empty when Jaeger does not hold it)."""
    try:
        answer = get_json(f"{jaeger_url}/api/v3/traces/{trace_id}", timeout=timeout)
    except QueryError as error:
        if "HTTP 404" in str(error):
            return []
        raise
    return [
        span
        for resource_spans in answer.get("result", {}).get("resourceSpans", [])
        for scope_spans in resource_spans.get("scopeSpans", [])
        for span in scope_spans.get("spans", [])
    ]


def attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP JSON ``[{"key": k, "value": {"stringValue": v}}]`` -> ``{k: v}``."""
    flat: dict[str, Any] = {}
    for item in items:
        value = item.get("value", {})
        flat[item["key"]] = next(iter(value.values()), None) if value else None
    return flat


# --- VictoriaLogs (LogsQL) --------------------------------------------------------------------------------


def logsql(
    victorialogs_url: str, query: str, *, limit: int = 10_000, timeout: float = DEFAULT_TIMEOUT
) -> list[dict[str, str]]:
    """Run a LogsQL query; return the matching entries (one dict of fields each, newest last)."""
    body = get(f"{victorialogs_url}/select/logsql/query", {"query": query, "limit": limit}, timeout=timeout)
    entries = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    entries.sort(key=lambda entry: entry.get("_time", ""))
    return entries


def logsql_quote(value: str) -> str:
    """Quote a value for a LogsQL filter."""
    return json.dumps(value)
