"""The README is the front door and docs/ (a MkDocs site, mkdocs.yml) holds the rest: the README stays
short, and every link it makes into the repository, the docs pages and their headings included, leads
somewhere. Links between the docs pages are checked by `mkdocs build --strict` (.ci/run)."""

import re
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def headings(page: Path) -> set[str]:
    """The anchors of a page's headings, as MkDocs (and GitHub) name them."""
    text = re.sub(r"^```.*?^```$", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slugify(title, "-") for title in re.findall(r"^#{1,6} (.+?)\s*$", text, flags=re.M)}


def test_the_readme_is_a_front_door():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 350


def test_every_link_of_the_readme_leads_to_a_file_and_heading_that_exist():
    text = re.sub(r"^```.*?^```$", "", README.read_text(encoding="utf-8"), flags=re.M | re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert "://" not in link, f"README links outside the repository: {link}"
        path, _, anchor = link.partition("#")
        target = (ROOT / path) if path else README
        assert target.exists(), f"README links to {link}: no such file"
        if anchor:
            assert anchor in headings(target), f"README links to {link}: {path or 'README.md'} has no heading #{anchor}"
