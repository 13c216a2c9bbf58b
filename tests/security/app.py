"""A FastAPI app that handles secrets carelessly, the way real code does: in log fields, log messages, stdlib
records, exception messages, span attributes and URLs. otel-dist must keep every one of them out of every exported
byte. Served by uvicorn in tests/security/test_secrets_in_backends.py; the secrets arrive in the requests.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from opentelemetry import trace

import otel_dist

app = FastAPI()
otel_dist.configure(app=app)
log = otel_dist.get_logger("careless")
stdlib = logging.getLogger("careless.stdlib")


@app.get("/login")
async def login(request: Request, response: Response, user: str, password: str, api_key: str) -> dict[str, str]:
    # structlog: secret-named fields, nested too, and a secret inside a message
    log.info("login.attempt", user=user, password=password, credentials={"api_key": api_key})
    log.info(f"calling upstream with Authorization: Bearer {api_key}")
    # stdlib: a formatted message quoting a connection string and a key=value secret
    stdlib.warning("connecting to postgres://app:%s@db:5432/orders with token=%s", password, api_key)
    # span attributes set by the application
    span = trace.get_current_span()
    span.set_attribute("app.user", user)
    span.set_attribute("db.password", password)
    span.set_attribute("app.upstream.url", f"https://svc.internal/v1?api_key={api_key}")
    response.set_cookie("session", api_key)  # Set-Cookie on the response
    return {"user": user}


@app.get("/boom")
async def boom(password: str) -> None:
    # an unhandled exception whose message quotes a secret (it lands in the span event, the error line and
    # the OTel log record's exception.message and exception.stacktrace)
    raise RuntimeError(f"database refused password={password} for postgres://app:{password}@db/orders")


@app.get("/handled")
async def handled(token: str) -> dict[str, bool]:
    try:
        raise ValueError(f"upstream said: invalid token={token}")
    except ValueError:
        log.exception("upstream.failed")
        trace.get_current_span().record_exception(ValueError(f"Bearer {token} expired"))
    return {"handled": True}


@app.get("/reset/{token}")
async def reset(token: str) -> dict[str, bool]:
    # a secret in the path: url.path, the access line and the server span must show /reset/[REDACTED]
    return {"reset": bool(token)}


@app.get("/invites/{code}/accept")
async def accept_invite(code: str) -> dict[str, bool]:
    # not a secret name: OTEL_DIST_REDACT_PATH_PARAMS=code in the test marks it
    return {"accepted": bool(code)}


@app.get("/links/{link_id}")
async def open_link(link_id: str) -> dict[str, bool]:
    # a JSON Web Token under a name that says nothing, and quoted in a message: found by its shape
    log.info("link.opened", detail=f"opening link {link_id}")
    return {"opened": bool(link_id)}


@app.get("/huge")
async def huge(size: int = 100_000) -> dict[str, int]:
    # values far beyond any limit: the span attribute, a log field and a log message
    trace.get_current_span().set_attribute("app.blob", "x" * size)
    log.info("huge.field", blob="y" * size)
    log.info("z" * size)
    return {"size": size}
