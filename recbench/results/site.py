"""The leaderboard as a static site: an index, a page per dataset and a page per row, written from
the boards the markdown pages are written from (recbench.results.site_data, recbench.results.pages), so they agree.

The site reads offline from the file system and from any static host: every link is relative and
names its file (index.html included), the page data sits in each page as JSON, and the one library,
plotly.js, is copied from the `plotly` Python package into assets/ once; nothing is fetched at view
time. A marker file names a folder as a site, so a rebuild may clear it while any other folder that
exists is refused unless forced: a mistyped --output never empties someone's folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import __version__, paths
from ..atomic import write_error, write_text
from ..errors import UsageError
from . import references, site_data
from .leaderboard import COLUMNS_NOTE, RANKED_BY, SIGNIFICANCE_NOTE, Board, header, id_level_note
from .pages import BEYOND_NOTE, protocol_lines

MARKER = ".recbench-site"
ASSETS = Path(__file__).with_name("site_assets")
STATIC = ("site.css", "site.js")


def check_output(out: Path, force: bool) -> bool:
    """Whether `out` holds a previous site (so it may be cleared); a UsageError where it is a folder
    with other contents (or a file) and `force` is not given."""
    paths.folder(out, "--output")
    if (out / MARKER).is_file():
        return True
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--output '{out}' exists and is not a recbench site (no {MARKER} file in it); "
                         "name a new or empty folder, or add --force to write into it anyway.")
    return False


def environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(ASSETS), autoescape=select_autoescape(["html"]), keep_trailing_newline=True)


def page_json(data):
    """JSON for a <script type="application/json"> element, as markup the template keeps as it is: a
    script element's text is not HTML-unescaped, and with '</' escaped no value ends the element."""
    from markupsafe import Markup

    return Markup(json.dumps(data, sort_keys=True, ensure_ascii=False).replace("</", "<\\/"))


def copy_assets(out: Path) -> None:
    from plotly.offline import get_plotlyjs

    folder = out / "assets"
    folder.mkdir(parents=True, exist_ok=True)
    for name in STATIC:
        write_text(folder / name, (ASSETS / name).read_text(encoding="utf-8"))
    write_text(folder / "plotly.min.js", get_plotlyjs())


def build(boards_: list[Board], folders: list[Path], out: Path, command: str, force: bool = False) -> list[Path]:
    """Write the site for `boards_` (read from the records in `folders`) into `out`; return the pages
    written. `command` is the command line the footer names."""
    out = Path(out)
    if check_output(out, force):
        for child in out.iterdir():  # a previous site: rows that are gone must not stay behind
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / MARKER, "A static site written by `recbench site`; rebuilding it replaces this folder's contents.\n")
        copy_assets(out)
    except OSError as exc:
        raise write_error(out, exc) from None
    env = environment()
    common = {"command": command, "version": __version__, "significance_note": SIGNIFICANCE_NOTE, "metric": header(RANKED_BY)}
    written = [out / "index.html"]
    write_text(written[0], env.get_template("index.html").render(root="", charts=False, data=None, **common,
                                                                 **site_data.index_grid(boards_)))
    for board in boards_:
        folder = out / board.dataset
        folder.mkdir(exist_ok=True)
        table = site_data.dataset_table(board)
        data = page_json({"kind": "dataset", "charts": site_data.dataset_charts(board)})
        page = folder / "index.html"
        write_text(page, env.get_template("dataset.html").render(
            root="../", charts=True, data=data, dataset=board.dataset, protocol=[line[2:] for line in protocol_lines(board)],
            table=table, has_references=bool(board.references), id_table=site_data.id_level_table(board),
            id_level_note=id_level_note(board), columns_note=COLUMNS_NOTE, reference_notes=references.NOTES,
            beyond=site_data.beyond_table(board), beyond_note=BEYOND_NOTE, **common))
        written.append(page)
        for index in range(len(board.rows)):
            row = site_data.row_page(board, index)
            page = folder / row["file"]
            data = page_json({"kind": "row", "curves": row["curves"], "ranks": row["ranks"]})
            write_text(page, env.get_template("row.html").render(root="../", charts=True, data=data, dataset=board.dataset, row=row, **common))
            written.append(page)
    return written
