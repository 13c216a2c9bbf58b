"""Operation tracking: one decorator or context manager for a unit of domain work (parse, convert, generate).

    @otel_dist.track_operation("document.parse", attributes={"document.type": "markdown"})
    def parse(text: str) -> Document: ...

    async with otel_dist.track_operation("zip.extract", input_size=len(blob), timeout=30) as operation:
        operation.set_attribute("archive.files", count)      # on the span only
        ...

Each operation gives, with the operation name as ``operation.name`` and only the bounded ``attributes`` you pass
as metric labels:

* ``operation.duration`` (histogram, s) labelled with ``operation.outcome`` (``success``, ``error``,
  ``timeout``) and, for errors, ``error.type`` (the exception class);
* ``operation.outcomes`` (counter) with the same labels, for error-rate rules that need no buckets;
* ``operation.active`` (up-down counter): operations in progress;
* ``operation.input.size`` (histogram, By) when ``input_size`` is given;
* ``operation.memory.peak`` (histogram, By) with ``track_memory=True``: the peak of Python allocations during
  the operation (tracemalloc; approximate when operations overlap, and it costs: use it for heavy work);
* a span named after the operation (exceptions recorded, status ERROR), and a log line
  ``operation.completed`` / ``operation.failed`` with the duration and outcome.

Only the OpenTelemetry API and structlog are used, so a library can track its operations without configuring
anything: without an SDK the metrics and spans are no-ops and the log line follows the host's logging.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, cast

import structlog
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

__all__ = ["Operation", "track_operation"]

P = ParamSpec("P")
R = TypeVar("R")
Attributes = Mapping[str, str | bool | int | float]

_SCOPE: Final = "otel_dist.operations"
_log = structlog.get_logger(_SCOPE)


class _Instruments:
    """The tracer and instruments of the current global providers, created on first use.

    Looked up per operation (an identity check) rather than created at import, so they follow the providers
    the process installs later, or again (test suites that configure repeatedly).
    """

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.tracer = tracer_provider.get_tracer(_SCOPE)
        meter = meter_provider.get_meter(_SCOPE)
        self.duration = meter.create_histogram("operation.duration", unit="s", description="Duration of operations.")
        self.outcomes = meter.create_counter(
            "operation.outcomes", unit="{operation}", description="Operations by outcome."
        )
        self.active = meter.create_up_down_counter(
            "operation.active", unit="{operation}", description="Operations in progress."
        )
        self.input_size = meter.create_histogram("operation.input.size", unit="By", description="Input sizes.")
        self.memory_peak = meter.create_histogram(
            "operation.memory.peak", unit="By", description="Peak Python memory allocated during an operation."
        )


_current: _Instruments | None = None


def _instruments() -> _Instruments:
    global _current
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    cached = _current
    if cached is None or cached.tracer_provider is not tracer_provider or cached.meter_provider is not meter_provider:
        cached = _current = _Instruments(tracer_provider, meter_provider)
    return cached


class Operation:
    """One running operation; also the context manager and decorator :func:`track_operation` returns."""

    def __init__(
        self,
        name: str,
        *,
        attributes: Attributes | None,
        input_size: int | Callable[..., int] | None,
        track_memory: bool,
        log_level: str,
        timeout: float | None,
    ) -> None:
        self.name = name
        self.attributes = dict(attributes or {})
        self.labels: dict[str, Any] = {"operation.name": name, **self.attributes}
        self.input_size = input_size
        self.track_memory = track_memory
        self.log_level = log_level
        self.timeout = timeout
        self.span: Span | None = None
        self._span_context: Any = None
        self._instruments: _Instruments | None = None
        self._started = 0.0
        self._memory_started_here = False

    # -- what the caller can add while it runs --------------------------------------------------------------

    def set_attribute(self, key: str, value: str | bool | int | float) -> None:
        """Add an attribute to the operation's span (not to the metrics: their labels must stay bounded)."""
        if self.span is not None:
            self.span.set_attribute(key, value)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _start(self, size: int | None = None) -> None:
        instruments = self._instruments = _instruments()
        self._span_context = instruments.tracer.start_as_current_span(self.name, attributes=self.labels)
        self.span = self._span_context.__enter__()
        instruments.active.add(1, {"operation.name": self.name})
        if size is None and isinstance(self.input_size, int):
            size = self.input_size
        if size is not None:
            instruments.input_size.record(size, self.labels)
            self.span.set_attribute("operation.input.size", size)
        if self.track_memory:
            if not tracemalloc.is_tracing():
                tracemalloc.start()
                self._memory_started_here = True
            tracemalloc.reset_peak()
        self._started = time.perf_counter()

    def _finish(self, error: BaseException | None, traceback: TracebackType | None) -> None:
        elapsed = time.perf_counter() - self._started
        instruments = self._instruments
        assert instruments is not None
        labels = dict(self.labels)
        if error is None:
            labels["operation.outcome"] = "success"
        elif isinstance(error, TimeoutError):
            labels["operation.outcome"] = "timeout"
            labels["error.type"] = type(error).__qualname__
        else:
            labels["operation.outcome"] = "error"
            labels["error.type"] = type(error).__qualname__
        instruments.duration.record(elapsed, labels)
        instruments.outcomes.add(1, labels)
        instruments.active.add(-1, {"operation.name": self.name})
        fields: dict[str, Any] = {
            "operation": self.name,
            "outcome": labels["operation.outcome"],
            "duration_s": round(elapsed, 6),
        }
        if self.track_memory:
            peak = tracemalloc.get_traced_memory()[1]
            if self._memory_started_here:
                tracemalloc.stop()
            instruments.memory_peak.record(peak, self.labels)
            fields["memory_peak_bytes"] = peak
        if self.span is not None and error is not None:
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"))
            self.span.set_attribute("error.type", type(error).__qualname__)
        if error is None:
            getattr(_log, self.log_level)("operation.completed", **fields)
        else:
            _log.error("operation.failed", **fields, exc_info=error)
        self._span_context.__exit__(type(error) if error else None, error, traceback)

    # -- context manager (sync and async) --------------------------------------------------------------------

    def __enter__(self) -> Operation:
        self._start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._finish(error, tb)

    async def __aenter__(self) -> Operation:
        self._start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(error, tb)

    # -- decorator --------------------------------------------------------------------------------------------

    def _fresh(self) -> Operation:
        """A new Operation with the same settings: each call of a decorated function is its own operation."""
        return Operation(
            self.name,
            attributes=self.attributes,
            input_size=self.input_size,
            track_memory=self.track_memory,
            log_level=self.log_level,
            timeout=self.timeout,
        )

    def _size_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
        return self.input_size(*args, **kwargs) if callable(self.input_size) else None

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):
            asynchronous = cast(Callable[P, Awaitable[Any]], function)

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                operation = self._fresh()
                operation._start(self._size_of(args, kwargs))
                try:
                    if self.timeout is None:
                        result = await asynchronous(*args, **kwargs)
                    else:
                        result = await asyncio.wait_for(asynchronous(*args, **kwargs), self.timeout)
                except BaseException as error:
                    operation._finish(error, error.__traceback__)
                    raise
                operation._finish(None, None)
                return result

            return cast(Callable[P, R], run_async)

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            operation = self._fresh()
            operation._start(self._size_of(args, kwargs))
            try:
                result = function(*args, **kwargs)
            except BaseException as error:
                operation._finish(error, error.__traceback__)
                raise
            operation._finish(None, None)
            return result

        return run


def track_operation(
    name: str,
    *,
    attributes: Attributes | None = None,
    input_size: int | Callable[..., int] | None = None,
    track_memory: bool = False,
    log_level: str = "info",
    timeout: float | None = None,
) -> Operation:
    """Track one operation: use it as ``with``, ``async with`` or as a decorator of a sync or async function.

    ``attributes`` become labels of the metrics (and span attributes): keep them to a few bounded values such as
    a document type or a profile, never IDs. ``input_size``: a number of bytes, or (decorator) a function of the
    decorated function's arguments returning it, e.g. ``input_size=lambda text: len(text)``. ``timeout``
    (decorated coroutines only) cancels the operation after that many seconds and records the outcome
    ``timeout``.
    """
    if log_level not in ("debug", "info", "warning"):
        raise ValueError(f"track_operation(log_level={log_level!r}): expected debug, info or warning")
    return Operation(
        name,
        attributes=attributes,
        input_size=input_size,
        track_memory=track_memory,
        log_level=log_level,
        timeout=timeout,
    )
