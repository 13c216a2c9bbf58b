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
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from email.utils import parsedate_to_datetime
from functools import cache
from http import HTTPStatus
from typing import Any, Final

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
        self._not_before = 0.0  # time.monotonic() before which the collector asked not to be sent anything
        self._closed = threading.Event()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        data: bytes | None = None,
    ) -> BaseHTTPResult:
        wait = self._not_before - time.monotonic()
        if wait > 0:
            # Hold the batch (not the application: this is the exporter's thread) until the time the collector
            # named, at most one export timeout; a shutdown interrupts the wait.
            limit = wait if timeout is None else min(wait, max(timeout, 0.0))
            if self._closed.wait(limit):
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
                self._not_before = time.monotonic() + seconds
        if result.error is None:
            error = refusal(status)(f"HTTP {status} {result.reason or ''}".strip())
            result = dataclasses.replace(result, error=error)
        return result

    def is_connection_error(self, exception: Exception | None) -> bool:
        return self._inner.is_connection_error(exception)

    def close(self) -> None:
        self._closed.set()
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
