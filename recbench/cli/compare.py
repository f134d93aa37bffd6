"""`recbench compare RUN_A RUN_B`: a paired significance test of two runs on per-user test metrics."""

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from .. import paths, records, significance
from ..errors import UsageError, did_you_mean


def find_record(name: str, folders: list[Path]) -> records.Record:
    """The record at path `name`, or the one whose run id is `name` under `folders`."""
    if Path(name).is_file():
        return records.load(name)
    if name.endswith(".json"):
        raise UsageError(f"Result record '{name}' does not exist.")
    found = {p.stem: p for p in records.find(folders)}
    if name not in found:
        where = ", ".join(str(f) for f in folders)
        raise UsageError(
            f"No result record with run id '{name}' in {where} (give a record path, or a run id with --results DIR)."
            + did_you_mean(name, found)
        )
    return records.load(found[name])


def report(a: records.Record, b: records.Record, metric: str, test: significance.Paired) -> dict:
    return {
        "metric": metric,
        "dataset": a.dataset.name,
        "data_fingerprint": a.dataset.fingerprint,
        "users": test.n,
        "a": {"run_id": a.run_id, "generator": a.generator.name, "seed": a.seed, "mean": test.mean_a},
        "b": {"run_id": b.run_id, "generator": b.generator.name, "seed": b.seed, "mean": test.mean_b},
        "difference": test.diff,
        "std_difference": test.std_diff,
        "cohens_d": test.cohens_d,
        "ttest": {"statistic": test.t, "p": test.p_ttest},
        "wilcoxon": {"statistic": test.w, "p": test.p_wilcoxon},
    }


def text(r: dict) -> str:
    width = max(len(r["a"]["run_id"]), len(r["b"]["run_id"]))
    lines = [f"{r['metric']} on the test split of {r['dataset']} (prepared data {r['data_fingerprint'][:8]}), "
             f"{r['users']:,} users, paired per user"]
    for key in ("a", "b"):
        run = r[key]
        lines.append(f"  {key.upper()}  {run['run_id']:<{width}}  {run['generator']} (seed {run['seed']})  mean {run['mean']:.4f}")
    lines += [
        f"  difference A − B: {r['difference']:+.4f} (std over users {r['std_difference']:.4f})",
        f"  effect size: Cohen's d (paired) = {r['cohens_d']:+.3f}",
        f"  paired t-test:         t = {r['ttest']['statistic']:+.3f}, p = {r['ttest']['p']:.3g}",
        f"  Wilcoxon signed-rank:  W = {r['wilcoxon']['statistic']:.1f}, p = {r['wilcoxon']['p']:.3g}",
        f"  (two-sided; p < {significance.ALPHA} means the difference is unlikely to be chance for a single comparison)",
    ]
    return "\n".join(lines)


def command(
    run_a: str = typer.Argument(..., help="A record path, or a run id found under the results folders."),
    run_b: str = typer.Argument(..., help="A record path, or a run id found under the results folders."),
    metric: str = typer.Option("ndcg@10", "--metric", "-m", help="Per-user test metric to compare."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    results: Optional[List[Path]] = typer.Option(None, "--results", help="More folders of records to find run ids in."),
) -> None:
    """Compare two runs on the same data: both means, the difference, Cohen's d, paired t-test and Wilcoxon p-values."""
    significance.check_metric(metric)
    folders = [paths.results_dir(), *(results or [])]
    a, b = find_record(run_a, folders), find_record(run_b, folders)
    r = report(a, b, metric, significance.compare([a], [b], metric))
    if as_json:
        print(json.dumps(r, indent=2))
    else:
        Console(highlight=False).print(text(r), markup=False, soft_wrap=True)
