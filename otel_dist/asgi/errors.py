"""What the client gets when the application fails: a JSON 500 carrying the request ID, nothing internal."""

from __future__ import annotations

from typing import Any

import orjson

from otel_dist.context import get_request_id
from otel_dist.settings import REQUEST_ID_KEY


def internal_error_body() -> bytes:
    """The 500 body: a stable error code and the request ID to quote when reporting it."""
    return orjson.dumps({"error": "internal_server_error", REQUEST_ID_KEY: get_request_id()})


async def internal_error_handler(_request: Any, _exc: Exception) -> Any:
    """A Starlette/FastAPI handler for ``Exception`` (it runs inside ServerErrorMiddleware)."""
    from starlette.responses import Response

    return Response(internal_error_body(), status_code=500, media_type="application/json")
