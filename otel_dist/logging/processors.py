"""Small structlog processors, one job each. Each is a plain callable ``(logger, method, event) -> event``.

The order they run in (see :mod:`otel_dist.logging.setup`) is part of the contract: identity and trace
context are added before redaction, redaction runs before anything leaves the process, and the OTel
emitter runs before rendering so both outputs carry the same fields.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from opentelemetry._logs import Logger as OtelLogger
from opentelemetry._logs import LoggerProvider as OtelLoggerProvider
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext, get_current_span
from structlog.typing import EventDict

from otel_dist.context import get_request_id
from otel_dist.logs import LeanLogPath
from otel_dist.otlp_encoding import LeanLogRecord
from otel_dist.scrubbing import Redactor
from otel_dist.settings import REQUEST_ID_KEY

#: Private key carrying the event time in nanoseconds from the timestamper to the OTel emitter.
TIME_NS_KEY: Final = "_time_ns"
#: Private key carrying the current SpanContext from the trace-context processor to the OTel emitter.
SPAN_CONTEXT_KEY: Final = "_span_context"

SEVERITY: Final[Mapping[str, tuple[SeverityNumber, str]]] = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warning": (SeverityNumber.WARN, "WARN"),
    "warn": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
    "exception": (SeverityNumber.ERROR, "ERROR"),
    "critical": (SeverityNumber.FATAL, "FATAL"),
    "fatal": (SeverityNumber.FATAL, "FATAL"),
}

#: Keys that become fields of the OTel record (body, severity, time, trace context) or resource
#: attributes, never log-record attributes.
_NOT_ATTRIBUTES: Final = frozenset(
    {"event", "level", "timestamp", "trace_id", "span_id", "exc_info", "exception", "stack_info",
     "service.name", "service.version", "deployment.environment.name", TIME_NS_KEY, SPAN_CONTEXT_KEY, "_record",
     "_from_structlog"}
)  # fmt: skip
#: Value types that are OTel attribute values as they are (the common case, checked without isinstance).
_PRIMITIVES: Final = frozenset({str, int, float, bool})


def add_logger_name(logger: Any, _method: str, event: EventDict) -> EventDict:
    """``logger``: the stdlib record's logger name, or the name given to ``otel_dist.get_logger``."""
    record = event.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event["logger"] = name
    return event


class _Timestamper:
    """ISO-8601 UTC timestamp with microseconds; the nanosecond time is kept for the OTel record.

    The microseconds are the nanosecond time truncated, so the line and the record show the same instant. The
    date-and-seconds prefix is formatted once per second (formatting a datetime is most of the cost).
    """

    def __init__(self) -> None:
        self._prefix: tuple[int, str] = (-1, "")  # (second, "YYYY-MM-DDTHH:MM:SS."), replaced as one

    def __call__(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        now = time.time_ns()
        event[TIME_NS_KEY] = now
        second, nanoseconds = divmod(now, 1_000_000_000)
        cached_second, prefix = self._prefix
        if second != cached_second:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._prefix = (second, prefix)
        event["timestamp"] = f"{prefix}{nanoseconds // 1000:06d}Z"
        return event


add_timestamp: Final = _Timestamper()


class AddServiceIdentity:
    """service.name / service.version / deployment.environment.name on every line (stdout readers need them)."""

    def __init__(self, identity: Mapping[str, str]) -> None:
        self._identity = dict(identity)

    def __call__(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        for key, value in self._identity.items():
            event.setdefault(key, value)
        return event


class _TraceContext:
    """trace_id and span_id of the current span, sampled or not (a non-sampled span still has IDs).

    The hex strings of the last span are kept: the lines of one request come from the same span. The SpanContext
    is passed on to the OTel emitter (private key), which would otherwise look the span up again.
    """

    def __init__(self) -> None:
        self._last: tuple[SpanContext, str, str] = (INVALID_SPAN_CONTEXT, "", "")  # replaced as one

    def __call__(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        context = get_current_span().get_span_context()
        event[SPAN_CONTEXT_KEY] = context
        if context.is_valid:
            last, trace_id, span_id = self._last
            if context is not last:
                trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
                self._last = (context, trace_id, span_id)
            event["trace_id"] = trace_id
            event["span_id"] = span_id
        return event


add_trace_context: Final = _TraceContext()


def add_request_id(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """The current request's ID, under the one key every query uses."""
    request_id = get_request_id()
    if request_id is not None:
        event.setdefault(REQUEST_ID_KEY, request_id)
    return event


class RedactSecrets:
    """Blank values of secret-named fields (password, token, api_key, ...) at any depth."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def __call__(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        context = event.pop(SPAN_CONTEXT_KEY, None)  # ours, not a field (and a tuple the redactor would rebuild)
        self._redactor.redact_in_place(event)
        if context is not None:
            event[SPAN_CONTEXT_KEY] = context
        return event


class RedactRenderedException:
    """Blank secrets quoted in a rendered exception (``exc_value`` and notes of each structured traceback).

    Runs after structlog's ExceptionRenderer: the message exists as text only from there on.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def _clean(self, item: Any) -> Any:
        if isinstance(item, dict):
            for key in ("exc_value", "exc_notes", "exceptions"):
                value = item.get(key)
                if isinstance(value, str):
                    item[key] = self._redactor.redact_text(value)
                elif isinstance(value, list):
                    item[key] = [self._clean(v) for v in value]
        elif isinstance(item, str):
            return self._redactor.redact_text(item)
        return item

    def __call__(self, _logger: Any, _method: str, event: EventDict) -> EventDict:
        rendered = event.get("exception")
        if isinstance(rendered, list):
            event["exception"] = [self._clean(item) for item in rendered]
        elif isinstance(rendered, str):  # the plain-text renderer
            event["exception"] = self._redactor.redact_text(rendered)
        return event


def _exception_of(event: EventDict) -> BaseException | None:
    exc_info = event.get("exc_info")
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        return exc_info[1] if len(exc_info) > 1 else None
    return sys.exc_info()[1]


def _attribute(value: Any) -> Any:
    """OTel attribute values are primitives or homogeneous sequences; anything else travels as JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return orjson.dumps(value, default=str).decode()


class EmitOtelRecord:
    """Hand the event to the OTel LoggerProvider: exactly one record per event.

    Shape: body = the event text; severity from the level; time = the line's timestamp; trace context from
    the current span; attributes = the other fields (``request_id`` among them, ``logger.name`` for the
    logger); exceptions as the semantic-convention ``exception.*`` attributes. Service identity lives in the
    resource. Records from the OTel SDK's own loggers are not exported: an export failure must not produce
    more records to export.

    The lean path (``fast_export``, see :class:`otel_dist.logs.LeanLogPath`): the values are final here, so the
    record goes straight into the batch queue as a :class:`~otel_dist.otlp_encoding.LeanLogRecord`, with the
    same fields the SDK's ``Logger.emit`` would give it. Events with an exception take the SDK's path (it
    formats the ``exception.*`` attributes), as does every event while a processor that needs SDK records is
    attached.
    """

    def __init__(self, provider: OtelLoggerProvider) -> None:
        self._provider = provider
        self._loggers: dict[str, OtelLogger] = {}
        self._lean = LeanLogPath(provider)

    def _logger(self, name: str) -> OtelLogger:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self._provider.get_logger(name)
        return logger

    def __call__(self, _logger: Any, method: str, event: EventDict) -> EventDict:
        name = str(event.get("logger") or "root")
        if name.startswith("opentelemetry"):
            return event
        level = str(event.get("level") or method)
        severity_number, severity_text = SEVERITY.get(level, (SeverityNumber.INFO, "INFO"))
        attributes: dict[str, Any] = {}
        for key, value in event.items():
            if key in _NOT_ATTRIBUTES or value is None:
                continue
            attributes["logger.name" if key == "logger" else key] = (
                value if value.__class__ in _PRIMITIVES else _attribute(value)
            )
        exception = _exception_of(event)
        emitters = self._lean.emitters() if exception is None else None
        if emitters is not None:
            if emitters:
                logger: Any = self._logger(name)
                context = event.get(SPAN_CONTEXT_KEY) or get_current_span().get_span_context()
                timestamp = event.get(TIME_NS_KEY) or time.time_ns()
                record = LeanLogRecord(
                    timestamp,
                    severity_number.value,
                    severity_text,
                    str(event.get("event", "")),
                    attributes,
                    context.trace_id,
                    context.span_id,
                    int(context.trace_flags),
                    logger.resource,
                    logger.instrumentation_scope,
                )
                for emit in emitters:
                    emit(record)
            return event
        self._logger(name).emit(
            timestamp=event.get(TIME_NS_KEY),
            severity_number=severity_number,
            severity_text=severity_text,
            body=str(event.get("event", "")),
            attributes=attributes,
            exception=exception,  # the SDK adds the exception.* attributes
        )
        return event


def drop_private_keys(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """Remove keys that only carry data between processors."""
    event.pop(TIME_NS_KEY, None)
    event.pop(SPAN_CONTEXT_KEY, None)
    return event
