"""Leaderboards, rendered from result records only.

One row per (generator, tokenizer, embedding model, config fingerprint) on a dataset; several
seeds of the same row are averaged (mean ± std, with the seed count). A row counts seeds, not
files: records of one seed (a re-run, a `reproduce`) stand for that seed once, by the latest of
them, and the row says how many records stand behind it and whether they agree. Rows are ordered by test
NDCG@10; the best value of each metric column is highlighted, and every row is tested against the
best one with a paired test on per-user NDCG@10 (recbench.results.significance). Published numbers
(recbench.results.references) are shown beside the measured rows in their own block, never ranked.

Renderers: a rich table, markdown, csv, html and json; the picture is in recbench.results.plots and the committed
markdown pages (one per dataset plus a README) in recbench.results.pages. Every
rendering is deterministic: the same records give the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..metrics import metric_names
from . import records, references, significance
from .references import Reference
from .significance import Verdict

METRICS = metric_names()
RANKED_BY = "ndcg@10"


def header(metric: str) -> str:
    """'recall@10' -> 'R@10', 'ndcg@5' -> 'N@5', 'mrr' -> 'MRR'."""
    kind, _, k = metric.partition("@")
    return {"recall": "R", "ndcg": "N"}.get(kind, kind.upper()) + (f"@{k}" if k else "")


SIGNIFICANCE_NOTE = (
    f"≈ best: is the row not significantly worse than the best row? Paired t-test on per-user test "
    f"NDCG@10 over the users both rows evaluated (a row's per-user values averaged over its seeds), "
    f"p-values Holm–Bonferroni-corrected over the comparisons with the best row, alpha {significance.ALPHA}; "
    f"p is the corrected p-value. n/a: evaluated on other prepared data or other users, so no paired "
    f"test. `recbench compare RUN_A RUN_B` gives the t-test, the Wilcoxon signed-rank test and the "
    f"effect size for any two runs."
)
COLUMNS_NOTE = (
    "Bold: the best value of a column. Test split, full ranking, leave-one-out; mean ± std over seeds "
    "where a row has several. setting: the config options the run's command gave (a named preset, "
    "key=value overrides; defaults: none, i.e. the generator's defaults when it ran), and the config "
    "fingerprint; the full config of each row is under \"How to reproduce each row\". "
    "params: trainable parameters; train: training time (mean over seeds); "
    "users/s: test inference throughput; device: where the runs ran, and in what arithmetic (bf16: "
    "bf16 autocast, cpu_amp or amp on; fp32: off); source: run here (`recbench run`), reproduced here "
    "(`recbench reproduce` matched an earlier record within its tolerance) or submitted by a third party "
    "(`recbench records submit`: the record is checked for consistency, not re-run)."
)


def precision(rec: records.Record) -> str | None:
    """"bf16" or "fp32": whether the run trained under bf16 autocast (`amp` on a GPU, `cpu_amp` on a
    CPU; records.upgrade gives a record from before `cpu_amp` the fp32 it trained in); None for a
    generator without the option."""
    generator = (rec.config or {}).get("generator", {})
    key = "amp" if rec.device.type == "cuda" else "cpu_amp"
    if key not in generator:
        return None
    return "bf16" if generator[key] is True else "fp32"


def device_label(rec: records.Record) -> str:
    """The device and the arithmetic, e.g. "AMD EPYC (1 thread, bf16)": the precision is part of the
    config fingerprint, so two rows that differ only in it say so where the reader looks."""
    name, arith = rec.device.name, precision(rec)
    if arith is None:
        return name
    return f"{name[:-1]}, {arith})" if name.endswith(")") else f"{name} ({arith})"


@dataclass
class Row:
    dataset: str
    generator: str
    tokenizer: str | None
    embedding_model: str | None
    config_fingerprint: str
    submitted_by: str | None = None  # a submitted row: who submitted its records (records.Provenance); None: run here
    runs: list[records.Record] = field(default_factory=list)  # one per seed: the latest record of it
    repeats: list[records.Record] = field(default_factory=list)  # earlier records of a seed in `runs`

    @property
    def seeds(self) -> int:
        return len(self.runs)

    @property
    def records(self) -> int:
        return len(self.runs) + len(self.repeats)

    def repeats_agree(self) -> bool:
        """Whether every earlier record of a seed has the test metrics of the record that stands for it."""
        kept = {r.seed: r for r in self.runs}
        return all(r.metrics.test == kept[r.seed].metrics.test for r in self.repeats)

    def seeds_label(self) -> str:
        """"2", or "2 (3 records, agree)" where a seed has several records."""
        if not self.repeats:
            return str(self.seeds)
        return f"{self.seeds} ({self.records} records, {'agree' if self.repeats_agree() else 'differ: the latest counts'})"

    def values(self, metric: str) -> np.ndarray:
        return np.array([r.metrics.test[metric] for r in self.runs], dtype=float)

    def mean(self, metric: str) -> float:
        return float(self.values(metric).mean())

    def std(self, metric: str) -> float:
        v = self.values(metric)
        return float(v.std(ddof=1)) if len(v) > 1 else 0.0

    def has_id_level(self) -> bool:
        return all(r.id_level is not None for r in self.runs)

    def id_level(self, metric: str) -> tuple[float, float]:
        """Mean and std over seeds of the test `metric` at the ID level (DiffGRM's evaluator's protocol; see recbench.metrics)."""
        v = np.array([r.id_level.metrics.test[metric] for r in self.runs], dtype=float)
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

    def params(self) -> int:
        return int(self.runs[0].params or 0)

    def train_seconds(self) -> float:
        return float(np.mean([r.train.seconds for r in self.runs]))

    def users_per_s(self) -> float:
        return float(np.mean([r.eval.test_users_per_s for r in self.runs]))

    def device(self) -> str:
        return ", ".join(sorted({device_label(r) for r in self.runs}))

    def name(self) -> str:
        return self.generator + (f"/{self.tokenizer}" if self.tokenizer else "")

    def provenance(self) -> str:
        """Where the row's numbers come from: "submitted by NAME" (not re-run here), "reproduced here"
        (a seed's record is a `recbench reproduce` that matched), or "run here"."""
        if self.submitted_by:
            return f"submitted by {self.submitted_by}"
        if any(r.provenance is not None and r.provenance.kind == "reproduced" for r in self.runs):
            return "reproduced here"
        return "run here"

    def setting(self) -> str:
        """What the first run set over the generator's defaults (the full config is on each page), as
        its record says (records.upgrade gives a record from before the label one)."""
        return self.runs[0].setting or "defaults"


@dataclass
class Board:
    """One dataset's leaderboard: measured rows (best first), their verdicts, published rows."""

    dataset: str
    rows: list[Row]
    verdicts: list[Verdict]
    references: list[Reference]


def collect(folders: list[Path], dataset: str | None = None, skipped: list[str] | None = None) -> dict[str, list[Row]]:
    """{dataset: rows sorted by test NDCG@10, best first} from every record under `folders`.

    A record that cannot be used is left out; `skipped`, if given, receives why (naming the file).
    Without `skipped` such a record is an error."""
    rows: dict[tuple, Row] = {}
    for path in records.find(folders, dataset):
        try:
            rec = records.load(path)
        except UsageError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        key = (
            rec.dataset.name,
            rec.generator.name,
            rec.tokenizer.name if rec.tokenizer else None,
            rec.embedding_model,
            rec.config_fingerprint,
            rec.provenance.submitted_by if rec.provenance is not None and rec.provenance.kind == "submitted" else None,
        )
        rows.setdefault(key, Row(*key)).runs.append(rec)
    out: dict[str, list[Row]] = {}
    for row in rows.values():
        latest: dict[int, records.Record] = {}
        for rec in sorted(row.runs, key=lambda r: (r.created or "", r.run_id)):  # oldest first: the last one stays
            if rec.seed in latest:
                row.repeats.append(latest[rec.seed])
            latest[rec.seed] = rec
        row.runs = sorted(latest.values(), key=lambda r: (r.seed, r.run_id))
        row.repeats.sort(key=lambda r: (r.seed, r.run_id))
        out.setdefault(row.dataset, []).append(row)
    for ds_rows in out.values():
        ds_rows.sort(key=lambda r: (-r.mean(RANKED_BY), r.generator, r.tokenizer or "", r.embedding_model or "", r.config_fingerprint))
    return dict(sorted(out.items()))


def boards(by_dataset: dict[str, list[Row]], with_references: bool = True) -> list[Board]:
    """Add the significance verdicts and (unless switched off) the published rows to each dataset."""
    return [
        Board(
            dataset,
            rows,
            significance.against_best([r.runs for r in rows], RANKED_BY),
            references.for_dataset(dataset) if with_references else [],
        )
        for dataset, rows in by_dataset.items()
    ]


# ---- cells -------------------------------------------------------------------------------------


def fmt_metric(row: Row, metric: str) -> str:
    text = f"{row.mean(metric):.4f}"
    return text + (f" ± {row.std(metric):.4f}" if row.seeds > 1 else "")


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def fmt_p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def fmt_verdict(v: Verdict) -> str:
    if v.status in ("tied", "worse"):
        return f"{'yes' if v.status == 'tied' else 'no'} ({fmt_p(v.p)})"
    return v.status


METRIC_COLUMNS = range(5, 5 + len(METRICS))


def table_rows(board: Board) -> tuple[list[str], list[list[str]], list[set[int]]]:
    """Header, cells and, per row, the column indices holding that column's best value."""
    head = ["generator", "tokenizer", "emb. model", "setting [config]", "seeds", *(header(m) for m in METRICS),
            "≈ best", "params", "train", "users/s", "device", "source"]
    best = {m: max(r.mean(m) for r in board.rows) for m in METRICS}
    cells, marks = [], []
    for r, verdict in zip(board.rows, board.verdicts):
        cells.append([
            r.generator, r.tokenizer or "-", r.embedding_model or "-", f"{r.setting()} [{r.config_fingerprint[:8]}]", r.seeds_label(),
            *(fmt_metric(r, m) for m in METRICS), fmt_verdict(verdict),
            f"{r.params():,}", fmt_seconds(r.train_seconds()), f"{r.users_per_s():,.0f}", r.device(), r.provenance(),
        ])
        marks.append({METRIC_COLUMNS[i] for i, m in enumerate(METRICS) if np.isclose(r.mean(m), best[m])})
    return head, cells, marks


ID_LEVEL_METRICS = ("ndcg@10", "recall@10")
ID_LEVEL_NOTE = (
    "Item level is recbench's metric (every item its own ID, a hit is the target item). ID level scores the same "
    "decoded lists as DiffGRM's evaluator does: items whose semantic IDs collided before recbench made them unique "
    "share one ID again, a listed ID equal to the target's ID is a hit (a look-alike of the target counts), each ID "
    "counts once. Never ranked."
)
ID_LEVEL_PUBLISHED_NOTE = (
    " The published rows sit in the column of their own evaluator's protocol: TIGER's (unique IDs) and RPG's (item "
    "ids) at the item level, DiffGRM's at the ID level."
)


def id_level_note(board: Board) -> str:
    return ID_LEVEL_NOTE + (ID_LEVEL_PUBLISHED_NOTE if published_level_rows(board) else "")


def id_level_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the item-level against ID-level table, for the rows that have both."""
    head = ["generator", "tokenizer", "setting [config]", "seeds"]
    for m in ID_LEVEL_METRICS:
        head += [f"{header(m)} item", f"{header(m)} ID", "ID / item"]
    cells = []
    for r in board.rows:
        if not r.has_id_level():
            continue
        row = [r.generator, r.tokenizer or "-", f"{r.setting()} [{r.config_fingerprint[:8]}]", r.seeds_label()]
        for m in ID_LEVEL_METRICS:
            item, (ident, ident_std) = r.mean(m), r.id_level(m)
            row += [fmt_metric(r, m), f"{ident:.4f}" + (f" ± {ident_std:.4f}" if r.seeds > 1 else ""),
                    f"{ident / item:.2f}x" if item > 0 else "-"]
        cells.append(row)
    return head, cells


def reference_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the published rows: model, the metrics any of them gives, the protocol of
    its evaluator, source."""
    shown = references.metric_names(board.references)
    head = ["model (published)", *(header(m) for m in shown), "protocol", "source"]
    cells = [
        [ref.model + (" *" if ref.semantic_ids else ""),
         *(f"{ref.metrics[m]:.4f}" if m in ref.metrics else "-" for m in shown), references.PROTOCOLS[ref.protocol], ref.source]
        for ref in board.references
    ]
    return head, cells


def published_level_rows(board: Board) -> list[list[str]]:
    """Rows of the item-against-ID table for the published semantic-ID numbers: each number in the
    column of its evaluator's protocol (TIGER's and RPG's item level, DiffGRM's ID level)."""
    rows = []
    for ref in board.references:
        if not ref.semantic_ids or not any(m in ref.metrics for m in ID_LEVEL_METRICS):
            continue
        row = [f"{ref.model} (published)", "-", ref.source, "-"]
        for m in ID_LEVEL_METRICS:
            value = f"{ref.metrics[m]:.4f}" if m in ref.metrics else "-"
            row += [value, "-", "-"] if ref.protocol == "item" else ["-", value, "-"]
        rows.append(row)
    return rows


# ---- markdown (csv, json, html and rich tables: formats.py) -----------------------------------------------------------------


def md_table(head: list[str], cells: list[list[str]], marks: list[set[int]] | None = None) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(cells):
        bold = marks[i] if marks else set()
        lines.append("| " + " | ".join(f"**{esc(c)}**" if j in bold else esc(c) for j, c in enumerate(row)) + " |")
    return lines


def md_board(board: Board, level: int = 3) -> list[str]:
    """The measured table with its notes, then the published rows (if any) with theirs."""
    head, cells, marks = table_rows(board)
    lines = [*md_table(head, cells, marks), "", COLUMNS_NOTE, "", SIGNIFICANCE_NOTE]
    id_head, id_cells = id_level_rows(board)
    if id_cells:
        lines += ["", f"{'#' * level} {board.dataset}: item level against ID level", "",
                  *md_table(id_head, id_cells + published_level_rows(board)), "", id_level_note(board)]
    if board.references:
        lines += ["", f"{'#' * level} {board.dataset}: published (not measured here)", "",
                  *md_table(*reference_rows(board)), ""]
        lines += [f"- {note}" for note in references.NOTES]
    return lines


def markdown(boards_: list[Board]) -> str:
    parts = []
    for board in boards_:
        parts.append("\n".join([f"### {board.dataset}", "", *md_board(board, level=4)]))
    return "\n\n".join(parts) + "\n"


# ---- the picture -------------------------------------------------------------------------------


def row_labels(rows: list[Row]) -> list[str]:
    """Generator (and tokenizer) with its setting where it is not the defaults; the config fingerprint
    too where two rows would still read the same."""
    settings = [r.setting() for r in rows]
    names = [r.name() + (f" ({s})" if s != "defaults" else "") + (" [submitted]" if r.submitted_by else "") for r, s in zip(rows, settings)]
    return [f"{n} [{r.config_fingerprint[:6]}]" if names.count(n) > 1 else n for n, r in zip(names, rows)]
