"""The boards as CSV, JSON, HTML and rich tables (`recbench leaderboard --format`); markdown, which
the committed pages use, stays with the rows in recbench.results.leaderboard."""

from __future__ import annotations

import csv
import html
import io
import json

from . import references
from .leaderboard import (
    COLUMNS_NOTE,
    METRICS,
    SIGNIFICANCE_NOTE,
    Board,
    id_level_note,
    id_level_rows,
    published_level_rows,
    reference_rows,
    table_rows,
)
from .significance import Verdict


def to_csv(boards_: list[Board]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "generator", "tokenizer", "embedding_model", "config_fingerprint", "seeds",
                     *METRICS, *(f"{m}_std" for m in METRICS), "params", "train_seconds", "users_per_s", "device",
                     "vs_best", "p_vs_best", "kind", "source", "provenance"])
    for board in boards_:
        for r, v in zip(board.rows, board.verdicts):
            writer.writerow([board.dataset, r.generator, r.tokenizer or "", r.embedding_model or "", r.config_fingerprint, r.seeds,
                             *(f"{r.mean(m):.6f}" for m in METRICS), *(f"{r.std(m):.6f}" for m in METRICS),
                             r.params(), f"{r.train_seconds():.3f}", f"{r.users_per_s():.1f}", r.device(),
                             v.status, "" if v.p is None else f"{v.p:.6g}", "measured", "", r.provenance()])
        for ref in board.references:
            writer.writerow([board.dataset, ref.model, "", "", "", "",
                             *(f"{ref.metrics[m]:.4f}" if m in ref.metrics else "" for m in METRICS), *([""] * len(METRICS)),
                             "", "", "", "", "", "", "published", ref.source, ""])
    return buf.getvalue()


def verdict_json(v: Verdict) -> dict:
    out: dict = {"status": v.status, "p_holm": v.p}
    if v.test is not None:
        # the test ran best − row; reported here as row − best
        out.update(p_ttest=v.test.p_ttest, p_wilcoxon=v.test.p_wilcoxon, diff_vs_best=0.0 - v.test.diff,
                   cohens_d_vs_best=0.0 - v.test.cohens_d, users=v.test.n)
    if v.reason:
        out["reason"] = v.reason
    return out


def to_json(boards_: list[Board]) -> str:
    out = {
        board.dataset: {
            "rows": [
                {
                    "generator": r.generator, "tokenizer": r.tokenizer, "embedding_model": r.embedding_model,
                    "config_fingerprint": r.config_fingerprint, "seeds": r.seeds, "records": r.records,
                    "test": {m: {"mean": r.mean(m), "std": r.std(m)} for m in METRICS},
                    **({"test_id_level": {m: dict(zip(("mean", "std"), r.id_level(m))) for m in METRICS}}
                       if r.has_id_level() else {}),
                    "vs_best": verdict_json(v),
                    "params": r.params(), "train_seconds": r.train_seconds(), "users_per_s": r.users_per_s(),
                    "device": r.device(), "provenance": r.provenance(), "runs": [rec.run_id for rec in r.runs],
                }
                for r, v in zip(board.rows, board.verdicts)
            ],
            "significance": SIGNIFICANCE_NOTE,
            "references": [
                {"model": ref.model, "test": ref.metrics, "source": ref.source, "semantic_ids": ref.semantic_ids,
                 "protocol": ref.protocol}
                for ref in board.references
            ],
            **({"reference_notes": list(references.NOTES)} if board.references else {}),
        }
        for board in boards_
    }
    return json.dumps(out, indent=2) + "\n"


HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
td.best { font-weight: bold; background: #e6f4ea; }
table.published td { color: #555; font-style: italic; }
p.note, ul.note { font-size: 0.85em; color: #555; max-width: 60em; }
""".strip()


def html_table(head: list[str], cells: list[list[str]], marks: list[set[int]] | None = None, text_columns=(), css_class: str = "") -> str:
    e = html.escape
    cls = f' class="{css_class}"' if css_class else ""
    out = [f"<table{cls}>", "<thead><tr>" + "".join(
        f'<th class="text">{e(h)}</th>' if j in text_columns else f"<th>{e(h)}</th>" for j, h in enumerate(head)) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(cells):
        tds = []
        for j, c in enumerate(row):
            classes = [name for name, on in (("text", j in text_columns), ("best", marks and j in marks[i])) if on]
            tds.append(f'<td class="{" ".join(classes)}">{e(c)}</td>' if classes else f"<td>{e(c)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def to_html(boards_: list[Board]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', "<title>recbench leaderboard</title>",
             f"<style>\n{HTML_STYLE}\n</style>", "</head>", "<body>", "<h1>recbench leaderboard</h1>"]
    for board in boards_:
        head, cells, marks = table_rows(board)
        parts += [f"<h2>{e(board.dataset)}</h2>", html_table(head, cells, marks, text_columns={0, 1, 2, 3, len(head) - 1}),
                  f'<p class="note">{e(COLUMNS_NOTE)}</p>', f'<p class="note">{e(SIGNIFICANCE_NOTE)}</p>']
        if board.references:
            ref_head, ref_cells = reference_rows(board)
            parts += [f"<h3>{e(board.dataset)}: published (not measured here)</h3>",
                      html_table(ref_head, ref_cells, text_columns={0, len(ref_head) - 1}, css_class="published"),
                      '<ul class="note">' + "".join(f"<li>{e(n)}</li>" for n in references.NOTES) + "</ul>"]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def rich_tables(boards_: list[Board]) -> list:
    """Renderables for the terminal: per dataset the measured table, its notes and the published rows."""
    from rich.table import Table
    from rich.text import Text

    out = []
    for board in boards_:
        head, cells, marks = table_rows(board)
        table = Table(title=f"{board.dataset} — test split, full ranking, leave-one-out", header_style="bold")
        for i, h in enumerate(head):
            table.add_column(h, justify="right" if 4 <= i < len(head) - 1 else "left")
        for row_cells, row_marks in zip(cells, marks):
            table.add_row(*(Text(c, style="bold green") if i in row_marks else Text(c) for i, c in enumerate(row_cells)))
        out += [table, Text(SIGNIFICANCE_NOTE, style="dim")]
        id_head, id_cells = id_level_rows(board)
        if id_cells:
            id_table = Table(title=f"{board.dataset} — item level against ID level", header_style="bold")
            for i, h in enumerate(id_head):
                id_table.add_column(h, justify="left" if i < 3 else "right")
            for row_cells in id_cells + published_level_rows(board):
                id_table.add_row(*map(Text, row_cells))
            out += [id_table, Text(id_level_note(board), style="dim")]
        if board.references:
            ref_head, ref_cells = reference_rows(board)
            ref_table = Table(title=f"{board.dataset} — published (not measured here)", header_style="bold", style="dim")
            for i, h in enumerate(ref_head):
                ref_table.add_column(h, justify="left" if i in (0, len(ref_head) - 1) else "right")
            for row_cells in ref_cells:
                ref_table.add_row(*map(Text, row_cells))
            out += [ref_table, Text("\n".join(references.NOTES), style="dim")]
    return out
