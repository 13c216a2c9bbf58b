"""A minimal OTLP/HTTP sink *process*: accepts every export, answers 200, counts and discards.

Run as its own process (pinned away from the server) so its CPU is never counted with the server's::

    python benchmarks/sink.py --ports 3     # prints {"ports": [p1, p2, p3]} on one line, then serves

Each port keeps its own counters (one port per benchmarked server): requests, bytes and items (spans, log
records, metrics) per signal, counted by walking the protobuf wire format without decoding it (no
dependency: any interpreter can run the sink). ``GET /stats`` on a port answers its counters as JSON.
It stops on SIGTERM/SIGINT, or by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import signal
import zlib
from dataclasses import dataclass, field
from typing import Any

SIGNALS = ("traces", "metrics", "logs")
_RESPONSE_200 = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
_MAX_HEADER = 64 * 1024


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _length_delimited(buf: bytes, start: int, end: int, wanted: int) -> list[tuple[int, int]]:
    """(start, end) of every length-delimited field number ``wanted`` in buf[start:end]."""
    found = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if number == wanted:
                found.append((pos, pos + length))
            pos += length
        else:  # groups are not used by OTLP
            raise ValueError(f"unexpected wire type {wire}")
    return found


def count_items(body: bytes) -> int:
    """Spans / log records / metrics in an OTLP export request.

    The three requests share one shape: field 1 = Resource{Spans,Logs,Metrics}, in it field 2 =
    Scope{Spans,Logs,Metrics}, in it field 2 = the items.
    """
    total = 0
    for r_start, r_end in _length_delimited(body, 0, len(body), 1):
        for s_start, s_end in _length_delimited(body, r_start, r_end, 2):
            total += len(_length_delimited(body, s_start, s_end, 2))
    return total


@dataclass
class Counters:
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))
    items: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 0))
    other: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "bytes": self.bytes, "items": self.items, "other": self.other}


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


def _handler(counters: Counters) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await _read_body(reader, headers)
                if method == "GET" and path.startswith("/stats"):
                    payload = json.dumps(counters.as_dict()).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(payload), payload)
                    )
                else:
                    signal_name = path.rstrip("/").rsplit("/", 1)[-1]
                    if signal_name in SIGNALS:
                        counters.requests[signal_name] += 1
                        counters.bytes[signal_name] += len(body)
                        encoding = headers.get("content-encoding", "")
                        raw = (
                            gzip.decompress(body)
                            if encoding == "gzip"
                            else zlib.decompress(body)
                            if encoding == "deflate"
                            else body
                        )
                        try:
                            counters.items[signal_name] += count_items(raw)
                        except (ValueError, IndexError):
                            counters.other += 1
                    else:
                        counters.other += 1
                    writer.write(_RESPONSE_200)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        finally:
            writer.close()

    return handle


async def serve(n_ports: int, host: str, max_seconds: float) -> None:
    servers = []
    ports = []
    for _ in range(n_ports):
        server = await asyncio.start_server(_handler(Counters()), host, 0, limit=_MAX_HEADER)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    loop.call_later(max_seconds, stop.set)  # bounded in time even if nobody stops it
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", type=int, default=1, help="how many ports (one per server)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="stop by itself after this long")
    args = parser.parse_args()
    asyncio.run(serve(args.ports, args.host, args.max_seconds))


if __name__ == "__main__":
    main()
