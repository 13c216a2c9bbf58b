"""End to end, seed 004: the small API (examples/small_api) with a real PostgreSQL pool of 20 and a real Redis.

The app runs under uvicorn against the examples' stack (tests/e2e/example_stack.py) with its own rules loaded
(examples/small_api/monitoring/objectives.yaml, short ``for``). It is sent real traffic: item reads through the cache
(misses, then hits), creations (one duplicate: a failed INSERT), a slow report (a query above 1 s), 404s. Then:
the DB, pool and cache metrics are in Prometheus by their catalog names, a request's trace in Jaeger holds its
server span, its cache command and its query, its log lines are found by request_id, the health endpoints answer
with latency and details, and every query of the database dashboard returns the service's series. Last, a real
overload: more concurrent reports than the pool has connections. The pool saturates (and some callers time out
waiting), and DBConnectionPoolSaturated pages through the real Alertmanager.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from otel_dist.rules import catalog
from otel_dist.stack import http
from otel_dist.stack.example import ExampleApp, start_example_app
from otel_dist.stack.supervisor import REPO_ROOT
from tests.e2e.alerting_stack import assert_panel_returns_series, dashboard_panels, run_runbook_step, runbook_steps
from tests.e2e.conftest import ExampleStack, eventually
from tests.e2e.example_stack import (
    DELIVERY_WAIT,
    EXAMPLE_ENV,
    assert_emits,
    chats,
    fast_rendering,
    load_rules,
    pages,
    request_lines,
    trace_spans,
)
from tests.support.servers import PostgresServer, RedisServer

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

EXAMPLE = REPO_ROOT / "examples/small_api"
SPEC = EXAMPLE / "monitoring/objectives.yaml"
POOL_SIZE = 20
#: A caller gives up after this many seconds without a connection (the app's SMALL_API_POOL_TIMEOUT).
POOL_TIMEOUT = 2.0
#: How long each report of the overload holds its connection.
OVERLOAD_SECONDS = 25.0


@dataclass
class Running:
    app: ExampleApp
    service: str
    postgres: PostgresServer
    redis: RedisServer

    @property
    def url(self) -> str:
        return self.app.base_url


@pytest.fixture(scope="module")
def small_api(examples_stack: ExampleStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    stack = examples_stack.stack
    load_rules(stack, examples_stack.repo, fast_rendering(SPEC))
    service = f"small-api-{uuid.uuid4().hex[:6]}"
    with PostgresServer(database="small_api") as postgres, RedisServer() as redis_server:
        app = start_example_app(
            service,
            otlp_endpoint=stack.otlp_http_endpoint,
            log_path=tmp_path_factory.mktemp("small-api") / "app.log",
            app="examples.small_api.app:app",
            env={
                **EXAMPLE_ENV,
                "DATABASE_URL": postgres.url(),
                "REDIS_URL": redis_server.url,
                "SMALL_API_POOL_TIMEOUT": str(POOL_TIMEOUT),
                "OTEL_DIST_DB_SLOW_QUERY_THRESHOLD": "1.0",
            },
        )
        with app:
            _wait_serving(app.base_url)
            yield Running(app, service, postgres, redis_server)


def _wait_serving(base_url: str) -> None:
    def ready() -> None:
        assert httpx.get(f"{base_url}/health/ready", timeout=5).status_code == 200

    eventually(ready, timeout=30)


@dataclass
class Traffic:
    answers: list[httpx.Response]

    def request_id(self, index: int) -> str:
        return self.answers[index].headers["x-request-id"]

    def trace_id(self, index: int) -> str:
        return self.answers[index].headers["traceresponse"].split("-")[1]


@pytest.fixture(scope="module")
def traffic(small_api: Running) -> Traffic:
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=small_api.url, timeout=30) as client:

        def call(method: str, path: str, expected: int, **kwargs: Any) -> None:
            response = client.request(method, path, headers={"X-Request-ID": f"sa-{len(answers):03d}"}, **kwargs)
            assert response.status_code == expected, (path, response.text)
            answers.append(response)

        for number in range(1, 6):
            call("POST", "/items", 201, json={"name": f"item-{number}", "price_cents": 100 * number})
        call("POST", "/items", 409, json={"name": "item-1", "price_cents": 1})  # a failed INSERT
        for _ in range(3):
            for number in range(1, 6):
                call("GET", f"/items/{number}", 200)  # the first round misses the cache, the others hit
        call("GET", "/items/999", 404)
        call("GET", "/reports/daily", 200, params={"seconds": 1.2})  # a slow query
    return Traffic(answers)


def test_the_app_answers_with_the_cache_and_the_database(traffic: Traffic) -> None:
    first, again = traffic.answers[6], traffic.answers[11]
    assert first.json() == again.json() == {"id": 1, "name": "item-1", "price_cents": 100}


def test_database_pool_and_cache_metrics_are_in_prometheus(
    examples_stack: ExampleStack, small_api: Running, traffic: Traffic
) -> None:
    stack, service = examples_stack.stack, small_api.service
    names = (
        catalog.CLIENT_METRICS
        - {catalog.DB_CONNECTION_TIMEOUTS}
        - {n for n in catalog.CLIENT_METRICS if n.startswith("http_client_")}
    )
    assert_emits(stack, service, names)
    job = f'job="{service}"'

    def cache_counts() -> None:
        hits = http.promql_scalar(stack.prometheus_url, f'sum(cache_lookups_total{{{job}, cache_outcome="hit"}})')
        misses = http.promql_scalar(stack.prometheus_url, f'sum(cache_lookups_total{{{job}, cache_outcome="miss"}})')
        assert (hits, misses) == (10, 6)  # 5 misses, then 10 hits, and the missing item's miss

    eventually(cache_counts)
    pool = http.promql(stack.prometheus_url, f"db_client_connection_max{{{job}}}")
    assert [(s["metric"]["db_client_connection_pool_name"], s["value"][1]) for s in pool] == [("main", "20")]
    labels = {
        (s["metric"]["db_operation_name"], s["metric"].get("db_collection_name"), s["metric"].get("error_type"))
        for s in http.promql(stack.prometheus_url, f"db_client_operation_duration_seconds_count{{{job}}}")
    }
    assert {("SELECT", "items", None), ("INSERT", "items", None), ("INSERT", "items", "UniqueViolation")} <= labels
    slow_queries = (
        f"sum(db_client_operation_duration_seconds_count{{{job}}}) - "
        f'sum(db_client_operation_duration_seconds_bucket{{{job}, le=~"1|1\\\\.0"}})'
    )
    eventually(lambda: _equals(http.promql_scalar(stack.prometheus_url, slow_queries), 1))  # the report, above 1 s


def _equals(value: object, expected: object) -> None:
    assert value == expected


def test_a_request_trace_holds_its_cache_command_and_its_query(
    examples_stack: ExampleStack, small_api: Running, traffic: Traffic
) -> None:
    spans = trace_spans(examples_stack.stack, traffic.trace_id(6))  # GET /items/1: a miss, then the query
    names = sorted(span["name"] for span in spans)
    assert "GET /items/{item_id}" in names
    assert {"GET", "SET"} <= set(names)  # the Redis commands
    query = next(s for s in spans if s["name"] == "SELECT items")
    attributes = http.attributes(query["attributes"])
    assert attributes["db.system.name"] == "postgresql"
    assert "%(id_1)s" in attributes["db.query.text"]
    server = next(s for s in spans if s["name"] == "GET /items/{item_id}")
    assert query["parentSpanId"] == server["spanId"]


def test_the_slow_report_is_logged_with_its_statement_and_found_by_request_id(
    examples_stack: ExampleStack, small_api: Running, traffic: Traffic
) -> None:
    report = len(traffic.answers) - 1
    lines = request_lines(examples_stack.stack, small_api.service, traffic.request_id(report), at_least=3)
    events = {line["_msg"]: line for line in lines}
    assert {"db.query.slow", "report.done", "http.request"} <= set(events)
    slow = events["db.query.slow"]
    assert slow["db.query.text"].startswith("SELECT count(*) AS n, pg_sleep(%(seconds)s) FROM items")
    assert float(slow["duration_s"]) >= 1.2
    assert {line["trace_id"] for line in lines} == {traffic.trace_id(report)}


def test_the_health_endpoints_report_each_component(small_api: Running) -> None:
    live = httpx.get(f"{small_api.url}/health").json()
    assert live["status"] == "ok"
    assert live["version"] == "1.0.0"
    assert {"timestamp", "uptime_seconds"} <= set(live)
    db = httpx.get(f"{small_api.url}/health/db").json()["checks"]["db"]
    assert db["status"] == "ok"
    assert db["latency_ms"] > 0
    assert db["details"]["database"] == "small_api"
    assert db["details"]["pool"]["size"] == POOL_SIZE
    cache = httpx.get(f"{small_api.url}/health/cache").json()["checks"]["cache"]
    assert cache["status"] == "ok"
    assert cache["details"]["provider"] == "redis"
    assert cache["required"] is False


PANELS = dashboard_panels(SPEC.parent / "dashboards")
STEPS = runbook_steps(EXAMPLE / "runbooks")


def test_the_four_dashboards_of_the_seed() -> None:
    assert sorted({d for d, _, _ in PANELS}) == [
        "database.json",
        "overview.json",
        "runtime.json",
        "service-overview.json",
    ]


@pytest.mark.parametrize(("dashboard", "title", "expr"), PANELS, ids=[f"{d}:{t}" for d, t, _ in PANELS])
def test_every_dashboard_query_returns_the_service_series(
    examples_stack: ExampleStack, small_api: Running, overload: list[int], dashboard: str, title: str, expr: str
) -> None:
    assert httpx.get(f"{small_api.url}/health/ready").status_code == 200  # a probe: the health gauges
    url, service = examples_stack.stack.prometheus_url, small_api.service
    eventually(lambda: assert_panel_returns_series(url, service, dashboard, title, expr), timeout=90, interval=2.0)


@pytest.mark.parametrize(("alert", "index", "block"), STEPS, ids=[f"{a}:{b.lang}:{i}" for a, i, b in STEPS])
def test_every_step_of_the_examples_runbooks_runs(
    examples_stack: ExampleStack, small_api: Running, traffic: Traffic, alert: str, index: int, block: Any
) -> None:
    report = len(traffic.answers) - 1
    values = {
        "service": small_api.service,
        "request_id": traffic.request_id(report),
        "trace_id": traffic.trace_id(report),
        "env": "e2e",
    }
    eventually(lambda: run_runbook_step(examples_stack.stack, block, values))


@pytest.fixture(scope="module")
def overload(examples_stack: ExampleStack, small_api: Running, traffic: Traffic) -> list[int]:
    """More concurrent reports than the pool has connections, each holding one for OVERLOAD_SECONDS.

    The first 20 get a connection and hold it; the others wait POOL_TIMEOUT seconds and fail (500). While they
    run, the pool is 100 % in use: DBConnectionPoolSaturated must page. Returns the reports' statuses.
    """
    receiver, service = examples_stack.receiver, small_api.service
    with concurrent.futures.ThreadPoolExecutor(POOL_SIZE + 4) as pool:
        reports = [
            pool.submit(
                httpx.get,
                f"{small_api.url}/reports/overload",
                params={"seconds": OVERLOAD_SECONDS},
                headers={"X-Request-ID": f"overload-{n:02d}"},
                timeout=OVERLOAD_SECONDS + 30,
            )
            for n in range(POOL_SIZE + 4)
        ]
        receiver.wait_for(
            lambda: bool(pages(receiver, "DBConnectionPoolSaturated", service)),
            timeout=OVERLOAD_SECONDS - 2,
            what="the DBConnectionPoolSaturated page",
        )
        statuses = [future.result().status_code for future in reports]
    return statuses


def test_an_exhausted_pool_pages_through_alertmanager(
    examples_stack: ExampleStack, small_api: Running, overload: list[int]
) -> None:
    receiver, service = examples_stack.receiver, small_api.service
    assert sorted(overload) == [200] * POOL_SIZE + [500] * 4  # four waited POOL_TIMEOUT and gave up
    (page,) = pages(receiver, "DBConnectionPoolSaturated", service)
    assert page["payload"]["severity"] == "critical"
    assert page["links"][0]["href"].endswith("/DBConnectionPoolSaturated.md")
    assert "main" in page["payload"]["summary"]
    receiver.wait_for(
        lambda: bool(chats(receiver, "DBConnectionPoolSaturated", service, "critical")),
        timeout=DELIVERY_WAIT,
        what="the critical chat message",
    )

    def timeouts() -> None:
        query = f'sum(db_client_connection_timeouts_total{{job="{service}"}})'
        assert http.promql_scalar(examples_stack.stack.prometheus_url, query) == 4

    eventually(timeouts)
