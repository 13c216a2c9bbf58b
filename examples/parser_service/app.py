"""Seed 000 as a service: the parser behind ``POST /parse``, instrumented by one ``configure()`` call.

    OTEL_SERVICE_NAME=parser uvicorn examples.parser_service.app:app

``PARSER_COLLECTOR_TIMEOUT`` (seconds, default 2) is each collector's timeout. Health: ``/health`` (liveness),
``/health/ready`` and ``/health/parser`` (a tiny document parses within the collector timeout).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import otel_dist
from examples.parser_service.parser import DEFAULT_COLLECTOR_TIMEOUT, MalformedDocument, ValidationFailed, parse

COLLECTOR_TIMEOUT = float(os.environ.get("PARSER_COLLECTOR_TIMEOUT", DEFAULT_COLLECTOR_TIMEOUT))

app = FastAPI(title="parser (otel-dist example, seed 000)")
health = otel_dist.HealthChecks(version="1.0.0")


def _parser_works() -> bool:
    return not parse("# ok\n", collector_timeout=COLLECTOR_TIMEOUT).collector_errors


health.add("parser", _parser_works, timeout=COLLECTOR_TIMEOUT + 1)
otel_dist.configure(app=app, health=health, service_name=os.environ.get("OTEL_SERVICE_NAME", "parser"))
log = otel_dist.get_logger("parser.app")


class ParseRequest(BaseModel):
    content: str
    document_type: str = "markdown"
    security_profile: str = "moderate"


@app.post("/parse", response_model=None)
def parse_document(request: ParseRequest) -> dict[str, Any] | JSONResponse:
    # A sync endpoint: parsing is CPU work, so it runs in the thread pool (the request ID follows it there).
    try:
        result = parse(
            request.content,
            document_type=request.document_type,
            security_profile=request.security_profile,
            collector_timeout=COLLECTOR_TIMEOUT,
        )
    except ValidationFailed as error:
        status = 413 if error.validation_type == "size_limit" else 422
        return JSONResponse(
            {"error": "validation_failure", "validation_type": error.validation_type, "detail": error.detail},
            status_code=status,
        )
    except MalformedDocument as error:
        return JSONResponse({"error": "malformed_document", "detail": str(error)}, status_code=422)
    except ValueError as error:
        return JSONResponse({"error": "bad_request", "detail": str(error)}, status_code=400)
    return {**result.summary(), "request_id": otel_dist.get_request_id()}
