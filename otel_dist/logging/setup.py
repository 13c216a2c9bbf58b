"""One logging pipeline for structlog and stdlib records: same processors, same line shape, one OTel export.

structlog loggers run the processor chain natively (the fast path); stdlib records (uvicorn, libraries,
``logging.getLogger``) reach a single root handler whose ``ProcessorFormatter`` runs the *same* chain as its
``foreign_pre_chain``. Each event therefore passes through :class:`~otel_dist.logging.processors.EmitOtelRecord`
exactly once, and no OTel ``LoggingHandler`` is attached anywhere.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import structlog
from opentelemetry._logs import LoggerProvider as OtelLoggerProvider
from structlog.typing import Processor

from otel_dist.logging.processors import (
    AddServiceIdentity,
    EmitOtelRecord,
    RedactRenderedException,
    RedactSecrets,
    add_logger_name,
    add_request_id,
    add_timestamp,
    add_trace_context,
    drop_private_keys,
)
from otel_dist.logging.rate_limit import RateLimitFilter
from otel_dist.scrubbing import Redactor
from otel_dist.settings import Settings

#: Loggers that servers configure with handlers of their own; we route them through the pipeline instead.
ADOPTED_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn", "gunicorn.error", "gunicorn.access")
#: Loggers whose storms (one record per failed export) are rate-limited.
RATE_LIMITED_PREFIX: Final = "opentelemetry"


class _Stdout:
    """Writes to whatever ``sys.stdout`` is at the time (test runners and servers replace it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class NamedWriteLogger(structlog.WriteLogger):
    """structlog's WriteLogger with the name given to ``get_logger(name)``."""

    def __init__(self, file: Any, name: str | None = None) -> None:
        super().__init__(file)
        self.name = name


def _logger_factory(*args: Any) -> NamedWriteLogger:
    return NamedWriteLogger(_Stdout(), args[0] if args else None)


class _PrefixRateLimit(RateLimitFilter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(RATE_LIMITED_PREFIX) or super().filter(record)


#: Characters that JSON leaves raw but that some readers treat as line breaks (NEL, LS, PS): escaped so that
#: one event stays one line for every reader.
_LINE_BREAKS: Final = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_dumps(event: Any, **kwargs: Any) -> str:
    line = orjson.dumps(event, default=kwargs.get("default", str)).decode()
    return line if line.isascii() else line.translate(_LINE_BREAKS)


def _renderer(settings: Settings) -> list[Processor]:
    if settings.log_format == "console":
        return [structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    # Structured tracebacks without local variables: locals routinely hold secrets.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    redact = RedactRenderedException(Redactor(settings.redact_keys, settings.redact_allow))
    return [tracebacks, redact, structlog.processors.JSONRenderer(serializer=_json_dumps)]


def build_processors(
    settings: Settings, identity: Mapping[str, str], provider: OtelLoggerProvider | None
) -> list[Processor]:
    """The shared chain, up to (not including) rendering."""
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        add_timestamp,
        AddServiceIdentity(identity),
        add_trace_context,
        add_request_id,
        RedactSecrets(Redactor(settings.redact_keys, settings.redact_allow)),
    ]
    if provider is not None:
        chain.append(EmitOtelRecord(provider))
    chain.append(drop_private_keys)
    return chain


@dataclass
class LoggingPipeline:
    """What setup changed, so teardown can put it back (tests configure and shut down repeatedly)."""

    handler: logging.Handler
    root_handlers: list[logging.Handler]
    root_level: int
    adopted: dict[str, tuple[list[logging.Handler], bool]] = field(default_factory=dict)


def setup_logging(
    settings: Settings,
    identity: Mapping[str, str],
    provider: OtelLoggerProvider | None,
    *,
    cache_loggers: bool = True,
) -> LoggingPipeline:
    """Configure structlog and (unless disabled) route stdlib logging through the same chain.

    ``cache_loggers``: structlog binds each logger to this configuration on first use, which is faster; a test
    suite that configures the process many times turns it off so module-level loggers follow each configuration.
    """
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    shared = build_processors(settings, identity, provider)
    renderer = _renderer(settings)
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=cache_loggers,
    )

    handler = logging.StreamHandler(_Stdout())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    handler.addFilter(_PrefixRateLimit())
    root = logging.getLogger()
    pipeline = LoggingPipeline(handler=handler, root_handlers=list(root.handlers), root_level=root.level)
    if settings.capture_stdlib_logging:
        root.handlers = [handler]
        root.setLevel(level)
        for name in ADOPTED_LOGGERS:
            logger = logging.getLogger(name)
            pipeline.adopted[name] = (list(logger.handlers), logger.propagate)
            logger.handlers = []
            logger.propagate = True
    return pipeline


def teardown_logging(pipeline: LoggingPipeline) -> None:
    """Undo :func:`setup_logging`."""
    root = logging.getLogger()
    if pipeline.handler in root.handlers:
        root.handlers = pipeline.root_handlers
        root.setLevel(pipeline.root_level)
    for name, (handlers, propagate) in pipeline.adopted.items():
        logger = logging.getLogger(name)
        logger.handlers = handlers
        logger.propagate = propagate
    structlog.reset_defaults()
