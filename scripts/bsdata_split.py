"""Split BSData by camera position into folders of symlinks (the images stay in ../shared).

Type-2 files are named 01_<timestamp>_<position>_<angle>_crop_<n>.jpg; frames of one position are
near-duplicates, so whole positions go to train or test. KGT*.jpg (type 1, another spindle, pitting
only) are left out of both, or linked into a separate ``type1/`` folder for a separate report.

    python scripts/bsdata_split.py ../shared/datasets/bsdata /tmp/bsdata_split
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

POSITION = re.compile(r"^01_\d+_(\d+_\d+)_crop_\d+\.jpg$")


def position_of(name: str) -> str | None:
    """The <position>_<angle> pair of a type-2 file name, None for anything else (e.g. KGT*.jpg)."""
    match = POSITION.match(name)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--test", nargs="+", help="positions held out for test (<position>_<angle>)")
    args = parser.parse_args(argv)
    positions = sorted({p for f in args.source.glob("*/*.jpg") if (p := position_of(f.name))})
    test = set(args.test or positions[1::4])
    for image in sorted(args.source.glob("*/*.jpg")):
        position = position_of(image.name)
        side = "type1" if position is None else ("test" if position in test else "train")
        link = args.out / side / image.parent.name / image.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(image.resolve())
    print(f"{len(positions)} positions; test: {', '.join(sorted(test))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
