"""Seed 002: the documentation generator as a service, monitored by otel-dist.

    REDIS_URL=redis://127.0.0.1:6379/0 DOCGEN_API_KEYS=key1,key2 DOCGEN_OUTPUT_DIR=/var/lib/docgen \
        OTEL_DIST_ENVIRONMENT=production uvicorn examples.doc_generator.app:app --port 8000

``POST /generate`` with ``{"source": "<python>", "format": "markdown"|"html", "output_name": "api.md"}`` and an
``X-API-Key`` header analyses the app's routes (the AST, cached in Redis by the source's hash), renders them
(templates, cached in the process) and writes the file. What it reports, through otel-dist's public API only:

* ``track_operation("docs.generate")``: duration, outcomes, in-flight, input size and peak memory of each
  generation, a span with the framework and route count, and a log line;
* ``cache_lookup("ast" | "templates")``: the hit ratio of both caches;
* ``security_event``: missing or wrong API keys, path traversal in ``output_name``, oversized sources (the
  offending value is fingerprinted, never logged);
* ``docs.generated`` log lines with the seed's extra fields (framework, routes_discovered, generation_time_ms,
  output_format);
* ``/health`` (version, timestamp, uptime) and ``/health/<check>`` for ast_parsing, template_engine, filesystem
  and cache; ``/health/ready`` runs them all (the cache is not required: without it generation is slower).

Per-environment settings are in environments/*.env (otel-dist's profiles do the rest).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from string import Template
from typing import Any

import redis
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

import otel_dist
from examples.doc_generator.generator import TEMPLATES, Analysis, analyse, render

SERVICE = os.environ.get("OTEL_SERVICE_NAME", "doc-generator")
VERSION = "1.0.0"
OUTPUT_DIR = Path(os.environ.get("DOCGEN_OUTPUT_DIR", "/tmp/docgen"))  # noqa: S108 - a default for trying it out
API_KEYS = frozenset(k for k in os.environ.get("DOCGEN_API_KEYS", "").split(",") if k)
MAX_SOURCE_BYTES = int(os.environ.get("DOCGEN_MAX_SOURCE_BYTES", str(256 * 1024)))
AST_TTL_SECONDS = 3600
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

cache = redis.Redis.from_url(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), socket_timeout=0.5, socket_connect_timeout=0.5
)
_templates: dict[str, tuple[Template, Template]] = {}


def templates(fmt: str) -> dict[str, tuple[Template, Template]]:
    """The compiled templates, cached in the process (counted as the "templates" cache)."""
    otel_dist.cache_lookup("templates", hit=fmt in _templates)
    if fmt not in _templates:
        page, item = TEMPLATES[fmt]
        _templates[fmt] = (Template(page), Template(item))
    return _templates


def check_ast_parsing() -> dict[str, Any]:
    return {"routes": len(analyse('@app.get("/ping")\ndef ping(): ...').routes)}


def check_template_engine() -> dict[str, Any]:
    return {"bytes": len(render(analyse(""), "markdown", "health", templates("markdown")))}


app = FastAPI(title="doc-generator", version=VERSION)
health = otel_dist.HealthChecks(version=VERSION)
health.add("ast_parsing", check_ast_parsing, timeout=1.0)
health.add("template_engine", check_template_engine, timeout=1.0)
OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
health.add("filesystem", otel_dist.disk_space_check(str(OUTPUT_DIR), min_free_bytes=100 << 20))
health.add("cache", otel_dist.redis_check(cache), timeout=1.0, required=False)
otel_dist.configure(app=app, health=health, service_name=SERVICE, service_version=VERSION)
log = otel_dist.get_logger("doc_generator")


class GenerateRequest(BaseModel):
    source: str
    format: str = "markdown"
    output_name: str = "api.md"
    title: str = "API"


def _authenticate(api_key: str | None) -> None:
    if not api_key:
        otel_dist.security_event("auth_failure", reason="missing_api_key")
        raise HTTPException(status_code=401, detail="an X-API-Key header is required")
    if api_key not in API_KEYS:
        otel_dist.security_event("auth_failure", reason="bad_api_key", offending=api_key)
        raise HTTPException(status_code=401, detail="unknown API key")


def _validate(request: GenerateRequest) -> None:
    if not _SAFE_NAME.match(request.output_name):
        reason = "path_traversal" if ("/" in request.output_name or ".." in request.output_name) else "bad_name"
        otel_dist.security_event("rejected_input", reason=reason, offending=request.output_name)
        raise HTTPException(status_code=400, detail="output_name must be a plain file name")
    if len(request.source.encode()) > MAX_SOURCE_BYTES:
        otel_dist.security_event("validation_failure", reason="source_too_large", size=len(request.source))
        raise HTTPException(status_code=413, detail=f"source larger than {MAX_SOURCE_BYTES} bytes")
    if request.format not in TEMPLATES:
        raise HTTPException(status_code=422, detail=f"format must be one of {', '.join(TEMPLATES)}")


def _analysis(source: str) -> Analysis:
    """The AST analysis, from Redis when this source was seen before; a cache outage only costs time."""
    key = "ast:" + hashlib.sha256(source.encode()).hexdigest()
    try:
        cached = cache.get(key)
    except redis.RedisError:
        log.warning("cache.unavailable", cache="ast")
        cached = None
    otel_dist.cache_lookup("ast", hit=cached is not None)
    if cached is not None:
        return Analysis.from_json(json.loads(cached))
    analysis = analyse(source)
    with contextlib.suppress(redis.RedisError):
        cache.set(key, json.dumps(analysis.to_json()), ex=AST_TTL_SECONDS)
    return analysis


@app.post("/generate")
def generate(request: GenerateRequest, x_api_key: str | None = Header(default=None)) -> dict[str, Any]:
    _authenticate(x_api_key)
    _validate(request)
    started = time.perf_counter()
    try:
        with otel_dist.track_operation(
            "docs.generate",
            attributes={"output.format": request.format},
            input_size=len(request.source.encode()),
            track_memory=True,
        ) as operation:
            analysis = _analysis(request.source)
            document = render(analysis, request.format, request.title, templates(request.format))
            operation.set_attribute("app.framework", analysis.framework)
            operation.set_attribute("doc.routes_count", len(analysis.routes))
            operation.set_attribute("doc.ast_nodes", analysis.nodes)
    except SyntaxError as error:
        raise HTTPException(status_code=422, detail=f"the source is not valid Python: {error.msg}") from None
    (OUTPUT_DIR / request.output_name).write_text(document)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "docs.generated",
        framework=analysis.framework,
        routes_discovered=len(analysis.routes),
        generation_time_ms=elapsed_ms,
        output_format=request.format,
        ast_nodes_processed=analysis.nodes,
    )
    return {"output": request.output_name, "routes": len(analysis.routes), "framework": analysis.framework}
