"""The leaderboard site: built from the committed records, it has every page, its tables hold the
leaderboard's rows (the markdown pages' rows), it names no other host, and an existing folder that is
not a previous site is refused."""

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recbench.errors import UsageError
from recbench.results import leaderboard as lb
from recbench.results import site, site_data

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "leaderboards" / "records"
LIBRARY = Path("assets") / "plotly.min.js"
URL = re.compile(r"https?://([^/\"'\s)<>\\]+)")


class Cells(HTMLParser):
    """The text of every cell of the table with id `table_id`, row by row, and each row's class."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.inside = attrs.get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.rows.append((attrs.get("class"), []))
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1][1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def table(path: Path, table_id: str) -> list[tuple[str, list[str]]]:
    parser = Cells(table_id)
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    boards = lb.boards(lb.collect([RECORDS]))
    site.build(boards, [RECORDS], out, "recbench site --results leaderboards/records --output site")
    return out, boards


def test_site_has_every_page_and_the_leaderboard_rows(built):
    out, boards = built
    assert (out / site.MARKER).is_file() and (out / "index.html").is_file() and (out / LIBRARY).stat().st_size > 1_000_000
    index = (out / "index.html").read_text(encoding="utf-8")
    for board in boards:
        page = out / board.dataset / "index.html"
        assert f'href="{board.dataset}/index.html"' in index
        head, cells, _ = lb.table_rows(board)
        rows = table(page, "board")
        assert rows[0][1] == head
        assert [c for kind, c in rows[1:] if kind == "measured"] == cells  # the markdown page's rows, in its order
        assert len([1 for kind, _ in rows[1:] if kind == "reference"]) == len([r for r in board.references if r.protocol == "item"])
        for index_, row in enumerate(board.rows):
            row_page = out / board.dataset / site_data.row_file(row)
            text = row_page.read_text(encoding="utf-8")
            assert f"recbench reproduce {Path(row.runs[0].path).as_posix()}" in text
            assert ("chart-curves" in text) != ("No curve recorded" in text)
            assert "chart-ranks" in text and ("This is the best row" in text) == (index_ == 0)
    assert len(list(out.glob("*/*.html"))) == sum(len(b.rows) + 1 for b in boards)


def test_published_rows_sit_in_the_column_of_their_protocol(built):
    out, boards = built
    beauty = next(b for b in boards if b.dataset == "beauty")
    head = lb.table_rows(beauty)[0]
    n10 = head.index("N@10")
    measured = {c[0]: c for kind, c in table(out / "beauty" / "index.html", "board")[1:] if kind == "reference"}
    assert measured["RPG (published) *"][n10] == "0.0464"  # RPG's evaluator: item level, in the leaderboard's column
    assert not any(name.startswith("DiffGRM") for name in measured)  # DiffGRM's: ID level, in the ID-level table only
    id_rows = [c for kind, c in table(out / "beauty" / "index.html", "id-level")[1:] if kind == "reference"]
    assert ["DiffGRM (published)", "-", "DiffGRM paper (arXiv 2510.21805)", "-", "-", "0.0502", "-", "-", "-", "-"] in id_rows


def test_config_keys_that_differ_from_the_defaults_come_first(built):
    out, boards = built
    row = boards[0].rows[0]
    rows = table(out / boards[0].dataset / site_data.row_file(row), "config")[1:]
    flags = [kind == "differs" for kind, _ in rows]
    assert flags == sorted(flags, reverse=True) and len(rows) == sum(len(v) for v in row.runs[0].config.values())


def test_site_names_no_other_host(built):
    """Every page, the style and the script name no host at all. plotly.js (copied from the plotly
    package) holds links in its messages and the defaults of the map traces the site never draws:
    that nothing is fetched from anywhere at view time is the browser test's to show."""
    out, _ = built
    for path in out.rglob("*"):
        if path.is_file() and path.relative_to(out) != LIBRARY:
            hosts = set(URL.findall(path.read_text(encoding="utf-8")))
            assert hosts <= {"127.0.0.1", "localhost"}, f"{path} names {sorted(hosts)}"


def test_a_folder_that_is_not_a_site_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a recbench site"):
        site.check_output(mine, force=False)
    assert site.check_output(mine, force=True) is False
    from recbench.cli import main

    monkeypatch.setattr(sys, "argv", ["recbench", "site", "--results", str(RECORDS), "--output", str(mine)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and str(mine) in capsys.readouterr().err.replace("\n", "")
    assert (mine / "notes.txt").read_text() == "keep me"


def test_rank_histogram_counts_every_user_once(built):
    _, boards = built
    assert site_data.rank_bins(9) == [(1, 1), (2, 2), (3, 4), (5, 8), (9, 16)]
    row = boards[0].rows[0]
    histogram = site_data.rank_histogram(row)
    for seed, rec in zip(histogram["seeds"], row.runs):
        assert sum(seed["counts"]) == seed["users"] == len(rec.test_ranks())
        assert seed["top10"] / seed["users"] == pytest.approx(rec.metrics.test["recall@10"])


def test_a_rebuild_replaces_a_previous_site(tmp_path):
    boards = lb.boards(lb.collect([RECORDS], "ml-100k"))
    out = tmp_path / "site"
    site.build(boards, [RECORDS], out, "recbench site")
    (out / "ml-100k" / "gone.html").write_text("a row that no longer exists")
    site.build(boards, [RECORDS], out, "recbench site")
    assert not (out / "ml-100k" / "gone.html").exists() and (out / "ml-100k" / "index.html").is_file()
