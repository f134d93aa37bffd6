"""The committed leaderboard pages: one markdown file per dataset and a README, rendered
deterministically from a folder of result records, with what is needed to reproduce every row."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import write_text
from . import gaps, references
from .leaderboard import RANKED_BY, SIGNIFICANCE_NOTE, Board, device_label, fmt_metric, fmt_seconds, md_board, md_table, row_labels
from .records import Record


def posix_relpath(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def regenerate_command(folders: list[Path], out: Path, with_references: bool) -> str:
    """The command that writes these pages, run from the folder that holds `out`."""
    base = out.resolve().parent
    parts = ["recbench leaderboard", *(f"--results {posix_relpath(f, base)}" for f in folders),
             f"--write-markdown {out.resolve().name}/"]
    return " ".join(parts + ([] if with_references else ["--no-references"]))


def distinct(values) -> str:
    return "; ".join(dict.fromkeys(f"{v:,}" if isinstance(v, int) else str(v) for v in values))


def hardware(rec: Record) -> str:
    env = rec.environment or {}
    processes = rec.device.processes or 1
    return (f"{device_label(rec)}, {processes} process{'es' if processes != 1 else ''}; {env.get('platform', '?')}, "
            f"{env.get('cpu_count', '?')} CPUs; torch {env.get('torch', '?')}, CUDA {env.get('cuda') or '-'}; "
            f"peak memory {rec.peak_memory_mb or 0:,.0f} MB")


def software(rec: Record) -> str:
    env = rec.environment or {}
    commit = env.get("git_commit") or "unknown commit"
    return f"recbench {env.get('recbench', '?')} ({commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''})"


def config_text(rec: Record) -> str:
    return "; ".join(
        f"{section}: " + (", ".join(f"{k}={v!r}" for k, v in values.items()) or "(no settings)")
        for section, values in rec.config.items()
    )


def tune_lines(rec: Record) -> list[str]:
    """For the re-run of a tuning study's best trial: which study, trial and values (else nothing)."""
    tune = rec.tune
    if tune is None:
        return []
    trials = ", ".join(f"{n} {state}" for state, n in sorted(tune.trials.items()))
    values = ", ".join(f"{k}={v!r}" for k, v in tune.params.items())
    return ["", f"Tuned by `recbench tune`: the best trial ({tune.trial}) of study `{tune.study}` ({trials}), chosen on "
                f"validation {tune.metric} {tune.value:.4f}; tuned values: {values}."]


def protocol_lines(board: Board) -> list[str]:
    runs = [rec for row in board.rows for rec in row.runs]
    data = {(r.dataset.fingerprint, r.dataset.users, r.dataset.items, r.dataset.interactions) for r in runs}
    lines = [
        f"- Data: {board.dataset}, " + "; ".join(
            f"{u:,} users, {i:,} items, {n:,} interactions (prepared-data fingerprint `{fp}`)" for fp, u, i, n in sorted(data)),
    ]
    for key, title in (("split", "Split"), ("ranking", "Candidates"), ("ties", "Ties"), ("max_seq_len", "History fed to a model (items)"),
                       ("selection", "Model selection"), ("eval_users", "Evaluated users")):
        lines.append(f"- {title}: {distinct((r.protocol or {}).get(key, '?') for r in runs)}")
    stamps = [(r.protocol or {})["timestamps"] for r in runs if "timestamps" in (r.protocol or {})]  # recorded since this line exists
    if stamps:
        lines.append(f"- Timestamps: {distinct(stamps)}" + ("" if distinct(stamps) == "yes" else
                     "; models that use time (a relative time bias) run without it here, and their records say so"))
    lines.append("- Metrics: Recall@K and NDCG@K for K in 5, 10, 20, and MRR, on the test split, evaluated once with the "
                 "model selected on validation; per-user ranks are kept in every record for paired tests.")
    return lines


BEYOND = (("coverage@10", "coverage@10", "{:.2%}"), ("novelty@10", "novelty@10", "{:.2f}"),
          ("pop_rank@10", "popularity rank@10", "{:,.1f}"), ("ild@10", "ILD@10", "{:.3f}"),
          ("invalid_id@10", "invalid IDs@10", "{:.1%}"), ("ms_per_user", "ms/user", "{:.2f}"))
BEYOND_NOTE = ("What the test top-10 lists hold (recbench/beyond.py): the share of the catalogue recommended to anyone, the mean "
               "self-information of the recommended items, their mean popularity rank (1 = most interacted-with), intra-list "
               "diversity on the default sentence model's item-text embeddings (– where they were not cached), for semantic-ID "
               "generators the share of the first 10 IDs of unconstrained decoding at the test beam that are no item (on the "
               "first 1,024 test users; – for models that only propose items), and test time per user; mean over seeds.")


def beyond_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    """(head, cells) of the beyond-accuracy table (recbench.beyond): the rows whose records carry it,
    seeds averaged; no cells where none does (records made before it was computed)."""
    cells = []
    for row, label in zip(board.rows, row_labels(board.rows)):
        if not any(r.beyond for r in row.runs):
            continue
        cell = [label]
        for key, _, fmt in BEYOND:
            values = [r.beyond[key] for r in row.runs if r.beyond and r.beyond.get(key) is not None]
            cell.append(fmt.format(sum(values) / len(values)) if values else "–")
        cells.append(cell)
    return ["row", *(name for _, name, _ in BEYOND)], cells


def beyond_lines(board: Board) -> list[str]:
    """The beyond-accuracy section of a dataset page; nothing where no row carries the metrics."""
    head, cells = beyond_rows(board)
    if not cells:
        return []
    return ["", "## Beyond accuracy", "", BEYOND_NOTE, "", *md_table(head, cells)]


def dataset_page(board: Board, folders: list[Path], out: Path, with_references: bool) -> str:
    base = out.resolve().parent
    command = regenerate_command(folders, out, with_references)
    lines = [
        f"# recbench leaderboard: {board.dataset}",
        "",
        f"Rendered from result records only (one JSON file per run; see [README](README.md)). Do not edit by hand: "
        f"from the folder that holds `{out.resolve().name}/`, regenerate with `{command}`.",
        "",
        "## Protocol",
        "",
        *protocol_lines(board),
        "",
        "## Results",
        "",
        *md_board(board),
        *beyond_lines(board),
        "",
        "## How to reproduce each row",
        "",
        "Each run below lists the exact command recorded when it ran and its hardware. `recbench reproduce RECORD` "
        "re-runs a record's exact config (generator, dataset, tokenizer, seed and the full saved config) and "
        "prints recorded against reproduced metrics.",
    ]
    for rank, (row, label) in enumerate(zip(board.rows, row_labels(board.rows)), start=1):
        notes = sorted({note for rec in row.runs for note in rec.notes or []})
        lines += ["", f"### {rank}. {label} (config `{row.config_fingerprint}`)", "",
                  f"Config: {config_text(row.runs[0])}.", *tune_lines(row.runs[0]),
                  *(["", "Notes: " + "; ".join(notes) + "."] if notes else []), ""]
        head = ["run", "seed", "command", "hardware", "software", "reproduce"]
        cells = []
        for rec in sorted(row.runs + row.repeats, key=lambda r: (r.seed, r.created or "", r.run_id)):
            path = rec.path
            seed = str(rec.seed) + (" (an earlier record of this seed: not counted)" if rec in row.repeats else "")
            cells.append([f"[{rec.run_id}]({posix_relpath(path, out)})", seed, f"`{rec.command}`",
                          hardware(rec), software(rec), f"`recbench reproduce {posix_relpath(path, base)}`"])
        lines += md_table(head, cells)
    return "\n".join(lines) + "\n"


def readme_page(boards_: list[Board], folders: list[Path], out: Path, with_references: bool) -> str:
    command = regenerate_command(folders, out, with_references)
    record_folders = ", ".join(f"[`{posix_relpath(f, out)}/`]({posix_relpath(f, out)}/)" for f in folders)
    lines = [
        "# recbench leaderboards",
        "",
        f"Leaderboards of real runs, rendered only from the result records in {record_folders} (one JSON file per "
        "run, with its full config, per-user test ranks and provenance). The markdown is generated: do not edit it by hand.",
        "",
        "| dataset | rows | runs | best row (test NDCG@10) |",
        "|---|---|---|---|",
    ]
    for board in boards_:
        best = board.rows[0]
        lines.append(f"| [{board.dataset}]({board.dataset}.md) | {len(board.rows)} | {sum(r.seeds for r in board.rows)} | "
                     f"{row_labels(board.rows)[0]} {fmt_metric(best, RANKED_BY)} |")
    lines += [
        "",
        "## Protocol",
        "",
        "The protocol belongs to recbench's core, never to a plugin, so every row saw the same splits, candidates "
        "and metric code:",
        "",
        "- Leave-one-out: each user's last item is the test target, the second-to-last the validation target, the "
        "rest is training history (the most recent 50 items for Amazon, 200 for MovieLens are fed to a model).",
        "- Item-ID generators rank all items (full ranking, no sampled negatives); ties count against the model. "
        "Semantic-ID generators decode a ranked list of IDs that the core maps to items (evaluation on items); "
        "their IDs are built from item text, so a dataset without item text (Sports from an offline mirror that "
        "lacks its metadata file) has no semantic-ID rows.",
        "- Metrics: Recall@K and NDCG@K for K in 5, 10, 20, and MRR. The model with the best validation score (NDCG@10, "
        "or the generator's published validation metric, e.g. 0.8 NDCG@10 + 0.2 Recall@10 for DIFF_GRM and AR_GRM) is "
        "evaluated once on test; the test split is never used for selection.",
        "- One row per generator, tokenizer, embedding model and config; seeds of a row are averaged (mean ± std).",
        f"- Significance: {SIGNIFICANCE_NOTE}",
        "",
        "## Hardware of each run",
        "",
    ]
    head = ["dataset", "run", "generator", "hardware", "software", "train", "users/s"]
    cells = [
        [board.dataset, f"[{rec.run_id}]({posix_relpath(rec.path, out)})", rec.generator.name,
         hardware(rec), software(rec), fmt_seconds(rec.train.seconds), f"{rec.eval.test_users_per_s:,.0f}"]
        for board in boards_ for row in board.rows for rec in row.runs
    ]
    lines += md_table(head, cells)
    lines += [
        "",
        "## Reproducing a row",
        "",
        "Every dataset page lists, for each row, its run ids, the exact command each run was started with (from its "
        "record) and the hardware it ran on. Two ways to redo a run:",
        "",
        "- `recbench reproduce RECORD` re-runs the record's exact config (generator, dataset, tokenizer, seed and the "
        "full saved config) and prints recorded against reproduced metrics and whether they match.",
        "- Run the recorded command; the prepared-data fingerprint on the dataset page says whether your data is the same.",
        "",
        "## Adding runs and merging machines",
        "",
        "There is one record file per run, named by dataset, generator, seed and UTC time, so records made on "
        "several machines merge by copying their files into the records folder (`DATASET/RUN_ID.json`); nothing "
        "else needs merging. A run can write its record there directly with `recbench run ... --results-dir` "
        "pointing at the records folder.",
        "",
        "## Regenerating",
        "",
        f"From the folder that holds `{out.resolve().name}/`: `{command}`. The output is "
        "deterministic (no rendering time, stable order), so `tests/test_leaderboards.py` regenerates it from the "
        "committed records and fails when the committed markdown differs.",
    ]
    if with_references:
        lines += ["", "## Published reference rows", "",
                  "Each dataset page shows published numbers beside the measured rows, in a separate block:", "",
                  *(f"- {note}" for note in references.NOTES)]
    return "\n".join(lines) + "\n"


def write_markdown(boards_: list[Board], folders: list[Path], out: Path, with_references: bool = True) -> list[Path]:
    """Write OUT/<dataset>.md for every board, OUT/README.md and, where the records folder has a
    gaps.toml, OUT/gaps.md and OUT/gaps.png (recbench.results.gaps); return the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for board in boards_:
        path = out / f"{board.dataset}.md"
        write_text(path, dataset_page(board, folders, out, with_references))
        written.append(path)
    readme = out / "README.md"
    write_text(readme, readme_page(boards_, folders, out, with_references))
    written.append(readme)
    for folder in folders:  # the first folder of records with a gaps.toml gives OUT/gaps.md and gaps.png
        rendered = gaps.page(folder, {b.dataset: b.rows for b in boards_}, regenerate_command(folders, out, with_references))
        if rendered is not None:
            text, points = rendered
            write_text(out / "gaps.md", text)
            written.append(out / "gaps.md")
            if points:
                written.append(gaps.plot_scaling(points, out / "gaps.png"))
            break
    return written
