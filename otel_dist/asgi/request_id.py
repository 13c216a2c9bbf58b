"""Request IDs: accept a safe incoming one, otherwise make one; never let a hostile value through."""

from __future__ import annotations

import os
import re
from typing import Final

#: What an incoming request ID may look like: bounded length, a conservative alphabet (UUIDs, ULIDs, hex,
#: and the ``service-1234`` styles proxies generate). Anything else is replaced.
MAX_LENGTH: Final = 128
_SAFE: Final = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:\-]{{0,{MAX_LENGTH - 1}}}")
_PREVIEW: Final = 32


def new_request_id() -> str:
    """A fresh ID: 128 random bits as 32 hex characters."""
    return os.urandom(16).hex()


def is_safe(value: str) -> bool:
    """True when ``value`` may be accepted and echoed as it is."""
    return _SAFE.fullmatch(value) is not None


def preview(raw: bytes) -> str:
    """A printable, bounded rendering of a rejected value for the log (escaped, never raw)."""
    text = raw[:_PREVIEW].decode("latin-1").encode("unicode_escape").decode("ascii")
    return text + ("..." if len(raw) > _PREVIEW else "")


def accept_or_generate(raw: bytes | None) -> tuple[str, bytes | None]:
    """(the request ID to use, the rejected raw value or None)."""
    if raw is None:
        return new_request_id(), None
    try:
        value = raw.decode("ascii")
    except UnicodeDecodeError:
        return new_request_id(), raw
    if is_safe(value):
        return value, None
    return new_request_id(), raw
