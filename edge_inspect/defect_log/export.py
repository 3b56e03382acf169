"""Export the defect log as a labelled training set: ``good/`` and ``defect/`` folders plus a CSV.

Each sample is what the model classified: a region's crop (the frame when the region is the whole
frame, or when a fail-safe part has no regions). A part's class is QA's where QA reviewed it
(false_reject and confirmed_good -> good; confirmed_defect and escape -> defect), else the verdict;
unreviewed fail-safe parts have no class and are listed in the CSV only. In a good part every region
is a good sample; in a defect part only the regions that scored as defects are (the worst region when
none did, as for an escape): the other regions of a defect part are left out rather than guessed.

File names are ``<inspection id>__<region>.jpg``, so ``edge-inspect train --group-pattern '^(.+)__'``
keeps the crops of one part on one side of the train/validation split.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError
from .images import safe_stem
from .schema import DefectRecord, LoggedRegion
from .store import DefectStore, PartFilter

CSV_NAME = "defect_log.csv"
CLASS_OF_LABEL = {
    "confirmed_defect": "defect",
    "escape": "defect",
    "false_reject": "good",
    "confirmed_good": "good",
}
CSV_COLUMNS = (
    "id", "inspection_id", "part_id", "captured_at", "captured_at_s", "verdict", "failsafe_reason",
    "is_rejected", "is_sampled", "max_score", "region_scores", "model_name", "model_version", "threshold",
    "latency_ms", "fire_error_ms", "label", "note", "reviewer", "reviewed_at", "class", "samples", "image_status",
    "defect_type",
)  # fmt: skip


def part_class(record: DefectRecord) -> str | None:
    """good / defect by QA's label, else by the verdict; None for an unreviewed fail-safe part."""
    if record.label is not None:
        return CLASS_OF_LABEL[record.label]
    return {"good": "good", "defect": "defect"}.get(record.verdict)


def sample_regions(record: DefectRecord, cls: str) -> list[LoggedRegion]:
    """The regions of a part that are samples of its class (see the module docstring)."""
    regions = [r for r in record.regions if r.crop_path is not None]
    if cls == "good" or not regions:
        return regions
    flagged = [r for r in regions if r.is_defect]
    return flagged or [max(regions, key=lambda r: r.defect_score)]


class _Sink(Protocol):
    def add_file(self, name: str, source: Path) -> None: ...

    def add_bytes(self, name: str, data: bytes) -> None: ...


class _FolderSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def add_file(self, name: str, source: Path) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def add_bytes(self, name: str, data: bytes) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


class _ZipSink:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def add_file(self, name: str, source: Path) -> None:
        self.archive.write(source, name, compress_type=zipfile.ZIP_STORED)  # JPEGs do not compress

    def add_bytes(self, name: str, data: bytes) -> None:
        self.archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)


@dataclass
class ExportSummary:
    """What an export wrote."""

    out: Path
    parts: int = 0
    samples: dict[str, int] = field(default_factory=lambda: {"good": 0, "defect": 0})
    parts_without_images: int = 0
    parts_without_class: int = 0
    defect_types: dict[str, int] = field(default_factory=dict)  # defect samples per QA type ("untyped")

    def line(self) -> str:
        types = ", ".join(f"{kind} {n}" for kind, n in sorted(self.defect_types.items()))
        return (
            f"exported {self.parts} part(s) to {self.out}: {self.samples['good']} good and "
            f"{self.samples['defect']} defect sample(s){f' ({types})' if types else ''}; "
            f"{self.parts_without_images} without images and "
            f"{self.parts_without_class} unreviewed fail-safe part(s) listed in {CSV_NAME} only"
        )


def _iso(ts_s: float | None) -> str:
    if ts_s is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts_s))


def _csv_row(record: DefectRecord, cls: str | None, samples: list[str]) -> list[object]:
    def blank(value: object) -> object:
        return "" if value is None else value

    return [
        record.id, record.inspection_id, record.part_id, _iso(record.captured_at_s), record.captured_at_s,
        record.verdict, blank(record.failsafe_reason), int(record.is_rejected), int(record.is_sampled),
        blank(record.max_score), json.dumps({r.name: r.defect_score for r in record.regions}),
        record.model_name, record.model_version, record.threshold, blank(record.latency_ms),
        blank(record.fire_error_ms), blank(record.label), blank(record.note), blank(record.reviewer),
        _iso(record.reviewed_at_s), blank(cls), ";".join(samples), record.image_status, blank(record.defect_type),
    ]  # fmt: skip


def _write(store: DefectStore, where: PartFilter, sink: _Sink, summary: ExportSummary) -> None:
    text = io.StringIO()
    table = csv.writer(text)
    table.writerow(CSV_COLUMNS)
    for record in store.iter_records(where):
        summary.parts += 1
        cls = part_class(record)
        samples: list[str] = []
        if cls is None:
            summary.parts_without_class += 1
        else:
            sources = [(r.name, r.crop_path) for r in sample_regions(record, cls)]
            if not record.regions and record.frame_path is not None:
                sources = [("frame", record.frame_path)]
            for region_name, relative in sources:
                path = store.image_path(relative)
                if path is None:
                    continue
                # a typed defect goes to defect/<type>/, which `edge-inspect train` reads as that defect's kind
                folder = f"defect/{record.defect_type}" if cls == "defect" and record.defect_type else cls
                name = f"{folder}/{safe_stem(record.inspection_id)}__{safe_stem(region_name)}.jpg"
                sink.add_file(name, path)
                samples.append(name)
                summary.samples[cls] += 1
                if cls == "defect":
                    kind = record.defect_type or "untyped"
                    summary.defect_types[kind] = summary.defect_types.get(kind, 0) + 1
            if not samples:
                summary.parts_without_images += 1
        table.writerow(_csv_row(record, cls, samples))
    sink.add_bytes(CSV_NAME, text.getvalue().encode("utf-8"))


def _check_target(out: Path) -> None:
    if out.is_dir():
        if any(out.iterdir()):
            raise ConfigError(f"--out {out} exists and is not empty: choose a new folder")
    elif out.exists():
        raise ConfigError(f"--out {out} already exists")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")


@contextlib.contextmanager
def _partial(out: Path) -> Iterator[Path]:
    """A temporary sibling of ``out``, renamed over it on success and removed on failure."""
    temp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        yield temp
    except BaseException:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        raise
    if out.is_dir():
        out.rmdir()  # checked empty beforehand
    os.replace(temp, out)


def export_dataset(store: DefectStore, out: Path, where: PartFilter | None = None) -> ExportSummary:
    """Write the parts ``where`` selects to a folder, or to a zip file when ``out`` ends in .zip."""
    _check_target(out)
    summary = ExportSummary(out)
    with _partial(out) as temp:
        if out.suffix.lower() == ".zip":
            with zipfile.ZipFile(temp, "w") as archive:
                _write(store, where or PartFilter(), _ZipSink(archive), summary)
        else:
            temp.mkdir()
            _write(store, where or PartFilter(), _FolderSink(temp), summary)
    return summary
