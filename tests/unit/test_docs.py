"""The README stays a front door, and every link in it and in docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
README_MAX_BYTES = 8 * 1024


def test_the_readme_is_at_most_8_kb() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move reference material to docs/"


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path) -> None:
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s):, mailto:
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{doc.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{doc.name} links to {target}: no such heading"


def test_the_readme_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    assert not [d.name for d in DOCS if f"docs/{d.name}" not in readme]


def test_the_architecture_walk_names_files_and_functions_that_exist() -> None:
    """docs/architecture.md follows one request through named files and functions: they must exist."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 8
    for _, _, where in rows:
        files = re.findall(r"`(rvz/[\w/]+\.py)`", where)
        assert files, where
        sources = "".join((ROOT / f).read_text() for f in files)
        for name in re.findall(r"`([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)?)`", where):
            owner, _, function = name.rpartition(".")
            if owner:
                assert re.search(rf"^class {owner}\b", sources, re.MULTILINE), f"{name}: no class {owner} in {files}"
            assert re.search(rf"^\s*(async )?def {function}\b|^class {function}\b", sources, re.MULTILINE), \
                f"docs/architecture.md names {name}, which is not in {files}"
