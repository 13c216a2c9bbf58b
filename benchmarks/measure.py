"""CPU and memory of a server process and every process it started (psutil), sampled before and after a round.

``cpu`` is user + system time of the process, plus its live descendants, plus the children it already reaped.
``main`` is the main thread's share (the event loop: the request path); ``background`` is the rest (batch
processors, exporters, metric readers: the export path). psutil's process times have the kernel's clock-tick
resolution (10 ms): over a round of several CPU-seconds that is well under 1 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuSample:
    cpu: float
    main: float
    rss: int

    def __sub__(self, other: CpuSample) -> CpuSample:
        return CpuSample(self.cpu - other.cpu, self.main - other.main, self.rss - other.rss)

    @property
    def background(self) -> float:
        return self.cpu - self.main


def sample(pid: int) -> CpuSample:
    root = psutil.Process(pid)
    with root.oneshot():
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        main = next((t.user_time + t.system_time for t in root.threads() if t.id == pid), 0.0)
        rss = root.memory_info().rss
    for child in root.children(recursive=True):
        try:
            child_times = child.cpu_times()
            total += child_times.user + child_times.system + child_times.children_user + child_times.children_system
            rss += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return CpuSample(total, main, rss)
