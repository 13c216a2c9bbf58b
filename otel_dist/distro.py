"""Entry points for ``opentelemetry-instrument``: the same configure() as application code calls.

``opentelemetry-instrument`` loads one distro, then one configurator, then every installed instrumentation.
With the stock ``opentelemetry-distro`` installed too, which one comes first depends on the order of the
installed packages on disk. We make the outcome deterministic:

* our distro, when chosen, selects our configurator (``OTEL_PYTHON_CONFIGURATOR=otel_dist`` unless the user
  set it), and passes our providers to every instrumentation it loads;
* our configurator refuses to run after the stock distro (which changed the defaults: OTLP over gRPC) and
  says how to choose; if the stock configurator ran instead of ours, :func:`check_configurator` says so.

Instrumentations that would fight our logging pipeline are not loaded: ``logging`` (replaces the log format
and adds its own OTel handler: every record exported twice) and ``structlog`` (its own export processor:
twice again). ``system_metrics`` is started by configure() itself with our metric selection.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any, Final

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from otel_dist import bootstrap
from otel_dist.settings import ConfigurationError

_log = logging.getLogger("otel_dist")

ENTRY_POINT_NAME: Final = "otel_dist"
#: Instrumentations we do not load under the wrapper, with the reason.
SKIPPED_INSTRUMENTATIONS: Final = {
    "logging": "otel-dist routes stdlib logging itself; this one would export every record a second time",
    "structlog": "otel-dist owns the structlog pipeline; this one would export every event a second time",
    "system_metrics": "configure() starts process metrics itself (OTEL_DIST_SYSTEM_METRICS)",
    "fastapi": "otel-dist instruments FastAPI apps itself (one server span per request)",
    "starlette": "otel-dist instruments Starlette apps itself (one server span per request)",
    "asgi": "otel-dist wraps ASGI apps itself (one server span per request)",
    "httpx": "configure() instruments httpx itself, adding the request-ID header",
    "sqlalchemy": "configure() instruments SQLAlchemy itself (otel_dist.db: pool metrics, sanitized statements)",
    "redis": "configure() instruments redis itself with otel-dist's providers",
}
CHOOSE_HINT: Final = (
    "both otel-dist and opentelemetry-distro are installed and opentelemetry-instrument picked "
    "opentelemetry-distro; set OTEL_PYTHON_DISTRO=otel_dist and OTEL_PYTHON_CONFIGURATOR=otel_dist to use "
    "otel-dist (or uninstall opentelemetry-distro)"
)


class OtelDistDistro(BaseDistro):  # type: ignore[misc]
    """Selects our configurator and hands our providers to each instrumentation."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", ENTRY_POINT_NAME)
        os.environ.setdefault(*bootstrap.SEMCONV_OPT_IN)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        reason = SKIPPED_INSTRUMENTATIONS.get(entry_point.name)
        if reason is not None:
            _log.debug("not loading instrumentation %s: %s", entry_point.name, reason)
            return
        telemetry = bootstrap.current()
        if telemetry is not None:
            if telemetry.tracer_provider is not None:
                kwargs.setdefault("tracer_provider", telemetry.tracer_provider)
            kwargs.setdefault("meter_provider", telemetry.meter_provider)
        entry_point.load()().instrument(**kwargs)


def _stock_distro_chosen() -> bool:
    try:
        from opentelemetry.distro import OpenTelemetryDistro
    except ImportError:
        return False
    return OpenTelemetryDistro._instance is not None and OtelDistDistro._instance is None


class OtelDistConfigurator(_BaseConfigurator):
    """Runs :func:`otel_dist.configure` with settings from the environment."""

    def _configure(self, **kwargs: Any) -> None:
        if _stock_distro_chosen() and os.environ.get("OTEL_PYTHON_DISTRO") is None:
            raise ConfigurationError("OTEL_PYTHON_DISTRO", CHOOSE_HINT)
        telemetry = bootstrap.configure(_origin="opentelemetry-instrument")
        if importlib.util.find_spec("starlette") is not None:
            from otel_dist.asgi import instrument_starlette_class

            instrument_starlette_class(telemetry)


def check_configurator() -> None:
    """Runs after the configurators (``opentelemetry_pre_instrument``): name the conflict if ours did not run."""
    chosen = os.environ.get("OTEL_PYTHON_CONFIGURATOR")
    if bootstrap.current() is None and chosen in (None, ENTRY_POINT_NAME):
        _log.error("otel-dist did not configure this process: %s", CHOOSE_HINT)
