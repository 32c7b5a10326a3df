"""The repository stands on its own: nothing in it points outside it, and nothing cites a tracker's numbers.

A reader of any file (code, comments, templates, the README, docs/) must find everything it refers to in
the repository itself; a tracker's number or a path into a sibling folder means nothing to someone who cloned
only this. The rules live in docs/CONTRACT.md and docs/ARCHITECTURE.md, and references point there.
Needs git and the work tree, no database.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Built from parts so that this file does not match its own patterns.
OUTSIDE_REFERENCES = ("../" + "shared", "shared" + "/docs")

CITATIONS = (
    re.compile(r"\b[Ii]ssue\s*#?\d+"),
    re.compile(r"(?i)\bcontract,?\s*\(?section\s*\d"),
)

# Files that are not ours to word: generated lock files and the license's own text.
SKIPPED_NAMES = {"package-lock.json", "LICENSE"}


def tracked_text_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    files = []
    for name in filter(None, listing):
        path = ROOT / name
        if path.name in SKIPPED_NAMES or not path.is_file():
            continue  # a file deleted in the work tree but not yet in the index
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files


def hits(check: Callable[[str], bool]) -> list[str]:
    found = []
    for path in tracked_text_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if check(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_the_file_list_is_the_repository() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in tracked_text_files()}
    assert "README.md" in names
    assert "docs/CONTRACT.md" in names
    assert "tests/test_repository_hygiene.py" in names


def test_no_file_points_outside_the_repository() -> None:
    found = hits(lambda line: any(reference in line for reference in OUTSIDE_REFERENCES))
    assert not found, "references outside the repository:\n" + "\n".join(found)


def test_no_file_cites_an_issue_number_or_a_contract_section_number() -> None:
    found = hits(lambda line: any(pattern.search(line) for pattern in CITATIONS))
    assert not found, "cite docs/CONTRACT.md or docs/ARCHITECTURE.md by heading instead:\n" + "\n".join(found)
