"""ZIP archives of documentation in, one Markdown context document out: the work of seed 001's service.

``inspect`` checks an upload before anything touches the disk (not a ZIP, too large, too many files, a ZIP bomb,
paths escaping the workspace): each rejection is a ``security_event("rejected_input", reason=...)`` and raises
:class:`ArchiveRejected`. ``extract`` unpacks into a fresh workspace directory under one
``track_operation("zip.extract")`` (duration, outcome, input size, peak memory) and records the seed's extraction
metrics: files per archive and bytes extracted. ``convert`` turns the extracted text files into one Markdown
document under ``track_operation("docs.convert")`` (its in-progress count is the seed's "active conversions").
Only the public APIs of otel-dist and OpenTelemetry are used.
"""

from __future__ import annotations

import io
import shutil
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, NoReturn

from opentelemetry import metrics

import otel_dist

log = otel_dist.get_logger("zip_service")
_meter = metrics.get_meter("zip_service")
#: Seed 001's extraction_file_count and extraction_size_bytes (zip_extraction_files, zip_extraction_size_bytes).
FILES = _meter.create_histogram("zip.extraction.files", unit="{file}", description="Files extracted per archive.")
SIZE = _meter.create_histogram("zip.extraction.size", unit="By", description="Bytes extracted per archive.")

MAX_UPLOAD: Final = 50 * 2**20
MAX_FILES: Final = 10_000
MAX_EXTRACTED: Final = 200 * 2**20
#: Uncompressed / compressed above this: a ZIP bomb.
MAX_RATIO: Final = 100
TEXT_SUFFIXES: Final = (".md", ".markdown", ".txt", ".rst", ".json")


class ArchiveRejected(ValueError):
    """The upload is refused before extraction (``reason`` is a bounded code)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Extracted:
    workspace: Path
    files: int
    size: int


def _reject(reason: str, detail: str, blob: bytes) -> NoReturn:
    otel_dist.security_event("rejected_input", reason=reason, offending=blob[:4096], detail=detail, size=len(blob))
    raise ArchiveRejected(reason, detail)


def inspect(blob: bytes) -> zipfile.ZipFile:
    """The opened archive, or ArchiveRejected (and a security event) when it must not be extracted."""
    if len(blob) > MAX_UPLOAD:
        _reject("too_large", f"{len(blob)} bytes > {MAX_UPLOAD}", blob)
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile:
        _reject("not_a_zip", "not a ZIP archive", blob)
    infos = archive.infolist()
    if len(infos) > MAX_FILES:
        _reject("too_many_files", f"{len(infos)} entries > {MAX_FILES}", blob)
    total = sum(info.file_size for info in infos)
    if total > MAX_EXTRACTED:
        _reject("too_large_extracted", f"{total} bytes uncompressed > {MAX_EXTRACTED}", blob)
    compressed = sum(info.compress_size for info in infos) or 1
    if total / compressed > MAX_RATIO:
        _reject("zip_bomb", f"compression ratio {total / compressed:.0f} > {MAX_RATIO}", blob)
    for info in infos:
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            _reject("path_traversal", f"entry {info.filename[:80]!r} escapes the workspace", blob)
    return archive


def extract(archive: zipfile.ZipFile, work_dir: Path, *, upload_size: int) -> Extracted:
    """Unpack into ``work_dir/<uuid>``; the workspace is removed again when extraction fails."""
    workspace = work_dir / uuid.uuid4().hex
    with otel_dist.track_operation("zip.extract", input_size=upload_size, track_memory=True) as operation:
        try:
            workspace.mkdir(parents=True)
            archive.extractall(workspace)
        except BaseException:
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        infos = [info for info in archive.infolist() if not info.is_dir()]
        size = sum(info.file_size for info in infos)
        operation.set_attribute("archive.files", len(infos))
        FILES.record(len(infos))
        SIZE.record(size)
    return Extracted(workspace, len(infos), size)


def convert(extracted: Extracted, output: Path) -> int:
    """Concatenate the text files of the workspace, a heading per file, into ``output``; its size in bytes."""
    with otel_dist.track_operation("docs.convert", input_size=extracted.size):
        files = sorted(p for p in extracted.workspace.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as out:
            for path in files:
                out.write(f"## {path.relative_to(extracted.workspace)}\n\n")
                out.write(path.read_text(encoding="utf-8", errors="replace"))
                out.write("\n\n")
        written = output.stat().st_size
    log.info("conversion.completed", files=extracted.files, extracted_bytes=extracted.size, output_bytes=written)
    return written
