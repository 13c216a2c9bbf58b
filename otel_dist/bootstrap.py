"""configure(): the one orchestrator, and the Telemetry handle it returns.

The flow runs one way: options + environment -> Settings (resolved once) -> Resource -> MeterProvider,
TracerProvider, LoggerProvider (with exporters) -> global providers and propagators -> process metrics ->
logging pipeline -> exit hooks. Side effects on the process (globals, logging handlers, atexit, signal
handlers, fork hooks) happen here and nowhere else.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final, Literal, Unpack

from opentelemetry import _logs, metrics, propagate, trace
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_dist.logging.setup import LoggingPipeline, setup_logging, teardown_logging
from otel_dist.logs import build_logger_provider
from otel_dist.metrics import MetricsPipeline, build_metrics, instrument_process_metrics
from otel_dist.resource import build_resource, process_attributes
from otel_dist.settings import ConfigurationError, Options, Settings, resolve
from otel_dist.traces import build_tracer_provider

__all__ = ["Extras", "Telemetry", "configure", "current"]

Origin = Literal["configure", "opentelemetry-instrument"]
_log = logging.getLogger("otel_dist")
_lock = threading.RLock()
_current: Telemetry | None = None
_fork_hook_installed = False

#: Contrib instrumentations read this once, when they load; HTTP metrics and spans then use the stable names.
SEMCONV_OPT_IN: Final = ("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
#: FastAPI (>= 0.142) reads this when an app is created; "true" would duplicate every export.
FASTAPI_AUTO_CONFIGURE: Final = "FASTAPI_OTEL_AUTO_CONFIGURE"


def _run_with_deadline(tasks: dict[str, Callable[[], object]], timeout: float) -> bool:
    """Run ``tasks`` concurrently in daemon threads; wait at most ``timeout`` seconds in all.

    A task stuck in a socket (a collector that accepts and never answers) is abandoned, not waited for: the
    threads are daemons, so they never hold the process open. Returns True when every task finished and
    none returned False.
    """
    results: dict[str, object] = {}

    def run(name: str, task: Callable[[], object]) -> None:
        try:
            results[name] = task()
        except Exception:  # noqa: BLE001 - a failing exporter must not break the caller's shutdown
            _log.warning("telemetry %s failed", name, exc_info=True)
            results[name] = False

    threads = [
        threading.Thread(target=run, args=item, name=f"otel-dist-{item[0]}", daemon=True) for item in tasks.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [t.name for t in threads if t.is_alive()]
    if late:
        _log.warning("telemetry did not finish within %.1fs: %s", timeout, ", ".join(late))
    return not late and all(r is not False for r in results.values())


class Telemetry:
    """The handle :func:`configure` returns: the providers it built and the way to flush and stop them."""

    def __init__(  # noqa: PLR0917 - built in one place, by _build
        self,
        settings: Settings,
        resource: Resource,
        origin: Origin,
        tracer_provider: TracerProvider | None = None,
        metrics_pipeline: MetricsPipeline | None = None,
        logger_provider: LoggerProvider | None = None,
        logging_pipeline: LoggingPipeline | None = None,
        instrumentors: list[Any] | None = None,
    ) -> None:
        self.settings = settings
        self.resource = resource
        self.origin: Origin = origin
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self._metrics = metrics_pipeline
        self._logging = logging_pipeline
        self._instrumentors = instrumentors or []
        self._shutdown_done = False

    @property
    def meter_provider(self) -> ApiMeterProvider:
        """The MeterProvider (a no-op one when metrics are off)."""
        return self._metrics.provider if self._metrics else NoOpMeterProvider()

    def _providers(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.tracer_provider is not None:
            found["traces"] = self.tracer_provider
        if self.logger_provider is not None:
            found["logs"] = self.logger_provider
        if self._metrics is not None:
            found["metrics"] = self._metrics.provider
        return found

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export everything buffered, waiting at most ``timeout`` seconds (default: the shutdown timeout).

        Traces and logs flush first, concurrently; metrics last, so they include the others' counters.
        """
        budget = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        providers = self._providers()
        first = {name: p.force_flush for name, p in providers.items() if name != "metrics"}
        ok = _run_with_deadline(first, budget) if first else True
        if "metrics" in providers:
            remaining = max(0.0, deadline - time.monotonic())
            ok = (
                _run_with_deadline({"metrics": lambda: providers["metrics"].force_flush(remaining * 1000)}, remaining)
                and ok
            )
        return ok

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop every signal within ``timeout`` seconds (default ``OTEL_DIST_SHUTDOWN_TIMEOUT``).

        Honours the deadline even when the collector is unreachable or never answers. Restores logging and
        lets :func:`configure` run again. Safe to call twice.
        """
        global _current
        with _lock:
            if self._shutdown_done:
                return True
            self._shutdown_done = True
            budget = self.settings.shutdown_timeout if timeout is None else timeout
            deadline = time.monotonic() + budget
            providers = self._providers()
            first = {name: p.shutdown for name, p in providers.items() if name != "metrics"}
            ok = _run_with_deadline(first, budget) if first else True
            if self._logging is not None:
                teardown_logging(self._logging)
            for instrumentor in self._instrumentors:
                instrumentor.uninstrument()
            if self._metrics is not None:
                remaining = max(0.0, deadline - time.monotonic())
                metrics_provider = self._metrics.provider
                ok = (
                    _run_with_deadline({"metrics": lambda: metrics_provider.shutdown(remaining * 1000)}, remaining)
                    and ok
                )
                for close in self._metrics.closers:
                    close()
            atexit.unregister(self.shutdown)
            if _current is self:
                _current = None
            return ok

    def __repr__(self) -> str:
        return f"<Telemetry {self.settings.service_name!r} via {self.origin}, signals={self.settings.enabled_signals}>"


def current() -> Telemetry | None:
    """The handle of the configured process, or None."""
    return _current


def _ensure_unset(kind: str, existing: object) -> None:
    """The API installs a global provider once per process; someone else's would silently win."""
    if not type(existing).__name__.startswith(("Proxy", "NoOp", "_Proxy", "Default")):
        raise ConfigurationError(
            "configure()",
            f"a global {kind} ({type(existing).__module__}.{type(existing).__name__}) was installed before "
            "otel-dist; remove the other set-up or let otel-dist do it",
        )


def _set_global_providers(telemetry: Telemetry) -> None:
    """Install the providers globally, refusing to fight a provider someone else installed first."""
    if telemetry.tracer_provider is not None:
        _ensure_unset("TracerProvider", trace.get_tracer_provider())
        trace.set_tracer_provider(telemetry.tracer_provider)
    if telemetry._metrics is not None:
        _ensure_unset("MeterProvider", metrics.get_meter_provider())
        metrics.set_meter_provider(telemetry._metrics.provider)
    if telemetry.logger_provider is not None:
        _ensure_unset("LoggerProvider", _logs.get_logger_provider())
        _logs.set_logger_provider(telemetry.logger_provider)


def _build_propagator(settings: Settings) -> TextMapPropagator:
    propagators: list[TextMapPropagator] = []
    for name in settings.propagators:
        if name == "tracecontext":
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            propagators.append(TraceContextTextMapPropagator())
        elif name == "baggage":
            from opentelemetry.baggage.propagation import W3CBaggagePropagator

            propagators.append(W3CBaggagePropagator())
        elif name in ("b3", "b3multi"):
            try:
                from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
            except ImportError:
                raise ConfigurationError(
                    "OTEL_PROPAGATORS",
                    f"{name!r} needs opentelemetry-propagator-b3: pip install opentelemetry-propagator-b3",
                ) from None
            propagators.append(B3SingleFormat() if name == "b3" else B3MultiFormat())
    return CompositePropagator(propagators)


def _install_exit_hooks(telemetry: Telemetry) -> None:
    atexit.register(telemetry.shutdown)
    if not telemetry.settings.handle_sigterm or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # the application (or its server) handles SIGTERM; atexit still flushes

    def on_sigterm(signum: int, _frame: FrameType | None) -> None:
        # Flush within the deadline, then die of SIGTERM exactly as the default action would.
        telemetry.shutdown()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _after_fork_in_child() -> None:
    """Give a forked child its own process attributes (the SDK renews service.instance.id itself)."""
    telemetry = _current
    if telemetry is None:
        return
    update = Resource(process_attributes())
    for provider in telemetry._providers().values():
        refresh = getattr(provider, "_update_resource", None)
        if refresh is not None:
            refresh(update)


@dataclass(frozen=True)
class Extras:
    """Processors and readers added beside the configured exporters (used by :mod:`otel_dist.testing`)."""

    span_processors: tuple[Any, ...] = ()
    log_processors: tuple[Any, ...] = ()
    metric_readers: tuple[Any, ...] = ()
    #: False for test suites that configure the process repeatedly (see setup_logging).
    cache_loggers: bool = True


def _build(settings: Settings, origin: Origin, extras: Extras) -> Telemetry:
    os.environ.setdefault(*SEMCONV_OPT_IN)
    if os.environ.get(FASTAPI_AUTO_CONFIGURE, "").lower() == "true":
        # FastAPI would add its own OTLP exporters to our providers: every span, point and record sent twice.
        _log.warning("%s=true ignored: otel-dist already exports every signal", FASTAPI_AUTO_CONFIGURE)
        os.environ[FASTAPI_AUTO_CONFIGURE] = "false"
    resource = build_resource(settings)
    identity = {
        key: str(resource.attributes[key])
        for key in ("service.name", "service.version", "deployment.environment.name")
        if key in resource.attributes
    }
    if settings.sdk_disabled:
        # OTEL_SDK_DISABLED: no providers, no export; the application still gets its structured log lines.
        pipeline = setup_logging(settings, identity, None, cache_loggers=extras.cache_loggers)
        return Telemetry(settings, resource, origin, logging_pipeline=pipeline)

    enabled = settings.enabled_signals
    metrics_pipeline = None
    if "metrics" in enabled or extras.metric_readers:
        metrics_pipeline = build_metrics(settings, resource, extras.metric_readers)
    meter_provider: ApiMeterProvider = metrics_pipeline.provider if metrics_pipeline else NoOpMeterProvider()
    tracer_provider = None
    if "traces" in enabled or extras.span_processors:
        tracer_provider = build_tracer_provider(settings, resource, meter_provider)
        for span_processor in extras.span_processors:
            tracer_provider.add_span_processor(span_processor)
    logger_provider = None
    if "logs" in enabled or extras.log_processors:
        logger_provider = build_logger_provider(settings, resource, meter_provider)
        for log_processor in extras.log_processors:
            logger_provider.add_log_record_processor(log_processor)
    telemetry = Telemetry(settings, resource, origin, tracer_provider, metrics_pipeline, logger_provider)
    _set_global_providers(telemetry)
    propagate.set_global_textmap(_build_propagator(settings))
    if metrics_pipeline is not None and settings.system_metrics:
        telemetry._instrumentors.append(instrument_process_metrics(settings, metrics_pipeline.provider))
    if settings.instrument_clients:
        from otel_dist.clients import instrument_clients

        telemetry._instrumentors.extend(instrument_clients(telemetry))
    telemetry._logging = setup_logging(settings, identity, logger_provider, cache_loggers=extras.cache_loggers)
    return telemetry


def configure(
    app: Any = None,
    *,
    health: Any = None,
    _origin: Origin = "configure",
    _extras: Extras = Extras(),
    **options: Unpack[Options],
) -> Telemetry:
    """Set up traces, metrics and logs for this process and return the :class:`Telemetry` handle.

    Every option is optional; each overrides its environment variable (see the README's table), which
    overrides the profile chosen by ``environment`` (``deployment.environment.name``), which overrides
    the defaults. A bad value raises :class:`~otel_dist.ConfigurationError` naming the option or variable.

    ``app``: a Starlette or FastAPI application to instrument (see :func:`otel_dist.instrument_app`); it is
    applied on every call, also when the process was configured already (by the wrapper, say).
    ``health``: :class:`otel_dist.HealthChecks` to serve on ``app``.

    Calling it again returns the existing handle and warns, naming the arguments it ignored; nothing is
    installed twice. A process started under ``opentelemetry-instrument`` is already configured by the time
    application code runs, and the same rule applies.
    """
    telemetry = _configure(_origin, _extras, options)
    if app is not None:
        from otel_dist.asgi import instrument_app

        instrument_app(app, telemetry, health=health)
    return telemetry


def _configure(_origin: Origin, _extras: Extras, options: Options) -> Telemetry:
    global _current, _fork_hook_installed
    with _lock:
        if _current is not None:
            given = sorted(name for name, value in options.items() if value is not None)
            how = "by opentelemetry-instrument" if _current.origin == "opentelemetry-instrument" else "already"
            message = f"otel-dist is configured {how}; configure() returns the existing handle"
            if given:
                message += f" and ignores: {', '.join(given)}"
            warnings.warn(message, stacklevel=3)
            return _current
        settings = resolve(options)
        telemetry = _build(settings, _origin, _extras)
        _current = telemetry
        _install_exit_hooks(telemetry)
        if not _fork_hook_installed:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _fork_hook_installed = True
        return telemetry
