"""Database client telemetry for SQLAlchemy engines (sync and async): pools, queries, slow queries.

configure() applies it to every engine when SQLAlchemy is installed (``OTEL_DIST_INSTRUMENT_CLIENTS``): its
listeners sit on SQLAlchemy's ``Engine`` and ``Pool`` classes, so engines created before configure() are covered
as well as later ones. An engine's pool metrics start with its first connection; :func:`instrument_engine`
registers an engine at once and gives its pool a name of your choice::

    engine = create_async_engine(url, pool_size=20)
    otel_dist.instrument_engine(engine, pool_name="main")

What it records, with the OpenTelemetry database semantic conventions' names:

* per query, ``db.client.operation.duration`` (histogram, s) labelled ``db.system.name``, ``db.namespace``,
  ``db.operation.name`` (``SELECT``, ``INSERT``, ...), ``db.collection.name`` (the table, when the statement has
  exactly one) and, on failure, ``error.type`` (the driver's exception class); a CLIENT span
  ``SELECT bills`` with the same attributes, ``server.address``/``server.port`` and the statement with its
  literals replaced by ``?`` (``db.query.text``); above ``OTEL_DIST_DB_SLOW_QUERY_THRESHOLD`` seconds, one
  warning log event ``db.query.slow`` with the duration and the sanitized statement;
* per pool (``db.client.connection.pool.name``, default ``host:port/database``), read from the pool itself at
  each export: ``db.client.connection.count`` by ``db.client.connection.state`` (``used``, ``idle``),
  ``db.client.connection.max`` (QueuePool: size + max_overflow), ``db.client.connection.pending_requests``
  (callers waiting for a connection); and per checkout ``db.client.connection.wait_time`` (histogram, s) and
  ``db.client.connection.timeouts`` (the pool's TimeoutError).

Why not opentelemetry-instrumentation-sqlalchemy (0.66b2 installs next to our SDK): it emits only the
deprecated ``db.client.connections.usage``, counted from pool events, no operation duration, pool size,
pending requests, timeouts or wait time; it puts statements on spans unsanitized; and it reaches only engines
made through ``sqlalchemy.create_engine`` after it patched that name. Under ``opentelemetry-instrument`` it is
not loaded (otel_dist.distro), so queries are not traced twice.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, TracerProvider, use_span

__all__ = ["SQLAlchemyTelemetry", "database_check", "instrument_engine", "sanitize_statement"]

_SCOPE: Final = "otel_dist.db"
_log = structlog.get_logger(_SCOPE)

#: SQLAlchemy dialect name -> the semantic conventions' db.system.name.
DB_SYSTEMS: Final = {
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "sqlite": "sqlite",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}
#: The operation names recorded as db.operation.name; any other first keyword is recorded as OTHER, so a
#: metric label never takes an unbounded value.
OPERATIONS: Final = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "WITH", "VALUES", "CALL", "EXEC", "EXECUTE", "COPY",
    "TRUNCATE", "CREATE", "DROP", "ALTER", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW",
    "EXPLAIN", "ANALYZE", "VACUUM", "GRANT", "REVOKE", "LOCK", "REFRESH", "DO", "LISTEN", "NOTIFY", "PREPARE",
    "DEALLOCATE",
})  # fmt: skip
#: Longest db.query.text kept (the span attribute limit applies too).
MAX_STATEMENT: Final = 2048
_IDENTIFIER_MAX: Final = 64

_LEADING_COMMENTS = re.compile(r"^(?:\s*(?:--[^\n]*(?:\n|$)|/\*.*?\*/))*\s*", re.DOTALL)
_LITERALS = re.compile(
    r"""
      (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)      # $$...$$, $tag$...$tag$
    | (?P<estring>[Ee]'(?:[^'\\]|\\.|'')*')                  # E'...\'...'
    | (?P<string>'(?:[^']|'')*')                            # '...''...'
    | (?P<quoted>"(?:[^"]|"")*")                             # "identifier": kept
    | (?P<hex>\b0[xX][0-9A-Fa-f]+\b)
    | (?P<number>(?<![\w$:%.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\b)
    """,
    re.DOTALL | re.VERBOSE,
)
_TABLE_REFERENCE = re.compile(
    r"""\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?:ONLY\s+)?((?:"[^"]+"|[A-Za-z_][\w$]*)(?:\.(?:"[^"]+"|[A-Za-z_][\w$]*))?)(\s*,)?""",
    re.IGNORECASE,
)


def sanitize_statement(statement: str) -> str:
    """The statement with every literal (strings, numbers, dollar-quoted bodies) replaced by ``?``.

    Placeholders (``%(name)s``, ``$1``, ``:name``, ``?``) and quoted identifiers are kept; whitespace is
    collapsed and the result cut at :data:`MAX_STATEMENT` characters.
    """

    def replace(match: re.Match[str]) -> str:
        return match.group(0) if match.lastgroup == "quoted" else "?"

    text = " ".join(_LITERALS.sub(replace, statement).split())
    return text if len(text) <= MAX_STATEMENT else text[: MAX_STATEMENT - 3] + "..."


def _identifier(raw: str) -> str | None:
    name = raw.replace('"', "")
    return name if name and len(name) <= _IDENTIFIER_MAX and re.fullmatch(r"[\w$.]+", name) else None


@functools.lru_cache(maxsize=1024)
def _describe_text(statement: str) -> tuple[str, str | None, str]:
    """(db.operation.name, db.collection.name or None, sanitized statement) of a statement's text."""
    body = _LEADING_COMMENTS.sub("", statement, count=1)
    first = body.split(None, 1)[0].upper() if body.strip() else ""
    operation = first if first in OPERATIONS else "OTHER"
    sanitized = sanitize_statement(statement)
    references = _TABLE_REFERENCE.findall(sanitized)
    tables = {_identifier(name) for name, _comma in references}
    single = len(tables) == 1 and not any(comma for _name, comma in references)
    return operation, (tables.pop() if single else None), sanitized


def _compiled_collection(context: Any) -> str | None:
    """The one table of a Core/ORM statement, from SQLAlchemy's compiled form (no text parsing)."""
    statement = getattr(getattr(context, "compiled", None), "statement", None)
    if statement is None:
        return None
    table = getattr(statement, "table", None)  # INSERT, UPDATE, DELETE
    if table is not None and isinstance(getattr(table, "name", None), str):
        return _identifier(table.name)
    final_froms = getattr(statement, "get_final_froms", None)
    if final_froms is None:
        return None
    froms = final_froms()
    if len(froms) == 1 and isinstance(getattr(froms[0], "name", None), str) and hasattr(froms[0], "columns"):
        return _identifier(froms[0].name)
    return None


@dataclass
class _Engine:
    """What is known about one engine: its identity attributes and its pool."""

    pool_name: str
    system: str
    namespace: str | None
    address: str | None
    port: int | None
    pool: Any = None
    pending: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def metric_attributes(self) -> dict[str, str]:
        attributes = {"db.system.name": self.system}
        if self.namespace:
            attributes["db.namespace"] = self.namespace
        return attributes


@dataclass
class _Query:
    span: Any
    started: float
    operation: str
    collection: str | None
    statement: str


class SQLAlchemyTelemetry:
    """The listeners on SQLAlchemy's classes and the instruments they record into; one per configure().

    ``uninstrument()`` removes the listeners and the wrappers around the pools' ``connect``.
    """

    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider, slow_threshold: float):
        from opentelemetry import trace

        self.slow_threshold = slow_threshold
        provider = tracer_provider if tracer_provider is not None else trace.NoOpTracerProvider()
        self.tracer = provider.get_tracer(_SCOPE)
        meter = meter_provider.get_meter(_SCOPE)
        self.duration = meter.create_histogram(
            "db.client.operation.duration", unit="s", description="Duration of database client operations."
        )
        self.wait_time = meter.create_histogram(
            "db.client.connection.wait_time", unit="s", description="Time it took to obtain a connection from the pool."
        )
        self.timeouts = meter.create_counter(
            "db.client.connection.timeouts",
            unit="{timeout}",
            description="Pool checkouts that timed out waiting for a connection.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_count],
            unit="{connection}",
            description="Connections of the pool by state: used (checked out) or idle (in the pool).",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[self._observe_max],
            unit="{connection}",
            description="The most connections the pool opens (QueuePool: pool_size + max_overflow).",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            callbacks=[self._observe_pending],
            unit="{request}",
            description="Callers waiting for a connection from the pool.",
        )
        self._engines: weakref.WeakKeyDictionary[Any, _Engine] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._listening = False

    # --- registration --------------------------------------------------------------------------------------

    def listen(self) -> None:
        """Attach the listeners to SQLAlchemy's Engine and Pool classes (every engine, old and new)."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        for name, listener in self._engine_listeners():
            event.listen(Engine, name, listener)
        self._listening = True

    def _engine_listeners(self) -> list[tuple[str, Callable[..., Any]]]:
        return [
            ("engine_connect", self._on_engine_connect),
            ("before_cursor_execute", self._before_execute),
            ("after_cursor_execute", self._after_execute),
            ("handle_error", self._on_error),
        ]

    def uninstrument(self) -> None:
        """Remove the listeners and restore every wrapped pool."""
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        if self._listening:
            for name, listener in self._engine_listeners():
                if event.contains(Engine, name, listener):
                    event.remove(Engine, name, listener)
            self._listening = False
        with self._lock:
            for info in list(self._engines.values()):
                if info.pool is not None:
                    info.pool.__dict__.pop("connect", None)
            self._engines.clear()

    def register(self, engine: Any, pool_name: str | None = None) -> None:
        """Track ``engine`` (an Engine or AsyncEngine): its pool's metrics and connection waits."""
        engine = getattr(engine, "sync_engine", engine)
        with self._lock:
            info = self._engines.get(engine)
            if info is None:
                info = self._engines[engine] = self._describe(engine, pool_name)
            elif pool_name is not None and pool_name != info.pool_name:
                info.pool_name = self._unique(pool_name, engine)
            if info.pool is not engine.pool:  # first sight, or engine.dispose() made a new pool
                self._wrap_pool(engine.pool, info)

    def _describe(self, engine: Any, pool_name: str | None) -> _Engine:
        url = engine.url
        system = DB_SYSTEMS.get(engine.dialect.name, engine.dialect.name)
        namespace = url.database or None
        if pool_name is None:  # the semantic conventions' fallback: server.address:server.port/db.namespace
            server = f"{url.host}:{url.port}" if url.port else str(url.host)
            pool_name = f"{server}/{namespace or ''}" if url.host else (namespace or system)
        return _Engine(
            pool_name=self._unique(pool_name, engine),
            system=system,
            namespace=namespace,
            address=url.host,
            port=url.port,
        )

    def _unique(self, name: str, engine: Any) -> str:
        taken = {info.pool_name for other, info in self._engines.items() if other is not engine}
        candidate, number = name, 1
        while candidate in taken:
            number += 1
            candidate = f"{name}#{number}"
        return candidate

    def _wrap_pool(self, pool: Any, info: _Engine) -> None:
        """Time each checkout and count the waiting callers, around the pool's own connect()."""
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        if info.pool is not None:
            info.pool.__dict__.pop("connect", None)
        info.pool = pool
        original = type(pool).connect.__get__(pool)
        telemetry = self

        def connect() -> Any:
            with info.lock:
                info.pending += 1
            started = time.perf_counter()
            try:
                connection = original()
            except PoolTimeout:
                telemetry.timeouts.add(1, {"db.client.connection.pool.name": info.pool_name})
                raise
            finally:
                with info.lock:
                    info.pending -= 1
            telemetry.wait_time.record(
                time.perf_counter() - started, {"db.client.connection.pool.name": info.pool_name}
            )
            return connection

        pool.connect = connect

    def _on_engine_connect(self, connection: Any, *_args: Any) -> None:
        engine = connection.engine
        info = self._engines.get(engine)
        if info is None or info.pool is not engine.pool:
            self.register(engine)

    # --- pool observations ----------------------------------------------------------------------------------

    def _pools(self) -> Iterator[tuple[_Engine, Any]]:
        with self._lock:
            items = list(self._engines.values())
        for info in items:
            if info.pool is not None and hasattr(info.pool, "checkedout"):  # QueuePool and its subclasses
                yield info, info.pool

    def _observe_count(self, _options: CallbackOptions) -> Iterable[Observation]:
        for info, pool in self._pools():
            name = {"db.client.connection.pool.name": info.pool_name}
            yield Observation(pool.checkedout(), {**name, "db.client.connection.state": "used"})
            yield Observation(pool.checkedin(), {**name, "db.client.connection.state": "idle"})

    def _observe_max(self, _options: CallbackOptions) -> Iterable[Observation]:
        for info, pool in self._pools():
            overflow = getattr(pool, "_max_overflow", -1)
            if overflow >= 0:  # a negative max_overflow means no limit
                yield Observation(pool.size() + overflow, {"db.client.connection.pool.name": info.pool_name})

    def _observe_pending(self, _options: CallbackOptions) -> Iterable[Observation]:
        for info, _pool in self._pools():
            yield Observation(info.pending, {"db.client.connection.pool.name": info.pool_name})

    # --- queries --------------------------------------------------------------------------------------------

    def _info(self, connection: Any) -> _Engine:
        engine = connection.engine
        info = self._engines.get(engine)
        if info is None:
            self.register(engine)
            info = self._engines[engine]
        return info

    def _before_execute(
        self, connection: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool
    ) -> None:
        if context is None:
            return
        info = self._info(connection)
        operation, collection, sanitized = _describe_text(statement)
        collection = _compiled_collection(context) or collection
        attributes: dict[str, Any] = {**info.metric_attributes, "db.operation.name": operation}
        if collection:
            attributes["db.collection.name"] = collection
        target = collection or info.namespace
        span: Span
        if not is_instrumentation_enabled():  # suppressed (a health check's query): metrics only
            span = INVALID_SPAN
        else:
            span = self.tracer.start_span(
                f"{operation} {target}" if target and operation != "OTHER" else (target or info.system),
                kind=SpanKind.CLIENT,
                attributes=attributes,
            )
        if span.is_recording():
            span.set_attribute("db.query.text", sanitized)
            if info.address:
                span.set_attribute("server.address", info.address)
            if info.port:
                span.set_attribute("server.port", info.port)
        context._otel_dist_query = _Query(span, time.perf_counter(), operation, collection, sanitized)

    def _finish(self, connection: Any, query: _Query, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - query.started
        info = self._info(connection)
        attributes: dict[str, str] = {**info.metric_attributes, "db.operation.name": query.operation}
        if query.collection:
            attributes["db.collection.name"] = query.collection
        if error is not None:
            attributes["error.type"] = type(error).__qualname__
            query.span.set_attribute("error.type", attributes["error.type"])
            code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
            if isinstance(code, str):
                query.span.set_attribute("db.response.status_code", code)
            query.span.record_exception(error)
            query.span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"[:300]))
        self.duration.record(elapsed, attributes)
        if elapsed >= self.slow_threshold:
            fields: dict[str, Any] = {
                "duration_s": round(elapsed, 6),
                "threshold_s": self.slow_threshold,
                "db.system.name": info.system,
                "db.operation.name": query.operation,
                "db.collection.name": query.collection,
                "db.query.text": query.statement,
                "db.client.connection.pool.name": info.pool_name,
            }
            if info.namespace:
                fields["db.namespace"] = info.namespace
            if error is not None:
                fields["error.type"] = attributes["error.type"]
            with use_span(query.span):  # the line carries the query's trace and span IDs
                _log.warning("db.query.slow", **fields)
        query.span.end()

    def _after_execute(
        self, connection: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any, _many: bool
    ) -> None:
        query = getattr(context, "_otel_dist_query", None)
        if query is not None:
            context._otel_dist_query = None
            self._finish(connection, query, None)

    def _on_error(self, exception_context: Any) -> None:
        context = exception_context.execution_context
        query = getattr(context, "_otel_dist_query", None)
        if query is not None and exception_context.connection is not None:
            context._otel_dist_query = None
            self._finish(exception_context.connection, query, exception_context.original_exception)


_active: SQLAlchemyTelemetry | None = None


def instrument_sqlalchemy(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider, slow_threshold: float
) -> SQLAlchemyTelemetry:
    """Attach the listeners (configure() calls this when SQLAlchemy is installed); returns the instrumentor."""
    global _active
    telemetry = SQLAlchemyTelemetry(tracer_provider, meter_provider, slow_threshold)
    telemetry.listen()
    previous, _active = _active, telemetry
    if previous is not None:
        previous.uninstrument()
    return telemetry


def instrument_engine(engine: Any, *, pool_name: str | None = None) -> None:
    """Start the pool metrics of ``engine`` (Engine or AsyncEngine) now, under ``pool_name`` if given.

    Queries of every engine are recorded anyway once configure() ran; without this call an engine's pool
    appears with its first connection, named ``host:port/database``. Does nothing before configure() (or with
    ``OTEL_DIST_INSTRUMENT_CLIENTS=false``).
    """
    if _active is not None and _active._listening:
        _active.register(engine, pool_name)


def database_check(engine: Any, *, query: str = "SELECT 1") -> Callable[..., Any]:
    """A health check (for :class:`otel_dist.HealthChecks`) that runs ``query`` on a connection of ``engine``.

    Works with an Engine (the check runs in the health pool's thread) or an AsyncEngine (a coroutine). Its
    details name the database: ``{"database": "app", "pool": {"used": 3, "size": 20}}``.
    """
    from sqlalchemy import text

    sync_engine = getattr(engine, "sync_engine", engine)

    def details() -> dict[str, Any]:
        out: dict[str, Any] = {"database": sync_engine.url.database}
        pool = sync_engine.pool
        if hasattr(pool, "checkedout"):
            out["pool"] = {"used": pool.checkedout(), "size": pool.size()}
        return out

    if hasattr(engine, "sync_engine"):

        async def check_async() -> dict[str, Any]:
            async with engine.connect() as connection:
                await connection.execute(text(query))
            return details()

        return check_async

    def check() -> dict[str, Any]:
        with engine.connect() as connection:
            connection.execute(text(query))
        return details()

    return check
