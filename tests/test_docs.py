"""The docs stay true to the tree: README.md is a short front page, docs/architecture.md's module map names
every module of the four packages and nothing that is gone, and every relative link leads to a file.
Reads files only: no servers, no settings."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGES = ("gateway", "tasks", "jobs", "settings")
MAX_README_LINES = 250
MAP_HEADING = "## Module map"

MAPPED_PATH = re.compile(r"`((?:" + "|".join(PACKAGES) + r")/[^`\s]*)`")
FENCED_CODE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...

DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def module_map() -> str:
    """The module map section of docs/architecture.md: from its heading to the next section."""
    text = ARCHITECTURE.read_text()
    assert MAP_HEADING in text, f"docs/architecture.md has no {MAP_HEADING!r} section"
    start = text.index(MAP_HEADING)
    end = text.find("\n## ", start + len(MAP_HEADING))
    return text[start:] if end == -1 else text[start:end]


def mapped_paths() -> set[str]:
    return set(MAPPED_PATH.findall(module_map()))


def modules() -> set[str]:
    """Every .py module under the four packages except __init__.py, as a repo path."""
    return {path.relative_to(ROOT).as_posix()
            for package in PACKAGES for path in (ROOT / package).rglob("*.py") if path.name != "__init__.py"}


def relative_links(doc: Path) -> list[str]:
    """Link targets of a markdown file that name a file of this repo (no URL, no bare #anchor), without
    their #fragment; links quoted inside code are not links."""
    text = INLINE_CODE.sub("", FENCED_CODE.sub("", doc.read_text()))
    targets = (target.split("#", 1)[0].split("?", 1)[0] for target in LINK.findall(text))
    return [target for target in targets if target and not EXTERNAL.match(target)]


def test_module_map_lacks_no_module():
    missing = sorted(modules() - mapped_paths())
    assert not missing, f"docs/architecture.md's module map lacks: {', '.join(missing)}"


def test_module_map_names_no_missing_module():
    stale = sorted(path for path in mapped_paths() if path.endswith(".py") and not (ROOT / path).is_file())
    assert not stale, f"docs/architecture.md's module map names modules that do not exist: {', '.join(stale)}"


def test_readme_within_line_limit():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines, at most {MAX_README_LINES}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_relative_links_point_at_existing_files(doc: Path):
    broken = [target for target in relative_links(doc) if not (doc.parent / target).exists()]
    assert not broken, f"{doc.relative_to(ROOT)} links to files that do not exist: {', '.join(broken)}"
