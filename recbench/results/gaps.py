"""Gaps between published numbers and recbench's rows, measured factor by factor.

"My numbers do not match the paper" is answered here with measurements: for each model, the
published number, recbench's baseline row, and one step per factor that separates them (training
length, width, text embeddings, beam width, protocol), each measured as two committed leaderboard
rows that differ in that factor only, with the paired t-test on per-user test NDCG@10 (seeds
averaged per user, as `recbench compare` does). What the steps do not add up to is shown as the
part left unexplained; steps are measured from the baseline each, so their sum assumes that the
factors add up, and the page says so.

Which rows measure which factor is data, not code: `gaps.toml` in the folder of records (a
`[[chain]]` per model; rows are named "GENERATOR FINGERPRINT-PREFIX", as the leaderboard shows
them). Measurements that are not records sit beside it, under `benchmarks/`: the training FLOPs of
each run (`train_flops.jsonl`, from benchmarks/train_flops.py) for the DIFF_GRM-against-AR_GRM
scaling plot, and beam sweeps on saved checkpoints (`decoding.jsonl`, from benchmarks/decoding.py
--jsonl). `recbench leaderboard --write-markdown` renders `gaps.md` (and `gaps.png`) from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomllib

from .. import metrics
from ..errors import UsageError
from . import references, significance
from .leaderboard import Row
from .records import decode_ints

SPEC = "gaps.toml"
METRIC = "ndcg@10"
# A two-sided p above this is a difference within two standard errors of zero: on one seed a step
# like that is not settled, since the seed's own variation may be as large.
TWO_SE_P = 0.0455


@dataclass
class Step:
    factor: str
    what: str
    a: Row  # the row the factor is measured from
    b: Row | None  # the row with the factor changed (None: the ID level of `a`)
    mean_a: float
    mean_b: float
    p: float


def load_spec(folder: Path) -> dict | None:
    path = Path(folder) / SPEC
    if not path.is_file():
        return None
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"'{path}' is not valid TOML: {exc}.") from None
    for i, chain in enumerate(spec.get("chain", []), start=1):
        missing = [k for k in ("model", "dataset", "baseline") if k not in chain]
        if missing:
            raise UsageError(f"'{path}': chain {i} ({chain.get('model', '?')}) lacks {', '.join(missing)}.")
    return spec


def find_row(name: str, rows: list[Row], where: str) -> Row:
    """The row named 'GENERATOR PREFIX' (the config fingerprint's first hex digits)."""
    generator, _, prefix = name.partition(" ")
    found = [r for r in rows if r.generator == generator and r.config_fingerprint.startswith(prefix)]
    if len(found) != 1:
        raise UsageError(f"{where}: row '{name}' matches {len(found)} rows of the records (expected one: "
                         f"a generator and the first digits of a config fingerprint, as the leaderboard shows them).")
    return found[0]


def id_level_values(row: Row) -> np.ndarray:
    """Per-user ID-level NDCG@10 averaged over the row's seeds (users sorted by id)."""
    values = []
    for rec in row.runs:
        users = rec.users()
        ranks = decode_ints(rec.id_level.test_rank)
        values.append(metrics.per_user(ranks)[METRIC][np.argsort(users, kind="stable")])
    return np.mean(values, axis=0)


def measure(chain: dict, by_dataset: dict[str, list[Row]], where: str) -> tuple[Row, list[Step]]:
    """The chain's baseline row and its steps; a factor may be measured on another dataset (`dataset`)."""
    baseline = find_row(chain["baseline"], by_dataset.get(chain["dataset"], []), where)
    steps = []
    for factor in chain.get("factor", []):
        rows = by_dataset.get(factor.get("dataset", chain["dataset"]), [])
        if "id_level" in factor:
            a = find_row(factor["id_level"], rows, where)
            item = significance.seed_average(a.runs, METRIC)
            ident = id_level_values(a)
            test = significance.paired(ident, item)
            steps.append(Step(factor["name"], factor.get("what", ""), a, None, float(item.mean()), float(ident.mean()), test.p_ttest))
            continue
        a, b = (find_row(n, rows, where) for n in factor["rows"])
        test = significance.compare(b.runs, a.runs, METRIC)
        steps.append(Step(factor["name"], factor.get("what", ""), a, b, test.mean_b, test.mean_a, test.p_ttest))
    return baseline, steps


def published(chain: dict, where: str) -> references.Reference | None:
    if "published" not in chain:
        return None
    found = [r for r in references.for_dataset(chain["dataset"]) if r.model == chain["published"] and r.source == chain["published_source"]]
    if len(found) != 1:
        raise UsageError(f"{where}: no published row '{chain['published']}' from '{chain['published_source']}' on {chain['dataset']}.")
    return found[0]


def label(row: Row) -> str:
    return f"{row.generator} {row.setting()} [{row.config_fingerprint[:8]}]"


def fmt_p(p: float) -> str:
    return "1" if p >= 0.9995 else f"{p:.3f}" if p >= 0.001 else f"{p:.0e}"


def chain_lines(chain: dict, by_dataset: dict[str, list[Row]], where: str) -> list[str]:
    ref = published(chain, where)
    baseline, steps = measure(chain, by_dataset, where)
    base = baseline.mean(METRIC)
    title = (f"published {ref.metrics[METRIC]:.4f} ({references.PROTOCOLS[ref.protocol]}; {ref.source}) against recbench's {base:.4f}"
             if ref else f"no published number; recbench's {base:.4f}")
    lines = [f"### {chain['model']} on {chain['dataset']}: {title}", "", chain.get("about", "").strip(), "",
             f"Baseline: {label(baseline)}, {baseline.seeds} seed{'s' if baseline.seeds > 1 else ''}, test NDCG@10 {base:.4f} "
             f"(item level); {baseline.device()}.", "",
             "| factor | what changes | from → to | seeds | NDCG@10 from → to | delta | p |",
             "|---|---|---|---|---|---|---|"]
    for s, factor in zip(steps, chain.get("factor", [])):
        to = "the same runs at the ID level" if s.b is None else label(s.b)
        seeds = f"{s.a.seeds}" if s.b is None else f"{s.a.seeds} / {s.b.seeds}"
        on = f" (on {factor['dataset']})" if factor.get("dataset", chain["dataset"]) != chain["dataset"] else ""
        lines.append(f"| {s.factor}{on} | {s.what} | {label(s.a)} → {to} | {seeds} | {s.mean_a:.4f} → {s.mean_b:.4f} | "
                     f"{s.mean_b - s.mean_a:+.4f} | {fmt_p(s.p)} |")
    here = [s for s, f in zip(steps, chain.get("factor", [])) if f.get("dataset", chain["dataset"]) == chain["dataset"]]
    if ref is not None and ref.protocol == "item":  # the ID level is not what the published number counts
        here = [s for s in here if s.b is not None]
    total = sum(s.mean_b - s.mean_a for s in here)
    if ref is not None:
        gap = ref.metrics[METRIC] - base
        apart = (" The protocol step is not in the sum: the published number is item level, like the baseline."
                 if ref.protocol == "item" and any(s.b is None for s in steps) else "")
        lines += ["", f"Published − baseline: {gap:+.4f}. Measured steps on {chain['dataset']}, summed: {total:+.4f} "
                  f"({total / gap:.0%} of the gap, if the factors add up). Unexplained: {gap - total:+.4f}.{apart}"
                  if gap else "Published − baseline: 0.", ""]
    for s in unsettled(steps):
        single = " and ".join(f"{r.generator} [{r.config_fingerprint[:8]}]" for r in (s.a, s.b) if r.seeds == 1)
        lines.append(f"- Not settled: {s.factor} is within two standard errors (p = {fmt_p(s.p)}) with one seed of "
                     f"{single}; a second seed would settle it.")
    for item in chain.get("unmeasured", []):
        lines.append(f"- Not measured here: {item}")
    return lines


def unsettled(steps: list[Step]) -> list[Step]:
    """Steps between two rows, one of them a single seed, whose difference is within two standard errors."""
    return [s for s in steps if s.b is not None and min(s.a.seeds, s.b.seeds) == 1 and s.p > TWO_SE_P]


def sweep_lines(folder: Path) -> list[str]:
    """The beam sweeps of benchmarks/decoding.jsonl, one table per checkpoint."""
    path = Path(folder) / "benchmarks" / "decoding.jsonl"
    if not path.is_file():
        return []
    runs: dict[str, list[dict]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
                runs.setdefault(entry["run_id"], []).append(entry)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UsageError(f"'{path}' line {n}: not a decoding measurement ({exc}).") from None
    lines = ["## Beam width on saved checkpoints", "",
             "`python benchmarks/decoding.py RECORD --beams 10 32 64 128 256 --jsonl FILE`: the best checkpoint of the run "
             "decoded at each beam for the same sample of test users (standard error of NDCG@10 on 1,000 users: about "
             "0.004, so this shows the trend; the factor tables above give the paired tests on every test user).", ""]
    for run_id, entries in runs.items():
        first = entries[0]
        lines += [f"{first['generator']} ({run_id}; {first['users']:,} test users, {first['machine']}):", "",
                  "| beam | steps | users/s | NDCG@10 | Recall@10 |", "|---|---|---|---|---|"]
        lines += [f"| {e['beam']} | {e['steps']} | {e['users_per_s']:,.1f} | {e['ndcg@10']:.4f} | {e['recall@10']:.4f} |" for e in entries]
        lines.append("")
    return lines


def train_flops(folder: Path) -> dict[str, dict]:
    """run_id -> its training-FLOP measurement (benchmarks/train_flops.jsonl)."""
    path = Path(folder) / "benchmarks" / "train_flops.jsonl"
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                entry = json.loads(line)
                out[entry["run_id"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UsageError(f"'{path}' line {n}: not a FLOP measurement ({exc}).") from None
    return out


def scaling_points(spec: dict, by_dataset: dict[str, list[Row]], flops: dict[str, dict], where: str) -> list[dict]:
    """One point per scaling row (of the group's dataset): its model, setting, training TFLOPs (mean over
    seeds) and test NDCG@10."""
    points = []
    for group in spec.get("scaling", []):
        for name in group["rows"]:
            row = find_row(name, by_dataset.get(group["dataset"], []), where)
            missing = [r.run_id for r in row.runs if r.run_id not in flops]
            if missing:
                raise UsageError(f"{where}: no training FLOPs for {', '.join(missing)} in benchmarks/train_flops.jsonl "
                                 "(python benchmarks/train_flops.py RECORD --jsonl FILE).")
            tf = float(np.mean([flops[r.run_id]["train_flops"] for r in row.runs])) / 1e12
            points.append({"dataset": group["dataset"], "model": row.generator, "row": row, "tflops": tf,
                           "mean": row.mean(METRIC), "std": row.std(METRIC), "what": group.get("labels", {}).get(name, "")})
    return points


def trends(points: list[dict]) -> dict[tuple[str, str], tuple[float, float]]:
    """(dataset, model) -> (a, b) of the least-squares line NDCG@10 = a + b * log2(TFLOP) through the
    model's points (three or more): b is what one doubling of training compute is worth."""
    out = {}
    for key in sorted({(p["dataset"], p["model"]) for p in points}):
        mine = [p for p in points if (p["dataset"], p["model"]) == key]
        if len(mine) >= 3:
            b, a = np.polyfit(np.log2([p["tflops"] for p in mine]), [p["mean"] for p in mine], 1)
            out[key] = (float(a), float(b))
    return out


def trend_lines(points: list[dict]) -> list[str]:
    """Each fitted line, and where two models' lines on one dataset would meet: an extrapolation, said so."""
    fitted = trends(points)
    if not fitted:
        return []
    lines = ["Fitted trend (least squares on each model's points; beyond the largest run it is an extrapolation, "
             "not a measurement):", ""]
    for (ds, model), (a, b) in fitted.items():
        span = [p["tflops"] for p in points if (p["dataset"], p["model"]) == (ds, model)]
        lines.append(f"- {ds}, {model}: NDCG@10 ≈ {a:.4f} {b:+.4f} × log2(TFLOP), {b:+.4f} per doubling "
                     f"(fitted on {len(span)} points, {min(span):,.1f}–{max(span):,.1f} TFLOP)")
    for ds in sorted({ds for ds, _ in fitted}):
        pair = [(m, ab) for (d, m), ab in fitted.items() if d == ds]
        if len(pair) != 2:
            continue
        (m1, (a1, b1)), (m2, (a2, b2)) = pair
        top = max(p["tflops"] for p in points if p["dataset"] == ds)
        x = None if b1 == b2 else (a2 - a1) / (b1 - b2)  # log2(TFLOP) where the lines meet
        if x is not None and 2.0 ** x > top:
            lines.append(f"- {ds}: the lines meet at about {2.0 ** x:,.0f} TFLOP, {2.0 ** x / top:,.0f}x the largest run "
                         "measured (extrapolated)")
        else:
            lead = m1 if a1 + b1 * np.log2(top) > a2 + b2 * np.log2(top) else m2
            lines.append(f"- {ds}: the lines do not meet at more compute: {lead} leads at the largest run and its "
                         f"line is the steeper one, so the fitted gap grows by {abs(b1 - b2):.4f} per doubling")
    return lines + [""]


def scaling_lines(points: list[dict], readings: list[str]) -> list[str]:
    """The scaling table, then each [[scaling]] group's reading of its points (`about`)."""
    if not points:
        return []
    lines = ["## DIFF_GRM against AR_GRM as training compute grows", "",
             "![test NDCG@10 against training compute](gaps.png)", "",
             "Training compute: forward and backward FLOPs per training sample (torch.utils.flop_counter on the run's own "
             "batches) times the samples the run trained on (benchmarks/train_flops.py).", "",
             "| dataset | model | setting | seeds | training TFLOP | NDCG@10 |", "|---|---|---|---|---|---|"]
    for p in points:
        row = p["row"]
        lines.append(f"| {p['dataset']} | {p['model']} | {p['what'] or row.setting()} [{row.config_fingerprint[:8]}] | {row.seeds} | "
                     f"{p['tflops']:,.1f} | {row.mean(METRIC):.4f}" + (f" ± {row.std(METRIC):.4f}" if row.seeds > 1 else "") + " |")
    lines.append("")
    lines += trend_lines(points)
    for reading in readings:
        lines += [reading, ""]
    return lines


def plot_scaling(points: list[dict], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    datasets = sorted({p["dataset"] for p in points})
    fitted = trends(points)
    fig = Figure(figsize=(6 * len(datasets), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, ds in zip(axes, datasets):
        for i, model in enumerate(sorted({p["model"] for p in points if p["dataset"] == ds})):
            mine = sorted((p for p in points if p["dataset"] == ds and p["model"] == model), key=lambda p: p["tflops"])
            ax.errorbar([p["tflops"] for p in mine], [p["mean"] for p in mine], yerr=[p["std"] for p in mine], fmt="o-",
                        color=f"C{i}", capsize=4, label=model)
            if (ds, model) in fitted:  # the fitted line, dotted past the last point (extrapolated)
                a, b = fitted[ds, model]
                top = mine[-1]["tflops"]
                for lo, hi, style in ((mine[0]["tflops"], top, "--"), (top, 4 * top, ":")):
                    xs = np.geomspace(lo, hi, 20)
                    ax.plot(xs, a + b * np.log2(xs), style, color=f"C{i}", alpha=0.6, linewidth=1)
            for p in mine:  # the label's head ("4 epochs"); the table under the plot gives it whole
                short = p["what"].split(" (")[0].split(",")[0]
                ax.annotate(short, (p["tflops"], p["mean"]), textcoords="offset points", xytext=(5, -10), fontsize="x-small")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training compute (TFLOP, log scale)")
        ax.set_ylabel("test NDCG@10 (item level, mean ± std over seeds)")
        ax.set_title(f"{ds}: DIFF_GRM against AR_GRM")
        if fitted:
            ax.text(0.98, 0.02, "dashed: fitted trend; dotted: extrapolated", transform=ax.transAxes, ha="right",
                    fontsize="x-small", color="0.4")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def page(folder: Path, by_dataset: dict[str, list[Row]], regenerate: str) -> tuple[str, list[dict]] | None:
    """The markdown of gaps.md and the scaling points, or None where the folder has no gaps.toml."""
    spec = load_spec(folder)
    if spec is None:
        return None
    where = f"'{Path(folder) / SPEC}'"
    lines = ["# recbench: from published numbers to recbench's rows, factor by factor", "",
             f"Rendered from result records, `{SPEC}` and the measurements under `benchmarks/` in the records folder. Do not "
             f"edit by hand: regenerate with `{regenerate}`.", "", spec.get("about", "").strip(), ""]
    for chain in spec.get("chain", []):
        lines += chain_lines(chain, by_dataset, where) + [""]
    points = scaling_points(spec, by_dataset, train_flops(folder), where)
    readings = [g["about"].strip() for g in spec.get("scaling", []) if g.get("about", "").strip()]
    lines += scaling_lines(points, readings) + sweep_lines(folder)
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n", points
