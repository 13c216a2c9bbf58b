"""otel-dist: an OpenTelemetry distribution for Python services.

One call at start-up gives traces, metrics and structured logs exported over OTLP::

    import otel_dist

    telemetry = otel_dist.configure(service_name="parser", service_version="1.4.0")
    log = otel_dist.get_logger(__name__)
    log.info("document.parsed", pages=12)
"""

from __future__ import annotations

from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from otel_dist.asgi import HealthChecks, disk_space_check, instrument_app
from otel_dist.bootstrap import Telemetry, configure, current
from otel_dist.cache import cache_lookup, redis_check
from otel_dist.context import get_request_id
from otel_dist.db import database_check, instrument_engine
from otel_dist.jobs import batch_job
from otel_dist.operations import track_operation
from otel_dist.security import security_event
from otel_dist.settings import REQUEST_ID_KEY, ConfigurationError, Settings

__all__ = [
    "REQUEST_ID_KEY",
    "ConfigurationError",
    "HealthChecks",
    "Settings",
    "Telemetry",
    "batch_job",
    "cache_lookup",
    "configure",
    "current",
    "database_check",
    "disk_space_check",
    "get_logger",
    "get_request_id",
    "instrument_app",
    "instrument_engine",
    "redis_check",
    "security_event",
    "track_operation",
]


def get_logger(name: str | None = None, **initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name`` plus ``initial_values``.

    Safe to call at import time, before :func:`configure`: the logger picks up the configuration on first use.
    """
    logger: FilteringBoundLogger = structlog.get_logger(*(() if name is None else (name,)), **initial_values)
    return logger
