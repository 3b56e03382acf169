"""``plant export``: one training set from many lines, in the layout ``edge-inspect train`` reads.

The same rules as the box's export (edge_inspect.defect_log.export): a part's class is QA's central
label, else its verdict; its samples are the region crops that show that class. Files are
``good|defect/<appliance>__<inspection id>__<region>.jpg`` (``--group-pattern '^(.+)__'`` keeps a
part's crops on one side of the split) plus ``plant_export.csv`` with every selected part. A defect QA
gave a defect type goes to ``defect/<type>/``, which ``train`` keeps as the defect kind.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..defect_log.export import _check_target, _partial, part_class, sample_regions
from ..defect_log.images import safe_stem
from ..defect_log.schema import DefectRecord, LoggedRegion
from ..defect_log.store import Cursor
from .central import PlantDb, PlantFilter, PlantPart
from .objects import ObjectStore

CSV_NAME = "plant_export.csv"
CSV_COLUMNS = ("id", "appliance_id", "line", "inspection_id", "captured_at_s", "verdict", "model_version",
               "max_score", "label", "defect_type", "reviewer", "class", "samples")  # fmt: skip


@dataclass
class PlantExportSummary:
    out: Path
    parts: int = 0
    samples: dict[str, int] = field(default_factory=lambda: {"good": 0, "defect": 0})
    lines: set[str] = field(default_factory=set)
    parts_without_images: int = 0

    def line(self) -> str:
        return (
            f"exported {self.parts} part(s) from {len(self.lines)} line(s) to {self.out}: {self.samples['good']} good "
            f"and {self.samples['defect']} defect sample(s); {self.parts_without_images} part(s) without images"
        )


def as_record(part: PlantPart) -> DefectRecord:
    """The box's record type over a plant part (crop paths are bucket keys), for the shared export rules."""
    regions = tuple(
        LoggedRegion(
            name=str(r["name"]), x_px=int(r["x_px"]), y_px=int(r["y_px"]), width_px=int(r["width_px"]),
            height_px=int(r["height_px"]), defect_score=float(r["defect_score"]), is_defect=bool(r["is_defect"]),
            tile_scores=None, crop_path=r.get("crop_key"),
        )
        for r in part.regions
    )  # fmt: skip
    return DefectRecord(
        id=part.id, inspection_id=part.inspection_id, part_id=0, captured_at_s=part.captured_at_s,
        verdict=part.verdict, failsafe_reason=part.failsafe_reason, is_rejected=part.is_rejected, is_sampled=False,
        max_score=part.max_score, regions=regions, model_name=part.model_name, model_version=part.model_version,
        threshold=part.threshold, latency_ms=part.latency_ms, reject_due_at_s=None, reject_fired_at_s=None,
        frame_path=part.frame_key, thumb_path=part.thumb_key, image_status=part.image_status, label=part.label,
        note=part.note, reviewer=part.reviewer, reviewed_at_s=part.reviewed_at_s,
    )  # fmt: skip


def export_plant(db: PlantDb, store: ObjectStore, out: Path, where: PlantFilter | None = None) -> PlantExportSummary:
    """Write the selected parts' samples (fetched from the bucket) and a CSV into the new folder ``out``."""
    _check_target(out)
    where = where or PlantFilter()
    summary = PlantExportSummary(out)
    text = io.StringIO()
    table = csv.writer(text)
    table.writerow(CSV_COLUMNS)
    with _partial(out) as temp:
        temp.mkdir()
        before: Cursor | None = None
        while True:
            parts, before = db.page(where, 500, before=before)
            for part in parts:
                summary.parts += 1
                summary.lines.add(part.line)
                record = as_record(part)
                cls = part_class(record)
                samples: list[str] = []
                if cls is not None:
                    sources = [(r.name, r.crop_path) for r in sample_regions(record, cls)]
                    if not record.regions and part.frame_key:
                        sources = [("frame", part.frame_key)]
                    for region, key in sources:
                        if key is None:
                            continue
                        stem = f"{safe_stem(part.appliance_id)}__{safe_stem(part.inspection_id)}"
                        folder = cls
                        if cls == "defect" and part.defect_type:  # train reads defect/<type>/ as a defect kind
                            folder = f"defect/{safe_stem(part.defect_type)}"
                        name = f"{folder}/{stem}__{safe_stem(region)}.jpg"
                        target = temp / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(store.get(key))
                        samples.append(name)
                        summary.samples[cls] += 1
                    if not samples:
                        summary.parts_without_images += 1
                table.writerow([
                    part.id, part.appliance_id, part.line, part.inspection_id, part.captured_at_s, part.verdict,
                    part.model_version, "" if part.max_score is None else part.max_score, part.label or "",
                    part.defect_type or "", part.reviewer or "", cls or "", ";".join(samples),
                ])  # fmt: skip
            if before is None:
                break
        (temp / CSV_NAME).write_text(text.getvalue(), encoding="utf-8")
    return summary
