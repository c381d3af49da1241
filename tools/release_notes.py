"""Print one version's section of CHANGELOG.md: the GitHub release's notes (.github/workflows/release.yml).

    python tools/release_notes.py 1.2.0 [CHANGELOG.md]

Exits 1, naming the file, when the changelog has no `## [1.2.0]` section or it is empty: a release
without notes is a mistake to catch before publishing.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path


def section(changelog: str, version: str) -> str | None:
    """The body under `## [version]` (Keep a Changelog headings), up to the next `## ` heading."""
    heading = re.compile(rf"^## \[?v?{re.escape(version)}\]?([ \t].*)?$", re.MULTILINE)
    match = heading.search(changelog)
    if match is None:
        return None
    rest = changelog[match.end():]
    following = re.search(r"^## ", rest, re.MULTILINE)
    body = rest[: following.start() if following else len(rest)]
    return body.strip() or None


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[2] if len(argv) == 3 else Path(__file__).resolve().parents[1] / "CHANGELOG.md")
    notes = section(path.read_text(), argv[1])
    if notes is None:
        print(f"error: {path} has no notes for {argv[1]} (a `## [{argv[1]}] - YYYY-MM-DD` section)", file=sys.stderr)
        return 1
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
