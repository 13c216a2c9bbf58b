"""A stdlib logging filter that turns a storm of identical records into one line per interval."""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

DEFAULT_INTERVAL: Final = 60.0


class RateLimitFilter(logging.Filter):
    """Pass the first record of each (logger, message template) per ``interval`` seconds.

    The next record that passes carries ``suppressed`` = how many were dropped in between. Attached to the
    OpenTelemetry SDK's loggers: with the collector down they report every failed batch of every signal.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (float("-inf"), 0))
            if now - last < self._interval:
                self._last[key] = (last, suppressed + 1)
                return False
            self._last[key] = (now, 0)
        if suppressed:
            record.suppressed = suppressed
        return True
