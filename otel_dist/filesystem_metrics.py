"""Free and used space of the filesystems a service writes to, as ``system.filesystem.usage``.

Seed plans ask the *service* for its free disk (uploads, workspaces, caches fill it), so each service reports the
filesystems under its configured paths (``OTEL_DIST_FILESYSTEM_PATHS``: by default the working directory and the
temporary directory). The series carry the service's identity, so the disk alerts and panels are per service;
a host-wide view is the collector's hostmetrics receiver's job.

Names follow the semantic conventions (``system.filesystem.usage``, an UpDownCounter in bytes, with
``system.device``, ``system.filesystem.mountpoint``, ``system.filesystem.mode``, ``system.filesystem.type`` and
``system.filesystem.state`` = ``used`` / ``free`` / ``reserved``, as ``df`` counts them: ``free`` is what an
unprivileged writer can still use, ``reserved`` the blocks kept for root). One filesystem holding several paths is
reported once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

FILESYSTEM_USAGE_METRIC: Final = "system.filesystem.usage"
DEVICE: Final = "system.device"
MOUNTPOINT: Final = "system.filesystem.mountpoint"
MODE: Final = "system.filesystem.mode"
TYPE: Final = "system.filesystem.type"
STATE: Final = "system.filesystem.state"


@dataclass(frozen=True)
class Filesystem:
    """One mounted filesystem: where it is mounted and what it is."""

    mountpoint: str
    device: str
    type: str
    mode: str  # "rw" or "ro"

    def attributes(self) -> dict[str, str]:
        return {DEVICE: self.device, MOUNTPOINT: self.mountpoint, TYPE: self.type, MODE: self.mode}


def _mounts() -> list[Filesystem]:
    import psutil

    mounts = []
    for partition in psutil.disk_partitions(all=True):
        options = partition.opts.split(",")
        mounts.append(
            Filesystem(partition.mountpoint, partition.device, partition.fstype, "ro" if "ro" in options else "rw")
        )
    return mounts


def filesystems_of(paths: Iterable[str], mounts: Sequence[Filesystem] | None = None) -> list[Filesystem]:
    """The filesystem holding each path (the mount with the longest matching mountpoint), each once."""
    mounts = _mounts() if mounts is None else mounts
    found: dict[str, Filesystem] = {}
    for path in paths:
        real = os.path.realpath(path)
        holding = [
            mount for mount in mounts if real == mount.mountpoint or real.startswith(mount.mountpoint.rstrip("/") + "/")
        ]
        if holding:
            # Several mounts on one mountpoint (the later one hides the earlier): the last one listed wins.
            best = max(reversed(holding), key=lambda mount: len(mount.mountpoint))
            found[best.mountpoint] = best
    return list(found.values())


def usage(mountpoint: str) -> dict[str, int]:
    """Bytes used, free (to unprivileged writers) and reserved (for root) on the filesystem at ``mountpoint``."""
    stat = os.statvfs(mountpoint)
    total = stat.f_blocks * stat.f_frsize
    free_all = stat.f_bfree * stat.f_frsize
    available = stat.f_bavail * stat.f_frsize
    return {"used": total - free_all, "free": available, "reserved": free_all - available}


def instrument_filesystems(paths: Sequence[str], provider: MeterProvider) -> list[Filesystem]:
    """Observe ``system.filesystem.usage`` for the filesystems holding ``paths``; returns them."""
    filesystems = filesystems_of(paths)
    if not filesystems:
        return []

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        for filesystem in filesystems:
            try:
                states = usage(filesystem.mountpoint)
            except OSError:
                continue  # unmounted since: report nothing rather than fail the whole collection
            for state, value in states.items():
                yield Observation(value, {**filesystem.attributes(), STATE: state})

    provider.get_meter("otel_dist.filesystem").create_observable_up_down_counter(
        FILESYSTEM_USAGE_METRIC,
        callbacks=[observe],
        unit="By",
        description="Filesystem space used, free (for unprivileged writers) and reserved, of the service's paths.",
    )
    return filesystems
