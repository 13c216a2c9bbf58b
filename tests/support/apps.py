"""Small apps for the ASGI tests, built fresh per test, and a synchronous client that drives them in-process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import otel_dist

log = otel_dist.get_logger("test.app")


def make_fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, Any]:
        log.info("item.read", item_id=item_id)
        if item_id == 404:
            raise HTTPException(status_code=404)
        return {"item_id": item_id, "request_id": otel_dist.get_request_id()}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    @app.get("/sync")
    def sync_endpoint() -> dict[str, Any]:
        logging.getLogger("test.stdlib").info("in the thread pool")
        return {"request_id": otel_dist.get_request_id()}

    @app.post("/jobs")
    async def jobs(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(lambda: log.info("job.ran"))
        return {"queued": True}

    return app


def make_starlette_app() -> Starlette:
    async def read_item(request: Request) -> JSONResponse:
        log.info("item.read", item_id=request.path_params["item_id"])
        return JSONResponse({"item_id": request.path_params["item_id"]})

    async def fail(_request: Request) -> JSONResponse:
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/items/{item_id}", read_item), Route("/fail", fail)])


class Client:
    """Drives an ASGI app in-process through httpx (the real client), one event loop per call."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)
