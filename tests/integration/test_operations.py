"""track_operation as a library uses it: decorator and context manager, sync and async, every outcome."""

from __future__ import annotations

import asyncio
import json

import pytest

import otel_dist
from tests.support.otlp_receiver import OtlpReceiver


@otel_dist.track_operation("document.parse", attributes={"document.type": "markdown"}, input_size=len)
def parse(text: str) -> int:
    if "boom" in text:
        raise ValueError("unsupported syntax")
    return len(text.split())


@otel_dist.track_operation("zip.extract", timeout=0.2)
async def extract(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


def outcomes(receiver: OtlpReceiver, name: str) -> dict[tuple[str, str | None], int]:
    return {
        (a["operation.outcome"], a.get("error.type")): p.as_int
        for a, p in receiver.latest_points("operation.outcomes")
        if a["operation.name"] == name
    }


def test_decorated_sync_function_records_every_outcome(receiver, configure, capsys) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    assert parse("a b c") == 3
    with pytest.raises(ValueError, match="unsupported"):
        parse("boom")
    telemetry.force_flush(5)
    assert outcomes(receiver, "document.parse") == {("success", None): 1, ("error", "ValueError"): 1}
    durations = [(a, p) for a, p in receiver.latest_points("operation.duration")]
    assert {a["document.type"] for a, _ in durations} == {"markdown"}
    [(_, sizes)] = receiver.latest_points("operation.input.size")
    assert sizes.sum == len("a b c") + len("boom")
    spans = [s for s in receiver.spans() if s.item.name == "document.parse"]
    assert [s.item.status.code for s in spans] == [0, 2]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"operation' in line]
    assert [line["event"] for line in lines] == ["operation.completed", "operation.failed"]
    assert lines[1]["exception"][0]["exc_type"] == "ValueError"
    assert lines[0]["trace_id"] == spans[0].item.trace_id.hex()


def test_async_timeout_is_its_own_outcome(receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)
    assert asyncio.run(extract(0.01)) == "done"
    with pytest.raises(TimeoutError):
        asyncio.run(extract(5))
    telemetry.force_flush(5)
    assert outcomes(receiver, "zip.extract") == {("success", None): 1, ("timeout", "TimeoutError"): 1}
    [(_, active)] = receiver.latest_points("operation.active")
    assert active.as_int == 0


def test_context_manager_with_memory_and_span_attributes(receiver, configure) -> None:
    telemetry = configure(endpoint=receiver.endpoint)

    async def generate() -> None:
        async with otel_dist.track_operation("docs.generate", track_memory=True, input_size=10) as operation:
            operation.set_attribute("docs.pages", 12)
            payload = [bytes(1000) for _ in range(1000)]
            del payload

    asyncio.run(generate())
    telemetry.force_flush(5)
    [span] = [s for s in receiver.spans() if s.item.name == "docs.generate"]
    assert span.attributes["docs.pages"] == 12
    [(_, peak)] = receiver.latest_points("operation.memory.peak")
    assert peak.sum >= 1_000_000


def test_without_an_sdk_it_is_a_no_op() -> None:
    assert parse("works without configure") == 3
