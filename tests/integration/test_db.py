"""SQLAlchemy engines on a real PostgreSQL server: pool metrics read from the real pool, query durations and
spans, the slow-query log, sync and async engines, and the database health check."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import otel_dist
from otel_dist.otlp_sink import wait_for
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.servers import PostgresServer

METADATA = sa.MetaData()
BILLS = sa.Table(
    "bills",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("jurisdiction", sa.String(50), nullable=False),
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer(database="civic") as server:
        engine = sa.create_engine(server.url())
        METADATA.create_all(engine)
        with engine.begin() as connection:
            connection.execute(BILLS.insert(), [{"title": f"Bill {n}", "jurisdiction": "ca"} for n in range(5)])
        engine.dispose()
        yield server


def points(receiver: OtlpReceiver, name: str, **match: Any) -> list[tuple[dict[str, Any], Any]]:
    return [(a, p) for a, p in receiver.latest_points(name) if all(a.get(k) == v for k, v in match.items())]


def gauge(receiver: OtlpReceiver, name: str, **match: Any) -> int | None:
    found = points(receiver, name, **match)
    return found[0][1].as_int if found else None


def log_lines(capsys: pytest.CaptureFixture[str], event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if f'"event":"{event}"' in line]


def test_pool_metrics_are_read_from_the_real_pool(postgres: PostgresServer, receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    engine = sa.create_engine(postgres.url(), pool_size=5, max_overflow=3)
    otel_dist.instrument_engine(engine, pool_name="main")
    held = [engine.connect() for _ in range(4)]
    held.pop().close()  # back to the pool: 3 used, 1 idle
    try:
        telemetry.force_flush(5)
        pool = {"db.client.connection.pool.name": "main"}
        assert gauge(receiver, "db.client.connection.count", **pool, **{"db.client.connection.state": "used"}) == 3
        assert gauge(receiver, "db.client.connection.count", **pool, **{"db.client.connection.state": "idle"}) == 1
        assert gauge(receiver, "db.client.connection.max", **pool) == 8  # pool_size + max_overflow
        assert gauge(receiver, "db.client.connection.pending_requests", **pool) == 0
        [(_, waits)] = points(receiver, "db.client.connection.wait_time", **pool)
        assert waits.count == 4
        for connection in held:
            connection.close()
        receiver.clear()
        telemetry.force_flush(5)
        assert gauge(receiver, "db.client.connection.count", **pool, **{"db.client.connection.state": "used"}) == 0
        assert gauge(receiver, "db.client.connection.count", **pool, **{"db.client.connection.state": "idle"}) == 4
    finally:
        for connection in held:
            connection.close()
        engine.dispose()


def test_a_waiting_caller_is_pending_and_a_checkout_timeout_is_counted(
    postgres: PostgresServer, receiver, configure
) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    engine = sa.create_engine(postgres.url(), pool_size=1, max_overflow=0, pool_timeout=5)
    otel_dist.instrument_engine(engine, pool_name="tiny")
    pool = {"db.client.connection.pool.name": "tiny"}
    first = engine.connect()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(engine.connect()))
    waiter.start()
    try:

        def pending() -> bool:
            receiver.clear()
            telemetry.force_flush(5)
            return gauge(receiver, "db.client.connection.pending_requests", **pool) == 1

        wait_for(pending, timeout=10)
        time.sleep(0.2)
        first.close()  # the waiter gets it, after waiting at least 0.2 s
        waiter.join(10)
        assert got
        receiver.clear()
        telemetry.force_flush(5)
        assert gauge(receiver, "db.client.connection.pending_requests", **pool) == 0
        [(_, waits)] = points(receiver, "db.client.connection.wait_time", **pool)
        assert waits.count == 2
        assert waits.max >= 0.2

        short = engine.execution_options()  # the same pool
        short.pool._timeout = 0.2  # a caller that gives up quickly (the pool's pool_timeout)
        with pytest.raises(sa.exc.TimeoutError):
            short.connect()
        telemetry.force_flush(5)
        [(_, timeouts)] = points(receiver, "db.client.connection.timeouts", **pool)
        assert timeouts.as_int == 1
    finally:
        for connection in got:
            connection.close()
        first.close()
        engine.dispose()


def test_queries_get_a_duration_a_span_and_a_sanitized_statement(postgres: PostgresServer, receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    engine = sa.create_engine(postgres.url())
    with engine.connect() as connection:
        assert len(connection.execute(sa.select(BILLS).where(BILLS.c.jurisdiction == "ca")).all()) == 5
        connection.execute(sa.text("SELECT count(*) FROM bills WHERE title = 'Bill 1' AND id > 2"))
        connection.execute(BILLS.update().where(BILLS.c.id == 1).values(title="Bill 1"))
        connection.commit()
    engine.dispose()
    telemetry.force_flush(5)

    durations = {
        (a["db.operation.name"], a.get("db.collection.name")): p.count
        for a, p in points(receiver, "db.client.operation.duration", **{"db.namespace": "civic"})
    }
    assert durations[("SELECT", "bills")] == 2
    assert durations[("UPDATE", "bills")] == 1
    for attributes, _ in points(receiver, "db.client.operation.duration", **{"db.namespace": "civic"}):
        assert attributes["db.system.name"] == "postgresql"
        assert "error.type" not in attributes

    spans = [s for s in receiver.spans() if s.scope == "otel_dist.db"]
    by_text = {s.attributes["db.query.text"]: s for s in spans}
    literal = by_text["SELECT count(*) FROM bills WHERE title = ? AND id > ?"]
    assert literal.item.name == "SELECT bills"
    assert literal.item.kind == 3  # CLIENT
    assert literal.attributes["server.address"] == "127.0.0.1"
    assert literal.attributes["server.port"] == postgres.port
    assert literal.attributes["db.collection.name"] == "bills"
    core = next(s for text, s in by_text.items() if text.startswith("SELECT bills.id"))
    assert "%(jurisdiction_1)s" in core.attributes["db.query.text"]  # placeholders stay
    assert not any("'Bill 1'" in text for text in by_text)


def test_a_slow_query_is_logged_once_with_its_sanitized_statement(
    postgres: PostgresServer, receiver, configure, capsys
) -> None:
    telemetry = configure(endpoint=receiver.endpoint, db_slow_query_threshold=0.25)
    engine = sa.create_engine(postgres.url())
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        connection.execute(sa.text("SELECT pg_sleep(0.3), 'secret-ish literal' FROM bills LIMIT 1"))
    engine.dispose()
    telemetry.force_flush(5)
    [slow] = log_lines(capsys, "db.query.slow")
    assert slow["level"] == "warning"
    assert slow["db.query.text"] == "SELECT pg_sleep(?), ? FROM bills LIMIT ?"
    assert slow["db.operation.name"] == "SELECT"
    assert slow["db.collection.name"] == "bills"
    assert slow["duration_s"] >= 0.3
    assert slow["threshold_s"] == 0.25
    assert slow["trace_id"]
    # Among the buckets: above the 0.25 s edge, as the slow-query rules read it.
    [(_, histogram)] = points(receiver, "db.client.operation.duration", **{"db.collection.name": "bills"})
    assert histogram.count == 1
    exported = [r for r in receiver.logs() if r.item.body.string_value == "db.query.slow"]
    assert len(exported) == 1


def test_a_failed_query_is_an_error_with_the_driver_exception(postgres: PostgresServer, receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    engine = sa.create_engine(postgres.url())
    with engine.connect() as connection, pytest.raises(sa.exc.ProgrammingError):
        connection.execute(sa.text("SELECT * FROM no_such_table"))
    engine.dispose()
    telemetry.force_flush(5)
    [(attributes, _)] = points(receiver, "db.client.operation.duration", **{"db.collection.name": "no_such_table"})
    assert attributes["error.type"] == "UndefinedTable"
    [span] = [s for s in receiver.spans() if s.attributes.get("db.collection.name") == "no_such_table"]
    assert span.item.status.code == 2
    assert span.attributes["db.response.status_code"] == "42P01"
    assert span.attributes["error.type"] == "UndefinedTable"


def test_an_async_engine_is_instrumented_the_same_way(postgres: PostgresServer, receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    engine = create_async_engine(postgres.url(), pool_size=4, max_overflow=0)
    otel_dist.instrument_engine(engine, pool_name="async")

    async def work() -> None:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(sa.select(BILLS.c.id))
            await second.execute(sa.text("SELECT 1"))
            telemetry.force_flush(5)
        await engine.dispose()

    asyncio.run(work())
    pool = {"db.client.connection.pool.name": "async"}
    assert gauge(receiver, "db.client.connection.count", **pool, **{"db.client.connection.state": "used"}) == 2
    assert gauge(receiver, "db.client.connection.max", **pool) == 4
    durations = {
        (a["db.operation.name"], a.get("db.collection.name")): p.count
        for a, p in points(receiver, "db.client.operation.duration")
    }
    assert durations == {("SELECT", "bills"): 1, ("SELECT", None): 1}


def test_an_engine_made_before_configure_is_covered_and_named_after_its_server(
    postgres: PostgresServer, receiver, configure
) -> None:
    engine = sa.create_engine(postgres.url())  # before configure(): the listeners sit on the classes
    telemetry = configure(endpoint=receiver.endpoint)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        telemetry.force_flush(5)
    engine.dispose()
    name = f"127.0.0.1:{postgres.port}/civic"
    used = {"db.client.connection.state": "used", "db.client.connection.pool.name": name}
    assert gauge(receiver, "db.client.connection.count", **used) == 1
    assert [a["db.operation.name"] for a, _ in points(receiver, "db.client.operation.duration")] == ["SELECT"]


def test_nothing_is_recorded_with_client_instrumentation_off(postgres: PostgresServer, receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint, instrument_clients=False)
    engine = sa.create_engine(postgres.url())
    otel_dist.instrument_engine(engine, pool_name="ignored")
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    engine.dispose()
    telemetry.force_flush(5)
    assert not receiver.metrics("db.client.operation.duration")
    assert not receiver.metrics("db.client.connection.count")


def test_the_database_health_check_reports_the_database_and_its_pool(postgres: PostgresServer, configure) -> None:
    configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    engine = sa.create_engine(postgres.url(), pool_size=3)
    assert otel_dist.database_check(engine)() == {"database": "civic", "pool": {"used": 0, "size": 3}}
    async_engine = create_async_engine(postgres.url())

    async def check() -> Any:
        result = await otel_dist.database_check(async_engine)()
        await async_engine.dispose()
        return result

    assert asyncio.run(check())["database"] == "civic"
    postgres.stop()
    try:
        with pytest.raises(sa.exc.OperationalError):
            otel_dist.database_check(engine)()
    finally:
        postgres.start()
        engine.dispose()


def test_a_health_check_query_is_measured_but_starts_no_trace(postgres: PostgresServer, receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    sync_engine = sa.create_engine(postgres.url())
    async_engine = create_async_engine(postgres.url())
    health = otel_dist.HealthChecks()
    health.add("db", otel_dist.database_check(sync_engine))
    health.add("db_async", otel_dist.database_check(async_engine))

    async def probe() -> tuple[int, dict[str, Any]]:
        try:
            return await health.report()
        finally:
            await async_engine.dispose()

    code, body = asyncio.run(probe())
    sync_engine.dispose()
    assert code == 200, body
    telemetry.force_flush(5)
    assert [s.item.name for s in receiver.spans() if s.scope == "otel_dist.db"] == []  # a probe is not traffic
    [(_, histogram)] = points(receiver, "db.client.operation.duration")
    assert histogram.count == 2
