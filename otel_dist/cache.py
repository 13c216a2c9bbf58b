"""Cache telemetry: hits and misses of any cache, Redis client spans, a Redis health check.

    value = redis.get(key)
    otel_dist.cache_lookup("templates", hit=value is not None)

counts ``cache.lookups`` labelled ``cache.name`` and ``cache.outcome`` (``hit`` / ``miss``), from which the
hit ratio is ``sum(rate(cache_lookups_total{cache_outcome="hit"}[5m])) / sum(rate(cache_lookups_total[5m]))``.
It uses only the OpenTelemetry API, like :func:`otel_dist.track_operation`: a library can count its lookups
without configuring anything. ``cache.name`` labels a metric: one name per cache, never per key.

Redis commands get CLIENT spans (``GET``, arguments replaced by ``?``) from opentelemetry-instrumentation-redis
(the ``[redis]`` extra), which configure() wires to its providers as it does httpx. :func:`redis_check` is a
health check for :class:`otel_dist.HealthChecks` with the server's memory in its details.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import metrics

__all__ = ["cache_lookup", "instrument_redis", "redis_check"]

_SCOPE: Final = "otel_dist.cache"
_counter: tuple[Any, Any] | None = None  # (meter provider, counter)


def _lookups() -> Any:
    """The counter of the current global meter provider (created once per provider)."""
    global _counter
    provider = metrics.get_meter_provider()
    cached = _counter
    if cached is None or cached[0] is not provider:
        counter = provider.get_meter(_SCOPE).create_counter(
            "cache.lookups", unit="{lookup}", description="Cache lookups by outcome (hit or miss)."
        )
        cached = _counter = (provider, counter)
    return cached[1]


def cache_lookup(name: str, *, hit: bool, count: int = 1) -> None:
    """Count ``count`` lookups of cache ``name`` that found (``hit=True``) or missed their key."""
    _lookups().add(count, {"cache.name": name, "cache.outcome": "hit" if hit else "miss"})


def instrument_redis(tracer_provider: Any, meter_provider: Any) -> Any | None:
    """Redis client spans through our providers, if redis and its instrumentation are installed."""
    if not (importlib.util.find_spec("redis") and importlib.util.find_spec("opentelemetry.instrumentation.redis")):
        return None
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return instrumentor


def _memory(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider": "redis",
        "used_memory_bytes": info.get("used_memory"),
        "max_memory_bytes": info.get("maxmemory"),
    }


def redis_check(client: Any) -> Callable[..., Any]:
    """A health check that PINGs ``client`` (redis.Redis, or redis.asyncio.Redis: then a coroutine).

    Healthy when the server answers; the details carry its memory use (``INFO memory``).
    """
    # By the client's package, not inspect.iscoroutinefunction(client.ping): the instrumentation wraps ping.
    if type(client).__module__.startswith("redis.asyncio") or inspect.iscoroutinefunction(client.ping):

        async def check_async() -> dict[str, Any]:
            await client.ping()
            return _memory(await client.info("memory"))

        return check_async

    def check() -> dict[str, Any]:
        client.ping()
        return _memory(client.info("memory"))

    return check
