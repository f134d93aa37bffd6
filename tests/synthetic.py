"""A small synthetic dataset in MovieLens-100K's upstream form (u.data + u.item), written by the
tests, so that every model runs through the whole pipeline on a machine without ../shared/data.

It has the structure a sequential recommender can learn: items belong to genres, each item's
title names its genre (so text embeddings, and semantic IDs, group them), and every user walks
through one or two favourite genres, mostly to the next item of the genre in a fixed order.
Deterministic for a seed; written once per folder.
"""

from pathlib import Path

import numpy as np

GENRES = ["Action", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Horror", "Romance", "Sci-Fi", "Western"]
ML100K_GENRE_COLUMNS = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                        "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                        "War", "Western"]
WORDS = {
    "Action": ["Explosive", "Fast", "Armed", "Heist"], "Animation": ["Cartoon", "Painted", "Talking", "Toy"],
    "Comedy": ["Funny", "Silly", "Wedding", "Office"], "Crime": ["Detective", "Gangster", "Murder", "Stolen"],
    "Documentary": ["True", "Nature", "History", "Ocean"], "Drama": ["Quiet", "Family", "Broken", "Long"],
    "Horror": ["Haunted", "Bloody", "Zombie", "Dark"], "Romance": ["Love", "Summer", "Paris", "Kiss"],
    "Sci-Fi": ["Space", "Robot", "Alien", "Galaxy"], "Western": ["Cowboy", "Desert", "Sheriff", "Outlaw"],
}


def write_ml100k(folder: Path, *, users: int = 150, items_per_genre: int = 12, seed: int = 0) -> Path:
    """Write folder/ml-100k/{u.data,u.item}; return `folder` (a data mirror for RECBENCH_DATA_MIRROR)."""
    out = Path(folder) / "ml-100k"
    if (out / "u.item").exists():
        return Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)
    lines = []
    for g, genre in enumerate(GENRES):
        for j in range(items_per_genre):
            item = g * items_per_genre + j + 1
            title = f"{WORDS[genre][j % 4]} {genre} Story {j + 1} ({1980 + (item % 20)})"
            flags = ["1" if c == genre else "0" for c in ML100K_GENRE_COLUMNS]
            lines.append("|".join([str(item), title, "01-Jan-1995", "", "http://example.org", *flags]))
    (out / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    rows = []
    for user in range(1, users + 1):
        favourites = rng.choice(n_genres, size=1 + user % 2, replace=False)
        genre = int(rng.choice(favourites))
        position = int(rng.integers(items_per_genre))
        t = 880_000_000 + int(rng.integers(1_000_000))
        for _ in range(int(rng.integers(6, 30))):
            if rng.random() < 0.15:  # now and then another favourite genre, or any item at all
                genre = int(rng.choice(favourites)) if rng.random() < 0.7 else int(rng.integers(n_genres))
                position = int(rng.integers(items_per_genre))
            else:
                position = (position + 1) % items_per_genre
            t += int(rng.integers(60, 100_000))
            rows.append(f"{user}\t{genre * items_per_genre + position + 1}\t{int(rng.integers(1, 6))}\t{t}")
    (out / "u.data").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Path(folder)
