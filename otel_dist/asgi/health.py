"""Health endpoints with pluggable checks: liveness, readiness, one path per component.

    health = otel_dist.HealthChecks()
    health.add("db", ping_database, timeout=1.0)               # sync or async; raise or return False to fail
    health.add("cache", ping_redis, required=False)            # reported, but never makes readiness fail
    health.add("disk", disk_space_check("/data", min_free_bytes=1 << 30))
    otel_dist.configure(app=app, health=health)                # /health, /health/ready, /health/db, ...

``/health`` is liveness: it answers while the process can serve and never calls a dependency. ``/health/ready``
runs every check concurrently, each under its own timeout, and answers 503 when a required one fails or while
the process drains after SIGTERM. A synchronous check runs in a thread of its own pool so a hanging one can
neither block the event loop nor pile up threads: while it still hangs, the next probe reports it as timed out
without starting it again. Each result is also recorded as the ``health.check.status`` gauge (1 healthy, 0 not)
and the ``health.check.duration`` histogram, labelled ``health.check.name`` and ``health.check.required``.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import MeterProvider

Check = Callable[[], Any]
_STARTED: Final = time.monotonic()


@dataclass
class _Registered:
    name: str
    check: Check
    timeout: float
    required: bool
    running: Future[Any] | None = None  # a sync check still running from an earlier probe


@dataclass
class HealthChecks:
    """A registry of named checks and the endpoints that report them."""

    prefix: str = "/health"
    version: str | None = None
    _checks: dict[str, _Registered] = field(default_factory=dict)
    _draining: bool = False
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "otel-dist-health"))
    _status_gauge: Any = None
    _duration: Any = None

    def add(self, name: str, check: Check, *, timeout: float = 2.0, required: bool = True) -> None:
        """Register ``check`` as component ``name``: healthy unless it raises or returns False."""
        if not name.replace("_", "").replace("-", "").isalnum() or name == "ready":
            raise ValueError(f"health check name {name!r}: letters, digits, - and _ only, and not 'ready'")
        self._checks[name] = _Registered(name, check, timeout, required)

    def start_draining(self) -> None:
        """From now on readiness answers 503 (the process is shutting down)."""
        self._draining = True

    def bind_metrics(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("otel_dist.health")
        self._status_gauge = meter.create_gauge(
            "health.check.status", unit="1", description="1 when the component's last health check passed, else 0."
        )
        self._duration = meter.create_histogram(
            "health.check.duration", unit="s", description="Duration of health checks."
        )

    async def _run(self, item: _Registered) -> dict[str, Any]:
        started = time.perf_counter()
        result: dict[str, Any] = {"required": item.required}
        try:
            # A probe is not user traffic: the check's own client spans (a query, a PING) would each start a
            # trace of their own, so instrumentations are suppressed while it runs (its metrics stay).
            if inspect.iscoroutinefunction(item.check):
                with suppress_instrumentation():
                    outcome = await asyncio.wait_for(item.check(), item.timeout)
            else:
                if item.running is None or item.running.done():
                    item.running = self._pool.submit(_untraced, item.check)
                outcome = await asyncio.wait_for(asyncio.wrap_future(item.running), item.timeout)
            healthy = outcome is not False
            if isinstance(outcome, dict):
                result["details"] = outcome
        except TimeoutError:
            healthy, result["error"] = False, f"timed out after {item.timeout}s"
        except Exception as error:  # noqa: BLE001 - a failing check is a result, not a crash
            healthy, result["error"] = False, f"{type(error).__name__}: {error}"[:300]
        elapsed = time.perf_counter() - started
        result["status"] = "ok" if healthy else "fail"
        result["latency_ms"] = round(elapsed * 1000, 3)
        if self._status_gauge is not None:
            # required: whether the check gates readiness; the shipped alert pages only for those (a cache that
            # is down degrades the service, a database that is down stops it).
            attributes = {"health.check.name": item.name, "health.check.required": item.required}
            self._status_gauge.set(1 if healthy else 0, attributes)
            self._duration.record(elapsed, attributes)
        return result

    async def report(self, names: list[str] | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for the given checks (None: all of them)."""
        selected = [self._checks[n] for n in (names if names is not None else list(self._checks))]
        results = await asyncio.gather(*(self._run(item) for item in selected))
        checks = {item.name: result for item, result in zip(selected, results, strict=True)}
        failed = any(r["status"] == "fail" and r["required"] for r in checks.values())
        status = "draining" if self._draining else "fail" if failed else "ok"
        body = self._envelope(status)
        body["checks"] = checks
        return (503 if status != "ok" else 200), body

    def _envelope(self, status: str) -> dict[str, Any]:
        from otel_dist import bootstrap

        telemetry = bootstrap.current()
        body: dict[str, Any] = {"status": status}
        if telemetry is not None:
            body["service"] = telemetry.settings.service_name
            body["version"] = self.version or telemetry.settings.service_version
        elif self.version:
            body["version"] = self.version
        body["timestamp"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body["uptime_seconds"] = round(time.monotonic() - _STARTED, 3)
        return body

    async def __call__(
        self, scope: Any, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
    ) -> None:
        """The ASGI endpoint behind every health path."""
        path = scope["path"].removeprefix(self.prefix).strip("/")
        if path == "":
            code, body = 200, self._envelope("ok")  # liveness: no dependency is called
        elif path == "ready":
            code, body = await self.report()
        elif path in self._checks:
            code, body = await self.report([path])
        else:
            code, body = 404, {"status": "unknown", "error": f"no health check named {path!r}"}
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def paths(self) -> list[str]:
        """Every path this registry answers."""
        return [self.prefix, f"{self.prefix}/ready", *(f"{self.prefix}/{name}" for name in self._checks)]


def _untraced(check: Check) -> Any:
    with suppress_instrumentation():
        return check()


def disk_space_check(path: str, *, min_free_bytes: int) -> Check:
    """A check that fails when ``path``'s file system has less than ``min_free_bytes`` free."""

    def check() -> dict[str, int]:
        usage = shutil.disk_usage(path)
        if usage.free < min_free_bytes:
            raise RuntimeError(f"{usage.free} bytes free on {path}, below {min_free_bytes}")
        return {"free_bytes": usage.free, "total_bytes": usage.total}

    return check
