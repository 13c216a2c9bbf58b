"""Seed 001 as a service: ZIP archives of documentation in, Markdown out, instrumented by one ``configure()``.

    OTEL_SERVICE_NAME=zip-service OTEL_METRICS_EXPORTER=prometheus \
    OTEL_DIST_PROMETHEUS_MULTIPROCESS_DIR=/tmp/zip-metrics uvicorn examples.zip_service.app:app --port 8000

* ``POST /api/v1/convert`` (the archive as the body): 200 with the result's ID and sizes; 413/422 for an archive
  refused before extraction (a security event); 422 for a damaged one (its extraction fails); 507 when the disk
  is full.
* ``GET /api/v1/results/{id}``: the Markdown.
* ``/health`` (liveness), ``/health/ready`` and ``/health/disk`` (at least ``ZIP_MIN_FREE_BYTES`` free where the
  work goes), ``/metrics`` in pull mode (``OTEL_METRICS_EXPORTER=prometheus`` with a multiprocess directory: the
  app serves it itself, as the seed's ``curl localhost:8000/metrics`` expects).

``ZIP_WORK_DIR`` holds the workspaces and results (default: a folder in the temporary directory); point
``OTEL_DIST_FILESYSTEM_PATHS`` at it so the free-disk metric and alert watch that filesystem.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import otel_dist
from examples.zip_service.converter import ArchiveRejected, convert, extract, inspect

WORK_DIR = Path(os.environ.get("ZIP_WORK_DIR", Path(tempfile.gettempdir()) / "zip-service"))
MIN_FREE_BYTES = int(os.environ.get("ZIP_MIN_FREE_BYTES", str(1 << 30)))
WORK_DIR.mkdir(parents=True, exist_ok=True)

app = FastAPI(title="zip-service (otel-dist example, seed 001)")
health = otel_dist.HealthChecks(version="1.0.0")
health.add("disk", otel_dist.disk_space_check(str(WORK_DIR), min_free_bytes=MIN_FREE_BYTES))
otel_dist.configure(app=app, health=health, service_name=os.environ.get("OTEL_SERVICE_NAME", "zip-service"))
log = otel_dist.get_logger("zip_service.app")
_RESULT_ID = re.compile(r"^[0-9a-f]{32}$")


@app.post("/api/v1/convert", response_model=None)
async def convert_archive(request: Request) -> dict[str, Any] | JSONResponse:
    blob = await request.body()
    try:
        archive = inspect(blob)
    except ArchiveRejected as error:
        status = 413 if error.reason.startswith("too_large") else 422
        return JSONResponse({"error": "rejected", "reason": error.reason, "detail": error.detail}, status_code=status)
    result_id = uuid.uuid4().hex
    extracted = None
    try:
        extracted = extract(archive, WORK_DIR / "work", upload_size=len(blob))
        written = convert(extracted, WORK_DIR / "results" / f"{result_id}.md")
    except zipfile.BadZipFile as error:  # a damaged member (bad CRC): the extraction failed, the upload is at fault
        return JSONResponse({"error": "damaged_archive", "detail": str(error)[:200]}, status_code=422)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        (WORK_DIR / "results" / f"{result_id}.md").unlink(missing_ok=True)
        log.error("conversion.disk_full", work_dir=str(WORK_DIR))
        return JSONResponse({"error": "disk_full", "request_id": otel_dist.get_request_id()}, status_code=507)
    finally:
        if extracted is not None:
            shutil.rmtree(extracted.workspace, ignore_errors=True)
    return {"id": result_id, "files": extracted.files, "extracted_bytes": extracted.size, "markdown_bytes": written}


@app.get("/api/v1/results/{result_id}", response_class=PlainTextResponse)
async def result(result_id: str) -> str:
    path = WORK_DIR / "results" / f"{result_id}.md"
    if not _RESULT_ID.match(result_id) or not path.is_file():
        raise HTTPException(status_code=404, detail="no such result")
    return path.read_text(encoding="utf-8")
