"""The one application every variant serves (and the in-process drivers import).

``GET /items/{item_id}?q=...`` returns a small JSON object and writes one application log line through the
logger that fits the variant: stdlib ``logging`` (one plain line on stdout, and an exported OTel record where the
variant's instrumentation exports stdlib records) or ``otel_dist.get_logger`` (structlog: one JSON line and one
OTel record). The endpoint code is the same for every variant; only the set-up below differs, chosen by
``BENCH_SETUP``:

=========================== ========================================================================
``stdlib``                  nothing but stdlib logging (bare, and the ``opentelemetry-instrument`` variant,
                            whose instrumentation happens outside the app)
``prometheus``              prometheus-fastapi-instrumentator (``Instrumentator().instrument(app).expose(app)``)
``native``                  FastAPI's native telemetry; export set up by FASTAPI_OTEL_AUTO_CONFIGURE=true
``native_no_operation_spans`` the same with ``FastAPI(telemetry={"operation_spans": False})``
``otel_dist``               ``otel_dist.configure(app=app)``, every setting from the OTEL_* environment
``otel_dist_zero_code``     no call at all: ``opentelemetry-instrument`` with OTEL_PYTHON_DISTRO=otel_dist
=========================== ========================================================================

Serve with ``uvicorn --app-dir benchmarks bench_app:app``. Nothing here is specific to the harness.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI

SETUP: Final = os.environ.get("BENCH_SETUP", "stdlib")
STDLIB_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"

log_item: Callable[[int], None]


def _stdlib_logger() -> Callable[[int], None]:
    """A plain handler on stdout next to whatever handler an instrumentation put on the root logger."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(STDLIB_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logger = logging.getLogger("app")

    def log(item_id: int) -> None:
        logger.info("item.fetched item_id=%s", item_id)

    return log


def _structlog_logger() -> Callable[[int], None]:
    import otel_dist

    logger = otel_dist.get_logger("app")

    def log(item_id: int) -> None:
        logger.info("item.fetched", item_id=item_id)

    return log


app = FastAPI(telemetry={"operation_spans": False}) if SETUP == "native_no_operation_spans" else FastAPI()

if SETUP == "prometheus":
    from prometheus_fastapi_instrumentator import Instrumentator  # type: ignore[import-not-found,unused-ignore]

    Instrumentator().instrument(app).expose(app)

if SETUP == "otel_dist":
    import otel_dist

    otel_dist.configure(app=app)

if SETUP.startswith("otel_dist"):
    log_item = _structlog_logger()
elif SETUP in ("stdlib", "prometheus", "native", "native_no_operation_spans"):
    log_item = _stdlib_logger()
else:
    raise SystemExit(f"unknown BENCH_SETUP={SETUP!r}")


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    log_item(item_id)
    return {"item_id": item_id, "q": q, "name": "widget", "price": 9.99, "tags": ["a", "b"]}
