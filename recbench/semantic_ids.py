"""Semantic IDs: item-text embeddings -> a tokenizer's codes -> one unique ID per item, cached.

`build` is what the rest of recbench calls (the DIFF_GRM and AR_GRM generators consume its
`codes`). It embeds the item text (recbench.embeddings, cached), reduces it by PCA fitted on the
training items, fits the tokenizer plugin on the training items only, encodes every item, makes
every ID unique, and caches the result under RECBENCH_DATA/semantic_ids/DATASET/, keyed by
everything the IDs depend on: the prepared data's fingerprint, the training items, the embedding
model, text template and reduction, and the tokenizer's name, version and config.
`rebuild` (`--rebuild_ids`) rebuilds them; a corrupt cache file is rebuilt.
A `resumable` tokenizer's fit (rqvae) keeps a checkpoint beside the cache file, `KEY.fit.pt`, until
the IDs are cached, so that an interrupted build continues its fit (recbench.fit_checkpoint).

Collisions. Two items can get the same codes (identical or near-identical text, or a crowded
cell). DiffGRM (arXiv 2510.21805) leaves them unresolved; TIGER (Rajput et al., NeurIPS 2023)
appends a digit that numbers the items sharing a code. recbench re-assigns instead: in each group
of items sharing a code, the item nearest to it keeps it, and each other item (in item order)
takes the nearest code of the *last* digit that no item with the same first n_digit-1 digits
uses (the quantizer's `last_digit_errors`) — the next-best centroid of the last sub-quantizer
(PQ/OPQ) or of the last residual level (RQ). IDs keep n_digit digits that all carry meaning, which
a parallel decoder (DIFF_GRM) needs: re-assignment moves some of the items, mostly to their
next-best code, at a small cost in quantization error, where TIGER's extra digit would change the
same items by lengthening every ID with a digit that numbers look-alikes and carries no meaning
(the figures on Beauty: docs/semantic-ids.md). If more items share the first n_digit-1 digits than
a digit has codes, no re-assignment can separate them: that is an error that asks for a larger
codebook_size or n_digit. A tokenizer that declares `extra_digit`
(`rqvae`, TIGER's RQ-VAE) gets TIGER's scheme instead: it learns n_digit-1 digits and the last one
numbers the items that share them, 0, 1, 2, ... in item order (`number_duplicates`); nothing moves
in the learned digits and the quantization error does not change.

Diagnostics, per digit: codes used of those available, entropy in bits, the share of items told
apart by the first k digits, and the share of the vectors' energy the digit's codewords reconstruct
(1 - quantization error, split by digit): how the "semantic hourglass" of RQ shows up in numbers.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import embeddings, fit_checkpoint, paths
from .api import Quantizer, Tokenizer
from .data import Prepared, Split
from .embeddings import EmbeddingConfig, Log
from .errors import UsageError
from .fit_checkpoint import FitCheckpoint

SEMANTIC_IDS_VERSION = 3  # 2: the codes before collisions were resolved are kept too; 3: and the learned parameters
STAGES = ("embed", "pca", "fit", "encode", "resolve")
PARAM = "parameter."  # cache-file prefix of the tokenizer's learned arrays


@dataclass
class SemanticIDs:
    codes: np.ndarray  # [N+1, n_digit] int64; row 0 (padding) is zeros: tell padding by item id 0, not by code
    n_digit: int
    codebook_size: int  # codes per digit
    tokenizer: str
    embedding_model: str
    collision_rate: float  # share of items whose codes, before resolution, another item shares
    moved: int  # items given another last digit to make every ID unique
    error_increase: float  # relative increase of the mean quantization error caused by the moves
    diagnostics: dict  # {"digits": [per-digit figures], "quantization_error": ...} (see `diagnose`)
    timings: dict[str, float | None]  # stage -> seconds; None where that stage's result came from a cache
    items_without_text: int
    config: dict  # {"tokenizer": {...}, "embedding": {...}}
    path: Path  # the cache file
    load_seconds: float | None = None  # set when the IDs themselves were loaded from the cache
    raw_codes: np.ndarray | None = None  # [N+1, n_digit] the tokenizer's codes before collisions were resolved
    parameters: dict[str, np.ndarray] | None = None  # what the tokenizer learned (Quantizer.parameters()), by name

    def id_numbers(self) -> np.ndarray:
        """[N+1] a number per distinct *unresolved* ID (1, 2, ...; 0 for padding): items that collided
        share one. The papers evaluate on these IDs (recbench.metrics.id_level_ranks)."""
        _, inverse = np.unique(self.raw_codes[1:], axis=0, return_inverse=True)
        return np.concatenate([[0], inverse.ravel() + 1]).astype(np.int64)

    @property
    def items(self) -> int:
        return len(self.codes) - 1

    @property
    def unique_ids(self) -> int:
        return len(np.unique(self.codes[1:], axis=0))

    def summary(self) -> dict:
        """The figures `recbench tokenize --json` prints."""
        return {
            "tokenizer": self.tokenizer, "embedding_model": self.embedding_model, "items": self.items,
            "unique_ids": self.unique_ids, "n_digit": self.n_digit, "codebook_size": self.codebook_size,
            "collision_rate": self.collision_rate, "moved": self.moved, "error_increase": self.error_increase,
            "items_without_text": self.items_without_text, **self.diagnostics,
            "timings": {s: "cached" if self.timings.get(s) is None else self.timings[s] for s in STAGES},
            "load_seconds": self.load_seconds, "cache": str(self.path), "config": self.config,
        }


def train_mask(train: Split | np.ndarray, n_items: int) -> np.ndarray:
    """[N+1] bool, true for items that occur in some user's training part (row 0 false)."""
    mask = (train.train_item_counts() > 0) if isinstance(train, Split) else np.asarray(train) > 0
    if mask.shape != (n_items + 1,):
        raise ValueError(f"the training-item mask has shape {mask.shape}; expected ({n_items + 1},)")
    mask = mask.copy()
    mask[0] = False
    return mask


def check_capacity(config, n_items: int) -> None:
    if config.codebook_size ** config.n_digit < n_items:
        raise UsageError(f"n_digit={config.n_digit} digits of codebook_size={config.codebook_size} codes give "
                         f"{config.codebook_size ** config.n_digit:,} IDs, fewer than the {n_items:,} items; "
                         "raise n_digit or codebook_size.")


def collision_rate(codes: np.ndarray) -> float:
    """Share of rows that another row equals."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float(np.mean(counts[inverse.ravel()] > 1))


def prefix_groups(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """[n] a group number per row, equal for rows that agree in all but the last digit; a UsageError
    if a group has more rows than the last digit has codes (no last digit can then tell them apart)."""
    last = codes.shape[1] - 1
    _, prefix, counts = np.unique(codes[:, :last], axis=0, return_inverse=True, return_counts=True)
    prefix = prefix.ravel()
    if counts.max() > codebook_size:
        crowded = int(counts.argmax())
        raise UsageError(
            f"{counts[crowded]:,} items share their first {last} digits {codes[prefix == crowded][0, :last].tolist()}, "
            f"but the last digit has only {codebook_size} codes, so their IDs cannot all be unique; "
            "raise codebook_size or n_digit.")
    return prefix


def number_duplicates(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """Unique codes by TIGER's extra digit: within each group of rows that agree in all but the last
    digit, the last digit numbers the rows 0, 1, 2, ... in row (item) order; a group larger than
    codebook_size is a UsageError (see `prefix_groups`)."""
    codes = codes.copy()
    if not len(codes):
        return codes
    prefix = prefix_groups(codes, codebook_size)
    order = np.argsort(prefix, kind="stable")  # by group, item order within a group
    starts = np.r_[True, prefix[order][1:] != prefix[order][:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))  # position where each row's group starts
    codes[order, -1] = np.arange(len(order)) - first
    return codes


def make_unique(x: np.ndarray, codes: np.ndarray, quantizer: Quantizer) -> tuple[np.ndarray, np.ndarray]:
    """Unique codes by re-assigning colliding items' last digit (see the module docstring).

    Returns (codes, increase): increase[i] is item i's added squared quantization error (0 if unmoved).
    """
    codes = codes.copy()
    increase = np.zeros(len(codes))
    _, group, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    colliding = np.flatnonzero(counts[group] > 1)
    if not len(colliding):
        return codes, increase
    last = quantizer.n_digit - 1
    prefix = prefix_groups(codes, quantizer.codebook_size)
    errors = quantizer.last_digit_errors(x[colliding], codes[colliding])
    current = errors[np.arange(len(colliding)), codes[colliding, last]]
    order = np.lexsort((colliding, current, group[colliding]))  # per group: nearest first, ties by item id
    keeps = np.r_[True, group[colliding][order][1:] != group[colliding][order][:-1]]
    movers = np.sort(order[~keeps])  # positions in `colliding`, in item order
    moving = np.zeros(len(codes), dtype=bool)
    moving[colliding[movers]] = True
    taken = {(int(p), int(c)) for p, c in zip(prefix[~moving], codes[~moving, last])}
    for j in movers:
        item, p = colliding[j], int(prefix[colliding[j]])
        for code in np.argsort(errors[j], kind="stable"):
            if (p, int(code)) not in taken:
                break
        taken.add((p, int(code)))
        codes[item, last] = code
        increase[item] = errors[j, code] - current[j]
    return codes, increase


def entropy_bits(values: np.ndarray) -> float:
    p = np.bincount(values) / len(values)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def diagnose(x: np.ndarray, codes: np.ndarray, quantizer: Quantizer) -> dict:
    """Per digit: codes used, entropy, share told apart by the first k digits, energy reconstructed."""
    energy = float((x**2).sum(1).mean())
    errors = [energy] + [float(((x - quantizer.decode(codes, k)) ** 2).sum(1).mean()) for k in range(1, quantizer.n_digit + 1)]
    digits = []
    for d in range(quantizer.n_digit):
        _, inverse, counts = np.unique(codes[:, : d + 1], axis=0, return_inverse=True, return_counts=True)
        digits.append({
            "digit": d + 1,
            "codes_used": int(len(np.unique(codes[:, d]))),
            "codes_available": quantizer.codebook_size,
            "entropy_bits": entropy_bits(codes[:, d]),
            "told_apart": float(np.mean(counts[inverse.ravel()] == 1)),  # by the first d+1 digits
            "energy_share": (errors[d] - errors[d + 1]) / energy,
        })
    return {"digits": digits, "quantization_error": errors[-1] / energy}


@dataclass
class Tokenized:
    codes: np.ndarray  # [N, n_digit] int64, unique rows
    raw: np.ndarray  # [N, n_digit] int64, the codes before resolution
    quantizer: Quantizer
    collision_rate: float  # before resolution
    moved: int
    error_increase: float
    diagnostics: dict
    timings: dict[str, float]  # fit, encode, resolve


def tokenize(x: np.ndarray, train: np.ndarray, tokenizer: Tokenizer, config, checkpoint: FitCheckpoint | None = None) -> Tokenized:
    """Fit `tokenizer` on the rows of `x` ([N, dim]) where `train` is true, encode every row and make
    the IDs unique. `checkpoint` is handed to a `resumable` tokenizer's fit (others ignore it)."""
    tokenizer.check(config, x.shape[1], int(train.sum()))
    check_capacity(config, len(x))
    timings = {}
    with embeddings.faiss_single_threaded():
        start = time.perf_counter()
        if checkpoint is not None and tokenizer.resumable:
            quantizer = tokenizer.fit(np.ascontiguousarray(x[train]), config, checkpoint=checkpoint)
        else:
            quantizer = tokenizer.fit(np.ascontiguousarray(x[train]), config)
        timings["fit"] = time.perf_counter() - start
        start = time.perf_counter()
        raw = quantizer.encode(x)
        timings["encode"] = time.perf_counter() - start
        start = time.perf_counter()
        if tokenizer.extra_digit:
            codes, increase = number_duplicates(raw, config.codebook_size), np.zeros(len(raw))
        else:
            codes, increase = make_unique(x, raw, quantizer)
        timings["resolve"] = time.perf_counter() - start
    base_error = float(((x - quantizer.decode(raw)) ** 2).sum(1).mean())
    return Tokenized(codes, raw, quantizer, collision_rate(raw), int((raw != codes).any(1).sum()),
                     float(increase.mean() / base_error) if base_error > 0 else 0.0, diagnose(x, codes, quantizer), timings)


def tokenizer_configs(tokenizers: list, overrides: dict) -> tuple[EmbeddingConfig, dict[str, object]]:
    """The embedding config and the config of each tokenizer (registry entries) from their defaults
    and `overrides` (`recbench tokenize`'s --key=value arguments)."""
    from . import config as cfg

    sections = {"embedding": EmbeddingConfig, **{f"tokenizer {e.name}": e.obj.Config for e in tokenizers}}
    configs = cfg.from_layers(sections, [("command line", overrides)] if overrides else [])
    return configs["embedding"], {e.name: configs[f"tokenizer {e.name}"] for e in tokenizers}


def cache_key(prepared: Prepared, train: np.ndarray, entry, config, embedding: EmbeddingConfig, embeddings_sha256: str = "") -> str:
    """What the IDs depend on; vectors from a file (`--embeddings`) stand in the model's place by their checksum."""
    key = {
        "version": SEMANTIC_IDS_VERSION,
        "fingerprint": prepared.fingerprint,
        "train": hashlib.sha256(np.packbits(train).tobytes()).hexdigest(),
        "model": {"file": embeddings_sha256} if embeddings_sha256 else embeddings.model_identity(embedding.sent_emb_model),
        "template": embeddings.TEMPLATE,
        "reduction": {"sent_emb_pca": embedding.sent_emb_pca, "normalize_after_pca": embedding.normalize_after_pca},
        "tokenizer": [entry.name, entry.package, entry.version],
        "config": asdict(config),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def load(path: Path, n_items: int, config, settings: dict, log: Log) -> SemanticIDs | None:
    """The cached IDs in `path`, or None if absent or not what this build would write (then rebuilt)."""
    start = time.perf_counter()
    cached = embeddings.read_cache(path, log)
    if cached is None:
        return None
    arrays, meta = cached
    try:
        ids = SemanticIDs(arrays["codes"], config=settings, path=path, timings=dict.fromkeys(STAGES), raw_codes=arrays["raw_codes"],
                          parameters={k[len(PARAM):]: v for k, v in arrays.items() if k.startswith(PARAM)}, **meta["ids"])
        if ids.codes.shape != (n_items + 1, config.n_digit) or ids.codes.dtype != np.int64 or ids.unique_ids != n_items:
            raise ValueError(f"codes of shape {ids.codes.shape}, {ids.unique_ids:,} unique")
        if ids.raw_codes.shape != ids.codes.shape or ids.raw_codes.dtype != np.int64:
            raise ValueError(f"unresolved codes of shape {ids.raw_codes.shape}")
        for codes in (ids.codes[1:], ids.raw_codes[1:]):
            if len(codes) and (codes.min() < 0 or codes.max() >= config.codebook_size):
                raise ValueError(f"codes outside 0..{config.codebook_size - 1}")
    except (KeyError, TypeError, ValueError) as exc:
        log(f"cache file {path} is corrupt ({type(exc).__name__}: {exc}); rebuilding it")
        return None
    ids.load_seconds = time.perf_counter() - start
    return ids


def build(prepared: Prepared, train: Split | np.ndarray, entry, config, embedding: EmbeddingConfig, *,
          log: Log = lambda s: None, progress: bool = True, rebuild: bool = False, device: str | None = None,
          imported=None) -> SemanticIDs:
    """The unique semantic IDs of every item of `prepared`, from the cache or built now.

    train: the Split (its training parts) or an [N+1] mask/count of the items to fit on.
    entry: the tokenizer's registry entry (recbench.registry.Registry.entry("tokenizer", name)).
    config: the tokenizer's Config; embedding: the EmbeddingConfig.
    rebuild: build the IDs anew even where cached (`--rebuild_ids`).
    device: where the item text is embedded (default: a GPU where there is one).
    imported: the run's recbench.imports.ImportConfig, or None: IDs read from a file (`--semantic_ids`,
    never cached: reading is quick), or vectors from a file (`--embeddings`) instead of the sentence model.
    """
    mask = train_mask(train, prepared.n_items)
    settings = {"tokenizer": asdict(config), "embedding": asdict(embedding)}
    if imported is not None and imported.semantic_ids:
        from . import id_files

        return id_files.load(Path(imported.semantic_ids), prepared, entry, config, settings, log)
    from_file = imported.embeddings_sha256 if imported is not None and imported.embeddings else ""
    path = paths.data_dir() / "semantic_ids" / prepared.name / f"{cache_key(prepared, mask, entry, config, embedding, from_file)}.npz"
    if not rebuild:
        cached = load(path, prepared.n_items, config, settings, log)
        if cached is not None:
            log(f"{entry.name} semantic IDs of {prepared.n_items:,} items loaded from {path}")
            stale = path.with_suffix(".fit.pt")
            if stale.is_file():  # a build stopped between writing the IDs and removing its fit checkpoint
                stale.unlink()
            return cached
    n_train = int(mask.sum())
    if embedding.sent_emb_pca:  # fail before the (long) embedding where the dimension is already known
        entry.obj.check(config, embedding.sent_emb_pca, n_train)
    check_capacity(config, prepared.n_items)
    every = fit_checkpoint.interval() if entry.obj.resumable else None  # a bad RECBENCH_FIT_CHECKPOINT_SECONDS: before embedding
    if from_file:
        from .embedding_files import embeddings_of

        emb = embeddings_of(Path(imported.embeddings), from_file, prepared, embedding)
        log(f"embeddings of {prepared.n_items:,} items ({emb.dim}-dimensional) read from {emb.path}")
    else:
        emb = embeddings.embed(prepared, embedding, log=log, progress=progress, device=device)
    start = time.perf_counter()
    x = embeddings.reduce(emb.vectors, mask, embedding)[1:]
    pca_seconds = time.perf_counter() - start
    log(f"fitting {entry.name} ({config.n_digit} digits x {config.codebook_size} codes) on {n_train:,} training items")
    checkpoint = None
    if entry.obj.resumable:  # a long fit (RQ-VAE) keeps checkpoints beside the cache file until the IDs are cached
        key = {"ids": path.stem, "training_vectors": fit_checkpoint.training_digest(x[mask[1:]])}
        checkpoint = fit_checkpoint.FitCheckpoint(path.with_suffix(".fit.pt"), key, log, fresh=rebuild, every=every)
    try:
        result = tokenize(x, mask[1:], entry.obj, config, checkpoint)
    except BaseException as exc:
        if checkpoint is not None and checkpoint.path.is_file() and not isinstance(exc, UsageError):  # a usage error recurs
            log(f"{entry.name} fit stopped: its last checkpoint is kept in {checkpoint.path}; the same command continues from there")
        raise
    codes = np.zeros((prepared.n_items + 1, config.n_digit), dtype=np.int64)
    codes[1:] = result.codes
    raw_codes = np.zeros_like(codes)
    raw_codes[1:] = result.raw
    ids = {
        "n_digit": config.n_digit, "codebook_size": config.codebook_size, "tokenizer": entry.name,
        "embedding_model": emb.model, "collision_rate": result.collision_rate, "moved": result.moved,
        "error_increase": result.error_increase, "diagnostics": result.diagnostics,
        "items_without_text": emb.items_without_text,
    }
    timings = {"embed": emb.seconds, "pca": pca_seconds, **result.timings}
    parameters = {k: np.asarray(v) for k, v in result.quantizer.parameters().items()}
    embeddings.write_cache(path, {"codes": codes, "raw_codes": raw_codes, **{PARAM + k: v for k, v in parameters.items()}},
                           {"ids": ids, "built_in_seconds": timings, "config": settings})
    if checkpoint is not None:
        checkpoint.remove()
    return SemanticIDs(codes, config=settings, path=path, timings=timings, raw_codes=raw_codes, parameters=parameters, **ids)
