"""The leaderboard as a picture: NDCG@10 per row with error bars, and quality against speed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .leaderboard import RANKED_BY, Board, fmt_metric, row_labels


def plot(boards_: list[Board], path: Path) -> Path:
    """Per dataset: NDCG@10 of every row with std-over-seeds error bars, and NDCG@10 against
    inference speed (users/s, log scale), each point numbered as its bar. Written with the Agg canvas
    (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [max(2.6, 0.5 * len(b.rows) + 1.4) for b in boards_]
    fig = Figure(figsize=(15, sum(heights) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(boards_), 2, squeeze=False, gridspec_kw={"height_ratios": heights, "width_ratios": [1, 1.2]})
    colours = [f"C{i % 10}" for i in range(max(len(b.rows) for b in boards_))]
    for board, (bars, scatter) in zip(boards_, axes):
        labels = [textwrap.fill(f"{i}. {label}", 46, subsequent_indent="    ")  # long settings wrap, the axes keep their width
                  for i, label in enumerate(row_labels(board.rows), start=1)]
        means = [r.mean(RANKED_BY) for r in board.rows]
        stds = [r.std(RANKED_BY) for r in board.rows]
        y = np.arange(len(board.rows))
        drawn = bars.barh(y, means, xerr=stds, color=colours[: len(y)], capsize=4, height=0.6)
        bars.bar_label(drawn, labels=[fmt_metric(r, RANKED_BY) for r in board.rows], padding=4, fontsize="small")
        bars.set_xlim(0, max(m + s for m, s in zip(means, stds)) * 1.35 or 1)
        bars.set_yticks(y, labels)
        bars.invert_yaxis()  # best row on top
        bars.set_xlabel("test NDCG@10 (mean ± std over seeds)")
        bars.set_title(f"{board.dataset}: NDCG@10 per row")
        bars.grid(axis="x", alpha=0.3)
        for i, (row, mean, std) in enumerate(zip(board.rows, means, stds)):
            speed = row.users_per_s()
            if speed > 0:  # numbered like the bars: a legend of 30 rows would cover the points
                scatter.errorbar(speed, mean, yerr=std, fmt="o", color=colours[i], capsize=4, markersize=7)
                scatter.annotate(str(i + 1), (speed, mean), textcoords="offset points", xytext=(5, 3), fontsize="small")
        scatter.set_xscale("log")
        scatter.margins(x=0.15, y=0.15)  # keep the extreme rows off the frame
        scatter.set_xlabel("inference speed on test (users/s, log scale)")
        scatter.set_ylabel("test NDCG@10")
        scatter.set_title(f"{board.dataset}: quality vs speed (up and right is better)")
        scatter.grid(alpha=0.3, which="both")
    fig.suptitle("recbench leaderboard — test split, full ranking, leave-one-out")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
