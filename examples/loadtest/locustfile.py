"""Load for the example services, bounded in users, requests and time, and for loopback hosts only.

Run it through ``python -m otel_dist.stack.loadtest`` (which enforces the bounds and reads the results), or
directly::

    locust -f examples/loadtest/locustfile.py --headless -u 4 -r 4 -t 30s --host http://127.0.0.1:8000 ParserUser

``LOADTEST_MAX_REQUESTS`` (default 1000) stops the run after that many requests, whatever ``--run-time`` says.
Each request carries its own ``X-Request-ID`` (``load-<user>-<n>``), so any one of them can be found in the logs.
The users:

* ``ExampleApiUser``: the example FastAPI app (examples/fastapi_app): item reads, missing items, unhandled
  exceptions and slow requests, in the demo's proportions;
* ``ParserUser``: the parser service (examples/parser_service): small, medium and large documents 10:5:1, as
  seed 000's load test weighs them, and now and then one the strict profile rejects;
* ``ZipUser``: the ZIP-to-docs service (examples/zip_service): archives of a few pages converted and fetched,
  and now and then an upload that is not an archive (refused, a security event).
"""

from __future__ import annotations

import io
import itertools
import os
import zipfile
from typing import Any, ClassVar

import gevent
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser

from otel_dist.stack.loadtest import is_loopback

MAX_REQUESTS = int(os.environ.get("LOADTEST_MAX_REQUESTS", "1000"))
_tickets = itertools.count(1)  # requests started: a user stops once none are left
_done = itertools.count(1)  # requests answered: the run ends when the last ticket's request is
_user_ids = itertools.count(1)


@events.test_start.add_listener  # type: ignore[untyped-decorator]  # locust is untyped
def _loopback_only(environment: Environment, **_: Any) -> None:
    if not is_loopback(environment.host or ""):
        raise SystemExit(f"loadtest: refusing a non-loopback host {environment.host!r}: this load is for 127.0.0.1")


@events.request.add_listener  # type: ignore[untyped-decorator]
def _bounded(**_: Any) -> None:
    # Exactly MAX_REQUESTS requests, each answered: tickets stop new ones, and the run ends once the last one is
    # answered (nothing is in flight then, so the server saw exactly what the stats count). The quit waits for
    # the next turn of the loop so that locust's own statistics record this request first.
    if next(_done) >= MAX_REQUESTS:
        runner = _environment.runner if _environment is not None else None
        if runner is not None:
            gevent.spawn_later(0, runner.quit)


_environment: Environment | None = None


@events.init.add_listener  # type: ignore[untyped-decorator]
def _keep(environment: Environment, **_: Any) -> None:
    global _environment
    _environment = environment


class _Traced(HttpUser):
    """A user whose every request has its own X-Request-ID."""

    abstract = True
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        if not is_loopback(self.host or ""):
            raise StopUser()
        self.user_id = next(_user_ids)
        self.sent = itertools.count(1)

    def headers(self) -> dict[str, str]:
        """The next request's headers; called once per request, before it is sent, so it also takes its ticket."""
        if next(_tickets) > MAX_REQUESTS:
            raise StopUser()
        return {"X-Request-ID": f"load-{self.user_id}-{next(self.sent):06d}"}


class ExampleApiUser(_Traced):
    """examples/fastapi_app: GET /items/{id} (200, and 404 for 404), /fail (500) and /slow."""

    @task(20)
    def read_item(self) -> None:
        item = next(self.sent) % 50 + 1
        self.client.get(f"/items/{item}", headers=self.headers(), name="/items/{item_id}")

    @task(3)
    def missing_item(self) -> None:
        with self.client.get("/items/404", headers=self.headers(), name="/items/{item_id}", catch_response=True) as r:
            if r.status_code == 404:
                r.success()

    @task(1)
    def failing(self) -> None:
        with self.client.get("/fail", headers=self.headers(), catch_response=True) as response:
            if response.status_code == 500:
                response.success()  # an unhandled exception on purpose: the 500 is the expected answer

    @task(1)
    def slow(self) -> None:
        self.client.get("/slow?seconds=0.3", headers=self.headers(), name="/slow")


def _document(size: int, seed: int) -> str:
    """A Markdown document of about ``size`` bytes: headings, paragraphs with links, a table, a code block."""
    block = (
        f"# Section {seed}\n\nSome text with a [link](https://example.org/{seed}) and ![image](img/{seed}.png).\n\n"
        "| name | value |\n|------|-------|\n| a | 1 |\n\n```python\nprint('hello')\n```\n\n"
    )
    return (block * (size // len(block) + 1))[:size]


class ParserUser(_Traced):
    """examples/parser_service: POST /parse with small (5 kB), medium (50 kB) and large (300 kB) documents."""

    corpus: ClassVar[dict[str, str]] = {
        "small": _document(5_000, 1),
        "medium": _document(50_000, 2),
        "large": _document(300_000, 3),
    }

    def _parse(self, size: str, profile: str = "moderate", expected: int = 200) -> None:
        body = {"content": self.corpus[size], "document_type": "markdown", "security_profile": profile}
        with self.client.post(
            "/parse", json=body, headers=self.headers(), name=f"/parse {size} {profile}", catch_response=True
        ) as response:
            if response.status_code == expected:
                response.success()
            else:
                response.failure(f"expected {expected}, got {response.status_code}")

    @task(10)
    def small(self) -> None:
        self._parse("small")

    @task(5)
    def medium(self) -> None:
        self._parse("medium")

    @task(1)
    def large(self) -> None:
        self._parse("large", "permissive")

    @task(1)
    def rejected(self) -> None:
        self._parse("large", "strict", expected=413)  # above the strict profile's 100 kB: a security event


def _archive(pages: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for page in range(pages):
            out.writestr(f"docs/page-{page}.md", _document(4_000, seed + page))
    return buffer.getvalue()


class ZipUser(_Traced):
    """examples/zip_service: POST /api/v1/convert (a ZIP as the body), GET the result, and refused uploads."""

    archives: ClassVar[list[bytes]] = [_archive(pages, pages) for pages in (1, 5, 20)]

    @task(10)
    def convert(self) -> None:
        blob = self.archives[next(self.sent) % len(self.archives)]
        headers = {**self.headers(), "Content-Type": "application/zip"}
        with self.client.post("/api/v1/convert", data=blob, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"expected 200, got {response.status_code}")
                return
            result = response.json()["id"]
        self.client.get(f"/api/v1/results/{result}", headers=self.headers(), name="/api/v1/results/{result_id}")

    @task(1)
    def not_an_archive(self) -> None:
        with self.client.post(
            "/api/v1/convert",
            data=b"not a zip",
            headers=self.headers(),
            name="/api/v1/convert (refused)",
            catch_response=True,
        ) as response:
            if response.status_code == 422:
                response.success()
