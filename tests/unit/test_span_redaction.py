"""RedactingSpanExporter: secrets leave spans on their way out, with its per-key and per-URL caches warm or cold."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext

from otel_dist.scrubbing import REDACTED, Redactor
from otel_dist.traces import RedactingSpanExporter


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _span(attributes: dict[str, object]) -> ReadableSpan:
    return ReadableSpan(
        name="GET /", context=SpanContext(1, 2, is_remote=False), resource=Resource({}), attributes=attributes
    )


def test_secrets_are_blanked_every_time_and_clean_spans_pass_unchanged() -> None:
    inner = _Collect()
    exporter = RedactingSpanExporter(inner, Redactor(extra=["pin"]))
    clean = _span({"http.route": "/items/{id}", "url.query": "q=1", "http.response.status_code": 200})
    secret = {
        "url.query": "q=1&token=abc",
        "url.full": "https://h/p?api_key=k&x=2",
        "user.pin": "1234",
        "http.url": 7,
        "db.password": "p",
    }
    for _ in range(3):  # cold, then warm caches: the same verdicts
        exporter.export([clean, _span(secret)])
    assert all(span is clean for span in inner.spans[::2])
    for span in inner.spans[1::2]:
        assert dict(span.attributes or {}) == {
            "url.query": f"q=1&token={REDACTED}",
            "url.full": f"https://h/p?api_key={REDACTED}&x=2",
            "user.pin": REDACTED,
            "http.url": 7,  # not a string: nothing to parse
            "db.password": REDACTED,
        }


def test_the_caches_stay_bounded() -> None:
    exporter = RedactingSpanExporter(_Collect(), Redactor())
    for i in range(10_000):
        exporter.export([_span({f"key{i}": 1, "url.query": f"id={i}&token=t"})])
    assert len(exporter._verdicts) <= 4096
    assert len(exporter._urls) <= 4096


def test_tokens_in_url_paths_are_blanked_whatever_the_parameter_is_called() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
    inner = _Collect()
    RedactingSpanExporter(inner, Redactor()).export(
        [
            _span({"http.route": "/links/{link_id}", "url.path": f"/links/{jwt}"}),  # server span, templated
            _span({"url.full": f"https://idp.example/verify/{jwt}?lang=en"}),  # client span: no template at all
            _span({"url.path": f"/raw/{jwt}"}),  # unmatched route
        ]
    )
    assert [dict(span.attributes or {}) for span in inner.spans] == [
        {"http.route": "/links/{link_id}", "url.path": f"/links/{REDACTED}"},
        {"url.full": f"https://idp.example/verify/{REDACTED}?lang=en"},
        {"url.path": f"/raw/{REDACTED}"},
    ]
