"""The HTTP transport under the OTLP/HTTP exporters: TLS from Settings, Retry-After kept, refusals counted.

The SDK's exporters (opentelemetry-exporter-otlp-proto-http 1.45.2) already retry 429/502/503/504 and connection
errors with backoff and honour ``Retry-After`` *within one batch* (giving up once the wait would outlast the
export timeout). Measured against the real collector (tests/reliability), three gaps remained, closed here,
in the transport they accept (``_transport=``), without touching encoding or batching:

* **Retry-After across batches.** When a batch gives up, the next one was sent at once (20 ms later), though the
  collector had asked for seconds of quiet. The transport remembers the time the collector named and holds the
  next request until then (at most one export timeout; the exporter thread waits, never a request thread).
* **Refusals were counted as successes.** A batch dropped after a 429/503 answer carries no exception, and the
  SDK's ``otel.sdk.exporter.*.exported`` counter then records it without ``error.type``. The transport attaches
  an exception named after the status (``ServiceUnavailable``, ``TooManyRequests``, ...) to every non-2xx
  answer, so the drop is counted with that ``error.type``.
* **TLS settings from the environment behind our back.** Without a transport the exporters read
  ``OTEL_EXPORTER_OTLP_*CERTIFICATE``/``CLIENT_KEY`` themselves; here they come from the resolved Settings. And
  the configured CA is really used: requests lets ``REQUESTS_CA_BUNDLE`` override it (see ``_PinnedCASession``).

The gRPC exporters (opentelemetry-exporter-otlp-proto-grpc 1.45.2) retry UNAVAILABLE, RESOURCE_EXHAUSTED and the
other retryable codes with backoff, and count a batch they give up with ``error.type="_InactiveRpcError"`` (grpc's
private class name, the same for every code). They read a retry delay only from a trailer named
``google.rpc.retryinfo-bin``, which no gRPC server sends: servers put ``RetryInfo`` in the status details
(``grpc-status-details-bin``, a ``google.rpc.Status``), so the delay a collector names was ignored, within a batch
and across batches. :func:`gated_grpc_exporter` wraps the exporter's stub (the one call it makes per attempt) to do
what the HTTP transport does: the delay is read from the status details (and handed to the SDK's own retry loop
under the key it reads), the next batch is held until then, and the refusal is named after its code
(``ResourceExhausted``, ``Unavailable``, ``Unauthenticated``, ...).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from functools import cache
from http import HTTPStatus
from typing import Any, Final, TypeVar

import requests
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport

from otel_dist.settings import OtlpSignalSettings

#: Statuses after which the collector may name a time to come back (RFC 9110 Retry-After).
RETRY_AFTER_STATUSES: Final = frozenset({429, 502, 503, 504})


class CollectorRefused(Exception):
    """The collector answered an export with a non-2xx status; subclasses are named after the status."""

    status: int = 0


@cache
def refusal(status: int) -> type[CollectorRefused]:
    """The exception class for ``status``: ``ServiceUnavailable`` for 503, ``TooManyRequests`` for 429, ...

    Its name is what the SDK's exporter counters carry as ``error.type``.
    """
    try:
        name = HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        name = f"HTTPStatus{status}"
    return type(name, (CollectorRefused,), {"status": status, "__module__": __name__})


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delay-seconds or an HTTP-date); None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


class RetryGate:
    """When an exporter may send again: the time the collector named (Retry-After, RetryInfo), kept across batches.

    One per exporter. ``hold`` runs in the exporter's thread (a batch waits, never an application thread) and
    waits at most the given timeout; ``close`` (shutdown) interrupts it.
    """

    def __init__(self) -> None:
        self._not_before = 0.0  # time.monotonic() before which the collector asked not to be sent anything
        self._closed = threading.Event()

    def retry_after(self, seconds: float) -> None:
        """The collector asked for ``seconds`` of quiet."""
        self._not_before = time.monotonic() + seconds

    def hold(self, timeout: float | None) -> bool:
        """Wait until the named time, at most ``timeout`` seconds; False when shut down meanwhile."""
        wait = self._not_before - time.monotonic()
        if wait <= 0:
            return True
        limit = wait if timeout is None else min(wait, max(timeout, 0.0))
        return not self._closed.wait(limit)

    def close(self) -> None:
        self._closed.set()


class CollectorTransport(BaseHTTPTransport):
    """The SDK's requests transport, with the collector's Retry-After remembered and refusals made errors."""

    def __init__(self, otlp: OtlpSignalSettings, inner: BaseHTTPTransport | None = None) -> None:
        if inner is None:
            client_cert: str | tuple[str, str] | None = otlp.client_certificate
            if otlp.client_certificate and otlp.client_key:
                client_cert = (otlp.client_certificate, otlp.client_key)
            session = _PinnedCASession() if otlp.certificate else None
            inner = RequestsHTTPTransport(verify=otlp.certificate or True, cert=client_cert, session=session)
        self._inner = inner
        self._gate = RetryGate()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        # Hold the batch (not the application: this is the exporter's thread) until the time the collector named,
        # at most one export timeout; a shutdown interrupts the wait.
        if not self._gate.hold(timeout):
            return _Refused(error=ConnectionAbortedError("exporter shut down while waiting for Retry-After"))
        result = self._inner.request(method, url, headers=headers, timeout=timeout, data=data)
        status = result.status_code
        if status is None or 200 <= status < 400:  # what the SDK counts as success
            return result
        if status in RETRY_AFTER_STATUSES:
            try:
                seconds = retry_after_seconds(result.headers().get("retry-after"))
            except Exception:  # noqa: BLE001 - a malformed answer must not break the export
                seconds = None
            if seconds is not None:
                self._gate.retry_after(seconds)
        if result.error is None:
            error = refusal(status)(f"HTTP {status} {result.reason or ''}".strip())
            result = dataclasses.replace(result, error=error)
        return result

    def is_connection_error(self, exception: Exception | None) -> bool:
        return self._inner.is_connection_error(exception)

    def close(self) -> None:
        self._gate.close()
        self._inner.close()


class _PinnedCASession(requests.Session):
    """A session whose CA file is the configured one, whatever ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` say.

    requests lets those variables override ``session.verify`` on every request (psf/requests#3829), so
    ``OTEL_EXPORTER_OTLP_CERTIFICATE`` was silently ignored on machines that set them (Debian images, corporate
    proxies): exports to a collector with a private CA failed verification. Proxies still come from the
    environment.
    """

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        merged["verify"] = self.verify
        return merged


@dataclasses.dataclass(frozen=True, slots=True)
class _Refused(BaseHTTPResult):
    """A request not sent."""

    def content(self) -> bytes:
        return b""

    def headers(self) -> dict[str, Any]:
        return {}


# --- gRPC -------------------------------------------------------------------------------------------------

#: The trailer the SDK 1.45.2 reads a retry delay from (serialized ``google.rpc.RetryInfo``); no server sends it.
SDK_RETRY_INFO_KEY: Final = "google.rpc.retryinfo-bin"
#: Where gRPC servers (the collector's grpc-go among them) put the status details: a ``google.rpc.Status``.
STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"

Metadata = Sequence[tuple[str, str | bytes]]


def grpc_retry_delay(metadata: Metadata | None) -> float | None:
    """Seconds of a ``RetryInfo`` in a call's trailing metadata (status details or the SDK's key); None if absent."""
    from google.protobuf.message import DecodeError
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    infos: list[RetryInfo] = []
    for key, value in metadata or ():
        if not isinstance(value, bytes):
            continue
        try:
            if key == STATUS_DETAILS_KEY:
                status = Status.FromString(value)
                for detail in status.details:
                    if detail.Is(RetryInfo.DESCRIPTOR):
                        info = RetryInfo()
                        detail.Unpack(info)
                        infos.append(info)
            elif key == SDK_RETRY_INFO_KEY:
                infos.append(RetryInfo.FromString(value))
        except DecodeError:
            continue  # a malformed trailer must not break the export
    for info in infos:
        seconds = float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
        if math.isfinite(seconds):
            return max(seconds, 0.0)
    return None


def grpc_code_name(code_name: str) -> str:
    """``RESOURCE_EXHAUSTED`` -> ``ResourceExhausted``: what the SDK's counters carry as ``error.type``."""
    return "".join(part.title() for part in code_name.split("_")) or "Unknown"


@cache
def _grpc_refused_base() -> type[Exception]:
    import grpc

    class GrpcRefused(grpc.RpcError):  # type: ignore[misc]
        """A failed export call, named after its status code; answers what the SDK asks of an RpcError."""

        def __init__(self, code: Any, details: str | None, metadata: Metadata) -> None:
            super().__init__(f"{code.name}: {details or ''}".strip())
            self._code, self._details, self._metadata = code, details, tuple(metadata)

        def code(self) -> Any:
            return self._code

        def details(self) -> str | None:
            return self._details

        def trailing_metadata(self) -> Metadata:
            return self._metadata

    GrpcRefused.__module__ = __name__
    return GrpcRefused


@cache
def grpc_refusal(code_name: str) -> type[Exception]:
    """The RpcError subclass for a status code: ``ResourceExhausted`` for RESOURCE_EXHAUSTED, ..."""
    return type(grpc_code_name(code_name), (_grpc_refused_base(),), {"__module__": __name__})


class GatedStub:
    """An OTLP service stub whose ``Export`` waits for the collector's RetryInfo and names its refusals."""

    def __init__(self, stub: Any, gate: RetryGate) -> None:
        self._stub = stub
        self._gate = gate

    def Export(
        self, request: Any, metadata: Metadata | None = None, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        import grpc

        # As over HTTP: wait at most one call timeout for the time named, then make the call with its own timeout.
        # Taking the wait out of the call's timeout would leave it nothing when the wait uses the whole budget: the
        # call would fail locally (DEADLINE_EXCEEDED) without ever reaching the collector.
        if not self._gate.hold(timeout):
            raise grpc_refusal("CANCELLED")(grpc.StatusCode.CANCELLED, "exporter shut down while held", ())
        try:
            return self._stub.Export(request=request, metadata=metadata, timeout=timeout, **kwargs)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
            details = error.details() if callable(getattr(error, "details", None)) else str(error)
            trailing = getattr(error, "trailing_metadata", None)
            received = tuple(trailing() or ()) if callable(trailing) else ()
            seconds = grpc_retry_delay(received)
            if seconds is not None:
                self._gate.retry_after(seconds)
                if not any(key == SDK_RETRY_INFO_KEY for key, _ in received):
                    # The SDK's own retry loop then waits the named delay between the attempts of this batch.
                    received += ((SDK_RETRY_INFO_KEY, _retry_info_bytes(seconds)),)
            raise grpc_refusal(code.name)(code, details, received) from error


def _retry_info_bytes(seconds: float) -> bytes:
    from google.rpc.error_details_pb2 import RetryInfo

    info = RetryInfo()
    info.retry_delay.seconds = int(seconds)
    info.retry_delay.nanos = int((seconds - int(seconds)) * 1e9)
    return bytes(info.SerializeToString())


_E = TypeVar("_E", bound=type)


@cache
def gated_grpc_exporter(exporter_class: _E) -> _E:
    """A subclass of an SDK gRPC exporter whose stub is a :class:`GatedStub` (also after it reconnects).

    Relies on two internals of opentelemetry-exporter-otlp-proto-grpc 1.45.2 (``_initialize_channel_and_stub``
    and the ``_client`` stub it sets; tests/unit/test_transport.py fails if they change): the public API offers no
    hook around the export call.
    """

    base: Any = exporter_class

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self._otel_dist_gate = RetryGate()  # before the base's __init__, which opens the channel
        base.__init__(self, *args, **kwargs)

    def _initialize_channel_and_stub(self: Any) -> None:
        base._initialize_channel_and_stub(self)
        self._client = GatedStub(self._client, self._otel_dist_gate)

    def shutdown(self: Any, *args: Any, **kwargs: Any) -> Any:
        self._otel_dist_gate.close()
        return base.shutdown(self, *args, **kwargs)

    namespace = {
        "__init__": __init__,
        "_initialize_channel_and_stub": _initialize_channel_and_stub,
        "shutdown": shutdown,
        "__module__": __name__,
        "__doc__": exporter_class.__doc__,
    }
    return type(exporter_class.__name__, (exporter_class,), namespace)  # type: ignore[return-value]
