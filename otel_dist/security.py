"""Security events: validation failures, rejected input, failed authentication, as logs and a counter.

    otel_dist.security_event("auth_failure", reason="bad_api_key", offending=api_key, user="ana")

logs ``security.event`` at warning level with ``security.event.kind`` and ``security.event.reason`` (and your
other fields, redacted as every log field is), and counts ``security.events`` labelled by kind and reason.
The offending value itself is never logged: pass it as ``offending`` and only its length and a short SHA-256
fingerprint are kept, enough to correlate repeated attempts without keeping the secret.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, Literal

import structlog
from opentelemetry import metrics

__all__ = ["SecurityEventKind", "fingerprint", "security_event"]

SecurityEventKind = Literal[
    "validation_failure", "rejected_input", "auth_failure", "authorization_denied", "rate_limited", "suspicious_request"
]
_KINDS: Final = frozenset(SecurityEventKind.__args__)  # type: ignore[attr-defined]
_SCOPE: Final = "otel_dist.security"
_log = structlog.get_logger(_SCOPE)


def fingerprint(value: str | bytes) -> str:
    """The first 12 hex characters of the value's SHA-256: correlates repeats, reveals nothing useful."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:12]


def security_event(
    kind: SecurityEventKind, *, reason: str, offending: str | bytes | None = None, **fields: Any
) -> None:
    """Record one security event. ``reason`` is a short, bounded code (it labels a metric)."""
    if kind not in _KINDS:
        raise ValueError(f"security_event(kind={kind!r}): expected one of {', '.join(sorted(_KINDS))}")
    labels = {"security.event.kind": kind, "security.event.reason": reason}
    metrics.get_meter(_SCOPE).create_counter(
        "security.events", unit="{event}", description="Security events by kind and reason."
    ).add(1, labels)
    if offending is not None:
        fields["offending_length"] = len(offending)
        fields["offending_fingerprint"] = fingerprint(offending)
    _log.warning("security.event", **labels, **fields)
