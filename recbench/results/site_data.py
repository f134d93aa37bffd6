"""What the leaderboard site shows, as plain data: built from the same boards and rows
(recbench.results.leaderboard) as the committed markdown pages, so the two never disagree.

Everything here is JSON-ready (strings, numbers, lists, dicts); recbench.results.site only renders it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from . import references
from .leaderboard import (
    ID_LEVEL_METRICS,
    METRIC_COLUMNS,
    METRICS,
    RANKED_BY,
    Board,
    Row,
    fmt_seconds,
    fmt_verdict,
    header,
    id_level_rows,
    published_level_rows,
    row_labels,
    table_rows,
)
from .pages import BEYOND, beyond_rows, hardware, software, tune_lines
from .records import Record

FILTERS = ("generator", "tokenizer", "emb. model", "setting [config]", "device", "seeds", "source")  # columns a reader filters by
TEXT = ("generator", "tokenizer", "emb. model", "setting [config]", "seeds", "device", "source")  # sorted as text; the others by their first number


def slug(text: str) -> str:
    """A file name from any label: letters, digits, '.', '_' and '-' kept, runs of the rest one '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "row"


def row_file(row: Row) -> str:
    """The row page's file name, stable while the row's key is: its rank moves as records arrive, its key does not."""
    submitted = f"-submitted-{row.submitted_by}" if row.submitted_by else ""  # a submitted row beside the same config run here
    return slug(f"{row.name()}-{row.embedding_model or 'none'}-{row.config_fingerprint[:12]}{submitted}") + ".html"


def sort_key(cell: str, column: str) -> str | float:
    """What a column sorts by: text columns their text, the others the first number in the cell
    ("0.0412 ± 0.0010" -> 0.0412, "1.2 min" -> 72 seconds, "yes (p=0.210)" by its verdict)."""
    if column in TEXT:
        return cell.lower()
    if cell.startswith(("best", "yes", "no", "n/a")):
        return {"best": 3, "yes": 2, "no": 1}.get(cell.split()[0], 0)
    match = re.match(r"-?[\d,]*\.?\d+", cell)
    if not match:
        return -1
    value = float(match.group().replace(",", ""))
    unit = cell[match.end():].strip().split(" ")[0]
    return value * {"min": 60, "h": 3600}.get(unit, 1)


def reference_cells(head: list[str], ref: references.Reference) -> list[str]:
    """A published item-level row (references.Reference.protocol "item") in the measured table's
    columns: its metrics under the metric columns, its source under the setting."""
    cells = ["-"] * len(head)
    cells[0] = f"{ref.model} (published)" + (" *" if ref.semantic_ids else "")
    cells[3] = ref.source
    for column, metric in zip(METRIC_COLUMNS, METRICS):
        if metric in ref.metrics:
            cells[column] = f"{ref.metrics[metric]:.4f}"
    return cells


def dataset_table(board: Board) -> dict[str, Any]:
    """The measured table of `board` (table_rows, as on the markdown page) with each row's page and
    sort keys, and the published rows of the item protocol in the same columns, marked as such: an
    ID-level number (DiffGRM's) is not comparable with these, so it sits in the ID-level table only."""
    head, cells, marks = table_rows(board)
    rows = []
    for row, row_cells, row_marks in zip(board.rows, cells, marks):
        rows.append({"cells": row_cells, "bold": sorted(row_marks), "href": row_file(row), "reference": False,
                     "sort": [sort_key(c, h) for h, c in zip(head, row_cells)]})
    for ref in board.references:
        if ref.protocol != "item" or not any(m in ref.metrics for m in METRICS):
            continue
        ref_cells = reference_cells(head, ref)
        rows.append({"cells": ref_cells, "bold": [], "href": None, "reference": True,
                     "sort": [sort_key(c, h) if c != "-" else -1 for h, c in zip(head, ref_cells)]})
    filters = [(name, head.index(name), sorted({r[head.index(name)] for r in cells})) for name in FILTERS]
    return {"head": head, "rows": rows, "filters": filters}


def id_level_table(board: Board) -> dict[str, Any] | None:
    """The item-level against ID-level table, with the published semantic-ID rows in the column of
    their protocol (leaderboard.published_level_rows), or None where no row has ID-level metrics."""
    head, cells = id_level_rows(board)
    if not cells:
        return None
    published = published_level_rows(board)
    return {"head": head, "rows": [{"cells": c, "reference": False} for c in cells] + [{"cells": c, "reference": True} for c in published]}


def beyond_table(board: Board) -> dict[str, Any] | None:
    """The beyond-accuracy table of the dataset page (pages.beyond_rows), or None where no row has the metrics."""
    head, cells = beyond_rows(board)
    return {"head": head, "rows": cells} if cells else None


def beyond_values(row: Row) -> list[tuple[str, str]] | None:
    """(name, value) of each beyond-accuracy metric of a row, seeds averaged; None where its records have none."""
    values = []
    for key, name, fmt in BEYOND:
        found = [r.beyond[key] for r in row.runs if r.beyond and r.beyond.get(key) is not None]
        if found:
            values.append((name, fmt.format(sum(found) / len(found))))
    return values or None


def dataset_charts(board: Board) -> dict[str, Any]:
    """The data of the dataset page's charts: NDCG@10 per row (mean, std over seeds), and the same
    against inference speed and against training time."""
    labels = row_labels(board.rows)
    return {
        "labels": labels,
        "href": [row_file(r) for r in board.rows],
        "mean": [r.mean(RANKED_BY) for r in board.rows],
        "std": [r.std(RANKED_BY) for r in board.rows],
        "seeds": [r.seeds for r in board.rows],
        "users_per_s": [r.users_per_s() for r in board.rows],
        "train_seconds": [r.train_seconds() for r in board.rows],
        "metric": header(RANKED_BY),
    }


# ---- one row ----------------------------------------------------------------------------------


def plugin_defaults(rec: Record) -> dict[str, dict[str, Any]]:
    """section -> key -> default of the plugins that made `rec`, where they are installed (a section
    whose plugin is not is absent: its keys are then shown without a default)."""
    from .. import config as cfg
    from .. import registry as plugin_registry
    from ..embeddings import EmbeddingConfig

    registry = plugin_registry.registry()
    classes = {"embedding": EmbeddingConfig}
    for section, part in (("generator", rec.generator), ("tokenizer", rec.tokenizer), ("dataset", rec.dataset)):
        if part is not None and registry.has(section, part.name):
            classes[section] = registry.get(section, part.name).Config
    return {section: {d["key"]: d["default"] for d in cfg.describe(cls)} for section, cls in classes.items()}


def config_rows(rec: Record, defaults: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every config key of `rec`: the ones that differ from the plugin's default first (then by
    section and key), each with its value, default and the layer that set it."""
    origins = rec.config_origins or {}
    rows = []
    for section, values in rec.config.items():
        known = defaults.get(section, {})
        for key, value in values.items():
            default = known.get(key, "?")
            differs = default == "?" or json.dumps(default, default=str) != json.dumps(value, default=str)
            rows.append({"section": section, "key": key, "value": repr(value), "default": "?" if default == "?" else repr(default),
                         "differs": differs, "origin": origins.get(section, {}).get(key, "")})
    return sorted(rows, key=lambda r: (not r["differs"], r["section"], r["key"]))


def history(rec: Record) -> tuple[list[dict[str, Any]], str]:
    """The run's per-epoch entries and where they came from: the record's `train.history`, else its run
    folder's log.jsonl where that file is on this machine, else none."""
    if rec.train.history:
        return rec.train.history, "the record"
    log = Path(rec.checkpoints.log) if rec.checkpoints else None
    if log is not None and log.is_file():
        entries = []
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        if entries:
            return entries, f"the run folder's log ({log})"
    return [], ""


def curves(row: Row) -> dict[str, Any]:
    """Per seed: validation NDCG@10 and training loss per epoch, and where each came from."""
    out = []
    for rec in row.runs:
        entries, source = history(rec)
        valid = [(e["epoch"], e["valid"].get(RANKED_BY)) for e in entries if isinstance(e.get("valid"), dict) and RANKED_BY in e["valid"]]
        loss = [(e["epoch"], e["loss"]) for e in entries if isinstance(e.get("loss"), (int, float))]
        if valid or loss:
            out.append({"seed": rec.seed, "source": source, "valid_epoch": [v[0] for v in valid], "valid": [v[1] for v in valid],
                        "loss_epoch": [v[0] for v in loss], "loss": [v[1] for v in loss], "best_epoch": rec.train.best_epoch})
    return {"seeds": out, "metric": header(RANKED_BY)}


def rank_bins(largest: int) -> list[tuple[int, int]]:
    """Ranks 1, 2, 3-4, 5-8, ... up to `largest`: doubling bins, so the head (where the metrics are
    decided) and the long tail of a full ranking over thousands of items both show."""
    bins, low = [], 1
    while low <= max(largest, 1):
        high = max(1, 2 * (low - 1))
        bins.append((low, high))
        low = high + 1
    return bins


def rank_histogram(row: Row) -> dict[str, Any]:
    """Per seed: how many evaluated users have their test item at each position (1 = first; the
    records' ranks count from 0), in doubling bins, and how many have it outside the ranked list
    (rank -1: a decoded list that does not reach it)."""
    positions = [np.where(rec.test_ranks() >= 0, rec.test_ranks() + 1, 0) for rec in row.runs]
    bins = rank_bins(int(max(p.max(initial=1) for p in positions)))
    labels = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in bins] + ["not ranked"]
    seeds = []
    for rec, position in zip(row.runs, positions):
        counts = [int(((position >= lo) & (position <= hi)).sum()) for lo, hi in bins] + [int((position == 0).sum())]
        seeds.append({"seed": rec.seed, "counts": counts, "users": int(len(position)), "missed": counts[-1],
                      "top10": int(((position >= 1) & (position <= 10)).sum())})
    return {"seeds": seeds, "labels": labels}


def paired_test(board: Board, index: int) -> dict[str, Any]:
    """The row's paired test against the best row (recbench.results.significance, as in the ≈ best column)."""
    verdict = board.verdicts[index]
    out = {"status": verdict.status, "verdict": fmt_verdict(verdict), "reason": verdict.reason,
           "best": row_labels(board.rows)[0], "best_href": row_file(board.rows[0])}
    if verdict.test is not None:
        t = verdict.test
        out["test"] = [("users paired", f"{t.n:,}"), ("best row, mean NDCG@10", f"{t.mean_a:.4f}"),
                       ("this row, mean NDCG@10", f"{t.mean_b:.4f}"), ("difference (best − this)", f"{t.diff:.4f}"),
                       ("Cohen's d (paired)", f"{t.cohens_d:.3f}"), ("t", f"{t.t:.3f}"), ("p, t-test", f"{t.p_ttest:.4g}"),
                       ("p, t-test, Holm-corrected", f"{verdict.p:.4g}"), ("p, Wilcoxon signed-rank", f"{t.p_wilcoxon:.4g}")]
    return out


def provenance_text(rec: Record) -> str:
    """A record's provenance in words (records.Provenance)."""
    p = rec.provenance
    if p is None or p.kind == "produced":
        return "run here"
    if p.kind == "reproduced":
        return f"reproduced here: matches {p.reproduces} within {p.tolerance:g} (largest difference {p.max_difference:.2e})"
    return f"submitted by {p.submitted_by}" + (f" ({p.source})" if p.source else "") + (f", {p.submitted}" if p.submitted else "") + \
        "; checked, not re-run here"


def runs(row: Row) -> list[dict[str, Any]]:
    """Every record of the row, with its command, hardware and the command that reproduces it."""
    out = []
    for rec in sorted(row.runs + row.repeats, key=lambda r: (r.seed, r.created or "", r.run_id)):
        path = Path(rec.path).as_posix() if rec.path else f"{rec.run_id}.json"
        out.append({"run_id": rec.run_id, "seed": rec.seed, "counted": rec not in row.repeats, "command": rec.command,
                    "hardware": hardware(rec), "software": software(rec), "reproduce": f"recbench reproduce {path}",
                    "test": f"{rec.metrics.test[RANKED_BY]:.4f}", "train": fmt_seconds(rec.train.seconds),
                    "stopped": rec.train.stopped or "", "epochs": rec.train.epochs, "provenance": provenance_text(rec)})
    return out


def row_page(board: Board, index: int) -> dict[str, Any]:
    """Everything a row's page shows."""
    row = board.rows[index]
    head, cells, marks = table_rows(board)
    rec = row.runs[0]
    notes = sorted({note for r in row.runs for note in r.notes or []})
    return {
        "label": row_labels(board.rows)[index], "rank": index + 1, "file": row_file(row), "fingerprint": row.config_fingerprint,
        "summary": list(zip(head, cells[index])), "bold": sorted(marks[index]),
        "config": config_rows(rec, plugin_defaults(rec)), "tune": " ".join(tune_lines(rec)).strip(), "notes": notes,
        "runs": runs(row), "curves": curves(row), "ranks": rank_histogram(row), "paired": paired_test(board, index),
        "id_level": {header(m): f"{row.id_level(m)[0]:.4f}" for m in ID_LEVEL_METRICS} if row.has_id_level() else None,
        "beyond": beyond_values(row), "provenance": row.provenance(),
    }


def index_grid(boards_: list[Board]) -> dict[str, Any]:
    """Datasets × generators: per cell the best row of that generator on that dataset (rows are ordered
    best first, so the first one met), with its NDCG@10 and page."""
    generators = sorted({r.generator for b in boards_ for r in b.rows})
    grid = []
    for board in boards_:
        labels = row_labels(board.rows)
        cells = {}
        for row, label in zip(board.rows, labels):
            if row.generator not in cells:
                cells[row.generator] = {"label": label, "value": f"{row.mean(RANKED_BY):.4f}", "href": f"{board.dataset}/{row_file(row)}",
                                        "best": row is board.rows[0]}
        grid.append({"dataset": board.dataset, "rows": len(board.rows), "runs": sum(r.seeds for r in board.rows),
                     "cells": [cells.get(g) for g in generators]})
    return {"generators": generators, "grid": grid}
