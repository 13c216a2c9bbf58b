"""Cache lookups counted, Redis client spans through our providers, and the Redis health check, on a real
redis-server; and httpx's client duration metric."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio

import otel_dist
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.servers import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def lookups(receiver: OtlpReceiver) -> dict[tuple[str, str], int]:
    return {(a["cache.name"], a["cache.outcome"]): p.as_int for a, p in receiver.latest_points("cache.lookups")}


def cached_template(client: redis.Redis, key: str) -> bytes:
    value = client.get(key)
    otel_dist.cache_lookup("templates", hit=value is not None)
    if value is None:
        value = f"rendered {key}".encode()
        client.set(key, value)
    return value


def test_hits_and_misses_are_counted_and_redis_commands_are_spans(
    redis_server: RedisServer, receiver, configure
) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    for key in ("a", "b", "a", "a", "c", "b"):
        cached_template(client, key)
    otel_dist.cache_lookup("ast", hit=True, count=5)
    telemetry.force_flush(5)
    assert lookups(receiver) == {
        ("templates", "miss"): 3,
        ("templates", "hit"): 3,
        ("ast", "hit"): 5,
    }
    commands = [s for s in receiver.spans() if s.scope.startswith("opentelemetry.instrumentation.redis")]
    assert [s.item.name for s in commands].count("GET") == 6
    get = next(s for s in commands if s.item.name == "GET")
    assert get.item.kind == 3  # CLIENT
    statement = get.attributes.get("db.query.text") or get.attributes.get("db.statement")
    assert statement == "GET ?"  # the key is not kept


def test_cache_lookup_is_a_no_op_without_an_sdk() -> None:
    otel_dist.cache_lookup("anything", hit=False)  # no configure(): the API's no-op meter


def test_the_redis_health_check_reports_memory_and_fails_when_redis_is_down(
    redis_server: RedisServer, configure
) -> None:
    configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1)
    details = otel_dist.redis_check(client)()
    assert details["provider"] == "redis"
    assert details["used_memory_bytes"] > 0
    async_client = redis.asyncio.Redis.from_url(redis_server.url)

    async def check() -> Any:
        try:
            return await otel_dist.redis_check(async_client)()
        finally:
            await async_client.aclose()

    assert asyncio.run(check())["provider"] == "redis"
    redis_server.stop()
    try:
        with pytest.raises(redis.ConnectionError):
            otel_dist.redis_check(client)()
    finally:
        redis_server.start()


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404 if self.path == "/missing" else 200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


def test_outbound_http_calls_have_the_client_duration_metric(receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{upstream.server_port}"
        with httpx.Client() as client:
            client.get(f"{base}/ok")
            client.get(f"{base}/missing")
    finally:
        upstream.shutdown()
        upstream.server_close()
    telemetry.force_flush(5)
    series = {
        (a["http.request.method"], a["http.response.status_code"], a["server.address"]): p.count
        for a, p in receiver.latest_points("http.client.request.duration")
    }
    assert series == {("GET", 200, "127.0.0.1"): 1, ("GET", 404, "127.0.0.1"): 1}
    [metric] = receiver.metrics("http.client.request.duration")[-1:]
    assert metric.item.unit == "s"
