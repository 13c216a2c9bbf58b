"""Seed 004: a small API on port 8000 with a PostgreSQL pool of 20 and a Redis cache, monitored by otel-dist.

    DATABASE_URL=postgresql+psycopg://app@127.0.0.1/app REDIS_URL=redis://127.0.0.1:6379/0 \
        python -m examples.small_api                    # uvicorn on 0.0.0.0:$PORT (default 8000)

Items are read through the cache (cache-aside, counted as ``cache.lookups{cache.name="items"}``), created with a
unique name (a duplicate is a 409 and a failed INSERT in the DB metrics), and ``/reports/{kind}`` runs a report
query that takes ``seconds``. Health: ``/health`` (liveness, version, uptime), ``/health/db`` (a query, the pool's
use), ``/health/cache`` (PING and memory; not required for readiness), ``/health/ready`` (all of them).

Only the public API of otel_dist is used: configure(), HealthChecks, database_check, redis_check,
instrument_engine, cache_lookup, get_logger. The pool, query, slow-query and cache metrics come from there.
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
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

import otel_dist

SERVICE = os.environ.get("OTEL_SERVICE_NAME", "small-api")
VERSION = "1.0.0"
#: The seed's pool: 20 connections, no overflow; a caller waits at most POOL_TIMEOUT seconds for one.
POOL_SIZE = int(os.environ.get("SMALL_API_POOL_SIZE", "20"))
POOL_TIMEOUT = float(os.environ.get("SMALL_API_POOL_TIMEOUT", "30"))
CACHE_TTL_SECONDS = 300

engine = create_async_engine(
    os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/app"),
    pool_size=POOL_SIZE,
    max_overflow=0,
    pool_timeout=POOL_TIMEOUT,
    pool_pre_ping=True,  # a connection the database dropped (restart) is replaced, not handed out broken
)
cache = redis.Redis.from_url(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_timeout=1.0, socket_connect_timeout=1.0
)
metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("price_cents", sa.Integer, nullable=False),
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield
    await cache.aclose()
    await engine.dispose()


app = FastAPI(title="small-api", version=VERSION, lifespan=lifespan)
health = otel_dist.HealthChecks(version=VERSION)
health.add("db", otel_dist.database_check(engine), timeout=5.0)
health.add("cache", otel_dist.redis_check(cache), timeout=3.0, required=False)
otel_dist.configure(app=app, health=health, service_name=SERVICE, service_version=VERSION)
otel_dist.instrument_engine(engine, pool_name="main")
log = otel_dist.get_logger("small_api")


class NewItem(BaseModel):
    name: str
    price_cents: int


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, Any]:
    key = f"item:{item_id}"
    cached = await cache.get(key)
    otel_dist.cache_lookup("items", hit=cached is not None)
    if cached is not None:
        found: dict[str, Any] = json.loads(cached)
        return found
    async with engine.connect() as connection:
        row = (await connection.execute(sa.select(items).where(items.c.id == item_id))).mappings().first()
    if row is None:
        raise HTTPException(status_code=404, detail="no such item")
    item = dict(row)
    await cache.set(key, json.dumps(item), ex=CACHE_TTL_SECONDS)
    return item


@app.post("/items", status_code=201)
async def create_item(new: NewItem) -> dict[str, Any]:
    try:
        async with engine.begin() as connection:
            result = await connection.execute(items.insert().values(name=new.name, price_cents=new.price_cents))
    except IntegrityError:
        log.info("item.duplicate", name=new.name)
        raise HTTPException(status_code=409, detail="an item with this name exists") from None
    item_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    log.info("item.created", item_id=item_id)
    return {"id": item_id, "name": new.name, "price_cents": new.price_cents}


@app.get("/reports/{kind}")
async def report(kind: str, seconds: float = 0.1) -> dict[str, Any]:
    """A report query that holds its connection for ``seconds`` (a slow query above 1 s)."""
    async with engine.connect() as connection:
        total = (
            await connection.execute(
                sa.text("SELECT count(*) AS n, pg_sleep(:seconds) FROM items"), {"seconds": min(seconds, 30.0)}
            )
        ).scalar_one()
    log.info("report.done", kind=kind, items=total)
    return {"kind": kind, "items": total}
