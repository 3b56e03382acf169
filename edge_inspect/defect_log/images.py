"""The log's image files: JPEG encoding, atomic writes (temporary file + fsync + rename), safe paths.

Paths stored in the database are relative to the images folder, with forward slashes; every path read
back is resolved and checked to lie inside that folder, so a damaged or edited row cannot point a
reader at any other file.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..events import PartResult
from ..shrink import shrink_to_width

TEMP_SUFFIX = ".tmp"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def thumbnail(image: np.ndarray, width_px: int) -> np.ndarray:
    """A copy at most ``width_px`` wide (the image itself when it is no wider)."""
    return shrink_to_width(image, width_px)


def safe_stem(inspection_id: str) -> str:
    return _UNSAFE.sub("_", inspection_id)[:120] or "part"


@dataclass
class WrittenImages:
    """What was written for one part (paths relative to the images folder)."""

    frame_path: str | None = None
    thumb_path: str | None = None
    crop_paths: list[str | None] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    size_bytes: int = 0
    dirs: set[Path] = field(default_factory=set)


class ImageFiles:
    """Writes and removes one folder tree of JPEGs: ``<root>/<YYYY-MM-DD>/<HH>/<inspection id>.<kind>.jpg``."""

    def __init__(self, root: Path, jpeg_quality: int = 90, thumbnail_width_px: int = 240) -> None:
        self.root = root
        self.jpeg_quality = jpeg_quality
        self.thumbnail_width_px = thumbnail_width_px

    # ------------------------------------------------------------------ writing

    def write_part(self, result: PartResult, captured_at_s: float) -> WrittenImages:
        """Frame, thumbnail and one crop per region, each written atomically. Not yet durable: see sync()."""
        written = WrittenImages()
        image = result.image
        if image is None:
            return written
        folder = time.strftime("%Y-%m-%d/%H", time.localtime(captured_at_s))
        stem = f"{folder}/{safe_stem(result.inspection_id)}"
        written.frame_path = self._write(f"{stem}.frame.jpg", image, written)
        written.thumb_path = self._write(f"{stem}.thumb.jpg", thumbnail(image, self.thumbnail_width_px), written)
        height, width = image.shape[:2]
        for index, region in enumerate(result.regions):
            if (region.x_px, region.y_px, region.width_px, region.height_px) == (0, 0, width, height):
                written.crop_paths.append(written.frame_path)  # the whole frame: no second copy
                continue
            crop = image[region.y_px : region.y_px + region.height_px, region.x_px : region.x_px + region.width_px]
            written.crop_paths.append(self._write(f"{stem}.r{index}.jpg", crop, written) if crop.size else None)
        return written

    def _write(self, relative: str, image: np.ndarray, written: WrittenImages) -> str:
        data = encode_jpeg(image, self.jpeg_quality)
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)
        written.files.append(relative)
        written.size_bytes += len(data)
        written.dirs.add(path.parent)
        return relative

    @staticmethod
    def sync(dirs: Iterable[Path]) -> None:
        """fsync folders so the renames are on disk before the rows that name them are committed."""
        for folder in dirs:
            fsync_dir(folder)

    # ------------------------------------------------------------------ reading and removing

    def resolve(self, relative: str | None) -> Path | None:
        """The file a stored path names, or None if it is empty or lies outside the images folder."""
        if not relative or "\\" in relative or "\x00" in relative:
            return None
        root = self.root.resolve()
        candidate = (root / relative).resolve()
        if candidate == root or not candidate.is_relative_to(root):
            return None
        return candidate

    def delete(self, relatives: Iterable[str]) -> int:
        """Remove files (missing ones are fine) and then-empty folders; returns how many were removed."""
        removed = 0
        parents: set[Path] = set()
        for relative in relatives:
            path = self.resolve(relative)
            if path is None:
                continue
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            parents.add(path.parent)
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            self._remove_empty(parent)
        return removed

    def _remove_empty(self, folder: Path) -> None:
        root = self.root.resolve()
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone together with its parent)
            folder = folder.parent

    def walk(self) -> tuple[set[str], list[Path]]:
        """Every stored JPEG (relative paths) and every leftover temporary file under the root."""
        files: set[str] = set()
        temps: list[Path] = []
        if not self.root.is_dir():
            return files, temps
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                if name.endswith(TEMP_SUFFIX):
                    temps.append(path)
                else:
                    files.add(path.relative_to(self.root).as_posix())
        return files, temps

    def size_of(self, relative: str) -> int:
        path = self.resolve(relative)
        try:
            return path.stat().st_size if path is not None else 0
        except FileNotFoundError:
            return 0


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file in the same folder, fsync, rename over the target: readers see all or nothing."""
    temp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    os.close(fd)
    os.replace(temp, path)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on folders; the rename is still atomic
    finally:
        os.close(fd)
