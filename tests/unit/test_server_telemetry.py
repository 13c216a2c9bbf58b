"""The pieces of otel-dist's server-span layer that mirror FastAPI's native telemetry, compared with FastAPI's own.

The FastAPI internals used here are private: these tests fail when a FastAPI upgrade changes them (then the layer
falls back to finding routes itself; update otel_dist/asgi/server_telemetry.py and these tests together).
"""

from __future__ import annotations

import pytest
from fastapi.telemetry._api import _exception_type
from fastapi.telemetry._asgi import _server_attributes
from starlette.routing import Mount, Route, Router

from otel_dist.asgi.server_telemetry import (
    KNOWN_METHODS,
    _server_address,
    exception_type,
    fastapi_hooks,
    starlette_route,
)


def test_fastapi_still_has_the_routing_hooks_the_layer_uses() -> None:
    hooks = fastapi_hooks()
    assert hooks is not None
    request_telemetry, _key = hooks
    made = request_telemetry(span=None, span_method="GET", tracer=None, _mount_prefix="")
    assert made.route is None
    assert made._exceptions == []


def test_the_known_methods_are_fastapis() -> None:
    from fastapi.telemetry._api import _HTTP_METHODS

    assert KNOWN_METHODS == _HTTP_METHODS


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"example.com:8443",
        b"EXAMPLE.com:80",
        b"[::1]:8000",
        b"[::1]",
        b"127.0.0.1",
        b"user@example.com",
        b"example.com/path",
        b"example.com:notaport",
        b"example.com:99999",
        b"",
        None,
    ],
)
@pytest.mark.parametrize("scheme", ["http", "https", "ws"])
def test_server_address_and_port_are_read_as_fastapi_reads_them(host: bytes | None, scheme: str) -> None:
    headers = [(b"host", host)] if host is not None else []
    scope = {"type": "http", "scheme": scheme, "headers": headers, "server": ("10.0.0.1", 8000)}
    assert _server_address(host, scope) == _server_attributes(scope)


@pytest.mark.parametrize("error", [RuntimeError("x"), ValueError(), KeyboardInterrupt(), pytest.fail.Exception("f")])
def test_exception_types_are_named_as_fastapi_names_them(error: BaseException) -> None:
    assert exception_type(error) == _exception_type(error)


def _endpoint() -> None:
    raise AssertionError("not called")


def test_starlette_routes_are_found_through_mounts_by_their_templates() -> None:
    inner = Router(routes=[Route("/deep/{item:int}", _endpoint)])
    routes = [
        Route("/items/{item_id}", _endpoint, methods=["GET"]),
        Mount("/tenants/{tenant}", routes=[Route("/users/{uid}", _endpoint)]),
        Mount("/app", app=inner),
        Mount("/static", app=_endpoint),
    ]

    def route(path: str, method: str = "GET", root_path: str = "") -> str | None:
        scope = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path, "headers": []}
        return starlette_route(routes, scope, root_path)

    assert route("/items/1") == "/items/{item_id}"
    assert route("/tenants/acme/users/7") == "/tenants/{tenant}/users/{uid}"
    assert route("/app/deep/3") == "/app/deep/{item}"
    assert route("/static/css/site.css") == "/static/{path}"
    assert route("/items/1", root_path="/api") == "/api/items/{item_id}"
    assert route("/items/1", method="DELETE") == "/items/{item_id}"  # a 405 names its route
    assert route("/nothing") is None
