"""MovieLens datasets (GroupLens): every rating is an interaction, with its timestamp.

Read from the upstream archives (`ml-100k.zip`: u.data + u.item; `ml-1m.zip`: ratings.dat +
movies.dat), from those files extracted, or from RecBole's atomic files (`ml-100k.inter` +
`ml-100k.item`), found in RECBENCH_DATA_MIRROR or the download cache. When none is found, the
upstream archive is downloaded from GroupLens into the cache. Item text: title, release year and
genres.

Harper & Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 2015.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from recbench import hookimpl
from recbench.api import Dataset
from recbench.data import RawData, Source
from recbench.errors import DataError

if TYPE_CHECKING:  # pandas is imported where a frame is built, so that registering the plugins imports none
    import pandas as pd

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
GROUPLENS = "https://files.grouplens.org/datasets/movielens/"


def read_table(path: Path, member: str | None, sep: str, names: list[str], *, header: tuple[str, ...] = (),
               encoding: str = "latin-1") -> pd.DataFrame:
    """Read a delimited file (or a member of a zip archive) with errors that name the file and line.

    `header`: the column names the first line must start with (RecBole's atomic files write
    `user_id:token`: the part before ':' is compared); empty for files without a header line. The
    frame's `line` column holds each row's line number in the file.
    """
    import pandas as pd

    where = f"{path}:{member}" if member else str(path)
    try:
        if member:
            with zipfile.ZipFile(path) as z:
                raw = z.read(member)
        else:
            raw = path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"Cannot read {where}: {exc}") from exc
    if not raw.strip():
        raise DataError(f"{where} is empty.")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}, line {line}: not {encoding.upper()} text (byte {raw[exc.start]:#04x}).") from None
    lines = text.splitlines()
    if header:
        found = [name.split(":")[0].strip() for name in lines[0].split(sep)]
        if found != list(header):
            raise DataError(f"{where}, line 1: expected a header line naming the columns {', '.join(header)}; "
                            f"got {lines[0][:80]!r}.")
    start = 1 if header else 0
    rows = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != len(names):
            raise DataError(
                f"{where}, line {number}: expected {len(names)} fields separated by {sep!r}, "
                f"got {len(fields)}: {line[:80]!r}"
            )
        rows.append([*fields, number])
    return pd.DataFrame(rows, columns=[*names, "line"])


MAX_TIMESTAMP = 2**53  # unix seconds: exact in a float, far past any rating; a larger value is a damaged field


def ratings_frame(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """user, item (str) and integer timestamp columns; an empty id, or a timestamp that is not a
    number of unix seconds in [0, 2^53], names its line (cast to int64 it would wrap around and
    reorder the user's history without a word)."""
    import pandas as pd

    user, item = df["user"].str.strip(), df["item"].str.strip()
    for column, values in (("user id", user), ("item id", item)):
        empty = (values == "").to_numpy().nonzero()[0]
        if len(empty):
            raise DataError(f"{where}, line {df['line'].iloc[empty[0]]}: the {column} is empty.")
    ts = pd.to_numeric(df["timestamp"], errors="coerce")
    bad = ts.isna().to_numpy().nonzero()[0]
    if len(bad):
        raise DataError(f"{where}, line {df['line'].iloc[bad[0]]}: the timestamp is not a number: {df['timestamp'].iloc[bad[0]]!r}")
    out = ((ts < 0) | (ts > MAX_TIMESTAMP)).to_numpy().nonzero()[0]
    if len(out):
        raise DataError(f"{where}, line {df['line'].iloc[out[0]]}: the timestamp {df['timestamp'].iloc[out[0]].strip()} is not "
                        f"unix seconds between 0 and {MAX_TIMESTAMP:,}.")
    return pd.DataFrame({"user": user, "item": item, "timestamp": ts.astype("int64")})


def download(source: Source, archive: str, forms: dict[str, list[str]]) -> list[Path]:
    """The upstream `archive`, downloaded into the cache; if that fails, an error that lists `forms` too."""
    try:
        return [source.fetch(archive, [GROUPLENS + archive])]
    except DataError as exc:
        raise source.missing(forms, exc) from exc


def movie_text(title: str, genres: list[str], year: str | None = None) -> dict:
    title = title.strip()
    match = _YEAR.search(title)
    if match and not year:
        year = match.group(1)
    title = _YEAR.sub("", title)
    text = {"title": title} if title else {}
    if year:
        text["year"] = year
    if genres:
        text["genres"] = genres
    return text


class MovieLens100K(Dataset):
    name = "ml-100k"
    description = "MovieLens 100K: 943 users, 1,682 movies, 100,000 timestamped ratings (GroupLens)"
    aliases = ("ml100k", "movielens-100k")
    max_seq_len = 200
    forms = {
        "RecBole atomic files": ["ml-100k.inter", "ml-100k.item"],
        "upstream archive": ["ml-100k.zip"],
        "upstream files": ["ml-100k/u.data", "ml-100k/u.item"],
    }

    def locate(self, source: Source) -> list[Path]:
        for folder in ("movielens/ml-100k/", "ml-100k/", ""):
            inter, item = source.find(folder + "ml-100k.inter"), source.find(folder + "ml-100k.item")
            if inter and item:
                return [inter, item]
        archive = source.find("ml-100k.zip", "movielens/ml-100k.zip")
        if archive:
            return [archive]
        for folder in ("movielens/ml-100k/", "ml-100k/", ""):
            data, item = source.find(folder + "u.data"), source.find(folder + "u.item")
            if data and item:
                return [data, item]
        return download(source, "ml-100k.zip", self.forms)

    def read(self, files: list[Path], config) -> RawData:
        if files[0].suffix == ".inter":
            inter = read_table(files[0], None, "\t", ["user", "item", "rating", "timestamp"],
                               header=("user_id", "item_id", "rating", "timestamp"), encoding="utf-8")
            items = read_table(files[1], None, "\t", ["item", "title", "year", "genres"],
                               header=("item_id", "movie_title", "release_year", "class"), encoding="utf-8")
            text = {r.item: movie_text(r.title, r.genres.split(), r.year) for r in items.itertuples()}
            return RawData(ratings_frame(inter, str(files[0])), text, files)
        if files[0].suffix == ".zip":
            data_src, item_src = (files[0], "ml-100k/u.data"), (files[0], "ml-100k/u.item")
        else:
            data_src, item_src = (files[0], None), (files[1], None)
        inter = read_table(*data_src, "\t", ["user", "item", "rating", "timestamp"])
        item_cols = ["item", "title", "release", "video", "url", *ML100K_GENRES]
        items = read_table(*item_src, "|", item_cols)
        text = {}
        for row in items.itertuples(index=False):
            flags = row[5 : 5 + len(ML100K_GENRES)]
            text[row.item] = movie_text(row.title, [g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1"])
        return RawData(ratings_frame(inter, str(data_src[0])), text, files)


class MovieLens1M(Dataset):
    name = "ml-1m"
    description = "MovieLens 1M: 6,040 users, 3,706 movies, 1,000,209 timestamped ratings (GroupLens)"
    aliases = ("ml1m", "movielens-1m")
    max_seq_len = 200
    forms = {"upstream archive": ["ml-1m.zip"], "upstream files": ["ml-1m/ratings.dat", "ml-1m/movies.dat"]}

    def locate(self, source: Source) -> list[Path]:
        archive = source.find("ml-1m.zip", "movielens/ml-1m.zip")
        if archive:
            return [archive]
        for folder in ("movielens/ml-1m/", "ml-1m/", ""):
            ratings, movies = source.find(folder + "ratings.dat"), source.find(folder + "movies.dat")
            if ratings and movies:
                return [ratings, movies]
        return download(source, "ml-1m.zip", self.forms)

    def read(self, files: list[Path], config) -> RawData:
        if files[0].suffix == ".zip":
            ratings_src, movies_src = (files[0], "ml-1m/ratings.dat"), (files[0], "ml-1m/movies.dat")
        else:
            ratings_src, movies_src = (files[0], None), (files[1], None)
        ratings = read_table(*ratings_src, "::", ["user", "item", "rating", "timestamp"])
        movies = read_table(*movies_src, "::", ["item", "title", "genres"])
        text = {r.item: movie_text(r.title, [g for g in r.genres.strip().split("|") if g]) for r in movies.itertuples()}
        return RawData(ratings_frame(ratings, str(ratings_src[0])), text, files)


@hookimpl
def register_datasets(register):
    register(MovieLens100K())
    register(MovieLens1M())
