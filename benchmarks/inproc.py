"""In-process driver: requests straight through the ASGI app of ``bench_app.py`` (no server, no sockets).

Run by the harness with a variant's interpreter and environment variables (the same ones its server gets)::

    python benchmarks/inproc.py cpu --requests 3000 --result out.json
    valgrind --tool=callgrind --instr-atstart=no python benchmarks/inproc.py callgrind --lib callgrind_ctl.so
    python benchmarks/inproc.py profile --requests 3000 --profile-out full.pstats

``cpu``: CPU per request of the main thread (the request path) and of the whole process including the export
of what the requests produced (traces and logs are flushed inside the measured window; metrics are exported on
their own interval and are not). ``callgrind``: switches callgrind's instrumentation on for exactly the
measured requests (through a tiny C helper, ``callgrind_ctl.c``), so the count excludes start-up and warm-up.
``profile``: cProfile over the measured requests. Stand-alone on purpose: only the stdlib and the app's own
dependencies are needed, so it runs in every benchmark environment.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def load_app(wrapper: bool) -> ASGIApp:
    if wrapper:  # what opentelemetry-instrument's sitecustomize does before the program runs
        from opentelemetry.instrumentation.auto_instrumentation import initialize

        initialize()
    sys.path.insert(0, str(BENCH_DIR))
    import bench_app  # type: ignore[import-not-found,unused-ignore]  # found through sys.path, above

    app: ASGIApp = bench_app.app
    return app


class Driver:
    """Lifespan start-up, then GET /items/42?q=bench as many times as asked, then lifespan shut-down."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.statuses: dict[int, int] = {}
        self._lifespan_in: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"}, "state": self.state}

        async def run() -> None:
            await self.app(scope, self._lifespan_in.get, self._lifespan_out.put)

        self._lifespan_task = asyncio.get_running_loop().create_task(run())
        await self._lifespan_in.put({"type": "lifespan.startup"})
        message = await self._lifespan_out.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan start-up failed: {message}")

    async def shutdown(self) -> None:
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        await self._lifespan_out.get()
        if self._lifespan_task is not None:
            await self._lifespan_task

    async def request(self) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/items/42",
            "raw_path": b"/items/42",
            "query_string": b"q=bench",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": dict(self.state),
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                self.statuses[status] = self.statuses.get(status, 0) + 1

        await self.app(scope, receive, send)

    async def requests(self, n: int) -> None:
        for _ in range(n):
            await self.request()


def flush_traces_and_logs() -> None:
    """Export what the requests produced (spans, log records) now; metrics keep their own interval."""
    from opentelemetry import _logs, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["cpu", "callgrind", "profile"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--wrapper", action="store_true", help="initialise like opentelemetry-instrument does")
    parser.add_argument("--lib", help="callgrind_ctl.so (callgrind mode)")
    parser.add_argument("--profile-out", help="pstats file (profile mode)")
    parser.add_argument("--result", help="write the JSON result here")
    args = parser.parse_args()

    app = load_app(args.wrapper)
    loop = new_loop()
    driver = Driver(app)
    loop.run_until_complete(driver.startup())
    loop.run_until_complete(driver.requests(args.warmup))
    flush_traces_and_logs()
    result: dict[str, Any] = {"mode": args.mode, "requests": args.requests, "setup": os.environ.get("BENCH_SETUP")}

    if args.mode == "cpu":
        wall0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
        loop.run_until_complete(driver.requests(args.requests))
        cpu1, main1 = time.process_time(), time.thread_time()
        flush_traces_and_logs()
        cpu2, wall2 = time.process_time(), time.perf_counter()
        per = 1e6 / args.requests
        result |= {
            "main_thread_us": (main1 - main0) * per,
            "process_us_before_flush": (cpu1 - cpu0) * per,
            "process_us_with_export": (cpu2 - cpu0) * per,
            "wall_s": wall2 - wall0,
        }
    elif args.mode == "callgrind":
        control = ctypes.CDLL(args.lib)
        control.bench_start()
        loop.run_until_complete(driver.requests(args.requests))
        control.bench_stop()
    else:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(driver.requests(args.requests))
        profiler.disable()
        profiler.dump_stats(args.profile_out)

    result["statuses"] = {str(k): v for k, v in driver.statuses.items()}
    loop.run_until_complete(driver.shutdown())
    if args.result:
        Path(args.result).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
