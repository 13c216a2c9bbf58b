"""The access log: one structured line per request, replacing uvicorn's plain one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import structlog

from otel_dist.scrubbing import Redactor

#: uvicorn's own access logger; its lines would duplicate ours.
UVICORN_ACCESS_LOGGER: Final = "uvicorn.access"

_log = structlog.get_logger("otel_dist.access")


def route_of(scope: Mapping[str, Any]) -> str | None:
    """The route template the router matched (``/items/{item_id}``), or None for an unmatched path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if template is None:
        return None
    return f"{scope.get('root_path', '')}{template}"


def client_address(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


def safe_query(query: bytes, redactor: Redactor) -> str | None:
    """The query string with the values of secret-looking parameters replaced."""
    if not query:
        return None
    parts = []
    for pair in query.decode("latin-1").split("&"):
        name, sep, _value = pair.partition("=")
        parts.append(f"{name}=[REDACTED]" if sep and redactor.is_secret(name) else pair)
    return "&".join(parts)


def log_request(
    scope: Mapping[str, Any],
    status: int,
    duration: float,
    response_size: int,
    redactor: Redactor,
    *,
    route: str | None = None,
) -> None:
    """Write the access line (request_id, trace_id and span_id come from the context processors).

    ``route``: the route template the server span found (else the one the router left in the scope).
    """
    level = "error" if status >= 500 else "warning" if status >= 400 else "info"
    route = route if route is not None else route_of(scope)
    fields: dict[str, Any] = {
        "http.request.method": scope.get("method"),
        "http.route": route,
        "url.path": redactor.redact_path(scope.get("path", ""), route),
        "http.response.status_code": status,
        "duration_s": round(duration, 6),
        "http.response.body.size": response_size,
        "client.address": client_address(scope),
    }
    query = safe_query(scope.get("query_string", b""), redactor)
    if query:
        fields["url.query"] = query
    getattr(_log, level)("http.request", **fields)
