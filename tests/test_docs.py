"""The README and docs/: every relative link resolves, and the README stays a short guide to them all.

A link resolves when its file exists (relative to the linking file) and, where it names an
``#anchor``, a heading of the target file makes that anchor by GitHub's rules. Absolute links
(``https:``, ``mailto:``) are not followed. Fast and in-process: no server, no network.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, ROOT / "CHANGELOG.md", *DOCS]
README_MOST_LINES = 350

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target), with an optional "title" after the target.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks: what GitHub renders as Markdown."""
    lines: list[str] = []
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces -> ``-``."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the file's headings make; a repeated heading gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of the file's links and images that point inside the repository."""
    targets: list[str] = []
    for line in prose_lines(path):
        targets += [t for t in LINK.findall(CODE_SPAN.sub("", line)) if not ABSOLUTE.match(t)]
    return targets


def broken_links(path: Path) -> list[str]:
    """Each link of ``path`` whose file is missing or whose anchor no heading there makes."""
    broken: list[str] = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_file():
            broken.append(f"{target}: no file {linked}")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target}: no heading in {linked.name} makes #{anchor}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    assert document.is_file()
    assert broken_links(document) == []


def test_the_slugs_follow_github() -> None:
    assert slug("Faces in photos: `/detect`") == "faces-in-photos-detect"
    assert slug("3a. Kubernetes (plain manifests, the supported path)") == (
        "3a-kubernetes-plain-manifests-the-supported-path"
    )
    assert slug("Levers: what each does and what it cost") == "levers-what-each-does-and-what-it-cost"


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading) [gone](missing.md) [no anchor](other.md#nowhere) [web](https://x.org)\n"
        "```\n[in code](missing.md)\n```\n",
        encoding="utf-8",
    )
    assert [problem.split(":")[0] for problem in broken_links(page)] == ["missing.md", "other.md#nowhere"]


def test_the_readme_is_a_short_guide_to_every_doc() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MOST_LINES, f"README.md has {lines} lines: move reference material to docs/"
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in relative_links(README)}
    assert DOCS, "no docs/*.md found"
    assert [doc.name for doc in DOCS if doc.resolve() not in linked] == []
