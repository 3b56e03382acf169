"""Every relative link in the README and docs points at a file that exists."""

from __future__ import annotations

import re

import pytest

from edge_inspect.config.loader import PROJECT_ROOT

DOCS = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "SECURITY.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: object) -> None:
    from pathlib import Path

    assert isinstance(doc, Path) and doc.is_file(), f"{doc} is missing"
    broken = [
        target
        for target in LINK.findall(doc.read_text(encoding="utf-8"))
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert broken == []
