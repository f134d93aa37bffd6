"""`recbench tokenize`: build (or load) a dataset's semantic IDs with one or more tokenizers and show
how their digits carry information: per digit, codes used, entropy and energy reconstructed, and
the share of items told apart by the first k digits; the collision rate before resolution; time
per stage. Extra --key=value arguments set embedding and tokenizer config values."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import config as cfg
from .. import registry as plugin_registry
from ..errors import UsageError

if TYPE_CHECKING:  # imported when a command runs (numpy, faiss): `recbench --help` starts without them
    from ..semantic_ids import SemanticIDs

console = Console(soft_wrap=True)  # long paths stay whole when the output goes to a file
err = Console(stderr=True, soft_wrap=True)  # a cache file named in a message stays whole


def tokenizer_names(values: list[str]) -> list[str]:
    """['pq,opq', 'rq'] -> ['pq', 'opq', 'rq'] (order kept, repeats dropped)."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(names))


def tokenize(dataset: str, tokenizers: list[str], overrides: dict, log=lambda s: None, device: str | None = None,
             embeddings: Path | None = None, export: Path | None = None) -> tuple[str, list[SemanticIDs]]:
    """(dataset name, semantic IDs per tokenizer), built or loaded from the cache (`--rebuild_ids`: built);
    `embeddings`: vectors from that file instead of the sentence model; `export`: the IDs written there."""
    from .. import id_files, imports
    from ..data import Split
    from ..semantic_ids import build, tokenizer_configs
    from .datasets import load as load_dataset
    from .run import rebuild_ids

    registry = plugin_registry.registry()
    entries = [registry.entry("tokenizer", name) for name in tokenizers]
    if export is not None and len(entries) > 1:
        raise UsageError(f"--export writes the IDs of one tokenizer; {len(entries)} are named ({', '.join(tokenizers)}).")
    rebuild = rebuild_ids(overrides)
    embedding, configs = tokenizer_configs(entries, overrides)
    imported = imports.with_checksums(imports.ImportConfig(embeddings=str(embeddings))) if embeddings else None
    data = load_dataset(dataset)
    split = Split(data, 1)  # only its training items are used
    results = [build(data, split, e, configs[e.name], embedding, log=log, rebuild=rebuild, device=device, imported=imported)
               for e in entries]
    if export is not None:
        id_files.export(results[0], data, export)
        log(f"semantic IDs of {data.n_items:,} items written to {export}")
    return data.name, results


ENERGY = ("energy reconstructed: how much digit k lowers the squared error of the reconstruction (digits 1..k-1 against "
          "digits 1..k), as a share of the vectors' squared norm; the digits' shares add up to 1 - quantization error.")
NEGATIVE = ("A negative share (*): that digit's codes leave the reconstruction farther from the vectors than the digits "
            "before it alone did (a codeword that overshoots an item's residual, an item moved to another code to keep "
            "its ID unique, or a decoder that is not a sum of codewords); it is error added, not energy.")


def digit_table(dataset: str, ids: SemanticIDs) -> Table:
    """The per-digit diagnostics. "Energy reconstructed" is a difference of two errors and can be
    negative, which a bare "-5.1%" of a share would not explain: the caption defines the column
    and, where a digit is negative, says what that means."""
    emb = ids.config["embedding"]
    reduction = f"PCA {emb['sent_emb_pca']}" if emb["sent_emb_pca"] else "no PCA"
    digits = ids.diagnostics["digits"]
    negative = any(d["energy_share"] < 0 for d in digits)
    table = Table(title=f"{ids.tokenizer} on {dataset}: {ids.items:,} items, {ids.unique_ids:,} unique IDs "
                        f"({ids.embedding_model}, {reduction})", header_style="bold",
                  caption=ENERGY + (" " + NEGATIVE if negative else ""), caption_justify="left")
    for col in ("digit", "codes used", "entropy (bits)", "told apart by digits 1..k", "energy reconstructed"):
        table.add_column(col, justify="right")
    for d in digits:
        energy = ("* " if d["energy_share"] < 0 else "") + f"{d['energy_share']:.1%}"  # the mark in front: the % signs stay aligned
        table.add_row(str(d["digit"]), f"{d['codes_used']:,} / {d['codes_available']:,}",
                      f"{d['entropy_bits']:.2f} / {math.log2(d['codes_available']):.2f}",
                      f"{d['told_apart']:.1%}", energy)
    return table


def show(dataset: str, ids: SemanticIDs) -> None:
    from ..semantic_ids import STAGES

    console.print(digit_table(dataset, ids))
    if plugin_registry.registry().get("tokenizer", ids.tokenizer).extra_digit:  # TIGER's numbering digit
        resolution = f"{ids.moved:,} numbered 1, 2, ... in the extra last digit"
    else:
        resolution = f"{ids.moved:,} moved to their next-best last digit (quantization error +{ids.error_increase:.2%})"
    console.print(f"collisions before resolution: {ids.collision_rate:.2%} of items; {resolution}; quantization error "
                  f"{ids.diagnostics['quantization_error']:.1%} of the energy", highlight=False)
    if ids.load_seconds is not None:
        console.print(f"time: cached (loaded in {ids.load_seconds:.2f} s) from {ids.path}", highlight=False)
    else:
        stages = " · ".join(f"{s} {'cached' if ids.timings[s] is None else f'{ids.timings[s]:.1f} s'}" for s in STAGES)
        console.print(f"time: {stages}", highlight=False)


def plot(dataset: str, results: list[SemanticIDs], path: Path) -> None:
    """A PNG of per-digit entropy and energy reconstructed, tokenizers side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(results)
    for i, ids in enumerate(results):
        digits = [d["digit"] for d in ids.diagnostics["digits"]]
        pos = [d - 0.4 + width * (i + 0.5) for d in digits]
        axes[0].bar(pos, [d["entropy_bits"] for d in ids.diagnostics["digits"]], width, label=ids.tokenizer)
        axes[1].bar(pos, [100 * d["energy_share"] for d in ids.diagnostics["digits"]], width, label=ids.tokenizer)
    for size in {r.codebook_size for r in results}:
        axes[0].axhline(math.log2(size), color="grey", linestyle="--", linewidth=1)
    axes[0].set_ylim(0, 1.25 * math.log2(max(r.codebook_size for r in results)))  # room for the legend
    axes[0].set(title="entropy per digit (dashed: uniform use of the codebook)", xlabel="digit", ylabel="bits")
    axes[1].set(title="share of the vectors' energy each digit reconstructs", xlabel="digit", ylabel="%")
    for ax in axes:
        ax.set_xticks(sorted({d["digit"] for r in results for d in r.diagnostics["digits"]}))
        ax.legend(ncol=len(results), loc="upper right")
    fig.suptitle(f"{dataset}: semantic-ID digits ({results[0].embedding_model})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def command(
    ctx: typer.Context,
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name or alias (see `recbench datasets`)."),
    tokenizer: list[str] = typer.Option(..., "--tokenizer", "-t", help="Tokenizer; repeat it or write pq,opq,rq to compare."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (an object; a list for several tokenizers)."),
    plot_file: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of per-digit entropy and energy."),
    device: Optional[str] = typer.Option(None, "--device", help="Where to embed the item text: cpu, cuda or cuda:N (default: a GPU where there is one)."),
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Item embeddings from this file instead of the "
                                              "sentence model (.npz, .npy, .parquet, .sent_emb; see docs/imports.md)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write the semantic IDs (item id -> digits, with the "
                                          "diagnostics) to this .json or .parquet file."),
) -> None:
    """Build or load semantic IDs and show per-digit diagnostics. Extra --key=value arguments set
    embedding (sent_emb_*, normalize_after_pca) and tokenizer (n_digit, codebook_size, seed) config
    values; --rebuild_ids (or a generator's alias of it) builds the IDs anew even where cached."""
    names = tokenizer_names(tokenizer)
    if not names:
        raise UsageError("--tokenizer is empty; name one or more tokenizers (see `recbench plugins`).")
    name, results = tokenize(dataset, names, cfg.parse_overrides(ctx.args), log=lambda s: err.print(s, highlight=False), device=device,
                             embeddings=embeddings, export=export)
    if as_json:
        figures = [ids.summary() for ids in results]
        print(json.dumps(figures[0] if len(figures) == 1 else figures, indent=2))
    else:
        for ids in results:
            show(name, ids)
    if plot_file is not None:
        plot(name, results, plot_file)
        err.print(f"plot written to {plot_file}", highlight=False)
