"""The MovieLens datasets on small files in every upstream form: ml-1m's ratings.dat + movies.dat
(also zipped), ml-100k's u.data + u.item, and RecBole's atomic files; plus their errors."""

import zipfile

import pytest

from recbench.data import Source, prepare
from recbench.errors import DataError
from recbench_plugins.movielens import MovieLens1M, MovieLens100K

pytestmark = pytest.mark.usefixtures("home")

RATINGS = "1::10::5::300\n1::20::3::100\n2::10::4::50\n1::30::4::100\n2::20::1::60\n2::30::2::70\n"
MOVIES = "10::Toy Story (1995)::Animation|Children's|Comedy\n20::Heat (1995)::Action|Crime|Thriller\n30::Casino (1995)::Drama\n"
U_DATA = "1\t10\t5\t300\n1\t20\t3\t100\n2\t10\t4\t50\n1\t30\t4\t100\n2\t20\t1\t60\n2\t30\t2\t70\n"
GENRES = ["0"] * 19


def u_item_line(item, title, *genres):
    flags = ["1" if i in genres else "0" for i in range(19)]
    return "|".join([item, title, "01-Jan-1995", "", "http://x", *flags]) + "\n"


U_ITEM = u_item_line("10", "Toy Story (1995)", 3, 4, 5) + u_item_line("20", "Heat (1995)", 1) + u_item_line("30", "Casino (1995)", 8)


def prepared(dataset, folder):
    return prepare(dataset, dataset.Config(), Source(dataset.name, mirror=folder, cache=folder / "cache"))


def sequences(p):
    return {str(p.user_ids[u]): [str(p.item_ids[i]) for i in p.sequence(u)] for u in range(p.n_users)}


def check(p):
    # user 1: 20 and 30 share time 100 and keep file order; user 2 is in time order
    assert sequences(p) == {"1": ["20", "30", "10"], "2": ["10", "20", "30"]}
    assert p.times.tolist() == [100, 100, 300, 50, 60, 70]
    text = {str(p.item_ids[i]): p.item_text[i] for i in range(1, p.n_items + 1)}
    assert text["10"] == {"title": "Toy Story", "year": "1995", "genres": ["Animation", "Children's", "Comedy"]}


def test_ml1m_dat_files(tmp_path):
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text(RATINGS)
    (tmp_path / "ml-1m" / "movies.dat").write_text(MOVIES, encoding="latin-1")
    check(prepared(MovieLens1M(), tmp_path))


def test_ml1m_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w") as z:
        z.writestr("ml-1m/ratings.dat", RATINGS)
        z.writestr("ml-1m/movies.dat", MOVIES.encode("latin-1"))
    check(prepared(MovieLens1M(), tmp_path))


def test_ml100k_upstream_files(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text(U_DATA)
    (tmp_path / "ml-100k" / "u.item").write_text(U_ITEM, encoding="latin-1")
    check(prepared(MovieLens100K(), tmp_path))


def test_ml100k_recbole_atomic_files(tmp_path):
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    (tmp_path / "ml-100k.inter").write_text(header + U_DATA)
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Children's Comedy\n20\tHeat\t1995\tAction\n30\tCasino\t1995\tDrama\n"
    )
    check(prepared(MovieLens100K(), tmp_path))


@pytest.mark.parametrize(
    "ratings, message",
    [
        ("1::10::5::300\n1::20::3\n", r"ratings.dat, line 2: expected 4 fields"),
        ("1::10::5::300\n1::20::3::soon\n", r"ratings.dat, line 2: the timestamp is not a number"),
        ("", r"ratings.dat is empty"),
    ],
)
def test_bad_ratings_name_file_and_line(tmp_path, ratings, message):
    (tmp_path / "ratings.dat").write_text(ratings)
    (tmp_path / "movies.dat").write_text(MOVIES)
    with pytest.raises(DataError, match=message):
        prepared(MovieLens1M(), tmp_path)


def test_truncated_zip_is_a_clear_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w") as z:
        z.writestr("ml-1m/ratings.dat", RATINGS * 50)
        z.writestr("ml-1m/movies.dat", MOVIES)
    data = (tmp_path / "ml-1m.zip").read_bytes()
    (tmp_path / "ml-1m.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="ml-1m.zip"):
        prepared(MovieLens1M(), tmp_path)


ATOMIC_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ATOMIC_ITEMS = ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                "10\tToy Story\t1995\tAnimation Children's Comedy\n20\tHeat\t1995\tAction\n30\tCasino\t1995\tDrama\n")


@pytest.mark.parametrize(
    "inter, items, message",
    [
        ((ATOMIC_HEADER + "1\t10\t5\t300\n").encode() + b"2\t20\t4\t30\xff\n", ATOMIC_ITEMS.encode(),
         r"ml-100k.inter, line 3: not UTF-8 text \(byte 0xff\)"),
        (ATOMIC_HEADER.encode() + bytes(range(256)) * 4, ATOMIC_ITEMS.encode(), r"ml-100k.inter, line \d+: not UTF-8 text"),
        ((ATOMIC_HEADER + U_DATA).encode(), ATOMIC_ITEMS.encode().replace(b"Heat", b"H\xe9at"),
         r"ml-100k.item, line 3: not UTF-8 text \(byte 0xe9\)"),
        (U_DATA.encode(), ATOMIC_ITEMS.encode(), r"ml-100k.inter, line 1: expected a header line naming the columns "
                                                  r"user_id, item_id, rating, timestamp"),
        ((ATOMIC_HEADER + U_DATA).encode(), ATOMIC_ITEMS.split("\n", 1)[1].encode(), r"ml-100k.item, line 1: expected a header line"),
    ],
    ids=["non-utf8 inter", "binary inter", "non-utf8 item", "inter without header", "item without header"],
)
def test_bad_atomic_files_name_file_and_line(tmp_path, inter, items, message):
    (tmp_path / "ml-100k.inter").write_bytes(inter)
    (tmp_path / "ml-100k.item").write_bytes(items)
    with pytest.raises(DataError, match=message):
        prepared(MovieLens100K(), tmp_path)
