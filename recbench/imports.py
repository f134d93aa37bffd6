"""Files a run takes from elsewhere instead of computing them: item embeddings (`--embeddings
FILE`, in place of the sentence model) and semantic IDs (`--semantic_ids FILE`, in place of the
tokenizer's fit).

They are settings of the run like any other, in a config section of their own, `imports`, which a
run has only when one of them is given: the config of every other run, and so its fingerprint, is
what it was before these options existed. The section holds each file's path and its sha256; the
config fingerprint hashes the checksums, not the paths (recbench.results.upgrade), so the same file
anywhere is one leaderboard row and a changed file is another. A config that names a checksum (a
record being reproduced) must find the file unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import DataError

KEYS = ("embeddings", "semantic_ids")  # the options; each has a `KEY_sha256` beside it
SECTION = "imports"


@dataclass
class ImportConfig:
    embeddings: str = ""  # item embeddings used instead of the sentence model (.npz, .npy, .parquet, .sent_emb; see docs/imports.md)
    embeddings_sha256: str = ""  # the file's checksum, filled in when the run is resolved (a given one must match)
    semantic_ids: str = ""  # semantic IDs used instead of fitting the tokenizer (.json, .parquet, genrec's .sem_ids)
    semantic_ids_sha256: str = ""  # likewise


def wanted(layers: list[tuple[str, dict]]) -> bool:
    """Whether any config layer names an imported file (the run then has an `imports` section)."""
    from .config import normalize_key

    return any(normalize_key(key) in KEYS and value not in ("", None) for _, layer in layers for key, value in layer.items())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return h.hexdigest()


def with_checksums(config: ImportConfig) -> ImportConfig:
    """`config` with absolute paths and each file's sha256; a DataError for a missing or unreadable
    file, or one that differs from the checksum the config already names."""
    values = {}
    for key in KEYS:
        given = getattr(config, key)
        if not given:
            if getattr(config, f"{key}_sha256"):
                raise DataError(f"{key}_sha256 is set but --{key} names no file.")
            continue
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            raise DataError(f"--{key} {given}: no such file.")
        digest = sha256(path)
        expected = getattr(config, f"{key}_sha256")
        if expected and expected != digest:
            raise DataError(f"{path} has sha256 {digest}, but the config names {expected}: the file changed since that run.")
        values[key], values[f"{key}_sha256"] = str(path), digest
    return replace(config, **values)


def fingerprinted(section: dict) -> dict:
    """The part of an `imports` section the config fingerprint hashes: the checksums, not the paths."""
    return {key: value for key, value in section.items() if key.endswith("_sha256")}
