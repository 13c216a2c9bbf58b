"""An example FastAPI service instrumented by otel-dist: the app the demo and the end-to-end tests run.

uvicorn examples.fastapi_app.app:app                              # configure() below does everything
opentelemetry-instrument uvicorn examples.fastapi_app.app:app     # the same, through the wrapper
"""

from __future__ import annotations

import asyncio
import logging
import os

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException

import otel_dist

app = FastAPI(title="otel-dist example")
health = otel_dist.HealthChecks(version="1.0.0")
health.add("disk", otel_dist.disk_space_check("/", min_free_bytes=1 << 20))
if os.environ.get("EXAMPLE_SKIP_CONFIGURE") != "1":  # the wrapper-only variant of the tests
    otel_dist.configure(app=app, health=health, service_name=os.environ.get("OTEL_SERVICE_NAME", "example-api"))

log = otel_dist.get_logger("example")


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, object]:
    log.info("item.read", item_id=item_id)
    if item_id == 404:
        raise HTTPException(status_code=404, detail="no such item")
    return {"item_id": item_id, "request_id": otel_dist.get_request_id()}


@app.get("/slow")
async def slow(seconds: float = 0.3) -> dict[str, float]:
    await asyncio.sleep(min(seconds, 5.0))
    return {"slept": seconds}


@app.get("/fail")
async def fail() -> None:
    raise RuntimeError("the example failed on purpose")


@app.get("/sync")
def sync_endpoint() -> dict[str, object]:
    # Runs in the thread pool: the request ID and the span follow it there.
    logging.getLogger("example.stdlib").info("from a worker thread")
    return {"request_id": otel_dist.get_request_id()}


@app.get("/proxy/{item_id}")
async def proxy(item_id: int, upstream: str) -> dict[str, object]:
    # An outbound call: its client span, traceparent, baggage and request ID go to the upstream.
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{upstream}/items/{item_id}")
    return {"upstream_status": response.status_code, "upstream": response.json()}


@app.post("/jobs")
async def start_job(tasks: BackgroundTasks) -> dict[str, object]:
    def job() -> None:
        log.info("job.ran")

    tasks.add_task(job)
    return {"queued": True}
