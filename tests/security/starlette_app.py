"""The careless app as plain Starlette: its server spans capture the request and response headers named by
OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_* (our server-span layer, or the contrib ASGI middleware under
OTEL_DIST_SERVER_SPANS=native; FastAPI's native telemetry captures none)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import otel_dist

log = otel_dist.get_logger("careless")


async def login(request: Request) -> JSONResponse:
    params = request.query_params
    log.info("login.attempt", user=params["user"], password=params["password"], api_key=params["api_key"])
    response = JSONResponse({"user": params["user"]})
    response.set_cookie("session", params["api_key"])
    return response


async def boom(request: Request) -> None:
    raise RuntimeError(f"database refused password={request.query_params['password']}")


async def handled(request: Request) -> JSONResponse:
    try:
        raise ValueError(f"upstream said: invalid token={request.query_params['token']}")
    except ValueError:
        log.exception("upstream.failed")
    return JSONResponse({"handled": True})


async def reset(request: Request) -> JSONResponse:
    return JSONResponse({"reset": bool(request.path_params["token"])})


async def accept_invite(request: Request) -> JSONResponse:
    return JSONResponse({"accepted": bool(request.path_params["code"])})


async def open_link(request: Request) -> JSONResponse:
    log.info("link.opened", detail=f"opening link {request.path_params['link_id']}")
    return JSONResponse({"opened": True})


app = Starlette(
    routes=[
        Route("/login", login),
        Route("/boom", boom),
        Route("/handled", handled),
        Route("/reset/{token}", reset),
        Route("/invites/{code}/accept", accept_invite),
        Route("/links/{link_id}", open_link),
    ]
)
otel_dist.configure(app=app)
