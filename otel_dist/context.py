"""Per-request context carried by contextvars: it follows asyncio tasks and copied contexts into threads."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Final

_request_id: Final[ContextVar[str | None]] = ContextVar("otel_dist_request_id", default=None)


def get_request_id() -> str | None:
    """The request ID of the current request, or None outside one."""
    return _request_id.get()


def set_request_id(value: str | None) -> Token[str | None]:
    """Bind the request ID for the current context; pass the token to :func:`reset_request_id` when done."""
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    """Restore the request ID that was current before :func:`set_request_id`."""
    _request_id.reset(token)
