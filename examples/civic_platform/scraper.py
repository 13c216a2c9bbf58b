"""Seed 003's scrapers: one short-lived process per run, reported by otel_dist.batch_job.

    python -m examples.civic_platform.scraper bills https://source.example/bills.json

Fetches the source's bills over HTTP (httpx: a client span and ``http.client.request.duration``), upserts each
valid one into PostgreSQL (counted as processed) and counts invalid ones as failed. The run records
``job.runs`` (outcome), ``job.run.duration``, ``job.items.processed/failed`` and, on success,
``job.last_success.timestamp``; batch_job flushes every signal before the process exits. Exit status 1 when
the run failed (the source or the database down).
"""

from __future__ import annotations

import os
import sys

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

import otel_dist
from examples.civic_platform.models import JURISDICTIONS, bills, metadata

log = otel_dist.get_logger("civic.scraper")


def scrape(name: str, source_url: str) -> None:
    engine = sa.create_engine(os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/civic"))
    otel_dist.instrument_engine(engine, pool_name="scraper")
    try:
        with otel_dist.batch_job(f"scrape.{name}") as job:
            response = httpx.get(source_url, timeout=10.0)
            response.raise_for_status()
            records = response.json()["bills"]
            with engine.begin() as connection:
                metadata.create_all(connection)
                for record in records:
                    if record.get("jurisdiction") not in JURISDICTIONS or not record.get("title"):
                        log.warning("scraper.invalid_record", record_id=record.get("id"))
                        job.failed()
                        continue
                    row = {**record, "source": name}
                    connection.execute(
                        insert(bills).values(**row).on_conflict_do_update(index_elements=["id"], set_=row)
                    )
                    job.processed()
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m examples.civic_platform.scraper NAME SOURCE_URL", file=sys.stderr)
        return 2
    otel_dist.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "civic-scrapers"), service_version="2.0.0")
    try:
        scrape(argv[0], argv[1])
    except Exception:  # noqa: BLE001 - the run's failure is recorded and logged by batch_job; the exit status says it
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
