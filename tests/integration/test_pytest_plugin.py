"""The otel_capture fixture, as a user's own test suite sees it (run through pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_otel_capture_sees_spans_metrics_and_logs_and_isolates_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user_code="""
        from opentelemetry import metrics, trace
        import otel_dist

        # Created once, at import, as libraries do.
        tracer = trace.get_tracer("parser")
        documents = metrics.get_meter("parser").create_counter("parser.documents")
        log = otel_dist.get_logger("parser")

        def parse(kind):
            with tracer.start_as_current_span("parse"):
                documents.add(1, {"kind": kind})
                log.info("document.parsed", kind=kind)

        def test_first(otel_capture):
            parse("markdown")
            assert otel_capture.span_names() == ["parse"]
            assert otel_capture.metric_value("parser.documents", kind="markdown") == 1
            [record] = otel_capture.logs
            assert record.log_record.body == "document.parsed"
            assert record.log_record.trace_id == otel_capture.spans[0].context.trace_id

        def test_second_starts_empty(otel_capture):
            assert otel_capture.spans == [] and otel_capture.logs == []
            assert otel_capture.metric_value("parser.documents", kind="markdown") is None
            parse("html")
            parse("html")
            assert otel_capture.metric_value("parser.documents", kind="html") == 2
            assert otel_capture.metric_value("parser.documents", kind="html") == 2  # reading twice changes nothing
            assert len(otel_capture.spans) == 2
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
