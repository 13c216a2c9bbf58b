"""Seed 003: the civic platform's API (bills, search, reports) on PostgreSQL and Redis, monitored by otel-dist.

    DATABASE_URL=postgresql+psycopg://app@db/civic REDIS_URL=redis://cache:6379/0 OTEL_DIST_ENVIRONMENT=prod \
        uvicorn examples.civic_platform.app:app

In production (``OTEL_DIST_ENVIRONMENT=prod``) the profile samples 10 % of the traces at the head
(``parentbased_traceidratio``); a request that arrives with a sampled ``traceparent`` is always traced. For
tail sampling instead, run the collector with collector/tail-sampling.yaml and set
``OTEL_TRACES_SAMPLER=parentbased_always_on`` (README.md of this example).

Business metrics come from the OpenTelemetry metrics API, with bounded labels: ``bills.created`` (jurisdiction,
type), ``bill.views`` and ``search.queries`` (jurisdiction). The pool, query and cache metrics come from otel-dist.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException
from opentelemetry import metrics, trace
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import create_async_engine

import otel_dist
from examples.civic_platform.models import BILL_TYPES, JURISDICTIONS, bills, metadata

SERVICE = os.environ.get("OTEL_SERVICE_NAME", "civic-api")
VERSION = "2.0.0"

engine = create_async_engine(
    os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/civic"),
    pool_size=10,
    max_overflow=5,
    pool_timeout=5,
    pool_pre_ping=True,
)
cache = redis.Redis.from_url(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_timeout=1.0, socket_connect_timeout=1.0
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield
    await cache.aclose()
    await engine.dispose()


app = FastAPI(title="civic-api", version=VERSION, lifespan=lifespan)
health = otel_dist.HealthChecks(version=VERSION)
health.add("db", otel_dist.database_check(engine), timeout=3.0)
health.add("cache", otel_dist.redis_check(cache), timeout=2.0, required=False)
otel_dist.configure(app=app, health=health, service_name=SERVICE, service_version=VERSION)
otel_dist.instrument_engine(engine, pool_name="civic")
log = otel_dist.get_logger("civic.api")

meter = metrics.get_meter("civic.api")
bills_created = meter.create_counter("bills.created", unit="{bill}", description="Bills created, by jurisdiction.")
bill_views = meter.create_counter("bill.views", unit="{view}", description="Bill pages served.")
search_queries = meter.create_counter("search.queries", unit="{query}", description="Bill searches.")


class NewBill(BaseModel):
    id: str
    title: str
    jurisdiction: str
    type: str


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else "other"


@app.get("/api/v1/bills/{bill_id}")
async def get_bill(bill_id: str) -> dict[str, Any]:
    trace.get_current_span().set_attribute("bill.id", bill_id)
    cached = await cache.get(f"bill:{bill_id}")
    otel_dist.cache_lookup("bills", hit=cached is not None)
    if cached is not None:
        bill: dict[str, Any] = json.loads(cached)
    else:
        async with engine.connect() as connection:
            row = (await connection.execute(sa.select(bills).where(bills.c.id == bill_id))).mappings().first()
        if row is None:
            raise HTTPException(status_code=404, detail="no such bill")
        bill = dict(row)
        await cache.set(f"bill:{bill_id}", json.dumps(bill), ex=600)
    bill_views.add(1, {"jurisdiction": _bounded(bill["jurisdiction"], JURISDICTIONS)})
    return bill


@app.get("/api/v1/bills")
async def search_bills(jurisdiction: str, q: str = "") -> dict[str, Any]:
    search_queries.add(1, {"jurisdiction": _bounded(jurisdiction, JURISDICTIONS)})
    query = sa.select(bills.c.id, bills.c.title).where(bills.c.jurisdiction == jurisdiction)
    if q:
        query = query.where(bills.c.title.ilike(f"%{q}%"))
    async with engine.connect() as connection:
        found = [dict(row) for row in (await connection.execute(query.limit(50))).mappings()]
    log.info("bills.searched", jurisdiction=jurisdiction, results=len(found))
    return {"results": found}


@app.post("/api/v1/bills", status_code=201)
async def create_bill(new: NewBill) -> dict[str, Any]:
    async with engine.begin() as connection:
        await connection.execute(bills.insert().values(**new.model_dump(), source="api"))
    labels = {"jurisdiction": _bounded(new.jurisdiction, JURISDICTIONS), "type": _bounded(new.type, BILL_TYPES)}
    bills_created.add(1, labels)
    log.info("bill.created", bill_id=new.id, **labels)
    return new.model_dump()


@app.get("/api/v1/reports/activity")
async def activity_report(seconds: float = 0.05) -> dict[str, Any]:
    """Bills per jurisdiction; ``seconds`` stands for the report's real cost (slow traces, slow queries)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT jurisdiction, count(*) AS n, pg_sleep(:seconds) FROM bills GROUP BY jurisdiction"),
            {"seconds": min(seconds, 10.0)},
        )
        counts = {row.jurisdiction: row.n for row in rows}
    return {"bills_per_jurisdiction": counts}
